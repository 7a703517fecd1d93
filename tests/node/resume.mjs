// Reconnection without loss, checked with a client that is not ours: the
// `eventsource` npm package (a WHATWG EventSource for Node).
//
// Starts the real hub (path in SSE_HUB_BIN) and runs four scenarios:
//   1. connection cut: a TCP proxy inside this script drops the client's
//      connections while the hub keeps running and publishing goes on; the
//      client must come back by itself with Last-Event-ID and get exactly
//      what it missed, in order, once;
//   2. server restart: SIGTERM, start again on the same port; the client
//      must come back by itself, get `gap` (history was lost) and then
//      exactly what was published after the restart;
//   3. resume with a bad ID: `Last-Event-ID: garbage` (header, and the
//      `lastEventId=` query) gets 200, `gap` with the raw value, no replay;
//   4. gzip: against a hub started with --compress, the client (whose
//      fetch asks for gzip by itself) gets `Content-Encoding: gzip`, each
//      message before the next is published, and resumes after a cut on a
//      gzip stream again.
// Each scenario also runs a second client on `?channel=news` to check that
// channel filtering survives the resume.
//
// Exits 0 on success, 1 with a message on the first failed check, and never
// runs longer than GLOBAL_TIMEOUT_MS.
//
//   SSE_HUB_BIN=target/debug/sse-hub node tests/node/resume.mjs

import {spawn} from 'node:child_process'
import net from 'node:net'
import {EventSource} from 'eventsource'

const GLOBAL_TIMEOUT_MS = 60_000
/** How long any single wait may take. */
const WAIT_MS = 10_000
/** `retry:` the hub sends, so that reconnects are quick. */
const RETRY_MS = 100

const started = Date.now()
const hubs = new Set()

function log(...args) {
  const t = ((Date.now() - started) / 1000).toFixed(3).padStart(7)
  console.log(`[${t}s]`, ...args)
}

class CheckFailed extends Error {}

function check(ok, what, details) {
  if (!ok) {
    const more = details === undefined ? '' : `\n${format(details)}`
    throw new CheckFailed(`${what}${more}`)
  }
}

function checkEqual(actual, expected, what) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  check(a === e, what, {expected, received: actual})
}

function format(value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor(what, ready, ms = WAIT_MS, details) {
  const deadline = Date.now() + ms
  while (!ready()) {
    if (Date.now() > deadline) {
      throw new CheckFailed(
        `timed out after ${ms} ms waiting for ${what}` +
          (details ? `\n${format(details())}` : ''),
      )
    }
    await sleep(5)
  }
}

// ---------------------------------------------------------------- the hub

/** A running `sse-hub` process. */
class Hub {
  static async start(listen, extraArgs = []) {
    const bin = process.env.SSE_HUB_BIN
    check(bin, 'SSE_HUB_BIN must name the sse-hub binary')
    // Options also read SSE_HUB_* variables: keep the caller's out.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('SSE_HUB_')),
    )
    env.RUST_LOG = 'info'
    const args = ['--listen', listen, '--retry', String(RETRY_MS), '--heartbeat', '1', ...extraArgs]
    const child = spawn(bin, args, {env, stdio: ['ignore', 'ignore', 'pipe']})
    const hub = new Hub(child)
    hubs.add(hub)
    hub.addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new CheckFailed(`sse-hub did not report its address; log:\n${hub.log}`)),
        WAIT_MS,
      )
      child.once('error', (e) => reject(new CheckFailed(`cannot start ${bin}: ${e.message}`)))
      child.once('exit', (code, signal) =>
        reject(
          new CheckFailed(`sse-hub exited at start (${code ?? signal}); log:\n${hub.log}`),
        ),
      )
      hub.onLine = (line) => {
        const m = /listening on http:\/\/(\S+)/.exec(line)
        if (m) {
          clearTimeout(timer)
          resolve(m[1])
        }
      }
    })
    hub.port = Number(hub.addr.slice(hub.addr.lastIndexOf(':') + 1))
    hub.url = `http://${hub.addr}`
    return hub
  }

  constructor(child) {
    this.child = child
    this.log = ''
    this.onLine = () => {}
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        hubs.delete(this)
        resolve({code, signal})
      }),
    )
    let partial = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (text) => {
      this.log += text
      const lines = (partial + text).split('\n')
      partial = lines.pop()
      for (const line of lines) this.onLine(line)
    })
  }

  /** SIGTERM, and checks the hub exits 0. Returns how long it took. */
  async terminate() {
    const at = Date.now()
    this.child.kill('SIGTERM')
    const exit = await Promise.race([this.exited, sleep(WAIT_MS).then(() => null)])
    check(exit, `sse-hub did not exit within ${WAIT_MS} ms of SIGTERM`)
    checkEqual(exit, {code: 0, signal: null}, 'sse-hub exit status after SIGTERM')
    return Date.now() - at
  }

  /** POST /broadcast; returns the publish with the reply's id. */
  async publish(message, channel) {
    const body = channel ? {message, channel} : {message}
    const res = await fetch(`${this.url}/broadcast`, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(body),
    })
    const text = await res.text()
    check(res.status === 200, `publish ${JSON.stringify(body)} got ${res.status}: ${text}`)
    const reply = JSON.parse(text)
    check(ID_FORM.test(reply.id), `publish reply id ${JSON.stringify(reply.id)} is not <ms>-<seq>`)
    return {id: reply.id, message, channel: channel ?? null, at: Date.now()}
  }
}

