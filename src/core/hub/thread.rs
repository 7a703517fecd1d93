//! The hub thread: the one owner of the registry of subscribers and
//! channels, the ID clock and the history, and the fan-out.
//!
//! Nothing else touches that state. Other threads reach it through
//! [`Hub`](crate::Hub), which sends a [`Command`] over a crossbeam channel;
//! the hub answers on the command's one-shot channel when there is an
//! answer.
//!
//! Publishing: the hub gives each message the next ID, writes the `id:` line
//! in front of the body the publisher already encoded, freezes that into one
//! shared [`Frame`], and queues a clone (a reference count, not a copy) for
//! every recipient. The messages of one batch that go to the same
//! recipients travel as one frame, so a batch costs each subscriber one
//! push and one wake-up. The hub never blocks on a subscriber: a full queue
//! means the subscriber is not keeping up, so the hub closes it (its stream
//! ends, and the client resumes from history with its last ID).
//!
//! Waking: a push that finds its subscriber's thread asleep hands the thread
//! back (see `queue.rs`). The hub answers the publisher first and wakes
//! those threads afterwards, a few at a time between commands, so a
//! publisher never waits for a thousand system calls, and a writer that is
//! still busy with the last batch when the next message comes is not woken
//! twice: it finds the message when it comes back for more. A sleeping
//! stream on a plain socket is not woken at all: the push claims its
//! socket, and the hub sends the frame itself, deferred the same way
//! (`direct.rs`).
//!
//! Subscribing: in one step the hub computes the replay a resuming client is
//! owed and registers its queue for live messages, so nothing falls between
//! the two. The replay travels in the answer, not through the queue, so a
//! replay longer than the queue still arrives whole.
//!
//! In a cluster (`upstream.rs`) the hub gives no IDs: a publish goes to the
//! shared log, and the log's entries come back through the reader's
//! [`Command::Ingest`], in the log's order and with the log's IDs, to be
//! fanned out and kept exactly as a local publish is. A publisher on this
//! node registers its ticket first ([`Command::Expect`]) and is answered
//! when its entries have come back. The history is then the node's memory
//! of the log: where a resume reaches back further than it, the grant says
//! so, and the subscriber's thread reads the rest from the log.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::core::channel::{Channel, Pattern};
use crate::core::client_id::ClientId;
use crate::core::closed::Closed;
use crate::core::command::{Command, Grant, Outgoing, Receipt, SubscribeRequest};
use crate::core::config::HubConfig;
use crate::core::event_id::{EventId, IdClock, now_ms};
use crate::core::history::{History, Replay};
use crate::core::metrics::{Counters, Stats};
use crate::core::queue::{Delivered, Pushed, Queue};
use crate::core::sse::{Frame, push_id_line};
use crate::core::upstream::{Incoming, Until};
use crate::error::Error;

/// How long the hub waits at shutdown for streams to end.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Sleeping threads woken between two looks at the command channel.
const WAKE_BATCH: usize = 32;

/// The events of one batch travel together up to this many bytes a frame.
const MAX_COMBINED: usize = 64 * 1024;

/// The queues of a set of subscribers, side by side for a tight fan-out
/// loop.
#[derive(Default)]
struct Members {
    ids: Vec<ClientId>,
    queues: Vec<Arc<Queue>>,
}

impl Members {
    fn insert(&mut self, id: ClientId, queue: Arc<Queue>) {
        self.ids.push(id);
        self.queues.push(queue);
    }

