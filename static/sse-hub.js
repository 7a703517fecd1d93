// sse-hub.js: `SharedEventSource`, an EventSource whose connection every tab
// of a browser profile shares.
//
//   import { SharedEventSource } from "http://HUB/sse-hub.js";
//   const es = new SharedEventSource("http://HUB/events?channel=news");
//   es.onmessage = (e) => console.log(e.lastEventId, e.data);
//
// Why: over HTTP/1.1 a browser opens at most 6 connections to one host, and
// each tab with an EventSource holds one for as long as it is open, so the
// seventh tab stalls. Here every `SharedEventSource` for the same absolute
// URL (and the same `withCredentials`) in one profile shares one stream.
//
// How. This one file is both halves:
// - In a page it exports the class. The first instance starts a
//   `SharedWorker` whose script is this same module (`import.meta.url`, type
//   "module", name "sse-hub"), so there is nothing else to serve or keep in
//   step, and the worker is the same one for every page that imports the
//   module from the same address. The page talks to it through one
//   MessagePort, shared by all the page's instances.
// - In the worker (it notices that it runs in a SharedWorkerGlobalScope) it
//   holds one EventSource per URL and credentials mode, a `Stream` below,
//   and relays its events to the instances that subscribed to it.
//
// The stream listens for `message`, `connection` and `gap` itself, and for
// every other event type as soon as some instance listens for it (the page
// tells the worker; an EventSource only dispatches types it has listeners
// for). It keeps the last event ID it saw. When the connection drops, the
// EventSource reconnects by itself and sends `Last-Event-ID`; when it gives
// up (an answer other than 200, or a failed reconnect), the stream opens a
// new one with `lastEventId=` in the URL after a backoff (1 s doubling to
// 30 s, with jitter), so the instances see `error` with readyState
// CONNECTING, never CLOSED: only `close()` ends one. Either way the hub
// replays what was missed, and every tab resumes exactly.
//
// A tab that joins a stream that is already open gets `open` at once and,
// if it listens for it, the stream's `connection` event again, with the
// stream's last event ID: the point from which the tab's view is complete.
//
// The stream closes when its last instance does: at `close()`, or when the
// tab holding it goes away without calling it (closed, navigated, crashed).
// A page says goodbye on `pagehide`, but that is not always heard, so the
// worker also watches each page:
// - Where the Web Locks API exists (every browser with module shared
//   workers, on https or localhost), the page holds a lock of its own for
//   as long as it lives, and the worker asks for the same lock: it is
//   granted the moment the page is gone. A busy page is never taken for a
//   gone one, so it loses nothing.
// - Elsewhere (plain http on another host) the worker pings every port each second, the page answers
//   from its message handler (timers in hidden tabs are throttled, message
//   handlers are not), and a port silent for 3 seconds is dropped.
// A page that comes back (from the back/forward cache, or after it was
// silent too long) subscribes again, and its instances see `error` then
// `open`, as after a reconnect.
//
// Where `SharedWorker` is missing, its construction throws (the module was
// imported from another origin than the page's: a shared worker must be
// same-origin), its script fails to load, or the stream's URL is on another
// origin than the module (the worker's Content-Security-Policy is the hub's
// `default-src 'self'`), each instance runs the same `Stream` in the page,
// over a plain EventSource of its own, with the same interface and the same
// resume rules.

const WORKER_NAME = "sse-hub";
const PING_EVERY_MS = 1000;
const SILENT_MS = 3000;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
/** Types every stream listens for: they carry the IDs it resumes from. */
const ALWAYS_HEARD = ["message", "connection", "gap"];

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

// ---- one connection, in the worker or in a page ----------------------------

/**
 * One EventSource for one URL, its resume point, and the subscribers it
 * relays to. A subscriber is `{types: Set, deliver(message)}`; a message is
 * `{kind: "open" | "error" | "event", ...}`.
 */
class Stream {
  constructor(url, withCredentials, onClosed = () => {}) {
    this.url = url;
    this.origin = new URL(url).origin;
    this.withCredentials = withCredentials;
    this.onClosed = onClosed;
    this.subscribers = new Set();
    this.types = new Set(ALWAYS_HEARD);
    this.readyState = CONNECTING;
    this.lastEventId = "";
    this.hello = null; // the data of the newest `connection` event
    this.source = null;
    this.retryTimer = 0;
    this.attempt = 0;
    this.connect(url);
  }

  connect(url) {
    const source = new EventSource(url, { withCredentials: this.withCredentials });
    this.source = source;
    source.addEventListener("open", () => {
      this.attempt = 0;
      this.readyState = OPEN;
      this.send({ kind: "open", lastEventId: this.lastEventId });
    });
    source.addEventListener("error", () => this.failed(source));
    for (const type of this.types) this.hear(type);
  }

