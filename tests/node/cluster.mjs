// Resume across the nodes of a cluster, checked with a client that is not
// ours: the `eventsource` npm package reconnects through a small TCP proxy
// that sends each new connection to the other node, as a load balancer
// without sticky sessions does.
//
// The hubs are started by tests/cluster.rs (on one Redis, with a short
// `retry:`); their addresses come in SSE_HUB_NODES=ADDR_A,ADDR_B. Each round
// publishes through both nodes, then cuts the client's connection and
// publishes more while it is away; it must come back on the other node
// with its Last-Event-ID and receive exactly what was published, in order,
// once, with no `gap`.
//
//   SSE_HUB_NODES=127.0.0.1:3001,127.0.0.1:3002 node tests/node/cluster.mjs

import net from 'node:net'
import {EventSource} from 'eventsource'

const WAIT_MS = 10_000
const ROUNDS = 4

const nodes = (process.env.SSE_HUB_NODES ?? '').split(',').filter(Boolean)
const started = Date.now()
const log = (...args) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(3).padStart(7)}s]`, ...args)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function fail(what, details) {
  console.error(`FAILED: ${what}${details === undefined ? '' : `\n${JSON.stringify(details, null, 2)}`}`)
  process.exit(1)
}

async function waitFor(what, ready) {
  const deadline = Date.now() + WAIT_MS
  while (!ready()) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

async function publish(node, message) {
  const res = await fetch(`http://${node}/broadcast`, {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({message}),
  })
  const text = await res.text()
  if (res.status !== 200) fail(`publish on ${node} got ${res.status}: ${text}`)
  return JSON.parse(text).id
}

// A proxy that sends connection n to node n % 2, and can cut them all.
// While `holding`, new connections wait (the client is away).
const open = new Set()
const lastEventIds = []
let accepted = 0
let holding = false
let held = []
const proxy = net.createServer((down) => (holding ? held.push(down) : forward(down)))

function release() {
  holding = false
  for (const down of held) forward(down)
  held = []
}

function forward(down) {
  const node = nodes[accepted % nodes.length]
  accepted += 1
  const [host, port] = [node.slice(0, node.lastIndexOf(':')), Number(node.slice(node.lastIndexOf(':') + 1))]
  const up = net.connect(port, host)
  const pair = [down, up]
  open.add(pair)
  let head = ''
  down.on('data', (chunk) => {
    if (head !== null) {
      head += chunk.toString('latin1')
      if (head.includes('\r\n\r\n')) {
        const m = /^last-event-id: *(.*)$/im.exec(head)
        lastEventIds.push({node, lastEventId: m ? m[1].trim() : null})
        head = null
      }
    }
  })
  down.pipe(up)
  up.pipe(down)
  const close = () => {
    open.delete(pair)
    down.destroy()
    up.destroy()
  }
  down.on('error', close).on('close', close)
  up.on('error', close).on('close', close)
}

async function main() {
  if (nodes.length !== 2) fail('SSE_HUB_NODES must name two nodes', nodes)
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${proxy.address().port}/events`

  const received = []
  const gaps = []
  const es = new EventSource(url)
  es.onmessage = (e) => received.push({id: e.lastEventId, data: e.data})
  es.addEventListener('gap', (e) => gaps.push(e.data))
  let connections = 0
  es.addEventListener('connection', () => (connections += 1))
  await waitFor('the first connection event', () => connections === 1)

  const published = []
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < 10; i++) {
      const data = `r${round}-live${i}`
      published.push({id: await publish(nodes[i % 2], data), data})
    }
    await waitFor(`round ${round}'s live messages`, () => received.length === published.length)
    // Away: published while the client is cut off, through both nodes;
    // it gets them only as the replay of its resume.
    holding = true
    for (const pair of open) pair.forEach((s) => s.destroy())
    for (let i = 0; i < 5; i++) {
      const data = `r${round}-away${i}`
      published.push({id: await publish(nodes[(i + round) % 2], data), data})
    }
    release()
    await waitFor(`reconnection ${round + 1}`, () => connections === round + 2)
    await waitFor(`round ${round}'s missed messages`, () => received.length >= published.length)
    log(`round ${round}: ${received.length} messages, ${connections} connections`)
  }
  await sleep(200) // anything doubled would show up by now
  es.close()
  proxy.close()

  if (gaps.length) fail('no gap on a resume across nodes', gaps)
  if (JSON.stringify(received) !== JSON.stringify(published)) {
    fail('received exactly what was published, in order', {published, received})
  }
  const resumed = lastEventIds.slice(1)
  if (resumed.some((r) => !r.lastEventId)) fail('every reconnection sent Last-Event-ID', lastEventIds)
  if (new Set(lastEventIds.map((r) => r.node)).size !== 2) fail('both nodes served the client', lastEventIds)
  log(`ok: ${received.length} messages over ${connections} connections on both nodes`)
}

const timer = setTimeout(() => fail('ran past 60 s'), 60_000)
main().then(
  () => {
    clearTimeout(timer)
    process.exit(0)
  },
  (e) => fail(e.stack ?? String(e)),
)