const ID_FORM = /^\d+-\d+$/

function compareIds(a, b) {
  const [am, as] = a.split('-').map(BigInt)
  const [bm, bs] = b.split('-').map(BigInt)
  if (am !== bm) return am < bm ? -1 : 1
  if (as !== bs) return as < bs ? -1 : 1
  return 0
}

// --------------------------------------------------------------- the proxy

/**
 * A TCP proxy in front of the hub. `cut()` destroys every proxied
 * connection; while `blocked`, new connections are closed at once (the
 * network is down). It reads each forwarded request's head so the test can
 * see what the client sent on reconnect.
 */
class Proxy {
  static async start(target) {
    const proxy = new Proxy(target)
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve))
    proxy.port = proxy.server.address().port
    proxy.url = `http://127.0.0.1:${proxy.port}`
    return proxy
  }

  constructor(target) {
    this.target = target
    this.blocked = false
    this.refused = 0
    this.pairs = new Set()
    /** Forwarded requests: {path, lastEventId, at}. */
    this.requests = []
    this.server = net.createServer((down) => this.#accept(down))
  }

  #accept(down) {
    down.on('error', () => {})
    if (this.blocked) {
      this.refused += 1
      down.destroy()
      return
    }
    const up = net.connect(this.target.port, this.target.host)
    up.on('error', () => {})
    const pair = {down, up}
    this.pairs.add(pair)
    let head = ''
    const sniff = (chunk) => {
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      down.off('data', sniff)
      const lines = head.slice(0, end).split('\r\n')
      const path = lines[0].split(' ')[1]
      const header = lines.find((l) => /^last-event-id:/i.test(l))
      const lastEventId = header ? header.slice(header.indexOf(':') + 1).trim() : null
      this.requests.push({path, lastEventId, at: Date.now()})
    }
    down.on('data', sniff)
    down.pipe(up)
    up.pipe(down)
    const close = () => {
      this.pairs.delete(pair)
      down.destroy()
      up.destroy()
    }
    down.on('close', close)
    up.on('close', close)
  }

  /** Destroys every proxied connection, both sides. */
  cut() {
    const n = this.pairs.size
    for (const {down, up} of this.pairs) {
      down.destroy()
      up.destroy()
    }
    this.pairs.clear()
    return n
  }

  async close() {
    this.cut()
    await new Promise((resolve) => this.server.close(resolve))
  }
}

// -------------------------------------------------------------- a client

