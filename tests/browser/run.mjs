// The web client in a real browser: Debian's headless Chromium, driven by
// playwright-core (no browser download), against the real sse-hub binary.
//
//   SSE_HUB_BIN=target/debug/sse-hub node tests/browser/run.mjs
//
// `cargo test -- --include-ignored` runs this through tests/browser.rs.
// Each test starts its own hub on port 0 (read from its log) and its own
// browser context. Every wait has a generous timeout that only guards
// against hangs; nothing here measures time. Screenshots go to
// tests/browser/screenshots/; UPDATE_DOCS_SCREENSHOT=1 also writes
// docs/screenshot.png. SSE_HUB_STATIC=DIR serves the page from DIR
// (`--static`) instead of the copy built into the binary, to try edits
// without a rebuild.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.join(HERE, "screenshots");
const DOCS_SHOT = path.join(HERE, "..", "..", "docs", "screenshot.png");
const BIN = process.env.SSE_HUB_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const STATIC = process.env.SSE_HUB_STATIC ? ["--static", path.resolve(process.env.SSE_HUB_STATIC)] : [];

/** How long one wait may take before the test fails as hung. */
const GUARD_MS = 20_000;
/** The page's backoff reaches several seconds; waiting through it needs more. */
const BACKOFF_GUARD_MS = 60_000;
/** A whole test, as a last hang guard. */
const TEST_GUARD_MS = 120_000;

if (!BIN) {
  console.error("SSE_HUB_BIN must name the sse-hub binary (cargo test sets it)");
  process.exit(2);
}
if (!fs.existsSync(CHROMIUM)) {
  console.error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

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

// ---- the hub ---------------------------------------------------------------

/** A running sse-hub process. */
class Hub {
  /** Starts the binary listening on `listen` with extra `args`. */
  static async start(args = [], listen = "127.0.0.1:0") {
    const child = spawn(BIN, ["--listen", listen, ...STATIC, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, RUST_LOG: "info" },
    });
    const hub = new Hub(child, args);
    hub.addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`sse-hub did not report its address; log:\n${hub.log}`)),
        GUARD_MS
      );
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk) => {
        hub.log += chunk;
        const found = /listening on http:\/\/(\S+)/.exec(hub.log);
        if (found) {
          clearTimeout(timer);
          resolve(found[1]);
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`sse-hub exited (${code}) before listening; log:\n${hub.log}`));
      });
    });
    return hub;
  }

  /** Starts a new process on the same address as this stopped one. */
  async restart() {
    let lastError;
    // The port was free a moment ago; give the kernel a few tries.
    for (let i = 0; i < 20; i += 1) {
      try {
        return await Hub.start(this.args, this.addr);
      } catch (e) {
        lastError = e;
        await sleep(250);
      }
    }
    throw lastError;
  }

  constructor(child, args) {
    this.child = child;
    this.args = args;
    this.log = "";
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  url(route = "/") {
    return `http://${this.addr}${route}`;
  }

  /** POST /broadcast, the way curl would: returns the status and JSON reply. */
  async publish(body, token) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const reply = await fetch(this.url("/broadcast"), {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: reply.status, json: await reply.json() };
  }

  /** Publishes and insists on success; returns the new ID. */
  async send(body) {
    const { status, json } = await this.publish(body);
    assert.equal(status, 200, `publish ${JSON.stringify(body)}: ${JSON.stringify(json)}`);
    return json.id;
  }

  async stats() {
    const reply = await fetch(this.url("/stats"));
    return reply.json();
  }

  /** SIGTERM, then wait for the exit (SIGKILL if it hangs). */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), GUARD_MS);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

/** Holds one event stream open with plain HTTP, like a non-browser client. */
function holdStream(hub) {
  return new Promise((resolve, reject) => {
    const request = http.get(hub.url("/events"), { agent: false }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`holding stream got ${response.statusCode}`));
        return;
      }
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => {
        text += chunk;
        if (text.includes("event: connection")) resolve(request);
      });
    });
    request.on("error", (e) => {
      if (!request.destroyed) reject(e);
    });
    request.setTimeout(GUARD_MS, () => reject(new Error("holding stream: no connection event")));
  });
}

