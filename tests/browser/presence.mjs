// The web client shows who is in a channel with presence: Debian's headless
// Chromium, driven by playwright-core, against the real sse-hub binary.
//
//   SSE_HUB_BIN=target/debug/sse-hub node --test tests/browser/presence.mjs
//
// Every wait has a timeout that only guards against hangs.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";

import { chromium } from "playwright-core";

const BIN = process.env.SSE_HUB_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const GUARD_MS = 20_000;

if (!BIN) {
  console.error("SSE_HUB_BIN must name the sse-hub binary (cargo test sets it)");
  process.exit(2);
}

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  await browser?.close();
});

async function startHub(t, args) {
  const child = spawn(BIN, ["--listen", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "info" },
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  t.after(async () => {
    child.kill("SIGTERM");
    await exited;
  });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address; log:\n${log}`)), GUARD_MS);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const found = /listening on http:\/\/(\S+)/.exec(log);
      if (found) {
        clearTimeout(timer);
        resolve(`http://${found[1]}`);
      }
    });
  });
}

/** Holds a stream on `channel` open from Node; resolves once it is in. */
function holdStream(base, channel) {
  return new Promise((resolve, reject) => {
    const request = http.get(`${base}/events?channel=${channel}`, { agent: false }, (response) => {
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
  });
}

async function shows(page, what) {
  await page.waitForFunction(
    (what) => {
      const row = document.getElementById("presence-row");
      return !row.hidden && document.getElementById("present").textContent.includes(what);
    },
    what,
    { timeout: GUARD_MS, polling: 50 },
  );
}

test("the web client lists who is in a channel with presence, and follows joins and leaves", { timeout: 60_000 }, async (t) => {
  const base = await startHub(t, ["--presence", "room:*"]);
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(`${base}/?channel=room:1&channel=news`);
  await shows(page, "room:1: 1 (");

  const other = await holdStream(base, "room:1");
  await shows(page, "room:1: 2 (");
  other.destroy();
  await shows(page, "room:1: 1 (");

  // A channel without presence is not listed.
  const text = await page.locator("#present").textContent();
  assert.ok(!text.includes("news"), text);
  // Joins and leaves are in the log like any event.
  const entries = await page.locator("#log li").allTextContents();
  assert.ok(
    entries.some((text) => text.includes("presence") && text.includes("leave")),
    `no leave in the log: ${JSON.stringify(entries)}`,
  );
});