    fn remove(&mut self, id: ClientId) {
        if let Some(at) = self.ids.iter().position(|&m| m == id) {
            self.ids.swap_remove(at);
            self.queues.swap_remove(at);
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Where the fan-out of one frame puts what it finds besides deliveries.
#[derive(Default)]
struct Fallout {
    /// Threads asleep on a queue that now holds something.
    wake: VecDeque<Thread>,
    /// Queues whose sleeping stream's socket the hub claimed, to send to
    /// (`direct.rs`).
    claimed: VecDeque<Arc<Queue>>,
    /// Subscribers whose queue refused a frame: `true` when it was full,
    /// `false` when it was closed already.
    refused: Vec<(ClientId, bool)>,
}

impl Fallout {
    fn is_empty(&self) -> bool {
        self.wake.is_empty() && self.claimed.is_empty()
    }
}

/// Queues `frame` for every member; returns how many took it. When
/// `recipients` is given, adds each one that took it.
fn fan_out(
    members: &Members,
    frame: &Frame,
    fallout: &mut Fallout,
    mut recipients: Option<&mut HashSet<ClientId>>,
) -> usize {
    let mut queued = 0;
    for (&id, queue) in members.ids.iter().zip(&members.queues) {
        match queue.push(frame) {
            Pushed::Queued => {}
            Pushed::Wake(thread) => fallout.wake.push_back(thread),
            Pushed::Claimed => fallout.claimed.push_back(Arc::clone(queue)),
            Pushed::Full => {
                fallout.refused.push((id, true));
                continue;
            }
            Pushed::Closed => {
                fallout.refused.push((id, false));
                continue;
            }
        }
        queued += 1;
        if let Some(recipients) = recipients.as_deref_mut() {
            recipients.insert(id);
        }
    }
    queued
}

struct Subscriber {
    channels: Vec<Channel>,
    queue: Arc<Queue>,
}

/// Cluster: a publish on this node waiting for its entries to come back.
struct Pending {
    reply: Sender<Receipt>,
    /// Entries still to come.
    left: usize,
    ids: Vec<EventId>,
    /// Subscribers any entry of it was queued for, when there are several
    /// entries (one entry counts its fan-out directly).
    recipients: HashSet<ClientId>,
    clients: usize,
}

/// The hub's state. Built by [`HubThread::new`], then moved onto its own
/// thread, which calls [`HubThread::run`].
pub(crate) struct HubThread {
    commands: Receiver<Command>,
    counters: Arc<Counters>,
    everyone: Members,
    channels: HashMap<Channel, Members>,
    subscribers: HashMap<ClientId, Subscriber>,
    history: History,
    clock: IdClock,
    /// A random tag of this run of the hub, in every client ID.
    run: u64,
    next_client: u64,
    max_clients: usize,
    /// Cluster mode: IDs come from the log, and a resume that reaches back
    /// past the memory is completed from the log.
    clustered: bool,
    /// The first ID this hub could have given: in a cluster, the log's
    /// entries after it are news to the subscribers that came before the
    /// reader first reached the log.
    start: EventId,
    /// Cluster: publishes on this node waiting for their entries.
    pending: HashMap<u64, Pending>,
    started: Instant,
    fallout: Fallout,
    /// Reused for every frame, so that building one costs one allocation.
    frame_buf: Vec<u8>,
}

impl HubThread {
    /// A hub that keeps `counters` current, and the channel that reaches
    /// it. `clustered`: its IDs come from a shared log (`upstream.rs`).
    pub(crate) fn new(
        config: &HubConfig,
        counters: Arc<Counters>,
        clustered: bool,
    ) -> (HubThread, Sender<Command>) {
        // Unbounded, yet bounded in practice: every sender but a writer
        // saying goodbye waits for its answer. And when the hub ends, an
        // unbounded (linked) channel drops the commands still queued, so
        // their senders see the hub is gone instead of waiting forever.
        let (sender, commands) = crossbeam_channel::unbounded();
        let start = EventId::new(now_ms(), 0);
        let hub = HubThread {
            commands,
            counters,
            everyone: Members::default(),
            channels: HashMap::new(),
            subscribers: HashMap::new(),
            history: History::new(config.history, start).with_ttl(config.history_ttl),
            clock: IdClock::starting_at(start),
            // The standard library seeds every RandomState from the
            // operating system's random source.
            run: RandomState::new().hash_one(start) & 0xffff_ffff_ffff,
            next_client: 1,
            max_clients: config.max_clients,
            clustered,
            start,
            pending: HashMap::new(),
            started: Instant::now(),
            fallout: Fallout::default(),
            frame_buf: Vec::with_capacity(1024),
        };
        (hub, sender)
    }

    /// The random tag of this run, in every client ID.
    pub(crate) fn run_tag(&self) -> u64 {
        self.run
    }

    /// Serves commands until told to stop or until every handle is gone,
    /// then closes every stream.
    ///
    /// Wake-ups owed to sleeping threads are paid a few at a time after
    /// each command, and all of them while no command waits: a publisher
    /// waits for its own fan-out and at most a few wake-ups, and under a
    /// steady stream of publishes the sleeping writers are still woken.
    pub(crate) fn run(mut self) {
        loop {
            let command = if self.fallout.is_empty() {
                match self.commands.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(command) => command,
                    Err(TryRecvError::Empty) => {
                        self.wake_some();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            match command {
                Command::Publish { batch, reply } => {
                    let receipt = self.publish(batch);
                    let _ = reply.send(receipt);
                }
                Command::Subscribe { request, reply } => self.subscribe(request, &reply),
                Command::Unsubscribe { client } => {
                    self.remove(client, Closed::Asked("stream ended"));
                }
                Command::Close { client, why } => {
                    self.remove(client, why);
                }
                Command::Stats { limit, hide, reply } => {
                    let _ = reply.send(self.stats(limit, &hide));
                }
                Command::Expect {
                    ticket,
                    messages,
                    reply,
                } => {
                    let pending = Pending {
                        reply,
                        left: messages,
                        ids: Vec::with_capacity(messages),
                        recipients: HashSet::new(),
                        clients: 0,
                    };
                    self.pending.insert(ticket, pending);
                }
                Command::Forget { ticket } => {
                    self.pending.remove(&ticket);
                }
                Command::Ingest { entries } => self.ingest(entries),
                Command::Prime {
                    entries,
                    complete,
                    trimmed,
                } => self.prime(entries, complete, trimmed),
                Command::Missed { trimmed } => self.missed(trimmed),
                Command::Shutdown => break,
            }
            self.wake_some();
        }
        self.shut_down();
    }

    /// Pays a few of the sends and wake-ups owed.
    fn wake_some(&mut self) {
        let n = self.fallout.claimed.len().min(WAKE_BATCH);
        let mut sent = 0;
        for queue in self.fallout.claimed.drain(..n) {
            match queue.send_claimed() {
                Delivered::Sent(events) => sent += events,
                Delivered::Wake(thread) => self.fallout.wake.push_back(thread),
                Delivered::Nothing => {}
            }
        }
        if sent > 0 {
            Counters::add(&self.counters.delivered, sent);
        }
        let n = self.fallout.wake.len().min(WAKE_BATCH);
        for thread in self.fallout.wake.drain(..n) {
            thread.unpark();
        }
    }

    fn publish(&mut self, batch: Vec<Outgoing>) -> Receipt {
        let ids: Vec<EventId> = batch.iter().map(|_| self.clock.next()).collect();
        let clients = self.deliver(&ids, batch, None);
        Counters::add(&self.counters.published, ids.len() as u64);
        Receipt { ids, clients }
    }

    /// Fans out `batch` with these IDs and keeps it in the history; returns
    /// how many subscribers at least one message was queued for. With
    /// `recipients`, adds them there as well.
    fn deliver(
        &mut self,
        ids: &[EventId],
        batch: Vec<Outgoing>,
        mut recipients: Option<&mut HashSet<ClientId>>,
    ) -> usize {
        let mut frames = Vec::with_capacity(batch.len());
        for (message, &id) in batch.iter().zip(ids) {
            self.frame_buf.clear();
            push_id_line(&mut self.frame_buf, id);
            self.frame_buf.extend_from_slice(&message.body);
            frames.push(Frame::new(&self.frame_buf, 1));
        }

        // Runs of messages for the same recipients go out as one frame each.
        let mut runs: Vec<(Option<&Channel>, Frame)> = Vec::new();
        let mut at = 0;
        while at < batch.len() {
            let channel = batch[at].channel.as_ref();
            let mut end = at + 1;
            let mut bytes = frames[at].len();
            while end < batch.len()
                && batch[end].channel.as_ref() == channel
                && bytes + frames[end].len() <= MAX_COMBINED
            {
                bytes += frames[end].len();
                end += 1;
            }
            let frame = if end - at == 1 {
                frames[at].clone()
            } else {
                self.frame_buf.clear();
                for frame in &frames[at..end] {
                    self.frame_buf.extend_from_slice(frame);
                }
                // A batch holds at most a few thousand messages.
                Frame::new(&self.frame_buf, u32::try_from(end - at).unwrap_or(u32::MAX))
            };
            runs.push((channel, frame));
            at = end;
        }

        // With several runs a subscriber may get more than one of them, and
        // counts once.
        let mut own = (runs.len() > 1 && recipients.is_none()).then(HashSet::new);
        let mut clients = 0;
        for (channel, frame) in &runs {
            let members = match channel {
                None => Some(&self.everyone),
                Some(channel) => self.channels.get(*channel),
            };
            if let Some(members) = members {
                let into = match (&mut own, &mut recipients) {
                    (Some(own), _) => Some(own),
                    (None, Some(recipients)) => Some(&mut **recipients),
                    (None, None) => None,
                };
                clients = clients.max(fan_out(members, frame, &mut self.fallout, into));
            }
        }
        if let Some(own) = own {
            clients = own.len();
        }
        self.drop_refused();

        for ((id, message), frame) in ids.iter().zip(batch).zip(frames) {
            self.history.push(*id, message.channel, frame);
        }
        clients
    }

    /// Cluster: fans out entries read from the log, in its order. Runs of
    /// entries from one publish on this node are counted for it, and it is
    /// answered when its last entry is out.
    fn ingest(&mut self, entries: Vec<Incoming>) {
        let mut entries = entries.into_iter().peekable();
        while let Some(first) = entries.next() {
            let ticket = first.ticket.filter(|t| self.pending.contains_key(t));
            let mut ids = vec![first.id];
            let mut batch = vec![Outgoing {
                body: first.body,
                channel: first.channel,
            }];
            // Entries of one publish are adjacent in the log (one MULTI);
            // entries of no publish waiting here travel together too.
            while let Some(next) =
                entries.next_if(|e| e.ticket.filter(|t| self.pending.contains_key(t)) == ticket)
            {
                ids.push(next.id);
                batch.push(Outgoing {
                    body: next.body,
                    channel: next.channel,
                });
            }
            Counters::add(&self.counters.published, ids.len() as u64);
            let Some(ticket) = ticket else {
                self.deliver(&ids, batch, None);
                continue;
            };
            let Some(mut pending) = self.pending.remove(&ticket) else {
                continue;
            };
            let whole = pending.left == ids.len() && pending.ids.is_empty();
            if whole {
                pending.clients = self.deliver(&ids, batch, None);
            } else {
                // A publish split across reads: count its recipients once.
                self.deliver(&ids, batch, Some(&mut pending.recipients));
                pending.clients = pending.recipients.len();
            }
            pending.left = pending.left.saturating_sub(ids.len());
            pending.ids.extend_from_slice(&ids);
            if pending.left == 0 {
                let _ = pending.reply.send(Receipt {
                    ids: pending.ids,
                    clients: pending.clients,
                });
            } else {
                self.pending.insert(ticket, pending);
            }
        }
    }

    /// Cluster: keeps the log's recent past, read when the reader first
    /// reached the log. Entries newer than this hub's start are news to the
    /// subscribers already here, and are fanned out; older ones are only
    /// kept, for replay.
    fn prime(&mut self, entries: Vec<Incoming>, complete: bool, trimmed: Option<EventId>) {
        let oldest = entries.first().map(|e| e.id);
        let (past, news): (Vec<Incoming>, Vec<Incoming>) =
            entries.into_iter().partition(|e| e.id <= self.start);
        for entry in past {
            self.frame_buf.clear();
            push_id_line(&mut self.frame_buf, entry.id);
            self.frame_buf.extend_from_slice(&entry.body);
            let frame = Frame::new(&self.frame_buf, 1);
            self.history.push(entry.id, entry.channel, frame);
        }
        if complete {
            self.history.set_known_since(None);
        } else if oldest.is_some() {
            self.history.set_known_since(oldest);
        }
        if let Some(trimmed) = trimmed {
            self.history.dropped_through(trimmed);
        }
        if !news.is_empty() {
            self.ingest(news);
        }
    }

    /// Cluster: the log dropped entries this node never read. Its memory
    /// cannot cover them, and every open stream has missed them: each is
    /// closed, so that its client resumes and is told of the gap.
    fn missed(&mut self, trimmed: EventId) {
        self.history.dropped_through(trimmed);
        let clients: Vec<ClientId> = self.subscribers.keys().copied().collect();
        for client in clients {
            self.remove(
                client,
                Closed::Asked("messages were missed while Redis was out of reach"),
            );
        }
    }

    fn drop_refused(&mut self) {
        let mut refused = std::mem::take(&mut self.fallout.refused);
        for (client, full) in refused.drain(..) {
            if full && self.remove(client, Closed::Slow) {
                Counters::add(&self.counters.dropped_slow, 1);
            } else {
                self.remove(client, Closed::Asked("stream ended"));
            }
        }
        self.fallout.refused = refused;
    }

    fn subscribe(&mut self, request: SubscribeRequest, reply: &Sender<Result<Grant, Error>>) {
        if self.subscribers.len() >= self.max_clients {
            let _ = reply.send(Err(Error::HubFull));
            return;
        }
        let client = ClientId::new(self.run, self.next_client);
        self.next_client += 1;
        self.history.expire(now_ms());
        let (mut replay, resume_point) = match request.resume {
            Some(after) => (self.history.replay(after, &request.channels), after),
            None => (
                Replay {
                    oldest: self.history.oldest(),
                    ..Replay::default()
                },
                self.history.newest(),
            ),
        };
        // In a cluster, what the memory cannot cover the log may still
        // hold: the subscriber's thread reads it from there.
        let backfill = match request.resume {
            Some(after) if self.clustered && replay.gap => {
                replay.gap = false;
                let until = match self.history.oldest() {
                    Some(oldest) => Until::Before(oldest),
                    None => Until::Through(self.history.newest()),
                };
                // Nothing older than the messages' lifetime is replayed
                // from the log either; a resume from before it may have
                // missed some (conservative, like any gap).
                let from = match self.history.cutoff(now_ms()) {
                    Some(cutoff) if after < cutoff => {
                        replay.gap = true;
                        cutoff
                    }
                    _ => after,
                };
                Some((from, until))
            }
            _ => None,
        };
        let grant = Grant {
            client,
            replay,
            resume_point,
            backfill,
        };
        if reply.send(Ok(grant)).is_err() {
            return; // the subscriber is gone already; it will not say goodbye
        }
        self.everyone.insert(client, Arc::clone(&request.queue));
        for channel in &request.channels {
            let members = self.channels.entry(channel.clone()).or_default();
            members.insert(client, Arc::clone(&request.queue));
        }
        let subscriber = Subscriber {
            channels: request.channels,
            queue: request.queue,
        };
        self.subscribers.insert(client, subscriber);
        self.update_client_gauge();
    }

    /// Takes a subscriber out of the registry and closes its queue, waking
    /// its thread: it takes what is queued, finds the queue closed and ends
    /// the stream. Returns whether it was registered.
    fn remove(&mut self, client: ClientId, why: Closed) -> bool {
        let Some(subscriber) = self.subscribers.remove(&client) else {
            return false;
        };
        self.everyone.remove(client);
        for channel in &subscriber.channels {
            if let Some(members) = self.channels.get_mut(channel) {
                members.remove(client);
                if members.len() == 0 {
                    self.channels.remove(channel);
                }
            }
        }
        self.update_client_gauge();
        if let Some(thread) = subscriber.queue.close(why) {
            thread.unpark();
        }
        true
    }

    fn update_client_gauge(&self) {
        self.counters
            .clients
            .store(self.subscribers.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The figures, with at most `limit` channels: those with the most
    /// members (the first names in order among equals), none that `hide`
    /// matches. Keeps only `limit` candidates at a time, so a hub with a
    /// million channels answers with a small heap, not a copy of them all.
    fn stats(&mut self, limit: usize, hide: &[Pattern]) -> Stats {
        self.history.expire(now_ms());
        let mut top: BinaryHeap<(Reverse<usize>, &Channel)> = BinaryHeap::new();
        for (name, members) in &self.channels {
            if hide.iter().any(|pattern| pattern.matches(name)) {
                continue;
            }
            top.push((Reverse(members.len()), name));
            if top.len() > limit {
                top.pop();
            }
        }
        let channels: BTreeMap<String, usize> = top
            .into_iter()
            .map(|(Reverse(members), name)| (name.to_string(), members))
            .collect();
        let uptime = self.started.elapsed().as_secs();
        Stats::new(
            &self.counters,
            channels,
            self.channels.len(),
            self.history.len(),
            uptime,
        )
    }

    /// Closes every queue, so every stream ends, and waits a little for
    /// them to say goodbye.
    fn shut_down(mut self) {
        while !self.fallout.claimed.is_empty() {
            self.wake_some();
        }
        for thread in self.fallout.wake.drain(..) {
            thread.unpark();
        }
        let mut open = self.subscribers.len();
        self.everyone = Members::default();
        self.channels.clear();
        for subscriber in std::mem::take(&mut self.subscribers).into_values() {
            if let Some(thread) = subscriber.queue.close(Closed::Shutdown) {
                thread.unpark();
            }
        }
        self.update_client_gauge();

        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while open > 0 {
            match self.commands.recv_deadline(deadline) {
                Ok(Command::Unsubscribe { .. }) => open -= 1,
                Ok(Command::Subscribe { reply, .. }) => {
                    let _ = reply.send(Err(Error::HubStopped));
                }
                Ok(_) => {} // dropping a reply channel answers HubStopped
                Err(_) => break,
            }
        }
    }
}