// ---- the page --------------------------------------------------------------

/**
 * A fresh browser context and page on `route` of a new hub started with
 * `args`. Everything is torn down after the test, with a screenshot first.
 * `beforeGoto(page)` runs before the page loads, to watch its requests.
 */
async function scene(t, { args = [], route = "/", contextOptions = {}, beforeGoto = () => {} } = {}) {
  const hub = await Hub.start(args);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...contextOptions });
  const page = await context.newPage();
  const problems = watch(page);
  await beforeGoto(page);
  const hubs = [hub];
  t.after(async () => {
    await page.screenshot({ path: path.join(SHOTS, `${slug(t.name)}.png`) }).catch(() => {});
    await context.close();
    for (const h of hubs) await h.stop();
  });
  await page.goto(hub.url(route));
  return { hub, page, context, problems, hubs };
}

/** Uncaught errors and CSP violations: every test ends by asserting none. */
function watch(page) {
  const problems = [];
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy|Refused to/.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return problems;
}

async function waitFor(page, what, fn, arg, timeout = GUARD_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`waited in vain for ${what}\n${await describe(page)}\n${e.message}`);
  }
}

/** The page's state and its last log lines, for failure messages. */
async function describe(page) {
  return page
    .evaluate(() => {
      const state = `${document.getElementById("state").textContent} (${document.getElementById("state-detail").textContent})`;
      const lines = [...document.querySelectorAll("#log li")].slice(-15).map((li) => li.innerText.replace(/\s+/g, " "));
      return `state: ${state}\nlog:\n  ${lines.join("\n  ")}`;
    })
    .catch((e) => `(page unreadable: ${e.message})`);
}

async function waitState(page, state, timeout = GUARD_MS) {
  await waitFor(page, `state ${state}`, (s) => document.getElementById("state").dataset.state === s, state, timeout);
}

/** Waits for the log entry whose data is exactly `data`, and describes it. */
async function entry(page, data, timeout = GUARD_MS) {
  await waitFor(
    page,
    `an entry with data ${JSON.stringify(data)}`,
    (d) => [...document.querySelectorAll("#log li.entry pre.data")].some((pre) => pre.textContent === d),
    data,
    timeout
  );
  return page.evaluate((d) => {
    const li = [...document.querySelectorAll("#log li.entry")].find((l) => l.querySelector("pre.data")?.textContent === d);
    return describeEntry(li);
    function describeEntry(li) {
      return {
        type: li.dataset.type,
        id: li.dataset.id ?? null,
        shownType: li.querySelector(".type").textContent,
        shownId: li.querySelector(".id")?.textContent ?? null,
        channel: li.querySelector(".badge.channel")?.textContent ?? null,
        everyone: li.querySelector(".badge.everyone") !== null,
        replayed: li.querySelector(".badge.replayed") !== null,
      };
    }
  }, data);
}

/** Data of every log entry of one type, oldest first. */
async function entries(page, type = null) {
  return page.evaluate(
    (t) =>
      [...document.querySelectorAll("#log li.entry")]
        .filter((li) => li.dataset.type !== "note" && (t === null || li.dataset.type === t))
        .map((li) => li.querySelector("pre.data").textContent),
    type
  );
}

async function text(page, selector) {
  return page.locator(selector).textContent();
}

/** The data of the newest `connection` entry, once there are `count`. */
async function connection(page, count = 1) {
  await waitFor(
    page,
    `connection event number ${count}`,
    (n) => document.querySelectorAll('#log li.entry[data-type="connection"]').length >= n,
    count
  );
  const all = await entries(page, "connection");
  return JSON.parse(all[all.length - 1]);
}

