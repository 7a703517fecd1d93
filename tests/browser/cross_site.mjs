// Cross-site publishing (SPEC "POST /broadcast") in a real browser: Debian's
// headless Chromium, driven by playwright-core, against the real sse-hub
// binary, with no token configured (the default).
//
//   SSE_HUB_BIN=target/debug/sse-hub node --test cross_site.mjs
//
// `cargo test -- --include-ignored` runs this through tests/browser.rs.
// The hub listens on 127.0.0.1; the other site is a tiny Node server whose
// pages are loaded as http://localhost:PORT, another origin (and another
// host name) than the hub's. Chromium sends `Origin` with every POST it
// makes for a page, so each publish below says where it came from.
// What the hub published is read from `/stats` and from a plain-HTTP
// subscriber; a marker published like curl does (no `Origin`) shows that
// the subscriber was live, and that nothing came before it. Waits have
// generous timeouts that only guard against hangs; nothing here measures
// time.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";

import { chromium } from "playwright-core";

const BIN = process.env.SSE_HUB_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const STATIC = process.env.SSE_HUB_STATIC ? ["--static", path.resolve(process.env.SSE_HUB_STATIC)] : [];

/** How long one wait may take before the test fails as hung. */
const GUARD_MS = 20_000;
/** A whole test, as a last hang guard. */
const TEST_GUARD_MS = 120_000;

// The classic text/plain form trick: the form encodes its one field as
// `name=value` and a CRLF, so this name and value make the body
// `{"message":"forged by a form","event":"x="}` and a CRLF: a valid
// publish (a string message and an allowed event name; trailing whitespace
// is allowed after JSON). The test proves it: the very bytes Chromium sent
// are published when sent again without `Origin`.
const FORM_FIELD = { name: '{"message":"forged by a form","event":"x', value: '"}' };
const FETCH_BODY = '{"message":"forged by fetch"}';

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

// ---- the hub, a subscriber, the other site ----------------------------------

/** Starts sse-hub on a free port of 127.0.0.1; stopped after the test. */
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
    addr,
    port: Number(addr.slice(addr.lastIndexOf(":") + 1)),
    url,
    async published() {
      return (await (await fetch(url("/stats"))).json()).published;
    },
    /**
     * POST /broadcast the way curl does (Node's fetch sends no `Origin`),
     * with `body` as is; returns the status.
     */
    async post(body, headers = {}) {
      const reply = await fetch(url("/broadcast"), { method: "POST", headers, body });
      await reply.arrayBuffer();
      return reply.status;
    },
  };
}

/**
 * A subscriber to everything, over plain HTTP; resolves once it has its
 * `connection` event. `data` holds the data of each message since, in order.
 */
async function subscribe(t, hub) {
  const subscriber = { data: [], request: null };
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("subscriber: no connection event")), GUARD_MS);
    subscriber.request = http.get(hub.url("/events"), { agent: false }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`subscriber got ${response.statusCode}`));
        return;
      }
      let buffer = "";
      let event = { type: "message", data: [] };
      response.setEncoding("utf8");
      response.on("data", (chunk) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, "");
          buffer = buffer.slice(end + 1);
          if (line === "") {
            if (event.type === "connection") {
              clearTimeout(timer);
              resolve();
            } else if (event.data.length > 0) {
              subscriber.data.push(event.data.join("\n"));
            }
            event = { type: "message", data: [] };
          } else if (line.startsWith("event:")) {
            event.type = line.slice(6).trim();
          } else if (line.startsWith("data:")) {
            event.data.push(line.slice(5).replace(/^ /, ""));
          }
        }
      });
    });
    subscriber.request.on("error", (e) => {
      if (!subscriber.request.destroyed) reject(e);
    });
  });
  t.after(() => subscriber.request.destroy());
  return subscriber;
}

/**
 * Publishes `marker` without `Origin` and waits until the subscriber has it;
 * returns the data the subscriber got since `from`, marker included.
 */
async function throughMarker(hub, subscriber, marker, from = 0) {
  assert.equal(await hub.post(JSON.stringify({ message: marker })), 200, `publish ${marker}`);
  const start = Date.now();
  while (!subscriber.data.includes(marker)) {
    assert.ok(Date.now() - start < GUARD_MS, `the subscriber never got ${marker}: ${JSON.stringify(subscriber.data)}`);
    await sleep(20);
  }
  return subscriber.data.slice(from);
}

/**
 * The other site: a Node server on a free port of 127.0.0.1 that serves
 * `pages` (path -> HTML); its origin is `http://localhost:PORT`.
 */
async function otherSite(t, pages) {
  const server = http.createServer((request, response) => {
    const page = pages[new URL(request.url, "http://x").pathname];
    response.writeHead(page === undefined ? 404 : 200, { "Content-Type": "text/html; charset=utf-8" });
    response.end(page ?? "not here");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://localhost:${server.address().port}`;
}

/** The other site's pages: a text/plain form and a page that can fetch. */
function attackPages(hub) {
  const escape = (s) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  return {
    "/form": `<!doctype html><title>form</title>
      <form method="POST" enctype="text/plain" action="${hub.url("/broadcast")}">
        <input type="hidden" name="${escape(FORM_FIELD.name)}" value="${escape(FORM_FIELD.value)}">
        <button type="submit">win a prize</button>
      </form>`,
    "/page": "<!doctype html><title>a page</title><p>nothing to see",
  };
}

/** A fresh browser context and page, closed after the test. */
async function newPage(t) {
  const context = await browser.newContext();
  t.after(() => context.close());
  return context.newPage();
}

/**
 * Submits the other site's form in `page`; returns the request Chromium
 * sent to the hub (its `Origin` and body) and the status it got.
 */
async function submitForm(page, site, hub) {
  await page.goto(`${site}/form`);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === hub.url("/broadcast"), { timeout: GUARD_MS }),
    page.click('button[type="submit"]'),
  ]);
  const request = response.request();
  return {
    origin: await request.headerValue("origin"),
    contentType: await request.headerValue("content-type"),
    body: request.postData(),
    status: response.status(),
  };
}