/**
 * An `eventsource` EventSource that records everything it dispatches.
 * `headers` are added to the first request only (EventSource sets
 * Last-Event-ID itself on reconnects, and that one wins).
 */
class Recorder {
  constructor(name, url, {headers, channel} = {}) {
    this.name = name
    this.channel = channel ?? null
    /** Every dispatched event: {type, data, lastEventId, at}. */
    this.events = []
    /** Every response: {status, contentType}. */
    this.responses = []
    /** Every response's Content-Encoding (null for none). */
    this.encodings = []
    this.errors = 0
    let first = true
    const options = {
      fetch: async (input, init) => {
        const extra = first ? headers : undefined
        first = false
        const res = await fetch(input, {...init, headers: {...init.headers, ...extra}})
        this.responses.push({status: res.status, contentType: res.headers.get('content-type')})
        this.encodings.push(res.headers.get('content-encoding'))
        return res
      },
    }
    this.es = new EventSource(url, options)
    for (const type of ['connection', 'gap', 'message']) {
      this.es.addEventListener(type, (e) =>
        this.events.push({type, data: e.data, lastEventId: e.lastEventId, at: Date.now()}),
      )
    }
    this.es.addEventListener('error', () => {
      this.errors += 1
    })
  }

  count(type) {
    return this.events.filter((e) => e.type === type).length
  }

  messages() {
    return this.events.filter((e) => e.type === 'message')
  }

  lastMessageId() {
    const m = this.messages()
    return m.length ? m[m.length - 1].lastEventId : null
  }

  /**
   * Whether this client should get `p`: a message without a channel goes to
   * everyone, one on channel C only to those that joined C.
   */
  wants(p) {
    return p.channel === null || p.channel === this.channel
  }

  async connected(times = 1) {
    await waitFor(
      `${this.name}: ${times} connection event(s)`,
      () => this.count('connection') >= times,
      WAIT_MS,
      () => events(this),
    )
  }

  /**
   * Waits until the last publish this client should get (or anything newer)
   * has arrived; `checkExactly` then says what is missing, if anything.
   */
  async caughtUp(publishes) {
    const want = publishes.filter((p) => this.wants(p)).map((p) => p.id)
    const last = want[want.length - 1]
    const reached = (m) => ID_FORM.test(m.lastEventId) && compareIds(m.lastEventId, last) >= 0
    await waitFor(
      `${this.name} to receive ${last}, the last of ${want.length} messages`,
      () => this.messages().some(reached),
      WAIT_MS,
      () => ({expected: want, received: this.messages().map((m) => m.lastEventId)}),
    )
  }

  /** Checks that the messages are exactly the ones published for it. */
  checkExactly(publishes, what) {
    const expected = publishes
      .filter((p) => this.wants(p))
      .sort((a, b) => compareIds(a.id, b.id))
      .map((p) => `${p.id} ${p.message}`)
    const received = this.messages().map((m) => `${m.lastEventId} ${m.data}`)
    const ids = this.messages().map((m) => m.lastEventId)
    const seen = new Set()
    const dups = ids.filter((id) => seen.has(id) || !seen.add(id))
    check(dups.length === 0, `${this.name} (${what}): duplicate messages ${dups.join(', ')}`)
    const missing = expected.filter((e) => !received.includes(e))
    const extra = received.filter((r) => !expected.includes(r))
    check(
      missing.length === 0 && extra.length === 0,
      `${this.name} (${what}): ${missing.length} missing, ${extra.length} unexpected`,
      {missing, unexpected: extra},
    )
    checkEqual(received, expected, `${this.name} (${what}): messages in publish order`)
    for (const id of ids) check(ID_FORM.test(id), `${this.name}: id ${id} is not <ms>-<seq>`)
  }

  close() {
    this.es.close()
  }
}

function events(recorder) {
  return recorder.events.map(
    (e) => `${e.type}${e.lastEventId ? ` ${e.lastEventId}` : ''} ${e.data}`,
  )
}

// ------------------------------------------------------------ scenarios

const CHANNELS = [null, 'news', 'sports']