/** Publishes with the page's form and waits for its answer. */
async function publishFromForm(page, { message = "", json = false, event = "", channel = "", token = "" }) {
  await page.fill("#message", message);
  await page.setChecked("#as-json", json);
  await page.fill("#event", event);
  await page.fill("#channel", channel);
  await page.fill("#token", token);
  await page.click('#publish button[type="submit"]');
  await waitFor(
    page,
    "the publish result",
    () => {
      const t = document.getElementById("publish-result").textContent;
      return t !== "" && t !== "Publishing…";
    },
    null
  );
  return text(page, "#publish-result");
}

function slug(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function assertClean(problems) {
  assert.deepEqual(problems, [], "the page logged errors or CSP violations");
}

// ---- the tests ---------------------------------------------------------------

test("the page connects and shows the connection event and its client ID", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, problems } = await scene(t);
  await waitState(page, "open");
  const hello = await connection(page);
  assert.equal(typeof hello.client, "string");
  assert.notEqual(hello.client, "");
  assert.deepEqual(hello.channels, []);
  assert.equal(await text(page, "#client-id"), hello.client);
  assert.equal(await text(page, "#joined"), "none");
  // The connection event's JSON is laid out on lines.
  const [shown] = await entries(page, "connection");
  assert.ok(shown.includes("\n"), `not pretty-printed: ${shown}`);
  // The subscriber count comes from polling /stats.
  await waitFor(page, "one subscriber in /stats", () => document.getElementById("clients").textContent === "1", null);
  assert.equal((await hub.stats()).clients, 1);
  assert.equal(await page.title(), "sse-hub · open");
  assertClean(problems);
});

test("messages published from the form and with plain HTTP both appear", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, problems } = await scene(t);
  await waitState(page, "open");
  const hello = await connection(page);

  // From the form, by keyboard: Ctrl+Enter in the message publishes.
  await page.focus("#message");
  await page.keyboard.type("hello from the form");
  await page.keyboard.press("Control+Enter");
  await waitFor(page, "a publish reply", () => /^Published /.test(document.getElementById("publish-result").textContent), null);
  const reply = await text(page, "#publish-result");
  const formId = /^Published (\S+) to 1 client$/.exec(reply)?.[1];
  assert.ok(formId, `unexpected reply: ${reply}`);
  const fromForm = await entry(page, "hello from the form");
  assert.equal(fromForm.type, "message");
  assert.equal(fromForm.id, formId);
  assert.equal(fromForm.shownId, formId);
  assert.equal(fromForm.everyone, true);
  assert.equal(fromForm.replayed, false);

  // With plain HTTP, like curl.
  const httpId = await hub.send({ message: "hello over HTTP" });
  const overHttp = await entry(page, "hello over HTTP");
  assert.equal(overHttp.id, httpId);

  // JSON is laid out, and big numbers keep every digit.
  // (A JavaScript object would round the number already: send the text.)
  const exactId = await hub.send('{"message":{"empty":{},"exact":12345678901234567890123,"list":[1,[]]}}');
  const laidOut = '{\n  "empty": {},\n  "exact": 12345678901234567890123,\n  "list": [\n    1,\n    []\n  ]\n}';
  assert.equal((await entry(page, laidOut)).id, exactId);

  // A named event needs its type listened for; adding one does not reconnect.
  await page.fill("#events", "reading");
  await page.press("#events", "Enter");
  await waitFor(page, "event=reading in the address", () => location.search === "?event=reading", null);
  const readingId = await hub.send({ message: "21.5 C", event: "reading" });
  const reading = await entry(page, "21.5 C");
  assert.equal(reading.type, "reading");
  assert.equal(reading.shownType, "reading");
  assert.equal(reading.id, readingId);
  assert.equal((await entries(page, "connection")).length, 1, "adding an event type reconnected");
  assert.equal(await text(page, "#client-id"), hello.client);
  // Applying the same types again adds no second listener: one event, one
  // entry. (The stream is in order: a double would be there before the marker.)
  await page.press("#events", "Enter");
  await hub.send({ message: "22.0 C", event: "reading" });
  await hub.send({ message: "after the readings" });
  await entry(page, "after the readings");
  assert.deepEqual(await entries(page, "reading"), ["21.5 C", "22.0 C"]);

  // The empty message is an event too.
  await hub.send({ message: "" });
  await entry(page, "(empty)");

  assert.equal(await text(page, "#received"), "7");
  const lastId = await hub.send({ message: "last" });
  await entry(page, "last");
  assert.equal(await text(page, "#last-id"), lastId);
  assert.match(await text(page, "#rate"), /^\d+(\.\d)?\/s$/);
  assertClean(problems);
});

