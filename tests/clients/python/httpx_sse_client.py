"""httpx-sse over httpx as a client of the matrix.

httpx-sse parses a stream and nothing more; its README shows the reconnect
loop (with `stamina` for backoff), which this follows without the backoff:
the last event ID is taken from every event (`sse.id`, the stream's last ID
so far, "" until an `id:` arrived on this connection), and the wait from
`sse.retry` whenever an event carries one. Unlike the README, it also
reconnects after a clean end of stream, as an EventSource does.

    python httpx_sse_client.py http://127.0.0.1:PORT/events
"""

import time

import httpx
from httpx_sse import SSEError, connect_sse

import report

# httpx's default is 5 s for every phase, reads included: an idle stream
# with the hub's default 15 s heartbeat would time out. The read timeout
# must outlast the heartbeat.
TIMEOUT = httpx.Timeout(5.0, read=45.0)


def main():
    url = report.url()
    report.end_with_stdin()
    last_event_id = ""
    delay = 3.0
    with httpx.Client(timeout=TIMEOUT) as client:
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                with connect_sse(client, "GET", url, headers=headers) as source:
                    report.note(f"open {source.response.status_code}")
                    source.response.raise_for_status()
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
