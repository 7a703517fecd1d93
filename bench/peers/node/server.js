// A Server-Sent Events broadcaster written the way tutorials write one: the
// plain `http` module, a Map of open responses, and a `res.write` loop on
// every publish. It is the Node.js peer in BENCHMARKS.md, so it speaks
// sse-hub's two routes:
//
//   GET  /events      text/event-stream; every published message
//   POST /broadcast   {"message": "..."} -> {"id": "<n>", "clients": <n>}
//
// Usage: node server.js [--listen 127.0.0.1:0]
// Logs `listening on http://IP:PORT` on stderr once it is bound.

'use strict';

const http = require('http');

const listenArg = process.argv.indexOf('--listen');
const [host, port] = (listenArg > 0 ? process.argv[listenArg + 1] : '127.0.0.1:3000').split(':');

const clients = new Map();
let nextClient = 1;
let lastId = 0;

function subscribe(req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'Access-Control-Allow-Origin': '*',
  });
  res.write('retry: 3000\n\n');
  const id = nextClient++;
  clients.set(id, res);
  req.on('close', () => clients.delete(id));
}

function broadcast(req, res) {
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', () => {
    let message;
    try {
      message = JSON.parse(body).message;
    } catch (e) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'body is not JSON' }));
      return;
    }
    if (message === undefined) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'missing field `message`' }));
      return;
    }
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    lastId += 1;
    const data = text.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('');
    const frame = `id: ${lastId}\n${data}\n`;
    for (const client of clients.values()) {
      client.write(frame);
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ id: String(lastId), clients: clients.size }));
  });
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/events') {
    subscribe(req, res);
  } else if (req.method === 'POST' && path === '/broadcast') {
    broadcast(req, res);
  } else if (req.method === 'GET' && path === '/healthz') {
    res.end('ok');
  } else {
    res.writeHead(404);
    res.end();
  }
});

server.listen(Number(port), host, () => {
  const address = server.address();
  console.error(`listening on http://${address.address}:${address.port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