test("joining a channel shows only its messages and the global ones", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, context, problems } = await scene(t);
  await waitState(page, "open");
  await connection(page, 1);

  await page.fill("#channels", "news");
  await page.press("#channels", "Enter");
  const hello = await connection(page, 2);
  assert.deepEqual(hello.channels, ["news"]);
  await waitFor(page, "the joined channel shown", () => document.getElementById("joined").textContent === "news", null);
  assert.equal(new URL(page.url()).search, "?channel=news");

  await hub.send({ message: "global one" });
  await hub.send({ message: "sports one", channel: "sports" });
  await hub.send({ message: "news one", channel: "news" });
  await hub.send({ message: "end marker" });
  // One stream, in order: everything before the marker has arrived by now.
  await entry(page, "end marker");
  const seen = await entries(page, "message");
  assert.ok(seen.includes("global one"), `${seen}`);
  assert.ok(seen.includes("news one"), `${seen}`);
  assert.ok(!seen.includes("sports one"), `a message for another channel arrived: ${seen}`);
  // The wire does not say the channel: no badge where the page cannot know.
  const news = await entry(page, "news one");
  assert.equal(news.channel, null);
  assert.equal(news.everyone, false);

  // Published here, so the page knows the channel.
  const result = await publishFromForm(page, { message: "news from the form", channel: "news" });
  assert.match(result, /^Published \S+ to 1 client$/);
  assert.equal((await entry(page, "news from the form")).channel, "news");

  // The link reproduces the view.
  const second = await context.newPage();
  const secondProblems = watch(second);
  await second.goto(page.url());
  await waitState(second, "open");
  assert.deepEqual((await connection(second)).channels, ["news"]);
  assert.equal(await second.inputValue("#channels"), "news");
  await hub.send({ message: "sports two", channel: "sports" });
  await hub.send({ message: "news two", channel: "news" });
  await entry(second, "news two");
  assert.ok(!(await entries(second, "message")).includes("sports two"));
  await second.close();

  // A bad name is caught on the page: a 400 would stop the EventSource.
  await page.fill("#channels", "news bad!name");
  await page.press("#channels", "Enter");
  assert.match(await text(page, "#channels-error"), /Not a channel name: bad!name/);
  assert.equal((await entries(page, "connection")).length, 2, "a bad name reconnected");
  assertClean(problems);
  assertClean(secondProblems);
});