  hear(type) {
    this.source.addEventListener(type, (e) => this.received(type, e));
  }

  /** Listens for `type` from now on (an EventSource dispatches no other). */
  want(type) {
    if (this.types.has(type)) return;
    this.types.add(type);
    if (this.source) this.hear(type);
  }

  received(type, e) {
    this.lastEventId = e.lastEventId;
    if (type === "connection") this.hello = e.data;
    const message = { kind: "event", type, data: e.data, lastEventId: e.lastEventId, origin: e.origin };
    for (const subscriber of this.subscribers) {
      if (subscriber.types.has(type)) subscriber.deliver(message);
    }
  }

  failed(source) {
    if (source !== this.source) return;
    if (source.readyState === CLOSED) {
      // The EventSource gave up; a new one resumes from the last ID. The
      // URL carries it: a new EventSource cannot send Last-Event-ID.
      this.source = null;
      this.attempt += 1;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = 0;
        this.connect(this.resumeUrl());
      }, backoff(this.attempt));
    }
    this.readyState = CONNECTING;
    this.send({ kind: "error", readyState: CONNECTING });
  }

  resumeUrl() {
    if (!this.lastEventId) return this.url;
    const url = new URL(this.url);
    url.searchParams.set("lastEventId", this.lastEventId);
    return url.href;
  }

  add(subscriber) {
    this.subscribers.add(subscriber);
    for (const type of subscriber.types) this.want(type);
    if (this.readyState !== OPEN) return;
    subscriber.deliver({ kind: "open", lastEventId: this.lastEventId });
    if (this.hello !== null && subscriber.types.has("connection")) {
      subscriber.deliver({
        kind: "event",
        type: "connection",
        data: this.hello,
        lastEventId: this.lastEventId,
        origin: this.origin,
      });
    }
  }

  remove(subscriber) {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0) this.close();
  }

  close() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.source?.close();
    this.source = null;
    this.readyState = CLOSED;
    this.onClosed();
  }

  send(message) {
    for (const subscriber of [...this.subscribers]) subscriber.deliver(message);
  }
}

function backoff(attempt) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(attempt - 1, 15));
  return Math.round(Math.min(RETRY_MAX_MS, base * (0.8 + Math.random() * 0.4)));
}

// ---- the worker: streams shared by tabs ------------------------------------

/**
 * Serves the tabs that connect to this shared worker. Each tab is a port
 * with the instances it opened; each instance is a subscriber of the stream
 * for its URL. Page to worker: `hello` (the name of the page's lock), `open`,
 * `listen`, `close`, `pong`, `bye`.
 * Worker to page: `deliver` (the stream's messages, each tagged with the
 * instance's `id`), `ping` and `rejoin`.
 *
 * What one task of the worker delivers to a tab travels as one batch, so
 * the tab dispatches the events that arrived together (the replay after a
 * reconnect, a burst) in one task too, as an EventSource in the page would.
 */
function serveTabs(scope) {
  const streams = new Map(); // "credentials URL" -> Stream
  // port -> { heardAt, locked, subscribers: Map(id -> subscriber), outbox }
  const tabs = new Map();
  let ticker = 0;

  scope.addEventListener("connect", (e) => {
    const port = e.ports[0];
    port.addEventListener("message", (m) => heard(port, m.data));
    port.start();
    join(port);
  });

  function join(port) {
    const tab = { heardAt: Date.now(), locked: false, subscribers: new Map(), outbox: [] };
    tabs.set(port, tab);
    if (!ticker) ticker = setInterval(tick, PING_EVERY_MS);
    return tab;
  }

  function leave(port, tab) {
    if (tabs.get(port) !== tab) return;
    tabs.delete(port);
    for (const subscriber of tab.subscribers.values()) subscriber.stream.remove(subscriber);
    if (tabs.size === 0) {
      clearInterval(ticker);
      ticker = 0;
    }
  }

  function heard(port, message) {
    let tab = tabs.get(port);
    if (message.op === "bye") {
      if (tab) leave(port, tab);
      return;
    }
    if (!tab) {
      // A tab dropped as gone speaks again: back from the back/forward
      // cache, or it was too busy to answer. Its pong asks it to subscribe
      // again; an `open` needs nothing more.
      tab = join(port);
      if (message.op === "pong") port.postMessage({ op: "rejoin" });
    }
    tab.heardAt = Date.now();
    if (message.op === "hello") watch(port, tab, message.lock);
    else if (message.op === "open") open(port, tab, message);
    else if (message.op === "listen") {
      const subscriber = tab.subscribers.get(message.id);
      if (subscriber) {
        subscriber.types.add(message.type);
        subscriber.stream.want(message.type);
      }
    } else if (message.op === "close") {
      const subscriber = tab.subscribers.get(message.id);
      if (subscriber) {
        tab.subscribers.delete(message.id);
        subscriber.stream.remove(subscriber);
      }
    }
  }

  // The page holds the lock `name` while it lives: once the worker gets it,
  // the page is gone.
  function watch(port, tab, name) {
    if (typeof name !== "string" || !scope.navigator?.locks) return;
    tab.locked = true;
    scope.navigator.locks.request(name, () => leave(port, tab));
  }

  function open(port, tab, { id, url, withCredentials, types }) {
    if (tab.subscribers.has(id)) return;
    const key = `${withCredentials ? "credentials" : "anonymous"} ${url}`;
    let stream = streams.get(key);
    if (!stream) {
      stream = new Stream(url, withCredentials, () => {
        if (streams.get(key) === stream) streams.delete(key);
      });
      streams.set(key, stream);
    }
    const subscriber = {
      stream,
      types: new Set(types),
      deliver: (message) => deliver(port, tab, { ...message, id }),
    };
    tab.subscribers.set(id, subscriber);
    stream.add(subscriber);
  }

  function deliver(port, tab, message) {
    tab.outbox.push(message);
    if (tab.outbox.length > 1) return;
    setTimeout(() => {
      const messages = tab.outbox;
      tab.outbox = [];
      port.postMessage({ op: "deliver", messages });
    }, 0);
  }

  // Without a lock to watch, a closed tab is known by its silence.
  function tick() {
    const now = Date.now();
    for (const [port, tab] of tabs) {
      if (!tab.locked && now - tab.heardAt > SILENT_MS) leave(port, tab);
      else port.postMessage({ op: "ping" });
    }
  }
}

