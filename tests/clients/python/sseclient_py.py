"""sseclient-py (module `sseclient`) as a client of the matrix, over
`requests`, as its README shows.

sseclient-py parses a stream and nothing more: the reconnect loop, the
Last-Event-ID header and the wait of `retry:` are the caller's. This loop
takes its last event ID from every event it is given, as several libraries
do, and its wait from the event's `retry` (a string in sseclient-py, and
only on an event that carries data: a block without data is not
dispatched). Without a `retry:` it waits 3 s, the WHATWG suggestion.

    python sseclient_py.py http://127.0.0.1:PORT/events
"""

import time

import requests
import sseclient

import report

# (connect, read): the read timeout must outlast the hub's heartbeat (15 s
# by default); requests waits forever without one.
TIMEOUT = (5.0, 45.0)


def main():
    url = report.url()
    report.end_with_stdin()
    last_id = None
    delay = 3.0
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            with requests.get(url, stream=True, headers=headers, timeout=TIMEOUT) as response:
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