/**
 * Runs `fetch(HUB/broadcast, {method: "POST", mode, body})` in `page`;
 * returns what the network saw (the page cannot read a no-cors reply) and,
 * for a cors request, the reply's JSON as the page read it. (Playwright
 * may not show the `Origin` of a no-cors request; Chromium sends it all the
 * same, as the Fetch standard says for any POST, and the 403 shows it.)
 */
async function fetchFrom(page, hub, mode, body) {
  const [response, readable] = await Promise.all([
    page.waitForResponse((r) => r.url() === hub.url("/broadcast"), { timeout: GUARD_MS }),
    page.evaluate(
      async ({ url, mode, body }) => {
        const reply = await fetch(url, { method: "POST", mode, body });
        return reply.type === "opaque" ? null : { status: reply.status, json: await reply.json() };
      },
      { url: hub.url("/broadcast"), mode, body }
    ),
  ]);
  const request = response.request();
  return {
    origin: await request.headerValue("origin"),
    contentType: await request.headerValue("content-type"),
    body: request.postData(),
    status: response.status(),
    readable,
  };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- the tests ---------------------------------------------------------------

test("a form and a fetch from another site publish nothing", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const subscriber = await subscribe(t, hub);
  const site = await otherSite(t, attackPages(hub));
  const page = await newPage(t);

  const form = await submitForm(page, site, hub);
  assert.equal(form.origin, site, "Chromium sent the form's Origin");
  assert.equal(form.contentType, "text/plain");
  assert.equal(form.body, `${FORM_FIELD.name}=${FORM_FIELD.value}\r\n`);
  assert.equal(form.status, 403, "the cross-site form was not refused");

  await page.goto(`${site}/page`);
  const noCors = await fetchFrom(page, hub, "no-cors", FETCH_BODY);
  assert.equal(noCors.body, FETCH_BODY);
  assert.equal(noCors.readable, null, "a no-cors reply is opaque to the page");
  assert.equal(noCors.status, 403, "the cross-site no-cors fetch was not refused");

  // Nothing was published: the subscriber's next message is the marker.
  assert.deepEqual(await throughMarker(hub, subscriber, "marker"), ["marker"]);
  assert.equal(await hub.published(), 1, "only the marker was published");

  // The very bytes Chromium sent are valid publishes: without `Origin`, as
  // curl sends them, each publishes. So the refusals above were the
  // cross-site rule, not a bad body.
  assert.equal(await hub.post(form.body, { "Content-Type": form.contentType }), 200);
  assert.equal(await hub.post(noCors.body, { "Content-Type": noCors.contentType }), 200);
  assert.deepEqual(await throughMarker(hub, subscriber, "second marker", 1), [
    "forged by a form",
    "forged by fetch",
    "second marker",
  ]);
  assert.equal(await hub.published(), 4);
});

test("the hub's own web client still publishes, under either host name", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const subscriber = await subscribe(t, hub);
  const page = await newPage(t);
  // The hub's origin is the address the browser used: both of these are
  // its own, and the page's fetch sends that origin.
  for (const host of [`127.0.0.1:${hub.port}`, `localhost:${hub.port}`]) {
    const message = `from the web client at ${host}`;
    await page.goto(`http://${host}/`);
    await page.fill("#message", message);
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/broadcast", { timeout: GUARD_MS }),
      page.click('#publish button[type="submit"]'),
    ]);
    assert.equal(await response.request().headerValue("origin"), `http://${host}`);
    assert.equal(response.status(), 200, `publish from ${host}: ${await response.text()}`);
    await page.waitForFunction(() => /^Published /.test(document.getElementById("publish-result").textContent), null, {
      timeout: GUARD_MS,
      polling: 100,
    });
  }
  assert.deepEqual(await throughMarker(hub, subscriber, "marker"), [
    `from the web client at 127.0.0.1:${hub.port}`,
    `from the web client at localhost:${hub.port}`,
    "marker",
  ]);
  assert.equal(await hub.published(), 3);
});

test("with --cors-origin set to the other site, its fetch publishes and others' still do not", { timeout: TEST_GUARD_MS }, async (t) => {
  // The other site's port must be known before the hub starts.
  const pages = {};
  const site = await otherSite(t, pages);
  const hub = await startHub(t, ["--cors-origin", site]);
  Object.assign(pages, attackPages(hub));
  const subscriber = await subscribe(t, hub);
  const page = await newPage(t);

  await page.goto(`${site}/page`);
  const allowed = await fetchFrom(page, hub, "cors", '{"message":"from the trusted site"}');
  assert.equal(allowed.origin, site);
  assert.equal(allowed.status, 200);
  assert.equal(allowed.readable?.status, 200, "the trusted site can read the reply");
  assert.equal(typeof allowed.readable.json.id, "string");

  // The same server under its other name is another origin: still refused.
  const untrusted = site.replace("localhost", "127.0.0.1");
  await page.goto(`${untrusted}/page`);
  const refused = await fetchFrom(page, hub, "no-cors", FETCH_BODY);
  assert.equal(refused.status, 403);

  assert.deepEqual(await throughMarker(hub, subscriber, "marker"), ["from the trusted site", "marker"]);
  assert.equal(await hub.published(), 2);
});
