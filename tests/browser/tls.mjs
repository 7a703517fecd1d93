// HTTPS and HTTP/2 in a real browser: Debian's headless Chromium, driven by
// playwright-core, against the real sse-hub binary and a real nginx.
//
//   cargo test --test browser -- --include-ignored https
//
// tests/browser.rs makes a test CA and a certificate for localhost and
// 127.0.0.1, and passes them here: SSE_HUB_TEST_CERT and SSE_HUB_TEST_KEY
// (the server's pair), NODE_EXTRA_CA_CERTS (the CA, so that this script's
// own fetch trusts the hub). The browser ignores certificate errors (its
// trust store is not ours to change). Every wait has a timeout that only
// guards against hangs; nothing here measures time.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const README = path.join(HERE, "..", "..", "README.md");
const BIN = process.env.SSE_HUB_BIN;
const CERT = process.env.SSE_HUB_TEST_CERT;
const KEY = process.env.SSE_HUB_TEST_KEY;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => fs.existsSync(p));

const GUARD_MS = 20_000;
const TEST_GUARD_MS = 120_000;

for (const [name, value] of Object.entries({ SSE_HUB_BIN: BIN, SSE_HUB_TEST_CERT: CERT, SSE_HUB_TEST_KEY: KEY })) {
  if (!value) {
    console.error(`${name} must be set (tests/browser.rs sets it)`);
    process.exit(2);
  }
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

/** Starts sse-hub with `args`; stopped after the test. Resolves to its base URL. */
async function startHub(t, args = []) {
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
  const found = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sse-hub did not report its address; log:\n${log}`)), GUARD_MS);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /listening on (https?):\/\/(\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve({ scheme: match[1], addr: match[2] });
      }
    });
    child.on("exit", (code) => reject(new Error(`sse-hub exited (${code}); log:\n${log}`)));
  });
  const port = found.addr.slice(found.addr.lastIndexOf(":") + 1);
  return { scheme: found.scheme, port: Number(port), base: `${found.scheme}://localhost:${port}` };
}

/** Publishes through Node (no Origin header), insisting on success; returns the ID. */
async function publish(base, body) {
  const reply = await fetch(`${base}/broadcast`, { method: "POST", body: JSON.stringify(body) });
  const json = await reply.json();
  assert.equal(reply.status, 200, JSON.stringify(json));
  return json.id;
}

async function stats(base) {
  return (await fetch(`${base}/stats`)).json();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * nginx with the README's recipe in front of the hub at `hubPort`: one
 * server with TLS and HTTP/2 (`listen ... ssl http2`, the form nginx 1.22
 * takes), one with plain HTTP/1.1. Resolves to their two ports.
 */
async function startNginx(t, hubPort) {
  assert.ok(NGINX, "no nginx: apt-get install -y nginx (.ci/run does)");
  const readme = fs.readFileSync(README, "utf8");
  const section = readme.split("### Behind a reverse proxy")[1];
  const recipe = section.split("```nginx\n")[1].split("```")[0].replaceAll("127.0.0.1:3000", `127.0.0.1:${hubPort}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sse-hub-h2-"));
  fs.mkdirSync(path.join(dir, "logs"));
  const [h2Port, plainPort] = [await freePort(), await freePort()];
  const conf = `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${h2Port} ssl http2;
    ssl_certificate ${CERT};
    ssl_certificate_key ${KEY};
${recipe}
  }
  server {
    listen 127.0.0.1:${plainPort};
${recipe}
  }
}
`;
  fs.writeFileSync(path.join(dir, "nginx.conf"), conf);
  const child = spawn(NGINX, ["-c", path.join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  t.after(async () => {
    child.kill("SIGTERM");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const port of [h2Port, plainPort]) {
    const started = Date.now();
    for (;;) {
      const up = await new Promise((resolve) => {
        const socket = net.connect(port, "127.0.0.1", () => {
          socket.end();
          resolve(true);
        });
        socket.on("error", () => resolve(false));
      });
      if (up) break;
      assert.ok(Date.now() - started < GUARD_MS, `nginx did not listen on ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return { h2Port, plainPort };
}

/** A page of the given origin, in a context that ignores certificate errors. */
async function pageAt(t, url) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

/** Opens `n` EventSources in `page`, each recording what it receives. */
async function openStreams(page, n) {
  await page.evaluate((n) => {
    window.streams = [];
    for (let i = 0; i < n; i += 1) {
      const es = new EventSource(`/events?channel=tab-${i}`);
      const got = [];
      es.addEventListener("connection", () => got.push({ event: "connection" }));
      es.onmessage = (e) => got.push({ event: "message", data: e.data, id: e.lastEventId });
      window.streams.push({ es, got });
    }
  }, n);
}

async function waitIn(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: GUARD_MS, polling: 50 });
  } catch (e) {
    throw new Error(`waiting for ${what}: ${e.message}`);
  }
}

