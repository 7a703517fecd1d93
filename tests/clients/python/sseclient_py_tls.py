"""sseclient-py over `requests` and HTTPS (tests/tls_clients.rs): requests
is given the CA file named by SSE_HUB_TEST_CA (`verify=`), which urllib3
loads into an `ssl.SSLContext` that verifies the chain and the host name.
The reconnect loop is the one of sseclient_py.py.

    SSE_HUB_TEST_CA=ca.pem python sseclient_py_tls.py https://127.0.0.1:PORT/events
"""

import os
import time

import requests
import sseclient

import report

# (connect, read): the read timeout must outlast the hub's heartbeat.
TIMEOUT = (5.0, 45.0)


def main():
    url = report.url()
    report.end_with_stdin()
    ca = os.environ["SSE_HUB_TEST_CA"]
    last_id = None
    delay = 3.0
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            with requests.get(
                url, stream=True, headers=headers, timeout=TIMEOUT, verify=ca
            ) as response:
                report.note(f"open {response.status_code}")
                response.raise_for_status()
                for event in sseclient.SSEClient(response).events():
                    last_id = event.id
                    retry = int(event.retry) if event.retry else None
                    if retry is not None:
                        delay = retry / 1000
                    report.event(event.event, event.data, event.id, retry)
            report.note("the stream ended")
        except requests.RequestException as error:
            report.note(f"error: {error!r}")
        time.sleep(delay)


if __name__ == "__main__":
    main()
