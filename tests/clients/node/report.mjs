// What every client script in this folder shares with the Rust driver
// (tests/client_matrix.rs): one JSON line on stdout per dispatched event,
// notes for what happened to the connection, and an end when stdin closes.
//
// An event line: {"type", "data", "id", "retry"}, where `id` is the ID the
// library gives the event (its lastEventId, or its own id field) and
// `retry` is the reconnection time the library exposes on it, or null when
// it exposes none. A note line: {"note": "..."}. Nothing else is printed
// on stdout.

/** Prints one dispatched event. */
export function event(type, data, id, retry = null) {
  process.stdout.write(`${JSON.stringify({ type, data, id: id ?? null, retry: retry ?? null })}\n`);
}

/** Prints what happened to the connection (opened, failed, ...). */
export function note(text) {
  process.stdout.write(`${JSON.stringify({ note: String(text) })}\n`);
}

/** The URL to connect to: the one argument. */
export function url() {
  const url = process.argv[2];
  if (!url) {
    console.error(`usage: node ${process.argv[1]} URL`);
    process.exit(2);
  }
  return url;
}

/**
 * Calls `stop` (then exits) when stdin ends: the driver closes it to end the
 * client, and a driver that died closes it too.
 */
export function endWithStdin(stop = async () => {}) {
  const end = async () => {
    try {
      await stop();
    } finally {
      process.exit(0);
    }
  };
  process.stdin.on("end", end);
  process.stdin.on("error", end);
  process.stdin.resume();
}
