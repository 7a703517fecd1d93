// Chromium's own EventSource as a client of the matrix: Debian's
// /usr/bin/chromium (or CHROMIUM_PATH), headless, driven by playwright-core
// (no browser download). The page is the hub's /healthz through the same
// address, so the stream is same-origin; each event the page's EventSource
// dispatches is handed to this script and printed. Chromium exposes no
// retry value: `retry` is null.
//
//   node chromium.mjs http://127.0.0.1:PORT/events

import fs from "node:fs";

import { chromium } from "playwright-core";

import { endWithStdin, event, note, url } from "./report.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
if (!fs.existsSync(CHROMIUM)) {
  console.error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  process.exit(2);
}

const target = new URL(url());
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
endWithStdin(async () => browser.close());

const page = await browser.newPage();
page.on("console", (message) => console.error(`page: ${message.text()}`));
await page.exposeFunction("reportEvent", (type, data, id) => event(type, data, id));
await page.exposeFunction("reportNote", (text) => note(text));
await page.goto(new URL("/healthz", target).href);
await page.evaluate((path) => {
  const source = new EventSource(path);
  for (const type of ["connection", "gap", "message"]) {
    source.addEventListener(type, (e) => window.reportEvent(type, e.data, e.lastEventId));
  }
  source.addEventListener("open", () => window.reportNote("open"));
  source.addEventListener("error", () => window.reportNote(`error (readyState ${source.readyState})`));
}, target.pathname + target.search);