/**
 * Publishes an end marker to everyone and waits until every client has it.
 * Each stream is in order, so anything late (a duplicate) is there by then.
 */
async function settle(hub, clients, into) {
  into.push(await hub.publish(`end-${into.length}`, null))
  for (const c of clients) await c.caughtUp(into)
}

/** Publishes n messages, cycling through no channel, news and sports. */
async function publishSome(hub, tag, n, into) {
  for (let i = 0; i < n; i++) {
    into.push(await hub.publish(`${tag}-${into.length}`, CHANNELS[into.length % 3]))
  }
}

async function connectionCut(hub) {
  log('scenario "connection cut": start')
  const proxy = await Proxy.start({host: '127.0.0.1', port: hub.port})
  const all = new Recorder('cut/all', `${proxy.url}/events`)
  const news = new Recorder('cut/news', `${proxy.url}/events?channel=news`, {channel: 'news'})
  const clients = [all, news]
  try {
    for (const c of clients) await c.connected()
    const published = []
    await publishSome(hub, 'cut', 6, published)
    for (const c of clients) await c.caughtUp(published)

    // Publish without pause from here on, across the cut and the reconnect.
    let publishing = true
    const publisher = (async () => {
      while (publishing) {
        await publishSome(hub, 'cut', 1, published)
        await sleep(10)
      }
    })()
    await waitFor('3 more publishes', () => published.length >= 9)

    proxy.blocked = true
    const dropped = proxy.cut()
    check(dropped >= 2, `the proxy had ${dropped} connections to cut, expected 2`)
    log(`cut ${dropped} connections; the network stays down for a while`)
    await waitFor('both clients to notice the cut', () => clients.every((c) => c.errors >= 1))
    await waitFor('2 refused reconnect attempts', () => proxy.refused >= 2)
    const downFor = published.length
    await waitFor('5 publishes while down', () => published.length >= downFor + 5)
    proxy.blocked = false
    log(`network back; ${proxy.refused} reconnect attempts were refused meanwhile`)

    for (const c of clients) await c.connected(2)
    const reconnected = published.length
    await waitFor('5 publishes after the reconnect', () => published.length >= reconnected + 5)
    publishing = false
    await publisher
    for (const c of clients) await c.caughtUp(published)
    await settle(hub, clients, published)

    for (const c of clients) {
      c.checkExactly(published, 'connection cut')
      checkEqual(c.count('connection'), 2, `${c.name}: connection events (one per stream)`)
      checkEqual(c.count('gap'), 0, `${c.name}: gap events (history covered the outage)`)
      // The reconnect carried the last ID seen before it, set by the client.
      const path = c.channel ? `/events?channel=${c.channel}` : '/events'
      const requests = proxy.requests.filter((r) => r.path === path)
      checkEqual(requests.length, 2, `${c.name}: requests that reached the hub`)
      checkEqual(requests[0].lastEventId, null, `${c.name}: Last-Event-ID on the first connect`)
      const second = c.events.findIndex((e, i) => e.type === 'connection' && i > 0)
      const before = c.events.slice(0, second).filter((e) => e.type === 'message')
      const lastBefore = before[before.length - 1].lastEventId
      checkEqual(requests[1].lastEventId, lastBefore, `${c.name}: Last-Event-ID on reconnect`)
      // Some of it was published before the reconnect reached the hub, so
      // it can only have come from the replay.
      const replayed = c.events
        .slice(second + 1)
        .filter((e) => e.type === 'message')
        .filter((e) => published.find((p) => p.id === e.lastEventId).at < requests[1].at)
      check(
        replayed.length >= 1,
        `${c.name}: nothing it needed was published while it was away`,
        events(c),
      )
      log(
        `${c.name}: ${c.messages().length} messages; reconnected by itself with ` +
          `Last-Event-ID ${lastBefore} and got the ${replayed.length} published meanwhile ` +
          `from the replay, then the rest live`,
      )
    }
    log(`scenario "connection cut": ok (${published.length} publishes)`)
  } finally {
    for (const c of clients) c.close()
    await proxy.close()
  }
}