test("untrusted data shows as text and runs nothing", { timeout: TEST_GUARD_MS }, async (t) => {
  const payload = "<img src=x onerror=alert(1)>";
  const route = `/?event=${encodeURIComponent("<b>bold</b>")}&lastEventId=${encodeURIComponent("<img src=x onerror=alert(5)>")}`;
  const { hub, page, problems } = await scene(t, { route });
  const dialogs = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  await waitState(page, "open");

  // A malformed last event ID comes back in the gap event, raw.
  await waitFor(page, "the gap warning", () => !document.getElementById("gap").hidden, null);
  assert.ok((await text(page, "#gap-text")).includes("<img src=x onerror=alert(5)>"));

  await hub.send({ message: payload });
  assert.equal((await entry(page, payload)).type, "message");
  await hub.send({ message: { html: "<img src=x onerror=alert(4)>" } });
  await entry(page, '{\n  "html": "<img src=x onerror=alert(4)>"\n}');
  await hub.send({ message: "<b>bold</b> as a type", event: "<b>bold</b>" });
  assert.equal((await entry(page, "<b>bold</b> as a type")).shownType, "<b>bold</b>");

  const reply = await publishFromForm(page, {
    message: "<script>alert(2)</script>",
    event: "<img src=x onerror=alert(3)>",
    channel: "",
  });
  assert.match(reply, /^Published /);
  const fromForm = await entry(page, "<script>alert(2)</script>");
  assert.equal(fromForm.shownType, "<img src=x onerror=alert(3)>");

  const elements = await page.evaluate(() => document.querySelectorAll("#log img, #log b, #log script, #gap img").length);
  assert.equal(elements, 0, "untrusted text became markup");
  assert.deepEqual(dialogs, [], "a dialog opened");
  assertClean(problems);
});

test("after a restart on the same port the page reconnects and resumes", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, hubs, problems } = await scene(t);
  await waitState(page, "open");
  await connection(page, 1);
  const beforeId = await hub.send({ message: "before the restart" });
  await entry(page, "before the restart");

  await hub.stop();
  await waitState(page, "reconnecting");
  await waitFor(page, "a countdown", () => /^in \d+ s: /.test(document.getElementById("state-detail").textContent), null);

  const again = await hub.restart();
  hubs.push(again);
  assert.equal(again.addr, hub.addr);
  await waitState(page, "open", BACKOFF_GUARD_MS);
  await connection(page, 2);

  // It resumed from its last ID: the new process cannot vouch for the
  // messages before it started, and says so.
  await waitFor(page, "the gap warning", () => !document.getElementById("gap").hidden, null);
  assert.ok((await text(page, "#gap-text")).includes(beforeId));

  await again.send({ message: "after the restart" });
  const live = await entry(page, "after the restart");
  assert.equal(live.replayed, false);
  assert.equal((await entries(page, "message")).filter((m) => m === "before the restart").length, 1);
  assertClean(problems);
});

test("a reconnect past a short history replays what is kept and warns of the gap", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, problems } = await scene(t, { args: ["--history", "3"] });
  await waitState(page, "open");
  await connection(page, 1);
  const firstId = await hub.send({ message: "m0" });
  await entry(page, "m0");

  await page.click("#toggle");
  await waitState(page, "closed");
  assert.equal(await text(page, "#toggle"), "Connect");
  const ids = [];
  for (let i = 1; i <= 8; i += 1) ids.push(await hub.send({ message: `m${i}` }));

  await page.click("#toggle");
  await waitState(page, "open");
  await connection(page, 2);
  await waitFor(page, "the gap warning", () => !document.getElementById("gap").hidden, null);
  const warning = await text(page, "#gap-text");
  assert.ok(warning.includes(firstId), warning);
  assert.ok(warning.includes(ids[5]), `the oldest kept is ${ids[5]}: ${warning}`);
  assert.equal((await entries(page, "gap")).length, 1);

  for (const [i, id] of [[6, ids[5]], [7, ids[6]], [8, ids[7]]]) {
    const replayed = await entry(page, `m${i}`);
    assert.equal(replayed.id, id);
    assert.equal(replayed.replayed, true, `m${i} not marked replayed`);
  }
  const seen = await entries(page, "message");
  for (let i = 1; i <= 5; i += 1) assert.ok(!seen.includes(`m${i}`), `m${i} was not kept, yet shown`);

  const liveId = await hub.send({ message: "live" });
  const live = await entry(page, "live");
  assert.equal(live.replayed, false, "a live message was marked replayed");
  assert.equal(await text(page, "#last-id"), liveId);

  await page.click("#gap-dismiss");
  assert.equal(await page.isHidden("#gap"), true);
  assertClean(problems);
});

