// SharedEventSource (/sse-hub.js) in a real browser: Debian's headless
// Chromium, driven by playwright-core, against the real sse-hub binary.
//
//   SSE_HUB_BIN=target/debug/sse-hub node --test shared.mjs
//
// `cargo test -- --include-ignored` runs this through tests/browser.rs.
// Tabs are pages of one browser context (one profile). The test pages are
// the hub's own `/healthz` (a page on the hub's origin that runs nothing);
// each test imports the module into them and records what its instances
// deliver. `GET /stats` tells how many streams the hub really holds, so a
// module that opened one stream per tab would fail every count below.
// Waits have generous timeouts that only guard against hangs; nothing here
// measures time. SSE_HUB_STATIC=DIR serves the files from DIR (`--static`).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

import { chromium } from "playwright-core";

const BIN = process.env.SSE_HUB_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const STATIC = process.env.SSE_HUB_STATIC ? ["--static", path.resolve(process.env.SSE_HUB_STATIC)] : [];

/** How long one wait may take before the test fails as hung. */
const GUARD_MS = 20_000;
/** A whole test, as a last hang guard. */
const TEST_GUARD_MS = 120_000;
const TABS = 8;

if (!BIN) {
  console.error("SSE_HUB_BIN must name the sse-hub binary (cargo test sets it)");
  process.exit(2);
}
if (!fs.existsSync(CHROMIUM)) {
  console.error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  process.exit(2);
}

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
    ],
  });
});

after(async () => {
  await browser?.close();
});

// ---- the hub and a proxy that can cut it -----------------------------------

/** Starts sse-hub on a free port; stopped after the test. */
async function startHub(t, args = []) {
  const child = spawn(BIN, ["--listen", "127.0.0.1:0", ...STATIC, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "info" },
  });
  let log = "";
  const exited = new Promise((resolve) => child.on("exit", resolve));
  t.after(async () => {
    child.kill("SIGTERM");
    await exited;
  });
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sse-hub did not report its address; log:\n${log}`)), GUARD_MS);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const found = /listening on http:\/\/(\S+)/.exec(log);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sse-hub exited (${code}) before listening; log:\n${log}`));
    });
  });
  const url = (route = "/") => `http://${addr}${route}`;
  return {
    url,
    async stats() {
      return (await fetch(url("/stats"))).json();
    },
    /** Publishes and insists on success; returns the new ID. */
    async send(body) {
      const reply = await fetch(url("/broadcast"), { method: "POST", body: JSON.stringify(body) });
      const json = await reply.json();
      assert.equal(reply.status, 200, `publish ${JSON.stringify(body)}: ${JSON.stringify(json)}`);
      return json.id;
    },
  };
}

/**
 * A TCP proxy on loopback in front of `target` ("host:port"). `cut()` ends
 * every connection through it. While `refusing` is "reset", new connections
 * are closed at once (a browser's EventSource keeps retrying); while it is
 * "503", each request gets a 503 (an EventSource gives up for good).
 * `heads` holds the request and response heads that passed, as text.
 */