async function serverRestart(hub) {
  log('scenario "server restart": start')
  const all = new Recorder('restart/all', `${hub.url}/events`)
  const news = new Recorder('restart/news', `${hub.url}/events?channel=news`, {channel: 'news'})
  const clients = [all, news]
  try {
    for (const c of clients) await c.connected()
    const before = []
    await publishSome(hub, 'before', 6, before)
    for (const c of clients) await c.caughtUp(before)
    const lastIds = clients.map((c) => c.lastMessageId())

    const took = await hub.terminate()
    log(`hub stopped by SIGTERM in ${took} ms`)
    await waitFor('both clients to notice the stop', () => clients.every((c) => c.errors >= 1))
    const errors = clients.map((c) => c.errors)
    await waitFor(
      'reconnect attempts against the stopped hub',
      () => clients.every((c, i) => c.errors >= errors[i] + 2),
    )
    log('clients are retrying against the stopped hub; starting it again')

    hub = await Hub.start(`127.0.0.1:${hub.port}`)
    // Nothing is published until both are back, so the new hub has nothing
    // to replay: each must be told so with a gap whose oldest is null.
    for (const c of clients) await c.connected(2)
    const after = []
    await publishSome(hub, 'after', 6, after)
    for (const c of clients) await c.caughtUp([...before, ...after])
    await settle(hub, clients, after)

    check(
      compareIds(after[0].id, before[before.length - 1].id) > 0,
      `IDs went back after the restart: ${before[before.length - 1].id} then ${after[0].id}`,
    )
    for (const [i, c] of clients.entries()) {
      c.checkExactly([...before, ...after], 'server restart')
      checkEqual(c.count('connection'), 2, `${c.name}: connection events (one per stream)`)
      checkEqual(c.count('gap'), 1, `${c.name}: gap events`)
      const second = c.events.findIndex((e, j) => e.type === 'connection' && j > 0)
      checkEqual(
        c.events[second + 1]?.type,
        'gap',
        `${c.name}: the event right after the reconnect's connection event`,
      )
      const gap = JSON.parse(c.events[second + 1].data)
      checkEqual(gap.requested, lastIds[i], `${c.name}: gap.requested`)
      checkEqual(gap.oldest, null, `${c.name}: gap.oldest (the new hub had kept nothing)`)
      const sinceReconnect = c.events.slice(second).filter((e) => e.type === 'message')
      checkEqual(
        sinceReconnect.map((e) => e.data),
        after.filter((p) => c.wants(p)).map((p) => p.message),
        `${c.name}: messages after the restart`,
      )
      log(
        `${c.name}: reconnected by itself, gap ${c.events[second + 1].data}, ` +
          `then the ${sinceReconnect.length} messages published after the restart`,
      )
    }
    log('scenario "server restart": ok')
    return hub
  } finally {
    for (const c of clients) c.close()
  }
}

async function badId(hub) {
  log('scenario "resume with a bad ID": start')
  const history = []
  await publishSome(hub, 'kept', 3, history)
  const byHeader = new Recorder('bad-id/header', `${hub.url}/events`, {
    headers: {'Last-Event-ID': 'garbage'},
  })
  const byQuery = new Recorder(
    'bad-id/query',
    `${hub.url}/events?lastEventId=garbage&channel=news`,
    {channel: 'news'},
  )
  const clients = [byHeader, byQuery]
  try {
    for (const c of clients) {
      await waitFor(`${c.name}: gap event`, () => c.count('gap') >= 1, WAIT_MS, () => events(c))
    }
    const live = []
    await publishSome(hub, 'live', 3, live)
    for (const c of clients) await c.caughtUp(live)
    await settle(hub, clients, live)
    for (const c of clients) {
      checkEqual(
        c.responses[0],
        {status: 200, contentType: 'text/event-stream'},
        `${c.name}: response`,
      )
      checkEqual(
        c.events.slice(0, 2).map((e) => e.type),
        ['connection', 'gap'],
        `${c.name}: first events`,
      )
      const gap = JSON.parse(c.events[1].data)
      checkEqual(gap.requested, 'garbage', `${c.name}: gap.requested`)
      check(
        gap.oldest === null || ID_FORM.test(gap.oldest),
        `${c.name}: gap.oldest ${JSON.stringify(gap.oldest)}`,
      )
      c.checkExactly(live, 'no replay after a bad ID')
      checkEqual(c.count('connection'), 1, `${c.name}: connection events`)
      log(`${c.name}: 200, gap ${c.events[1].data}, no replay, ${c.messages().length} live`)
    }
    log('scenario "resume with a bad ID": ok')
  } finally {
    for (const c of clients) c.close()
  }
}