// ---- the page: instances and their link to the worker ----------------------

const RECEIVE = Symbol("receive");
const OPEN_MESSAGE = Symbol("openMessage");
const FALL_BACK = Symbol("fallBack");

/** The page's port to the shared worker; `null` where there is none. */
let link;

function sharedLink() {
  if (link !== undefined) return link;
  link = null;
  if (typeof SharedWorker !== "function") return link;
  try {
    const worker = new SharedWorker(new URL(import.meta.url), { type: "module", name: WORKER_NAME });
    link = new Link(worker);
  } catch {
    // SecurityError: the module came from another origin than the page.
  }
  return link;
}

class Link {
  constructor(worker) {
    this.port = worker.port;
    this.instances = new Map(); // id -> SharedEventSource
    this.nextId = 1;
    this.port.addEventListener("message", (e) => this.received(e.data));
    this.port.start();
    worker.addEventListener("error", () => this.broke());
    this.lock = null;
    const locks = globalThis.navigator?.locks;
    if (locks) {
      const name = `sse-hub page ${crypto.randomUUID?.() ?? `${Date.now()} ${Math.random()}`}`;
      // Held until the page is gone; the worker hears of it only once held,
      // so its own request for the lock cannot come first.
      locks.request(name, () => {
        this.lock = name;
        this.port.postMessage({ op: "hello", lock: name });
        return new Promise(() => {});
      });
    } else {
      // Answers to pings stop once the worker has dropped this page as
      // silent; this beat tells it the page is back (late where throttled).
      setInterval(() => this.port.postMessage({ op: "pong" }), PING_EVERY_MS);
    }
    globalThis.addEventListener?.("pagehide", () => this.port.postMessage({ op: "bye" }));
    globalThis.addEventListener?.("pageshow", (e) => {
      if (e.persisted) this.rejoin();
    });
  }

  add(instance) {
    const id = this.nextId;
    this.nextId += 1;
    this.instances.set(id, instance);
    return id;
  }

  remove(id) {
    if (this.instances.delete(id)) this.port.postMessage({ op: "close", id });
  }

  post(message) {
    this.port.postMessage(message);
  }

  received(message) {
    if (message.op === "ping") this.port.postMessage({ op: "pong" });
    else if (message.op === "rejoin") this.rejoin();
    else if (message.op === "deliver") {
      for (const each of message.messages) this.instances.get(each.id)?.[RECEIVE](each);
    }
  }

  /** The worker forgot this page: every instance starts over, as after a drop. */
  rejoin() {
    if (this.lock) this.port.postMessage({ op: "hello", lock: this.lock });
    for (const instance of [...this.instances.values()]) {
      instance[RECEIVE]({ kind: "error", readyState: CONNECTING });
      if (instance.readyState !== CLOSED) this.port.postMessage(instance[OPEN_MESSAGE]());
    }
  }

  /** The worker's script did not load: every instance goes on by itself. */
  broke() {
    link = null;
    const instances = [...this.instances.values()];
    this.instances.clear();
    for (const instance of instances) instance[FALL_BACK]();
  }
}

/**
 * An `EventSource` whose connection is shared by every instance for the same
 * URL in this browser profile. Events are `MessageEvent`s with `data`,
 * `lastEventId` and `origin`, in the order the hub sent them.
 *
 * Unlike `EventSource` it never gives up by itself: after an answer other
 * than 200 it tries again after a backoff, so only `close()` ends it.
 */