test("a full hub makes the page back off and connect once the slot frees", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await Hub.start(["--max-clients", "1", "--heartbeat", "1"]);
  const holder = await holdStream(hub);
  t.after(() => holder.destroy());
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watch(page);
  t.after(async () => {
    await page.screenshot({ path: path.join(SHOTS, `${slug(t.name)}.png`) }).catch(() => {});
    await context.close();
    await hub.stop();
  });
  await page.goto(hub.url("/"));

  // The 503 ends the EventSource for good; the page goes on by itself.
  await waitState(page, "reconnecting");
  await waitFor(page, "the reason", () => /refused/.test(document.getElementById("state-detail").textContent), null);
  assert.equal((await entries(page, "connection")).length, 0);

  holder.destroy();
  await waitState(page, "open", BACKOFF_GUARD_MS);
  const hello = await connection(page);
  assert.equal(await text(page, "#client-id"), hello.client);
  await hub.send({ message: "finally in" });
  await entry(page, "finally in");
  const notes = await page.evaluate(() =>
    [...document.querySelectorAll('#log li[data-type="note"]')].map((li) => li.textContent)
  );
  assert.ok(notes.some((n) => n.includes("the hub refused the stream")), `${notes}`);
  assertClean(problems);
});

test("publish errors show the hub's own error text", { timeout: TEST_GUARD_MS }, async (t) => {
  const token = "s3cret-token";
  const { hub, page, problems } = await scene(t, { args: ["--publish-token", token] });
  await waitState(page, "open");

  const wrongToken = await hub.publish({ message: "x" }, "wrong");
  assert.equal(wrongToken.status, 401);
  const shown401 = await publishFromForm(page, { message: "x", token: "wrong" });
  assert.ok(shown401.startsWith("401 "), shown401);
  assert.ok(shown401.endsWith(`: ${wrongToken.json.error}`), shown401);

  const noToken = await publishFromForm(page, { message: "x" });
  assert.ok(noToken.startsWith("401 "), noToken);

  const badChannel = await hub.publish({ message: "x", channel: "bad channel!" }, token);
  assert.equal(badChannel.status, 400);
  const shown400 = await publishFromForm(page, { message: "x", channel: "bad channel!", token });
  assert.ok(shown400.startsWith("400 "), shown400);
  assert.ok(shown400.endsWith(`: ${badChannel.json.error}`), shown400);

  const reserved = await hub.publish({ message: "x", event: "gap" }, token);
  const shownReserved = await publishFromForm(page, { message: "x", event: "gap", token });
  assert.ok(shownReserved.endsWith(`: ${reserved.json.error}`), shownReserved);

  const notJson = await publishFromForm(page, { message: "{oops", json: true, token });
  assert.match(notJson, /^Not valid JSON/);
  assert.equal(await page.locator("#publish-result.error").count(), 1);

  assert.match(await publishFromForm(page, { message: '{"ok": true}', json: true, token }), /^Published /);
  await entry(page, '{\n  "ok": true\n}');
  assert.equal(await page.locator("#publish-result.error").count(), 0);
  assert.equal((await hub.stats()).published, 1, "a rejected publish was published");
  assertClean(problems);
});