async function startProxy(t, target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const open = new Set();
  const proxy = { refusing: null, answered503: 0, heads: [] };
  const server = net.createServer((client) => {
    if (proxy.refusing === "reset") {
      client.destroy();
      return;
    }
    if (proxy.refusing === "503") {
      client.once("data", () => {
        proxy.answered503 += 1;
        client.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      });
      client.on("error", () => {});
      return;
    }
    const upstream = net.connect(port, host);
    const pair = [client, upstream];
    open.add(pair);
    const end = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of pair) {
      socket.on("error", end);
      socket.on("close", end);
    }
    for (const socket of pair) {
      socket.on("data", (chunk) => {
        const text = chunk.toString("latin1");
        if (/^(GET|POST|HTTP\/1\.1) /.test(text)) proxy.heads.push(text.split("\r\n\r\n")[0]);
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    proxy.cut();
    server.close();
  });
  proxy.url = (route = "/") => `http://127.0.0.1:${server.address().port}${route}`;
  proxy.cut = () => {
    for (const [client, upstream] of open) {
      client.destroy();
      upstream.destroy();
    }
    open.clear();
  };
  return proxy;
}

// ---- tabs --------------------------------------------------------------------

/** A fresh browser context (one profile), closed after the test. */
async function profile(t) {
  const context = await browser.newContext();
  t.after(() => context.close());
  return context;
}

/**
 * A page of `context` at `origin`/healthz with a SharedEventSource on
 * `stream`, imported from `moduleUrl`. It records every event of `types`
 * in `window.got`, and opens and errors in `window.opens` and `window.errors`.
 */
async function openTab(context, { origin, stream, types = [], moduleUrl = "/sse-hub.js", initScript = null }) {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  page.problems = problems;
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${origin}/healthz`);
  await page.evaluate(
    async ({ moduleUrl, stream, types }) => {
      const { SharedEventSource } = await import(moduleUrl);
      window.SharedEventSource = SharedEventSource;
      window.got = [];
      window.opens = 0;
      window.errors = 0;
      window.errorStates = [];
      const es = new SharedEventSource(stream);
      window.es = es;
      const record = (e) =>
        window.got.push({
          type: e.type,
          data: e.data,
          id: e.lastEventId,
          isMessageEvent: e instanceof MessageEvent,
        });
      es.onopen = () => {
        window.opens += 1;
      };
      es.onerror = () => {
        window.errors += 1;
        window.errorStates.push(es.readyState);
      };
      es.onmessage = record;
      for (const type of types) es.addEventListener(type, record);
    },
    { moduleUrl, stream, types }
  );
  return page;
}

async function waitIn(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: GUARD_MS, polling: 50 });
  } catch (e) {
    const got = await page.evaluate(() => JSON.stringify(window.got?.slice(-10))).catch(() => "?");
    throw new Error(`waited in vain for ${what}; last events: ${got}\n${e.message}`);
  }
}

const waitOpen = (page) => waitIn(page, "readyState OPEN", () => window.es.readyState === 1);

/** Waits until the tab has recorded an event whose data is `data`. */
const waitData = (page, data) => waitIn(page, `data ${JSON.stringify(data)}`, (d) => window.got.some((e) => e.data === d), data);

/** What the tab recorded, as `[type, data, id]`, without `connection` events. */
async function messages(page) {
  return page.evaluate(() => window.got.filter((e) => e.type !== "connection").map((e) => [e.type, e.data, e.id]));
}

/** Polls `fn()` until it holds; fails as hung after the guard. */
async function until(what, fn) {
  const deadline = Date.now() + GUARD_MS;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`waited in vain for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls `/stats` until `test(stats)` holds; fails as hung after the guard. */
async function statsUntil(hub, what, test) {
  const deadline = Date.now() + GUARD_MS;
  let stats;
  for (;;) {
    stats = await hub.stats();
    if (test(stats)) return stats;
    if (Date.now() > deadline) throw new Error(`waited in vain for ${what}; /stats: ${JSON.stringify(stats)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Publishes `n` messages named `prefix i`; returns the expected records. */
async function publish(hub, prefix, n, extra = {}) {
  const expected = [];
  for (let i = 0; i < n; i += 1) {
    const data = `${prefix} ${i}`;
    expected.push([extra.event ?? "message", data, await hub.send({ message: data, ...extra })]);
  }
  return expected;
}

function assertClean(pages) {
  for (const page of pages) assert.deepEqual(page.problems, [], "a page threw");
}

// ---- the tests -------------------------------------------------------------

test("eight tabs share one stream, and each gets every message in order with its ID", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  const stream = hub.url("/events?channel=news");
  const tabs = [];
  for (let i = 0; i < TABS; i += 1) {
    const tab = await openTab(context, { origin: hub.url(""), stream, types: ["connection", "reading"] });
    await waitOpen(tab);
    tabs.push(tab);
  }
  const stats = await hub.stats();
  assert.equal(stats.clients, 1, `${TABS} tabs should hold one stream: ${JSON.stringify(stats)}`);
  assert.equal(stats.channels.news, 1);

  // Every tab saw the one stream's connection event: the same client. A
  // tab that joined an open stream got it again, with the stream's place.
  const hellos = [];
  for (const tab of tabs) {
    await waitIn(tab, "the connection event", () => window.got.some((e) => e.type === "connection"));
    const [hello] = await tab.evaluate(() => window.got.filter((e) => e.type === "connection"));
    assert.equal(hello.isMessageEvent, true);
    assert.match(hello.id, /^\d+-\d+$/);
    hellos.push(JSON.parse(hello.data));
    assert.equal(await tab.evaluate(() => window.opens), 1);
  }
  assert.equal(new Set(hellos.map((h) => h.client)).size, 1, "tabs were on different streams");
  assert.deepEqual(hellos[0].channels, ["news"]);

  // The interface, as EventSource has it.
  const shape = await tabs[0].evaluate(() => ({
    url: window.es.url,
    withCredentials: window.es.withCredentials,
    constants: [window.es.CONNECTING, window.es.OPEN, window.es.CLOSED],
    staticConstants: [SharedEventSource.CONNECTING, SharedEventSource.OPEN, SharedEventSource.CLOSED],
  }));
  assert.deepEqual(shape, { url: stream, withCredentials: false, constants: [0, 1, 2], staticConstants: [0, 1, 2] });

  // Plain and named messages, interleaved, with a message for another
  // channel that none of them may see.
  const expected = [];
  for (let i = 0; i < 10; i += 1) {
    expected.push(...(await publish(hub, `news ${i}`, 1, { channel: "news" })));
    expected.push(...(await publish(hub, `reading ${i}`, 1, { event: "reading" })));
    await hub.send({ message: `sports ${i}`, channel: "sports" });
  }
  expected.push(...(await publish(hub, "end", 1)));
  for (const tab of tabs) {
    await waitData(tab, "end 0");
    assert.deepEqual(await messages(tab), expected);
    assert.equal(await tab.evaluate(() => window.got.every((e) => e.isMessageEvent)), true);
    assert.equal(await tab.evaluate(() => window.es.lastEventId), expected.at(-1)[2]);
  }

  // The first tab goes; the others keep receiving on the same stream.
  await tabs[0].close();
  const more = await publish(hub, "after the first tab closed", 3);
  for (const tab of tabs.slice(1)) {
    await waitData(tab, "after the first tab closed 2");
    assert.deepEqual(await messages(tab), [...expected, ...more]);
  }
  assert.equal((await hub.stats()).clients, 1);
  assertClean(tabs);
});

test("after the connection is cut, every tab resumes exactly where it was", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t, ["--retry", "200"]);
  const hubAddr = new URL(hub.url()).host;
  const proxy = await startProxy(t, hubAddr);
  const context = await profile(t);
  // Pages, module and stream all through the proxy: one origin.
  const stream = proxy.url("/events");
  const tabs = [];
  for (let i = 0; i < 4; i += 1) {
    const tab = await openTab(context, { origin: proxy.url(""), stream, types: ["connection"] });
    await waitOpen(tab);
    tabs.push(tab);
  }
  assert.equal((await hub.stats()).clients, 1);

  const expected = await publish(hub, "before", 5);
  for (const tab of tabs) await waitData(tab, "before 4");

  // Each cut keeps the hub out of reach while more is published: only a
  // resume from the last ID can bring those messages.
  // 1. Connections refused: the browser's EventSource retries by itself,
  //    with Last-Event-ID.
  // 2. 503 answers: the EventSource gives up for good; the shared stream
  //    opens a new one with lastEventId= after its backoff, and the tabs
  //    see CONNECTING, never CLOSED.
  for (const refusing of ["reset", "503"]) {
    proxy.refusing = refusing;
    proxy.cut();
    await statsUntil(hub, "the cut stream gone", (s) => s.clients === 0);
    expected.push(...(await publish(hub, `while cut (${refusing})`, 5)));
    for (const tab of tabs) {
      await waitIn(tab, "an error", () => window.errors > 0 && window.es.readyState === 0);
      await tab.evaluate(() => {
        window.errors = 0;
      });
    }
    if (refusing === "503") await until("a 503 answered to the stream", () => proxy.answered503 > 0);
    proxy.refusing = null;
    for (const tab of tabs) await waitData(tab, `while cut (${refusing}) 4`);
    expected.push(...(await publish(hub, `after (${refusing})`, 5)));
  }

  // 3. A cut with the hub in reach at once.
  proxy.cut();
  expected.push(...(await publish(hub, "second cut", 5)));

  for (const tab of tabs) {
    await waitData(tab, "second cut 4");
    assert.deepEqual(await messages(tab), expected, "lost, doubled or out of order");
    assert.deepEqual(await tab.evaluate(() => window.errorStates.filter((state) => state !== 0)), [], "an error said CLOSED");
    assert.equal(await tab.evaluate(() => window.es.readyState), 1);
  }
  // Still one stream for all of them.
  await statsUntil(hub, "one stream again", (s) => s.clients === 1);
  const clients = await Promise.all(
    tabs.map((tab) => tab.evaluate(() => window.got.filter((e) => e.type === "connection").map((e) => JSON.parse(e.data).client)))
  );
  for (const seen of clients) assert.deepEqual(seen, clients[0], "tabs were on different streams");
  assertClean(tabs);
});

test("close() in every tab leaves no stream", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  const stream = hub.url("/events");
  const tabs = [];
  for (let i = 0; i < 3; i += 1) {
    const tab = await openTab(context, { origin: hub.url(""), stream });
    await waitOpen(tab);
    tabs.push(tab);
  }
  assert.equal((await hub.stats()).clients, 1);

  // Two close: the third still receives on the shared stream.
  for (const tab of tabs.slice(0, 2)) {
    await tab.evaluate(() => window.es.close());
    assert.equal(await tab.evaluate(() => window.es.readyState), 2);
  }
  await hub.send({ message: "to the last one" });
  await waitData(tabs[2], "to the last one");
  assert.equal((await hub.stats()).clients, 1);

  await tabs[2].evaluate(() => window.es.close());
  await statsUntil(hub, "no stream", (s) => s.clients === 0);
  await hub.send({ message: "after close" });
  // A new instance opens a new stream: the last message before this marker
  // would have reached a closed instance by now if it were still listening.
  await tabs[2].evaluate((s) => {
    window.again = new window.SharedEventSource(s);
    window.again.onmessage = (e) => window.got.push({ type: "again", data: e.data });
  }, stream);
  await waitIn(tabs[2], "the new instance open", () => window.again.readyState === 1);
  await hub.send({ message: "marker" });
  await waitData(tabs[2], "marker");
  for (const tab of tabs) {
    assert.equal((await messages(tab)).some(([, data]) => data === "after close"), false, "a closed instance got an event");
  }
  await tabs[2].evaluate(() => window.again.close());
  await statsUntil(hub, "no stream again", (s) => s.clients === 0);
  assertClean(tabs);
});

test("closing every tab without close() ends the stream", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  const tabs = [];
  for (let i = 0; i < TABS; i += 1) {
    const tab = await openTab(context, { origin: hub.url(""), stream: hub.url("/events") });
    await waitOpen(tab);
    tabs.push(tab);
  }
  assert.equal((await hub.stats()).clients, 1);
  for (const tab of tabs) await tab.close();
  await statsUntil(hub, "no stream", (s) => s.clients === 0);
});

test("tabs that go away without a word are dropped while other tabs keep the worker", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  // These tabs' goodbye on pagehide never reaches the module.
  const noGoodbye = () => {
    for (const type of ["pagehide", "beforeunload", "unload"]) {
      window.addEventListener(type, (e) => e.stopImmediatePropagation(), true);
    }
  };
  // This one is known to be gone when the worker gets the lock it held.
  const locked = await openTab(context, { origin: hub.url(""), stream: hub.url("/events?channel=locked"), initScript: noGoodbye });
  // This one has no Web Locks: only its silence tells.
  const silent = await openTab(context, {
    origin: hub.url(""),
    stream: hub.url("/events?channel=silent"),
    initScript: () => {
      for (const type of ["pagehide", "beforeunload", "unload"]) {
        window.addEventListener(type, (e) => e.stopImmediatePropagation(), true);
      }
      Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined, configurable: true });
    },
  });
  assert.equal(await silent.evaluate(() => navigator.locks), undefined);
  // This one navigates away: its goodbye says it is gone.
  const leaving = await openTab(context, { origin: hub.url(""), stream: hub.url("/events?channel=left") });
  // This one stays, on another stream, and keeps the shared worker alive.
  const staying = await openTab(context, { origin: hub.url(""), stream: hub.url("/events?channel=kept") });
  for (const tab of [locked, silent, leaving, staying]) await waitOpen(tab);
  const stats = await hub.stats();
  assert.equal(stats.clients, 4);
  assert.deepEqual(Object.keys(stats.channels).sort(), ["kept", "left", "locked", "silent"]);

  await leaving.goto("about:blank");
  await statsUntil(hub, "the navigated tab's stream gone", (s) => !("left" in s.channels));
  await locked.close();
  await statsUntil(hub, "the closed tab's stream gone", (s) => !("locked" in s.channels));
  await silent.close();
  const after = await statsUntil(hub, "the silent tab's stream gone", (s) => !("silent" in s.channels));
  assert.equal(after.clients, 1);

  await hub.send({ message: "still here" });
  await waitData(staying, "still here");
  assertClean([staying]);
});

test("a tab too busy to answer for seconds is not taken for a gone one", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  const tabs = [];
  for (let i = 0; i < 2; i += 1) {
    const tab = await openTab(context, { origin: hub.url(""), stream: hub.url("/events") });
    await waitOpen(tab);
    tabs.push(tab);
  }
  // The first tab's main thread is blocked for 5 s while messages go out.
  const busy = tabs[0].evaluate(() => {
    const until = Date.now() + 5000;
    while (Date.now() < until);
  });
  const expected = await publish(hub, "while busy", 5);
  await busy;
  expected.push(...(await publish(hub, "after", 1)));
  for (const tab of tabs) {
    await waitData(tab, "after 0");
    assert.deepEqual(await messages(tab), expected);
    assert.equal(await tab.evaluate(() => window.errors), 0);
  }
  assert.equal((await hub.stats()).clients, 1);
  assertClean(tabs);
});

test("a page without SharedWorker gets a plain EventSource and still receives", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  const tabs = [];
  for (let i = 0; i < 2; i += 1) {
    const tab = await openTab(context, {
      origin: hub.url(""),
      stream: hub.url("/events"),
      types: ["connection"],
      initScript: () => {
        delete window.SharedWorker;
      },
    });
    assert.equal(await tab.evaluate(() => typeof SharedWorker), "undefined");
    await waitOpen(tab);
    tabs.push(tab);
  }
  // One stream each: nothing is shared without the worker.
  assert.equal((await hub.stats()).clients, 2);
  const plain = await publish(hub, "plain", 5);
  await publish(hub, "named", 2, { event: "reading" });
  // A plain message after the named ones: once a tab shows it, the named
  // ones before it have been dispatched, to no listener, and a listener
  // added now cannot catch them late.
  plain.push(...(await publish(hub, "marker", 1)));
  for (const tab of tabs) await waitData(tab, "marker 0");
  await tabs[0].evaluate(() => window.es.addEventListener("reading", (e) => window.got.push({ type: e.type, data: e.data, id: e.lastEventId })));
  const late = await publish(hub, "named late", 1, { event: "reading" });
  await waitData(tabs[0], "named late 0");
  // Named events reach only the tab that listens for them, from then on.
  assert.deepEqual(await messages(tabs[0]), [...plain, ...late]);
  assert.deepEqual(await messages(tabs[1]), plain);

  for (const tab of tabs) await tab.evaluate(() => window.es.close());
  await statsUntil(hub, "no stream", (s) => s.clients === 0);
  assertClean(tabs);
});

test("connection and gap events are passed on, and named types from when they are listened for", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  // Any last event ID that is not an ID gets a gap event first.
  const stream = hub.url("/events?channel=news&lastEventId=not-an-id");
  const tab = await openTab(context, { origin: hub.url(""), stream, types: ["connection", "gap"] });
  await waitIn(tab, "the gap event", () => window.got.some((e) => e.type === "gap"));
  const [hello, gap] = await tab.evaluate(() => window.got.slice(0, 2));
  assert.equal(hello.type, "connection");
  assert.deepEqual(JSON.parse(hello.data).channels, ["news"]);
  assert.equal(gap.type, "gap");
  assert.equal(gap.isMessageEvent, true);
  assert.equal(JSON.parse(gap.data).requested, "not-an-id");
  assert.equal(gap.id, hello.id, "gap carries the resume point");

  // A second tab joins the open stream: `open`, then the connection event
  // again; the gap belonged to the stream's start.
  const second = await openTab(context, { origin: hub.url(""), stream, types: ["connection", "gap", "alert"] });
  await waitIn(second, "the connection event", () => window.got.some((e) => e.type === "connection"));
  assert.equal((await hub.stats()).clients, 1);

  // A type first listened for on an open stream is relayed from then on.
  await tab.evaluate(() => window.es.addEventListener("alert", (e) => window.got.push({ type: e.type, data: e.data, id: e.lastEventId })));
  const alertId = await hub.send({ message: "disk full", event: "alert", channel: "news" });
  const messageId = await hub.send({ message: "plain", channel: "news" });
  for (const page of [tab, second]) {
    await waitData(page, "plain");
    assert.deepEqual(await messages(page).then((m) => m.filter(([type]) => type !== "gap")), [
      ["alert", "disk full", alertId],
      ["message", "plain", messageId],
    ]);
  }
  assert.deepEqual((await second.evaluate(() => window.got.map((e) => e.type))).filter((type) => type === "gap"), []);
  assertClean([tab, second]);
});

test("a page on another origin falls back to its own stream; through the page's origin it shares", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  // The proxy is another origin (another port) for the same hub.
  const proxy = await startProxy(t, new URL(hub.url()).host);
  const context = await profile(t);
  // Module and stream from the hub's origin, in pages of the proxy's: a
  // SharedWorker must be same-origin with its page, so each falls back.
  const foreign = [];
  for (let i = 0; i < 2; i += 1) {
    const tab = await openTab(context, { origin: proxy.url(""), moduleUrl: hub.url("/sse-hub.js"), stream: hub.url("/events") });
    await waitOpen(tab);
    foreign.push(tab);
  }
  assert.equal((await hub.stats()).clients, 2);
  await hub.send({ message: "to both" });
  for (const tab of foreign) await waitData(tab, "to both");
  for (const tab of foreign) await tab.evaluate(() => window.es.close());
  await statsUntil(hub, "no stream", (s) => s.clients === 0);

  // The same hub under the page's own origin: one stream.
  const local = [];
  for (let i = 0; i < 2; i += 1) {
    const tab = await openTab(context, { origin: proxy.url(""), stream: proxy.url("/events") });
    await waitOpen(tab);
    local.push(tab);
  }
  assert.equal((await hub.stats()).clients, 1);
  assertClean([...foreign, ...local]);
});

test("tabs of the web client share one stream under its Content-Security-Policy", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const context = await profile(t);
  const pages = [];
  for (let i = 0; i < 3; i += 1) {
    const page = await context.newPage();
    page.problems = [];
    page.on("pageerror", (e) => page.problems.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/.test(m.text())) page.problems.push(m.text());
    });
    await page.goto(hub.url("/"));
    await page.waitForFunction(() => document.getElementById("state").dataset.state === "open", null, { timeout: GUARD_MS });
    pages.push(page);
  }
  assert.equal((await hub.stats()).clients, 1);
  // Each shows the one stream's client ID, and a message arrives in all.
  const ids = await Promise.all(pages.map((p) => p.waitForFunction(() => {
    const id = document.getElementById("client-id").textContent;
    return id !== "–" && id;
  }, null, { timeout: GUARD_MS }).then((h) => h.jsonValue())));
  assert.equal(new Set(ids).size, 1);
  await hub.send({ message: "to every console" });
  for (const page of pages) {
    await page.waitForFunction(
      () => [...document.querySelectorAll("#log li.entry pre.data")].some((pre) => pre.textContent === "to every console"),
      null,
      { timeout: GUARD_MS }
    );
  }
  assertClean(pages);
});

test("with --compress the shared stream comes gzipped and every event shows before the next is sent", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t, ["--compress"]);
  const proxy = await startProxy(t, new URL(hub.url()).host);
  const context = await profile(t);
  const tabs = [];
  for (let i = 0; i < 2; i += 1) {
    const tab = await openTab(context, { origin: proxy.url(""), stream: proxy.url("/events") });
    await waitOpen(tab);
    tabs.push(tab);
  }
  assert.equal((await hub.stats()).clients, 1);
  const asked = proxy.heads.filter((head) => head.startsWith("GET /events"));
  assert.equal(asked.length, 1, "one stream request for both tabs");
  assert.match(asked[0], /\r\naccept-encoding: [^\r]*\bgzip\b/i, "Chromium did not ask for gzip");
  const answered = proxy.heads.filter((head) => /\r\ncontent-type: text\/event-stream/i.test(head));
  assert.equal(answered.length, 1);
  assert.match(answered[0], /\r\ncontent-encoding: gzip\r\n/i);

  // Nothing is published until the previous message shows in both tabs: a
  // message held back in the compressor would never show.
  const expected = [];
  for (let i = 0; i < 5; i += 1) {
    const data = `compressed ${i}: ${"the same words again and again, ".repeat(30)}`;
    expected.push(["message", data, await hub.send({ message: data })]);
    for (const tab of tabs) await waitData(tab, data);
  }
  for (const tab of tabs) assert.deepEqual(await messages(tab), expected);
  assertClean(tabs);
});