export class SharedEventSource extends EventTarget {
  #url;
  #withCredentials;
  #readyState = CONNECTING;
  #lastEventId = "";
  #types = new Set(); // event types this instance listens for
  #handlers = new Map(); // type -> the `on<type>` handler
  #link = null;
  #id = 0;
  #stream = null; // the fallback: a Stream of this instance's own
  #subscriber = null;

  constructor(url, init = undefined) {
    super();
    try {
      this.#url = new URL(String(url), globalThis.document?.baseURI ?? globalThis.location?.href).href;
    } catch {
      throw new DOMException(`Failed to construct 'SharedEventSource': The URL '${url}' is invalid.`, "SyntaxError");
    }
    this.#withCredentials = Boolean(init?.withCredentials);
    // Start once the caller has added its listeners, so that the worker
    // knows every type it wants from the first event on.
    queueMicrotask(() => this.#start());
  }

  get url() {
    return this.#url;
  }

  get withCredentials() {
    return this.#withCredentials;
  }

  get readyState() {
    return this.#readyState;
  }

  /** The ID of the last event this instance received. */
  get lastEventId() {
    return this.#lastEventId;
  }

  get onopen() {
    return this.#handlers.get("open") ?? null;
  }

  set onopen(handler) {
    this.#setHandler("open", handler);
  }

  get onmessage() {
    return this.#handlers.get("message") ?? null;
  }

  set onmessage(handler) {
    this.#setHandler("message", handler);
  }

  get onerror() {
    return this.#handlers.get("error") ?? null;
  }

  set onerror(handler) {
    this.#setHandler("error", handler);
  }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    this.#want(String(type));
  }

  close() {
    if (this.#readyState === CLOSED) return;
    this.#readyState = CLOSED;
    if (this.#link) this.#link.remove(this.#id);
    if (this.#stream) this.#stream.remove(this.#subscriber);
    this.#link = null;
    this.#stream = null;
  }

  #start() {
    if (this.#readyState === CLOSED) return;
    const shared = new URL(this.#url).origin === new URL(import.meta.url).origin ? sharedLink() : null;
    if (!shared) {
      this[FALL_BACK]();
      return;
    }
    this.#link = shared;
    this.#id = shared.add(this);
    shared.post(this[OPEN_MESSAGE]());
  }

  [OPEN_MESSAGE]() {
    return {
      op: "open",
      id: this.#id,
      url: this.#url,
      withCredentials: this.#withCredentials,
      types: [...this.#types],
    };
  }

  [FALL_BACK]() {
    if (this.#readyState === CLOSED) return;
    this.#link = null;
    this.#subscriber = { types: this.#types, deliver: (message) => this[RECEIVE](message) };
    this.#stream = new Stream(this.#url, this.#withCredentials);
    this.#stream.add(this.#subscriber);
  }

  [RECEIVE](message) {
    if (this.#readyState === CLOSED) return;
    if (message.kind === "open") {
      this.#readyState = OPEN;
      if (message.lastEventId) this.#lastEventId = message.lastEventId;
      this.dispatchEvent(new Event("open"));
    } else if (message.kind === "error") {
      this.#readyState = message.readyState;
      this.dispatchEvent(new Event("error"));
    } else if (message.kind === "event") {
      this.#lastEventId = message.lastEventId;
      const { type, data, lastEventId, origin } = message;
      this.dispatchEvent(new MessageEvent(type, { data, lastEventId, origin }));
    }
  }

  #want(type) {
    if (type === "open" || type === "error" || this.#types.has(type)) return;
    this.#types.add(type);
    if (this.#link) this.#link.post({ op: "listen", id: this.#id, type });
    else if (this.#stream) this.#stream.want(type);
  }

  // `on<type>` is one listener, added when first set and removed when set
  // to null, as an EventSource's own handlers are.
  #setHandler(type, handler) {
    const callable = typeof handler === "function" ? handler : null;
    const had = this.#handlers.has(type);
    if (callable) this.#handlers.set(type, callable);
    else this.#handlers.delete(type);
    if (callable && !had) this.addEventListener(type, this.#callHandler);
    if (!callable && had) this.removeEventListener(type, this.#callHandler);
  }

  #callHandler = (event) => {
    const handler = this.#handlers.get(event.type);
    if (handler) handler.call(this, event);
  };
}

for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSED })) {
  Object.defineProperty(SharedEventSource, name, { value, enumerable: true });
  Object.defineProperty(SharedEventSource.prototype, name, { value, enumerable: true });
}

if (typeof SharedWorkerGlobalScope === "function" && globalThis instanceof SharedWorkerGlobalScope) {
  serveTabs(globalThis);
}