test("a private channel needs a token: refused without one, joined with one", { timeout: TEST_GUARD_MS }, async (t) => {
  const secret = "a browser-test secret, long enough for HS256";
  // Tokens come from the binary's own `token` subcommand.
  const mint = (...args) =>
    execFileSync(BIN, ["token", ...args], { env: { ...process.env, SSE_HUB_JWT_SECRET: secret } })
      .toString()
      .trim();
  const { hub, page, problems } = await scene(t, {
    args: ["--jwt-secret", secret, "--private", "user:*"],
    route: "/?channel=user:42",
  });

  // No token: 401, which no retry can fix, so the page stops and says why.
  await waitState(page, "closed");
  const detail = await text(page, "#state-detail");
  assert.match(detail, /^refused \(401\): no token: channel user:42 is private/);
  assert.equal((await entries(page, "connection")).length, 0);
  assert.equal((await hub.stats()).clients, 0);

  // With a token that covers the channel: joined, and the token is in
  // neither the page's address nor the log.
  const token = mint("--subscribe", "user:42", "--publish", "user:*");
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await waitState(page, "open");
  const hello = await connection(page);
  assert.deepEqual(hello.channels, ["user:42"]);
  assert.ok(!page.url().includes(token), "the token is in the address bar");
  assert.ok(!hub.log.includes(token.split(".")[2]), "the token is in the hub's log");

  // The same token publishes from the form (Authorization: Bearer).
  const reply = await publishFromForm(page, { message: "for 42", channel: "user:42", token });
  assert.match(reply, /^Published \S+ to 1 client$/);
  assert.equal((await entry(page, "for 42")).channel, "user:42");
  // ...but only where its publish list says.
  const outside = await publishFromForm(page, { message: "x", channel: "news", token });
  assert.match(outside, /^403 .*: the token does not allow publishing to channel news$/);

  // A valid token for another channel: 403, said as such.
  await page.fill("#token", mint("--subscribe", "user:43"));
  await page.press("#token", "Enter");
  await waitState(page, "closed");
  assert.match(await text(page, "#state-detail"), /^refused \(403\): the token does not allow subscribing to channel user:42$/);
  assertClean(problems);
});

test("the log follows new events unless the reader scrolled up", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, problems } = await scene(t, { contextOptions: { viewport: { width: 1000, height: 700 } } });
  await waitState(page, "open");
  for (let i = 0; i < 60; i += 1) await hub.send({ message: `line ${i}` });
  await entry(page, "line 59");
  const atBottom = () => {
    const log = document.getElementById("log");
    return log.scrollHeight > log.clientHeight && log.scrollHeight - log.scrollTop - log.clientHeight < 2;
  };
  await waitFor(page, "the log at its end", atBottom, null);

  await page.hover("#log");
  await page.mouse.wheel(0, -100_000);
  await waitFor(page, "the log scrolled to its top", () => document.getElementById("log").scrollTop === 0, null);
  for (let i = 0; i < 3; i += 1) await hub.send({ message: `more ${i}` });
  await entry(page, "more 2");
  await waitFor(page, "the jump button", () => !document.getElementById("jump").hidden, null);
  assert.equal(await text(page, "#jump"), "3 new below");
  assert.equal(await page.evaluate(() => document.getElementById("log").scrollTop), 0, "the log moved by itself");

  await page.click("#jump");
  await waitFor(page, "the log at its end again", atBottom, null);
  assert.equal(await page.isHidden("#jump"), true);

  // The filter hides what does not match.
  await page.fill("#filter", "more 1");
  const visible = await page.evaluate(() =>
    [...document.querySelectorAll("#log li")].filter((li) => !li.hidden).map((li) => li.querySelector("pre")?.textContent)
  );
  assert.deepEqual(visible, ["more 1"]);
  assertClean(problems);
});

test("the page fits a phone, works by keyboard and follows the colour scheme", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, context, problems } = await scene(t, {
    contextOptions: { viewport: { width: 360, height: 740 }, colorScheme: "dark", hasTouch: true, isMobile: true },
  });
  await waitState(page, "open");
  await hub.send({ message: "x".repeat(600) });
  await hub.send({ message: { long: "y".repeat(300), nested: { deep: [1, 2, 3] } } });
  await entry(page, "x".repeat(600));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);

  const background = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  assert.ok(luminance(background) < 0.2, `dark scheme, yet background ${background}`);

  // Keyboard: the first Tab reaches the skip link, which leads to the log;
  // focus is visible.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.className), "skip");
  await page.focus("#channels");
  await page.keyboard.press("Shift+Tab");
  await page.keyboard.press("Tab");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "no visible focus");
  await page.screenshot({ path: path.join(SHOTS, "phone-dark.png"), fullPage: true });

  const light = await context.browser().newContext({ colorScheme: "light" });
  const lightPage = await light.newPage();
  await lightPage.goto(hub.url("/"));
  const lightBackground = await lightPage.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  assert.ok(luminance(lightBackground) > 0.8, `light scheme, yet background ${lightBackground}`);
  await light.close();
  assertClean(problems);
});