async function gzipStream() {
  log('scenario "gzip stream": start')
  const hub = await Hub.start('127.0.0.1:0', ['--compress'])
  const proxy = await Proxy.start({host: '127.0.0.1', port: hub.port})
  const all = new Recorder('gzip/all', `${proxy.url}/events`)
  const news = new Recorder('gzip/news', `${proxy.url}/events?channel=news`, {channel: 'news'})
  const clients = [all, news]
  try {
    for (const c of clients) await c.connected()
    // One at a time: a message held back in the compressor would never
    // arrive, and the wait for it would fail.
    const published = []
    for (let i = 0; i < 9; i++) {
      await publishSome(hub, 'gzip', 1, published)
      for (const c of clients) if (c.wants(published[published.length - 1])) await c.caughtUp(published)
    }

    proxy.blocked = true
    proxy.cut()
    await waitFor('both clients to notice the cut', () => clients.every((c) => c.errors >= 1))
    await publishSome(hub, 'gzip-down', 6, published)
    proxy.blocked = false
    for (const c of clients) await c.connected(2)
    await publishSome(hub, 'gzip-back', 3, published)
    await settle(hub, clients, published)

    for (const c of clients) {
      c.checkExactly(published, 'gzip stream')
      checkEqual(c.encodings, ['gzip', 'gzip'], `${c.name}: Content-Encoding of both streams`)
      checkEqual(c.count('gap'), 0, `${c.name}: gap events`)
      log(`${c.name}: ${c.messages().length} messages over two gzip streams, resumed without loss`)
    }
    await hub.terminate()
    log('scenario "gzip stream": ok')
  } finally {
    for (const c of clients) c.close()
    await proxy.close()
  }
}

// ------------------------------------------------------------------ main

function killHubs() {
  for (const hub of hubs) hub.child.kill('SIGKILL')
}

process.on('exit', killHubs)

const guard = setTimeout(() => {
  console.error(`FAIL: the suite did not finish within ${GLOBAL_TIMEOUT_MS} ms`)
  for (const hub of hubs) console.error(`hub log:\n${hub.log}`)
  process.exit(1)
}, GLOBAL_TIMEOUT_MS)

const scenarios = ['connection cut', 'server restart', 'resume with a bad ID', 'gzip stream']
let passed = 0
let hub
try {
  hub = await Hub.start('127.0.0.1:0')
  log(`hub at ${hub.url} (${process.env.SSE_HUB_BIN}), eventsource client from npm`)
  await connectionCut(hub)
  passed += 1
  hub = await serverRestart(hub)
  passed += 1
  await badId(hub)
  passed += 1
  await hub.terminate()
  await gzipStream()
  passed += 1
  clearTimeout(guard)
  log(`all ${passed} scenarios passed`)
  console.log(`${passed} passed, 0 failed`)
  process.exit(0)
} catch (e) {
  clearTimeout(guard)
  const why = e instanceof CheckFailed ? e.message : e.stack
  console.error(`\nFAIL in scenario "${scenarios[passed]}": ${why}`)
  for (const h of hubs) console.error(`\nhub log:\n${h.log}`)
  console.log(`${passed} passed, 1 failed`)
  process.exit(1)
}