test("the web client's streams, publishes, resume and gzip work over the hub's own HTTPS", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t, ["--tls-cert", CERT, "--tls-key", KEY, "--compress"]);
  assert.equal(hub.scheme, "https");
  // The web client itself loads over HTTPS and opens its stream.
  const client = await pageAt(t, `${hub.base}/`);
  const started = Date.now();
  while ((await stats(hub.base)).clients < 1) {
    assert.ok(Date.now() - started < GUARD_MS, "the web client never opened its stream");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await client.close();

  // A page of the hub's origin (its /healthz) drives the rest.
  const page = await pageAt(t, `${hub.base}/healthz`);
  const encodings = [];
  page.on("response", (response) => {
    if (response.url().includes("/events")) encodings.push(response.headers()["content-encoding"]);
  });

  await openStreams(page, 1);
  await waitIn(page, "the connection event", () => window.streams[0].got.length === 1);
  const first = await publish(hub.base, { message: "over https" });
  await waitIn(page, "the message", (id) => window.streams[0].got.some((e) => e.id === id), first);

  // The page publishes itself, as the web client does: same origin, so the
  // cross-site rule lets it through (its origin is https://).
  const status = await page.evaluate(async () => {
    const reply = await fetch("/broadcast", { method: "POST", body: JSON.stringify({ message: "from the page" }) });
    return reply.status;
  });
  assert.equal(status, 200);
  await waitIn(page, "the page's own publish", () => window.streams[0].got.some((e) => e.data === "from the page"));

  // Resume: a new stream from the first ID gets exactly what came after.
  const resumed = await page.evaluate(async (from) => {
    const es = new EventSource(`/events?lastEventId=${encodeURIComponent(from)}`);
    const got = [];
    await new Promise((resolve) => {
      es.onmessage = (e) => {
        got.push(e.data);
        if (got.length === 1) resolve();
      };
    });
    es.close();
    return got;
  }, first);
  assert.deepEqual(resumed, ["from the page"]);
  assert.ok(encodings.includes("gzip"), `the streams came as ${JSON.stringify(encodings)}`);
});

test("through nginx with HTTP/2 one page holds 10 streams; over HTTP/1.1 only 6 open", { timeout: TEST_GUARD_MS }, async (t) => {
  const hub = await startHub(t);
  const { h2Port, plainPort } = await startNginx(t, hub.port);

  // Pages of nginx's origins that hold no stream of their own.
  const h2 = await pageAt(t, `https://localhost:${h2Port}/healthz`);
  const protocol = await h2.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  assert.equal(protocol, "h2");
  await openStreams(h2, 10);
  await waitIn(h2, "10 open streams", () => window.streams.every((s) => s.got.length === 1));
  const id = await publish(`http://127.0.0.1:${hub.port}`, { message: "to every stream" });
  await waitIn(h2, "the message in all 10", (id) => window.streams.every((s) => s.got.some((e) => e.id === id)), id);
  assert.equal((await stats(`http://127.0.0.1:${hub.port}`)).clients, 10);

  // The same page over HTTP/1.1: the browser opens 6 connections to a host
  // and no more, so 4 streams wait for a connection that never frees.
  const plain = await pageAt(t, `http://localhost:${plainPort}/healthz`);
  await openStreams(plain, 10);
  await waitIn(plain, "6 open streams", () => window.streams.filter((s) => s.got.length === 1).length === 6);
  const second = await publish(`http://127.0.0.1:${hub.port}`, { message: "to the open ones" });
  await waitIn(plain, "the message in the 6 open streams", (id) => window.streams.filter((s) => s.got.some((e) => e.id === id)).length === 6, second);
  const waiting = await plain.evaluate(() => window.streams.filter((s) => s.got.length === 0 && s.es.readyState === 0).length);
  assert.equal(waiting, 4, "4 streams still connecting");
  assert.equal((await stats(`http://127.0.0.1:${hub.port}`)).clients, 16);
});
