// The `eventsource` npm package (a WHATWG EventSource for Node) as a client
// of the matrix: it reconnects by itself, sends Last-Event-ID itself and
// applies `retry:` itself. It exposes no retry value: `retry` is null.
//
//   node eventsource.mjs http://127.0.0.1:PORT/events

import { EventSource } from "eventsource";

import { endWithStdin, event, note, url } from "./report.mjs";

const source = new EventSource(url());
// An EventSource dispatches only the types listened for; these are all the
// hub sends (a message published without `event` is a `message`).
for (const type of ["connection", "gap", "message"]) {
  source.addEventListener(type, (e) => event(type, e.data, e.lastEventId));
}
source.addEventListener("open", () => note("open"));
source.addEventListener("error", (e) =>
  note(`error (readyState ${source.readyState}): ${e.message ?? ""}`),
);
endWithStdin(async () => source.close());
