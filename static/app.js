// The sse-hub web client: one SharedEventSource on /events, a log of what
// it delivers, and a form that publishes through POST /broadcast.
//
// SharedEventSource (/sse-hub.js) is an EventSource whose connection every
// tab of this browser showing the same stream shares, through a
// SharedWorker: ten open consoles hold one stream, not ten.
//
// Every value that comes from the network or the address bar is untrusted:
// it reaches the page through textContent only, never as markup.
//
// Reconnection is the page's own. A native EventSource retries by itself
// only when a 200 stream ends; after any other answer (503 from a full hub,
// 5xx from a proxy) it gives up for good. So on any error the page closes
// the source and opens a new one after a backoff, 1 s doubling to
// 30 s with jitter, resuming with `lastEventId=` in the URL (a new
// EventSource cannot send the Last-Event-ID header). One rule for both
// cases, with a countdown on screen. The exception is a refusal that a
// retry cannot fix, 401 or 403 for a private channel: the page stops and
// says why, until the token or the channels change.
//
// The token field serves both ways in: `token=` in the stream's URL (an
// EventSource cannot send headers) and `Authorization: Bearer` on publish.
// It lives in this page's memory only, never in its address or storage.
import { SharedEventSource } from "/sse-hub.js";

(() => {
  const CHANNEL_NAME = /^[A-Za-z0-9._:/-]{1,64}$/;
  const MAX_CHANNELS = 32;
  const ALWAYS_ON = ["message", "connection", "gap"];
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const STATS_EVERY_MS = 2000;
  const RATE_WINDOW_MS = 10000;
  const LOG_LIMIT = 2000;
  const NEAR_BOTTOM_PX = 48;

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"),
    stateDetail: $("state-detail"),
    retryNow: $("retry-now"),
    toggle: $("toggle"),
    clientId: $("client-id"),
    joined: $("joined"),
    presenceRow: $("presence-row"),
    present: $("present"),
    clients: $("clients"),
    gap: $("gap"),
    gapText: $("gap-text"),
    gapDismiss: $("gap-dismiss"),
    received: $("received"),
    rate: $("rate"),
    lastId: $("last-id"),
    filter: $("filter"),
    clear: $("clear"),
    log: $("log"),
    jump: $("jump"),
    subscribe: $("subscribe"),
    channels: $("channels"),
    channelsError: $("channels-error"),
    events: $("events"),
    known: $("known"),
    knownList: $("known-list"),
    knownChannels: $("known-channels"),
    publish: $("publish"),
    message: $("message"),
    asJson: $("as-json"),
    event: $("event"),
    channel: $("channel"),
    token: $("token"),
    publishResult: $("publish-result"),
  };

  // What the page shows, as the address bar says it.
  const query = new URLSearchParams(location.search);
  const view = {
    channels: unique(query.getAll("channel")),
    eventTypes: unique(query.getAll("event").filter((t) => t && !ALWAYS_ON.includes(t))),
  };

  // The stream.
  let source = null; // the current SharedEventSource
  let wanted = true; // false after the user pressed Disconnect
  let everOpen = false; // whether the current source got its 200
  let attempt = 0; // failed attempts since the last good connection
  let retryAt = 0; // when the scheduled reconnect fires (ms since epoch)
  let retryTimer = 0;
  let countdownTimer = 0;
  let lastId = query.get("lastEventId") || ""; // resume from here
  let resumedFrom = ""; // the last ID the current stream was opened with
  let replaying = false; // see onConnection
  let generation = 0; // counts sources, so late answers about old ones are ignored
  let streamToken = ""; // the token the current stream was opened with

  // The log.
  let received = 0;
  let arrivals = []; // arrival times; those before `arrivalsHead` are out of the window
  let arrivalsHead = 0;
  let rateShownAt = 0;
  let follow = true; // keep the newest entry in view
  let unseen = 0;
  const entriesById = new Map(); // message ID -> its log entry
  const publishedHere = new Map(); // message ID -> channel ("" = everyone)

  // ---- connection --------------------------------------------------------

  function token() {
    return ui.token.value.trim();
  }

  function streamUrl() {
    const params = new URLSearchParams();
    for (const channel of view.channels) params.append("channel", channel);
    if (lastId) params.set("lastEventId", lastId);
    if (streamToken) params.set("token", streamToken);
    const search = params.toString();
    return search ? `/events?${search}` : "/events";
  }

  function connect() {
    clearTimers();
    closeSource();
    wanted = true;
    everOpen = false;
    resumedFrom = lastId;
    streamToken = token();
    generation += 1;
    setState(attempt === 0 ? "connecting" : "reconnecting", attempt === 0 ? "" : "trying now…");
    const es = new SharedEventSource(streamUrl());
    source = es;
    es.addEventListener("open", () => {
      if (es !== source) return;
      everOpen = true;
      setState("open", "");
      if (resumedFrom) note(`Connected, resuming after ${resumedFrom}`);
    });
    es.addEventListener("error", () => {
      if (es !== source) return;
      closeSource();
      streamFailed(everOpen);
    });
    es.addEventListener("connection", (e) => es === source && onConnection(e));
    es.addEventListener("gap", (e) => es === source && onGap(e));
    es.addEventListener("presence", (e) => es === source && onPresence(e));
    for (const type of ["message", ...view.eventTypes]) listen(es, type);
  }

  // Each stream's listeners by event type: one per type, so that asking
  // again (Apply, a publish under a new type) never logs an event twice.
  const listeners = new WeakMap();

  function listen(es, type) {
    let byType = listeners.get(es);
    if (!byType) listeners.set(es, (byType = new Map()));
    if (byType.has(type)) return;
    const listener = (e) => es === source && onMessage(e);
    byType.set(type, listener);
    es.addEventListener(type, listener);
  }

  function unlisten(es, type) {
    const byType = listeners.get(es);
    const listener = byType && byType.get(type);
    if (!listener) return;
    es.removeEventListener(type, listener);
    byType.delete(type);
  }

  function closeSource() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function disconnect() {
    stop(lastId ? `Connect resumes after ${lastId}` : "");
    note("Disconnected");
  }

  function stop(detail) {
    clearTimers();
    closeSource();
    wanted = false;
    attempt = 0;
    setState("closed", detail);
  }

  // The stream failed: after a 200 it ended (the browser would retry by
  // itself), otherwise it was refused or never reached the hub (the browser
  // would not). Either way the page retries after a backoff, unless the
  // hub answers 401 or 403, which only a new token or new channels fix.
  async function streamFailed(wasOpen) {
    const failed = generation;
    const url = streamUrl();
    attempt += 1;
    const delay = backoff(attempt);
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    ui.retryNow.hidden = false;
    let why = wasOpen ? "the stream ended" : "no stream";
    showCountdown(why);
    countdownTimer = setInterval(() => showCountdown(why), 250);
    if (wasOpen) {
      note(`Stream ended; reconnecting in ${Math.round(delay / 1000)} s`);
      return;
    }
    // An EventSource does not say why it failed; asking again tells a
    // refusal, with the hub's reason, from a hub out of reach.
    const answer = await askWhy(url);
    if (failed !== generation || source !== null || !wanted || !retryTimer) return;
    if (answer.status === 401 || answer.status === 403) {
      // No token, a bad one, or one that does not cover a channel: trying
      // again with the same one cannot help.
      stop(`refused (${answer.status}): ${answer.error}`);
      note(`The hub refused the stream: ${answer.status} ${answer.error}. Set the token, then apply.`);
      return;
    }
    if (!answer.reachable) why = "the hub cannot be reached";
    else if (answer.status === 200) why = "the stream failed";
    else why = `the hub refused the stream (${[answer.status, answer.error].filter(Boolean).join(": ")})`;
    showCountdown(why); // the running countdown reads `why` too
    note(`Connection failed: ${why}; retrying in ${Math.round(delay / 1000)} s`);
  }

  function backoff(n) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(n - 1, 15));
    const jittered = base * (0.8 + Math.random() * 0.4);
    return Math.round(Math.min(BACKOFF_MAX_MS, jittered));
  }

  function showCountdown(why) {
    const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    setState("reconnecting", `in ${seconds} s: ${why}`);
  }

  // The status and error text of the stream's URL; a stream that opens
  // after all is closed at once.
  async function askWhy(url) {
    const controller = new AbortController();
    try {
      const reply = await fetch(url, { cache: "no-store", signal: controller.signal });
      if (reply.ok) {
        controller.abort();
        return { reachable: true, status: reply.status, error: "" };
      }
      const answer = parseJson(await reply.text());
      const error = answer && typeof answer.error === "string" ? answer.error : "";
      return { reachable: true, status: reply.status, error };
    } catch {
      return { reachable: false, status: 0, error: "" };
    }
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = 0;
    countdownTimer = 0;
    ui.retryNow.hidden = true;
  }

  function setState(state, detail) {
    ui.state.dataset.state = state;
    if (ui.state.textContent !== state) ui.state.textContent = state;
    ui.stateDetail.textContent = detail;
    ui.toggle.textContent = state === "closed" ? "Connect" : "Disconnect";
    document.title = `sse-hub · ${state}`;
  }

  // ---- events ------------------------------------------------------------

  // The first event of every stream. On a resumed stream the hub writes
  // this event, then `gap` if needed, then the whole replay, in one write
  // and before any live message; a browser dispatches the events of one
  // network read back to back, before any timer runs. So the messages that
  // arrive until the page's next task are the replay. (A replay too large
  // for one read gets only its first part marked.)
  function onConnection(e) {
    attempt = 0;
    const hello = parseJson(e.data);
    const client = hello && typeof hello.client === "string" ? hello.client : "?";
    const channels = hello && Array.isArray(hello.channels) ? hello.channels.map(String) : [];
    ui.clientId.textContent = client;
    ui.joined.textContent = channels.length ? channels.join(" ") : "none";
    addEntry({ type: "connection", data: e.data });
    presentIn.clear();
    noPresence.clear();
    joinedChannels = channels;
    showPresence();
    refreshStats();
    if (resumedFrom) {
      replaying = true;
      setTimeout(() => {
        replaying = false;
      }, 0);
    }
  }

  // ---- presence ----------------------------------------------------------
  //
  // For each joined channel that has presence (the hub started with
  // --presence): who is there, from GET /presence. A client that joins such
  // a channel first gets its own join, so the lists are asked for when a
  // `presence` event arrives, and never on a hub without presence. A
  // presence event does not name its channel: every joined channel is
  // asked, and one that answers 404 is not asked again on this stream.

  const presentIn = new Map(); // channel -> Map(client -> user or null)
  const noPresence = new Set(); // joined channels that answered 404
  let joinedChannels = [];

  async function loadPresence(channels) {
    const asked = generation;
    const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
    await Promise.all(
      channels.map(async (channel) => {
        try {
          const reply = await fetch(`/presence?channel=${encodeURIComponent(channel)}`, { headers });
          if (asked !== generation) return;
          if (!reply.ok) {
            presentIn.delete(channel);
            if (reply.status === 404) noPresence.add(channel);
            return;
          }
          const list = await reply.json();
          const members = new Map();
          for (const member of list.clients || []) members.set(String(member.client), member.user ?? null);
          presentIn.set(channel, members);
        } catch {
          // A failed ask keeps what was shown; the next event asks again.
        }
      }),
    );
    showPresence();
  }

  let presenceTimer = null;

  // Asks once for a burst of joins and leaves.
  function onPresence(e) {
    addEntry({ type: "presence", id: e.lastEventId, data: e.data, replayed: replaying });
    if (replaying || presenceTimer) return;
    presenceTimer = setTimeout(() => {
      presenceTimer = null;
      loadPresence(joinedChannels.filter((c) => !noPresence.has(c)));
    }, 100);
  }

  function showPresence() {
    const parts = [];
    for (const [channel, members] of presentIn) {
      const names = [...members].map(([client, user]) => user || client);
      parts.push(`${channel}: ${names.length} (${names.join(", ")})`);
    }
    ui.present.textContent = parts.join("; ");
    ui.presenceRow.hidden = parts.length === 0;
  }

  function onGap(e) {
    const gap = parseJson(e.data) || {};
    const requested = String(gap.requested ?? "");
    const oldest = gap.oldest == null ? null : String(gap.oldest);
    let text;
    if (!/^\d+-\d+$/.test(requested)) {
      text = `The hub cannot resume from “${requested}”: that is not a message ID, so nothing was replayed.`;
    } else if (oldest === null) {
      text = `Messages after ${requested} may be lost: the hub holds no history from before this connection (it may have restarted).`;
    } else {
      text = `Messages after ${requested} may be lost: the hub's history now starts at ${oldest}.`;
    }
    ui.gapText.textContent = text;
    ui.gap.hidden = false;
    addEntry({ type: "gap", data: e.data, warn: true });
  }

  function onMessage(e) {
    received += 1;
    const now = Date.now();
    arrivals.push(now);
    if (now - rateShownAt > 250) showRate(now);
    ui.received.textContent = String(received);
    const id = e.lastEventId;
    if (id) {
      lastId = id;
      ui.lastId.textContent = id;
    }
    let channel;
    if (publishedHere.has(id)) channel = publishedHere.get(id);
    else if (view.channels.length === 0) channel = "";
    addEntry({ type: e.type, id, data: e.data, channel, replayed: replaying });
  }

  // ---- the log -----------------------------------------------------------

  function addEntry({ type, id = "", data = "", channel, replayed = false, warn = false }) {
    const li = el("li", "entry");
    li.dataset.type = type;
    if (id) li.dataset.id = id;
    if (replayed) li.classList.add("is-replayed");
    if (warn) li.classList.add("is-warning");

    const meta = el("div", "meta");
    const time = el("time", "time", clock(new Date()));
    meta.append(time, el("span", "type", type));
    if (id) meta.append(el("span", "id", id));
    const badges = el("span", "badges");
    meta.append(badges);
    li.append(meta);
    if (channel !== undefined) setChannelBadge(li, channel);
    if (replayed) badges.append(el("span", "badge replayed", "replayed"));

    const shown = present(data);
    const body = el("pre", shown.json ? "data json" : "data", shown.text);
    if (data === "") body.classList.add("empty");
    li.append(body);

    append(li);
    if (id) entriesById.set(id, li);
  }

  function note(text) {
    const li = el("li", "entry note");
    li.dataset.type = "note";
    const meta = el("div", "meta");
    meta.append(el("time", "time", clock(new Date())), el("span", "note-text", text));
    li.append(meta);
    append(li);
  }

  function setChannelBadge(li, channel) {
    const badges = li.querySelector(".badges");
    const old = badges.querySelector(".badge.channel, .badge.everyone");
    const badge = channel
      ? el("span", "badge channel", channel)
      : el("span", "badge everyone", "everyone");
    badge.title = channel ? "Published to this channel" : "Published to everyone";
    if (old) old.replaceWith(badge);
    else badges.prepend(badge);
  }

  function append(li) {
    if (!matchesFilter(li)) li.hidden = true;
    ui.log.append(li);
    while (ui.log.childElementCount > LOG_LIMIT) {
      const first = ui.log.firstElementChild;
      if (first.dataset.id) entriesById.delete(first.dataset.id);
      first.remove();
    }
    if (follow) {
      scrollToEnd();
    } else if (!li.hidden) {
      unseen += 1;
      ui.jump.textContent = `${unseen} new below`;
      ui.jump.hidden = false;
    }
  }

  let scrollPending = false;
  let autoTop = -1; // where the page last scrolled the log to, itself
  function scrollToEnd() {
    if (scrollPending) return;
    scrollPending = true;
    requestAnimationFrame(() => {
      scrollPending = false;
      ui.log.scrollTop = ui.log.scrollHeight;
      autoTop = ui.log.scrollTop;
    });
  }

  // Scroll events arrive a frame late, when more entries may have grown the
  // log below the view: only a move up from where the page put the view
  // means the reader wants to stay put.
  ui.log.addEventListener("scroll", () => {
    const { scrollTop, scrollHeight, clientHeight } = ui.log;
    if (scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX) {
      follow = true;
      unseen = 0;
      ui.jump.hidden = true;
    } else if (autoTop < 0 || scrollTop < autoTop - 1) {
      follow = false;
    }
  });

  ui.jump.addEventListener("click", () => {
    follow = true;
    unseen = 0;
    ui.jump.hidden = true;
    ui.log.scrollTop = ui.log.scrollHeight;
    autoTop = ui.log.scrollTop;
    ui.log.focus();
  });

  function matchesFilter(li) {
    const needle = ui.filter.value.trim().toLowerCase();
    return !needle || li.textContent.toLowerCase().includes(needle);
  }

  ui.filter.addEventListener("input", () => {
    for (const li of ui.log.children) li.hidden = !matchesFilter(li);
    if (follow) scrollToEnd();
  });

  ui.clear.addEventListener("click", () => {
    ui.log.replaceChildren();
    autoTop = -1;
    entriesById.clear();
    unseen = 0;
    ui.jump.hidden = true;
    follow = true;
  });

  // Data as received, with JSON objects and arrays laid out on lines. The
  // layout is done on the text itself, so numbers keep every digit the hub
  // sent (JSON.parse would round those beyond 2^53).
  function present(data) {
    if (data === "") return { text: "(empty)", json: false };
    const value = parseJson(data);
    if (value !== undefined && value !== null && typeof value === "object") {
      return { text: layOut(data), json: true };
    }
    return { text: data, json: false };
  }

  function layOut(json) {
    let out = "";
    let depth = 0;
    let inString = false;
    let escaped = false;
    const newline = () => "\n" + "  ".repeat(depth);
    for (let i = 0; i < json.length; i += 1) {
      const c = json[i];
      if (inString) {
        out += c;
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      switch (c) {
        case '"':
          inString = true;
          out += c;
          break;
        case "{":
        case "[": {
          let j = i + 1;
          while (j < json.length && " \t\r\n".includes(json[j])) j += 1;
          if (json[j] === (c === "{" ? "}" : "]")) {
            out += c + json[j];
            i = j;
          } else {
            depth += 1;
            out += c + newline();
          }
          break;
        }
        case "}":
        case "]":
          depth -= 1;
          out += newline() + c;
          break;
        case ",":
          out += "," + newline();
          break;
        case ":":
          out += ": ";
          break;
        case " ":
        case "\t":
        case "\r":
        case "\n":
          break;
        default:
          out += c;
      }
    }
    return out;
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  }

  // ---- counters ----------------------------------------------------------

  function showRate(now) {
    rateShownAt = now;
    const since = now - RATE_WINDOW_MS;
    while (arrivalsHead < arrivals.length && arrivals[arrivalsHead] <= since) arrivalsHead += 1;
    if (arrivalsHead > 1024 && arrivalsHead * 2 > arrivals.length) {
      arrivals = arrivals.slice(arrivalsHead);
      arrivalsHead = 0;
    }
    const rate = (arrivals.length - arrivalsHead) / (RATE_WINDOW_MS / 1000);
    ui.rate.textContent = `${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s`;
  }

  setInterval(() => showRate(Date.now()), 1000);

  let statsTimer = 0;
  function refreshStats() {
    clearTimeout(statsTimer);
    statsTimer = setTimeout(pollStats, 0);
  }

  async function pollStats() {
    clearTimeout(statsTimer);
    try {
      const reply = await fetch("/stats", { cache: "no-store" });
      if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
      const stats = await reply.json();
      ui.clients.textContent = String(stats.clients);
      ui.clients.title = `${stats.published} published, ${stats.delivered} delivered (from /stats)`;
      showKnownChannels(Object.keys(stats.channels || {}).sort());
    } catch (e) {
      ui.clients.textContent = "–";
      ui.clients.title = `/stats: ${e.message}`;
    }
    clearTimeout(statsTimer);
    statsTimer = setTimeout(pollStats, STATS_EVERY_MS);
  }

  let knownShown = "";
  function showKnownChannels(names) {
    const key = names.join("\n");
    if (key === knownShown) return;
    knownShown = key;
    ui.knownChannels.replaceChildren(
      ...names.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        return option;
      })
    );
    ui.knownList.replaceChildren(
      ...names.map((name) => {
        const button = el("button", "chip", name);
        button.type = "button";
        button.title = `Add ${name} to the channels`;
        button.addEventListener("click", () => {
          const names = splitChannels(ui.channels.value);
          if (!names.includes(name)) names.push(name);
          ui.channels.value = names.join(" ");
          ui.channels.focus();
        });
        return button;
      })
    );
    ui.known.hidden = names.length === 0;
  }

  // ---- subscribe form ----------------------------------------------------

  function splitChannels(text) {
    return unique(text.split(/[\s,]+/).filter(Boolean));
  }

  function splitEventTypes(text) {
    return unique(
      text
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t && !ALWAYS_ON.includes(t))
    );
  }

  function channelProblem(channels) {
    const bad = channels.filter((name) => !CHANNEL_NAME.test(name));
    if (bad.length) {
      return `Not a channel name: ${bad.join(", ")}. Use 1 to 64 of A-Z a-z 0-9 - _ . : /`;
    }
    if (channels.length > MAX_CHANNELS) return `At most ${MAX_CHANNELS} channels.`;
    return "";
  }

  function showChannelProblem(problem) {
    ui.channelsError.textContent = problem;
    ui.channelsError.hidden = !problem;
    ui.channels.setAttribute("aria-invalid", problem ? "true" : "false");
  }

  function showView() {
    ui.channels.value = view.channels.join(" ");
    ui.events.value = view.eventTypes.join(", ");
  }

  // The address bar reproduces the view: channels and event types.
  function writeUrl() {
    const params = new URLSearchParams();
    for (const channel of view.channels) params.append("channel", channel);
    for (const type of view.eventTypes) params.append("event", type);
    const search = params.toString();
    history.replaceState(null, "", search ? `?${search}` : location.pathname);
  }

  function addEventType(type) {
    if (!type || ALWAYS_ON.includes(type) || view.eventTypes.includes(type)) return false;
    view.eventTypes.push(type);
    if (source) listen(source, type);
    return true;
  }

  function removeEventType(type) {
    view.eventTypes = view.eventTypes.filter((t) => t !== type);
    if (source) unlisten(source, type);
  }

  ui.subscribe.addEventListener("submit", (e) => {
    e.preventDefault();
    const channels = splitChannels(ui.channels.value);
    const problem = channelProblem(channels);
    showChannelProblem(problem);
    if (problem) {
      ui.channels.focus();
      return;
    }
    const types = splitEventTypes(ui.events.value);
    const channelsChanged = channels.join("\n") !== view.channels.join("\n");
    const tokenChanged = token() !== streamToken;
    const dropped = view.eventTypes.filter((t) => !types.includes(t));
    view.channels = channels;
    view.eventTypes = types;
    writeUrl();
    showView();
    if (channelsChanged || tokenChanged || !source) {
      attempt = 0;
      connect();
    } else {
      for (const type of dropped) unlisten(source, type);
      for (const type of types) listen(source, type);
    }
  });

  // ---- publish form ------------------------------------------------------

  ui.publish.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = ui.message.value;
    let message = JSON.stringify(text);
    if (ui.asJson.checked) {
      try {
        JSON.parse(text);
      } catch (err) {
        return showPublishResult(`Not valid JSON: ${err.message}`, true);
      }
      message = text; // as typed, so big numbers keep their digits
    }
    const type = ui.event.value;
    const channel = ui.channel.value;
    let body = `{"message":${message}`;
    if (type) body += `,"event":${JSON.stringify(type)}`;
    if (channel) body += `,"channel":${JSON.stringify(channel)}`;
    body += "}";
    const headers = { "Content-Type": "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;

    // Listen before publishing: the event may arrive before the reply.
    const added = type ? addEventType(type) : false;
    showPublishResult("Publishing…", false);
    let reply;
    let answer;
    try {
      reply = await fetch("/broadcast", { method: "POST", headers, body });
      answer = parseJson(await reply.text());
    } catch (err) {
      if (added) removeEventType(type);
      return showPublishResult(`The hub cannot be reached: ${err.message}`, true);
    }
    if (reply.ok && answer && typeof answer.id === "string") {
      publishedHere.set(answer.id, channel);
      if (publishedHere.size > LOG_LIMIT) publishedHere.delete(publishedHere.keys().next().value);
      const entry = entriesById.get(answer.id);
      if (entry) setChannelBadge(entry, channel);
      if (added) {
        writeUrl();
        showView();
      }
      const n = Number(answer.clients);
      return showPublishResult(`Published ${answer.id} to ${n} ${n === 1 ? "client" : "clients"}`, false);
    }
    if (added) removeEventType(type);
    const why = answer && typeof answer.error === "string" ? answer.error : "no reason given";
    const status = [reply.status, reply.statusText].filter(Boolean).join(" ");
    showPublishResult(`${status}: ${why}`, true);
  });

  ui.message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      ui.publish.requestSubmit();
    }
  });

  function showPublishResult(text, isError) {
    ui.publishResult.textContent = text;
    ui.publishResult.classList.toggle("error", isError);
  }

  // ---- controls ----------------------------------------------------------

  ui.toggle.addEventListener("click", () => {
    if (wanted) {
      disconnect();
    } else {
      attempt = 0;
      connect();
    }
  });

  ui.retryNow.addEventListener("click", connect);

  ui.gapDismiss.addEventListener("click", () => {
    ui.gap.hidden = true;
  });

  window.addEventListener("online", () => {
    if (wanted && retryTimer) connect();
  });

  // ---- helpers -----------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(date) {
    const two = (n) => String(n).padStart(2, "0");
    const ms = String(date.getMilliseconds()).padStart(3, "0");
    return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${ms}`;
  }

  function unique(list) {
    return [...new Set(list)];
  }

  showView();
  pollStats();
  const problem = channelProblem(view.channels);
  if (problem) {
    // A bad name would get a 400, and the page would retry it for ever.
    showChannelProblem(problem);
    disconnect();
    setState("closed", "fix the channel names, then apply");
  } else {
    connect();
  }
})();
