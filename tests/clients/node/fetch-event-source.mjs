// `@microsoft/fetch-event-source` as a client of the matrix, on Node 20.
//
// What it needs outside a browser, and nothing more:
// - `window`: it calls `window.setTimeout`, `window.clearTimeout` and, with
//   no `fetch` option, `window.fetch`; Node 20 has all three on globalThis.
// - `document`: only for the Page Visibility API, which `openWhenHidden:
//   true` turns off; it still calls `document.removeEventListener` when it
//   stops for good (aborted, a clean end that `onclose` let through, an
//   error `onerror` rethrew), so a stub that does nothing.
//
// It reconnects only through its documented loop: a clean end of stream is
// final (the promise resolves) unless `onclose` throws, and an error retries
// after the `retry:` the server sent unless `onerror` returns another
// interval or throws. It sets Last-Event-ID from each `id:` field.
//
//   node fetch-event-source.mjs http://127.0.0.1:PORT/events

import { fetchEventSource } from "@microsoft/fetch-event-source";

import { endWithStdin, event, note, url } from "./report.mjs";

globalThis.window ??= globalThis;
globalThis.document ??= { addEventListener() {}, removeEventListener() {} };

/** Thrown from `onclose` so that the loop reconnects after a clean end. */
class StreamEnded extends Error {}

const stop = new AbortController();
endWithStdin(async () => stop.abort());

await fetchEventSource(url(), {
  signal: stop.signal,
  openWhenHidden: true,
  onopen(response) {
    note(`open ${response.status}`);
    const type = response.headers.get("content-type") ?? "";
    if (response.status !== 200 || !type.startsWith("text/event-stream")) {
      throw new Error(`not an event stream: ${response.status} ${type}`);
    }
  },
  onmessage(message) {
    // The library calls this for every empty line, whatever the block
    // held: that is what the matrix checks.
    event(message.event || "message", message.data, message.id, message.retry);
  },
  onclose() {
    note("the stream ended");
    throw new StreamEnded();
  },
  onerror(error) {
    note(`error: ${error.message}`);
    // Nothing returned: retry after the server's `retry:`.
  },
});