test("a tour of the console, for the README screenshot", { timeout: TEST_GUARD_MS }, async (t) => {
  const { hub, page, problems } = await scene(t, {
    route: "/?channel=news&event=reading",
    contextOptions: { viewport: { width: 1280, height: 760 }, colorScheme: "light" },
  });
  await waitState(page, "open");
  await connection(page, 1);
  await hub.send({ message: "deploy 4.2.0 started" });
  await hub.send({ message: { sensor: "greenhouse-3", temp_c: 21.5, humidity: 0.61 }, event: "reading" });
  await publishFromForm(page, { message: "Markets open higher", channel: "news" });
  await entry(page, "Markets open higher");
  await page.click("#toggle");
  await waitState(page, "closed");
  await hub.send({ message: "Rain expected after 3 pm", channel: "news" });
  await hub.send({ message: { sensor: "greenhouse-3", temp_c: 21.9, humidity: 0.6 }, event: "reading" });
  await page.click("#toggle");
  await waitState(page, "open");
  const replayed = await entry(page, "Rain expected after 3 pm");
  assert.equal(replayed.replayed, true);
  await hub.send({ message: "deploy 4.2.0 finished" });
  await entry(page, "deploy 4.2.0 finished");
  await page.fill("#message", '{"alert": "disk 91% full", "host": "db-1"}');
  await page.setChecked("#as-json", true);
  await page.fill("#channel", "news");
  await waitFor(page, "the subscriber count", () => document.getElementById("clients").textContent === "1", null);
  await page.evaluate(() => {
    document.activeElement.blur();
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: path.join(SHOTS, "tour.png") });
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    fs.mkdirSync(path.dirname(DOCS_SHOT), { recursive: true });
    fs.copyFileSync(path.join(SHOTS, "tour.png"), DOCS_SHOT);
  }
  assertClean(problems);
});

test("with --compress the stream comes gzipped and each event shows before the next is sent", { timeout: TEST_GUARD_MS }, async (t) => {
  // Chromium asks for gzip by itself; record what it asked and got.
  // Playwright does not report a shared worker's requests, so this page
  // goes without SharedWorker and opens its stream itself (shared.mjs
  // checks the same through the shared worker).
  const streams = [];
  const { hub, page, problems } = await scene(t, {
    args: ["--compress"],
    beforeGoto: async (p) => {
      await p.addInitScript(() => {
        delete window.SharedWorker;
      });
      p.on("response", (response) => {
        if (new URL(response.url()).pathname === "/events") {
          streams.push(Promise.all([response.request().allHeaders(), response.allHeaders()]));
        }
      });
    },
  });
  await waitState(page, "open");
  await connection(page);
  const [[asked, got]] = await Promise.all(streams);
  assert.match(asked["accept-encoding"] ?? "", /\bgzip\b/, "Chromium did not ask for gzip");
  assert.equal(got["content-encoding"], "gzip");
  assert.equal(got.vary, "Accept-Encoding");

  // Nothing is published until the previous message shows: a message held
  // back in the compressor would never show, and the wait would fail.
  for (let i = 0; i < 5; i += 1) {
    const message = `compressed ${i}: ${"the same words again and again, ".repeat(30)}`;
    const id = await hub.send({ message });
    assert.equal((await entry(page, message)).id, id);
  }
  assert.equal(await text(page, "#received"), "5");
  assertClean(problems);
});

/** Relative luminance of a CSS `rgb(...)` colour, 0 (black) to 1 (white). */
function luminance(css) {
  const [r, g, b] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}
