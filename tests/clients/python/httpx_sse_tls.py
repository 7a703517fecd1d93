"""httpx-sse over HTTPS, trusting one CA through Python's `ssl` module
(tests/tls_clients.rs): the CA file named by SSE_HUB_TEST_CA is loaded
into an `ssl.SSLContext`, which verifies the certificate chain and the
host name, and httpx is given that context (`verify=`). The reconnect
loop is the one of httpx_sse_client.py: the last event ID from every
event, the wait from `retry`.

    SSE_HUB_TEST_CA=ca.pem python httpx_sse_tls.py https://127.0.0.1:PORT/events

The note printed when a stream opens names the TLS version and the ALPN
protocol that were negotiated.
"""

import os
import ssl
import time

import httpx
from httpx_sse import SSEError, connect_sse

import report

# The read timeout must outlast the hub's heartbeat (15 s by default).
TIMEOUT = httpx.Timeout(5.0, read=45.0)


def tls_of(response):
    """The negotiated TLS version and ALPN protocol of a response."""
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    if tls is None:
        return "no TLS"
    return f"{tls.version()} alpn={tls.selected_alpn_protocol()}"


def main():
    url = report.url()
    report.end_with_stdin()
    context = ssl.create_default_context(cafile=os.environ["SSE_HUB_TEST_CA"])
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    last_event_id = ""
    delay = 3.0
    with httpx.Client(timeout=TIMEOUT, verify=context) as client:
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                with connect_sse(client, "GET", url, headers=headers) as source:
                    response = source.response
                    report.note(f"open {response.status_code} {tls_of(response)}")
                    response.raise_for_status()
                    for sse in source.iter_sse():
                        last_event_id = sse.id
                        if sse.retry is not None:
                            delay = sse.retry / 1000
                        report.event(sse.event, sse.data, sse.id, sse.retry)
                report.note("the stream ended")
            except (httpx.HTTPError, SSEError) as error:
                report.note(f"error: {error!r}")
            time.sleep(delay)


if __name__ == "__main__":
    main()
