//! The hub: one thread that owns the registry of subscribers and channels,
//! the ID clock and the history, and fans every published message out.
//!
//! Nothing else touches that state. Other threads talk to the hub only
//! through [`HubHandle`], which sends a [`Command`] over a crossbeam channel;
//! the hub answers on a one-shot reply channel when there is an answer. So
//! the order in which the hub takes commands is the one true order of
//! events: IDs, history and fan-out all follow it.
//!
//! Publishing: the hub gives the message the next ID, writes the `id:` line
//! in front of the already encoded body, freezes that into one shared
//! [`Frame`], and queues a clone (a reference count, not a copy) for every
//! recipient. It never blocks on a subscriber: a queue holding `--queue`
//! frames means the subscriber is not keeping up, so the hub drops it (its
//! stream ends, and the client resumes from history with its last ID).
//!
//! Waking writers: a writer whose queue is empty parks its thread. Waking a
//! parked thread is a system call, and at a thousand subscribers those calls
//! cost far more than the fan-out itself, so the hub makes none: it notes
//! the writers for which its frame is alone in the queue (the only ones that
//! may be asleep; a writer with older frames queued was woken for those, and
//! takes the new one in the same batch) and hands that list back with the
//! reply. The publishing thread wakes them ([`HubHandle::publish`]), so
//! publishers pay for their own fan-out and the hub goes on to the next
//! command.
//!
//! The queues are crossbeam's unbounded (linked-block) channels with the
//! bound enforced here, not bounded (array) channels: an array channel
//! allocates every slot up front, 6 KiB per idle subscriber at the default
//! capacity, where a linked one holds at most one 31-slot block while idle.
//!
//! Subscribing: in one step the hub computes the replay a resuming client is
//! owed and registers its queue for live messages, so nothing falls between
//! the two. The replay travels in the reply, not through the queue, so a
//! replay longer than the queue still arrives whole.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info, warn};

use crate::channel::Channel;
use crate::error::Error;
use crate::event_id::{EventId, IdClock, now_ms};
use crate::history::{History, Replay};
use crate::metrics::{Counters, Stats};
use crate::sse::{Event, Frame, push_id_line};

/// How long the hub waits at shutdown for writers to close their streams.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// A subscriber's ID, unique within this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The outcome of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The ID given to the message.
    pub id: EventId,
    /// How many subscribers it was queued for.
    pub clients: usize,
}

/// Why a writer's stream ended, as the writer reports it.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The hub closed the queue (slow client, pipelined request, shutdown).
    Closed,
    /// A write failed, or blocked past the write timeout.
    WriteFailed(io::Error),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Closed => f.write_str("closed by the hub"),
            Ended::WriteFailed(e) if e.kind() == io::ErrorKind::WouldBlock => {
                f.write_str("write timed out")
            }
            Ended::WriteFailed(e) => write!(f, "write failed: {e}"),
        }
    }
}

/// What a new subscriber asks the hub for.
pub(crate) struct SubscribeRequest {
    pub(crate) channels: Vec<Channel>,
    /// Replay what was published after this ID.
    pub(crate) resume: Option<EventId>,
    pub(crate) queue: Sender<Frame>,
    pub(crate) peer: Option<SocketAddr>,
    /// The thread to unpark when frames arrive in an empty queue, if the
    /// subscriber parks one (a writer); `None` for a subscriber that blocks
    /// on the queue itself.
    pub(crate) waker: Option<Thread>,
}

/// What the hub grants a new subscriber.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) client: ClientId,
    pub(crate) replay: Replay,
}

pub(crate) enum Command {
    Publish {
        body: Vec<u8>,
        channel: Option<Channel>,
        /// The outcome, and the writers to wake.
        reply: Sender<(Published, Vec<Thread>)>,
    },
    Subscribe {
        request: SubscribeRequest,
        reply: Sender<Result<Grant, Error>>,
    },
    /// A writer thread ended; sent exactly once per granted subscription.
    Unsubscribe {
        client: ClientId,
        ended: Ended,
    },
    /// End this client's stream now.
    Close {
        client: ClientId,
        why: &'static str,
    },
    Stats {
        reply: Sender<Stats>,
    },
    Shutdown,
}

/// A handle to the hub, for any thread: publish, read stats.
///
/// Cheap to clone. Every method fails with [`Error::HubStopped`] once the hub
/// thread has ended.
///
/// # Example
///
/// ```no_run
/// # fn main() -> Result<(), sse_hub::Error> {
/// let server = sse_hub::Server::bind(sse_hub::Config::default())?;
/// let hub = server.hub();
/// std::thread::spawn(move || {
///     let event = sse_hub::Event::new("tick").with_name("clock")?;
///     let published = hub.publish(&event, None)?;
///     println!("{} went to {} clients", published.id, published.clients);
///     Ok::<(), sse_hub::Error>(())
/// });
/// server.run()
/// # }
/// ```
#[derive(Clone)]
pub struct HubHandle {
    commands: Sender<Command>,
    counters: Arc<Counters>,
}

impl HubHandle {
    /// Publishes `event` to every subscriber, or only to the members of
    /// `channel`, and returns its ID and how many subscribers it was queued
    /// for. The event is encoded here, on the caller's thread.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub thread has ended.
    pub fn publish(&self, event: &Event, channel: Option<&Channel>) -> Result<Published, Error> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Publish {
            body: event.encode_body(),
            channel: channel.cloned(),
            reply,
        })?;
        let (published, wake) = answer.recv().map_err(|_| Error::HubStopped)?;
        for writer in wake {
            writer.unpark();
        }
        Ok(published)
    }

    /// A snapshot of the hub's figures.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub thread has ended.
    pub fn stats(&self) -> Result<Stats, Error> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Stats { reply })?;
        answer.recv().map_err(|_| Error::HubStopped)
    }

    /// Subscribes from inside this process: the returned [`Subscription`]
    /// receives the same frames an `/events` stream would, replay included,
    /// and counts as a client like any other (so `--max-clients` and
    /// `--queue` apply). Dropping it unsubscribes.
    ///
    /// # Errors
    ///
    /// [`Error::HubFull`] or [`Error::HubStopped`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn demo(hub: sse_hub::HubHandle) -> Result<(), sse_hub::Error> {
    /// let news = sse_hub::Channel::new("news")?;
    /// let subscription = hub.subscribe(&[news], None)?;
    /// for frame in subscription.frames() {
    ///     print!("{}", String::from_utf8_lossy(&frame));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(
        &self,
        channels: &[Channel],
        last_event_id: Option<EventId>,
    ) -> Result<Subscription, Error> {
        let (queue, frames) = crossbeam_channel::unbounded();
        let grant = self.register(SubscribeRequest {
            channels: channels.to_vec(),
            resume: last_event_id,
            queue,
            peer: None,
            waker: None,
        })?;
        Ok(Subscription {
            hub: self.clone(),
            grant,
            frames,
        })
    }

    pub(crate) fn register(&self, request: SubscribeRequest) -> Result<Grant, Error> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Subscribe { request, reply })?;
        answer.recv().map_err(|_| Error::HubStopped)?
    }

    pub(crate) fn unsubscribe(&self, client: ClientId, ended: Ended) {
        // If the hub is gone there is no one left to tell.
        let _ = self.send(Command::Unsubscribe { client, ended });
    }

    pub(crate) fn close(&self, client: ClientId, why: &'static str) {
        let _ = self.send(Command::Close { client, why });
    }

    pub(crate) fn shut_down(&self) {
        let _ = self.send(Command::Shutdown);
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::HubStopped)
    }
}

/// A subscriber inside this process; see [`HubHandle::subscribe`].
pub struct Subscription {
    hub: HubHandle,
    grant: Grant,
    frames: Receiver<Frame>,
}

impl Subscription {
    /// This subscriber's ID.
    pub fn client(&self) -> ClientId {
        self.grant.client
    }

    /// The retained messages newer than the `last_event_id` given, for this
    /// subscriber's channels, oldest first.
    pub fn replay(&self) -> &[Frame] {
        &self.grant.replay.frames
    }

    /// True if messages newer than `last_event_id` may have been lost.
    pub fn gap(&self) -> bool {
        self.grant.replay.gap
    }

    /// Live frames, in publish order. Disconnects when the hub drops this
    /// subscriber (its queue was full) or stops.
    pub fn frames(&self) -> &Receiver<Frame> {
        &self.frames
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.grant.client, Ended::Closed);
    }
}

/// The queues of a set of subscribers, side by side for a tight fan-out loop.
#[derive(Default)]
struct Members {
    ids: Vec<ClientId>,
    queues: Vec<Sender<Frame>>,
    wakers: Vec<Option<Thread>>,
}

impl Members {
    fn insert(&mut self, id: ClientId, queue: Sender<Frame>, waker: Option<Thread>) {
        self.ids.push(id);
        self.queues.push(queue);
        self.wakers.push(waker);
    }

    fn remove(&mut self, id: ClientId) {
        if let Some(at) = self.ids.iter().position(|&m| m == id) {
            self.ids.swap_remove(at);
            self.queues.swap_remove(at);
            self.wakers.swap_remove(at);
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Queues `frame` for every member whose queue holds fewer than
    /// `capacity` frames; returns how many took it. Notes the writers that
    /// may be asleep on an empty queue in `wake`, and the members that did
    /// not take it in `refused` (`true` = queue full, `false` = writer gone).
    fn fan_out(
        &self,
        frame: &Frame,
        capacity: usize,
        wake: &mut Vec<Thread>,
        refused: &mut Vec<(ClientId, bool)>,
    ) -> usize {
        let mut queued = 0;
        let members = self.ids.iter().zip(&self.queues).zip(&self.wakers);
        for ((&id, queue), waker) in members {
            // Only the hub sends, so the length cannot grow behind our back.
            if queue.len() >= capacity {
                refused.push((id, true));
            } else if queue.try_send(frame.clone()).is_ok() {
                queued += 1;
                // Alone in the queue: its writer may have found the queue
                // empty and parked. (Decided after the push: a writer that
                // drained older frames between a check before it and the
                // push would sleep through this one.) With older frames
                // still queued, the push that made the queue non-empty
                // woke it.
                if queue.len() == 1
                    && let Some(writer) = waker
                {
                    wake.push(writer.clone());
                }
            } else {
                refused.push((id, false));
            }
        }
        queued
    }
}

struct Subscriber {
    channels: Vec<Channel>,
    peer: Option<SocketAddr>,
    waker: Option<Thread>,
}

/// The hub's state. Built by [`Hub::new`], then moved onto its own thread,
/// which calls [`Hub::run`].
pub(crate) struct Hub {
    commands: Receiver<Command>,
    counters: Arc<Counters>,
    everyone: Members,
    channels: HashMap<Channel, Members>,
    subscribers: HashMap<ClientId, Subscriber>,
    history: History,
    clock: IdClock,
    next_client: u64,
    max_clients: usize,
    queue_capacity: usize,
    /// Writer threads that have not yet reported their end.
    writers: usize,
    started: Instant,
    /// Reused for every frame, so that building one costs one allocation.
    frame_buf: Vec<u8>,
    /// Reused by every fan-out for the subscribers that refused a frame.
    refused: Vec<(ClientId, bool)>,
}

impl Hub {
    /// A hub and the handle to reach it.
    pub(crate) fn new(
        history: usize,
        max_clients: usize,
        queue_capacity: usize,
    ) -> (Hub, HubHandle) {
        // Unbounded, yet bounded in practice: every publisher waits for its
        // reply, so at most one command per publishing thread is in flight.
        // And when the hub ends, an unbounded (linked) channel drops the
        // commands still queued, so their senders see the hub is gone instead
        // of waiting for a reply forever.
        let (commands_tx, commands) = crossbeam_channel::unbounded();
        let counters = Arc::new(Counters::default());
        let start = EventId::new(now_ms(), 0);
        let hub = Hub {
            commands,
            counters: Arc::clone(&counters),
            everyone: Members::default(),
            channels: HashMap::new(),
            subscribers: HashMap::new(),
            history: History::new(history, start),
            clock: IdClock::starting_at(start),
            next_client: 1,
            max_clients,
            queue_capacity,
            writers: 0,
            started: Instant::now(),
            frame_buf: Vec::with_capacity(1024),
            refused: Vec::new(),
        };
        let handle = HubHandle {
            commands: commands_tx,
            counters,
        };
        (hub, handle)
    }

    /// Serves commands until told to shut down, then closes every stream.
    pub(crate) fn run(mut self) {
        while let Ok(command) = self.commands.recv() {
            match command {
                Command::Publish {
                    body,
                    channel,
                    reply,
                } => {
                    let published = self.publish(&body, channel);
                    let _ = reply.send(published);
                }
                Command::Subscribe { request, reply } => self.subscribe(request, &reply),
                Command::Unsubscribe { client, ended } => self.unsubscribe(client, ended),
                Command::Close { client, why } => {
                    if self.remove(client) {
                        info!(
                            "client {client} closed: {why}; clients: {}",
                            self.subscribers.len()
                        );
                    }
                }
                Command::Stats { reply } => {
                    let _ = reply.send(self.stats());
                }
                Command::Shutdown => break,
            }
        }
        self.shut_down();
    }

    fn publish(&mut self, body: &[u8], channel: Option<Channel>) -> (Published, Vec<Thread>) {
        let id = self.clock.next();
        self.frame_buf.clear();
        push_id_line(&mut self.frame_buf, id);
        self.frame_buf.extend_from_slice(body);
        let frame = Frame::from_bytes(&self.frame_buf);

        let members = match &channel {
            None => Some(&self.everyone),
            Some(channel) => self.channels.get(channel),
        };
        let capacity = self.queue_capacity;
        let mut wake = Vec::new();
        let clients = members.map_or(0, |m| {
            m.fan_out(&frame, capacity, &mut wake, &mut self.refused)
        });
        self.drop_refused();

        self.history.push(id, channel, frame);
        Counters::add(&self.counters.published, 1);
        (Published { id, clients }, wake)
    }

    fn drop_refused(&mut self) {
        let mut refused = std::mem::take(&mut self.refused);
        for (client, full) in refused.drain(..) {
            if self.remove(client) && full {
                Counters::add(&self.counters.dropped_slow, 1);
                warn!(
                    "client {client} dropped: its queue of {} messages is full (slow reader); clients: {}",
                    self.queue_capacity,
                    self.subscribers.len()
                );
            }
        }
        self.refused = refused;
    }

    fn subscribe(&mut self, request: SubscribeRequest, reply: &Sender<Result<Grant, Error>>) {
        if self.subscribers.len() >= self.max_clients {
            let _ = reply.send(Err(Error::HubFull));
            return;
        }
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let replay = match request.resume {
            Some(after) => self.history.replay(after, &request.channels),
            None => Replay {
                oldest: self.history.oldest(),
                ..Replay::default()
            },
        };
        if reply.send(Ok(Grant { client, replay })).is_err() {
            return; // the writer is gone already; it will not report an end
        }
        self.writers += 1;
        let waker = request.waker;
        self.everyone
            .insert(client, request.queue.clone(), waker.clone());
        for channel in &request.channels {
            let members = self.channels.entry(channel.clone()).or_default();
            members.insert(client, request.queue.clone(), waker.clone());
        }
        let peer = request.peer;
        let channels = request.channels;
        info!(
            "client {client} connected from {}, channels [{}]; clients: {}",
            peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            channels
                .iter()
                .map(Channel::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            self.subscribers.len() + 1
        );
        let subscriber = Subscriber {
            channels,
            peer,
            waker,
        };
        self.subscribers.insert(client, subscriber);
        self.update_client_gauge();
    }

    fn unsubscribe(&mut self, client: ClientId, ended: Ended) {
        self.writers = self.writers.saturating_sub(1);
        if matches!(ended, Ended::WriteFailed(_)) {
            Counters::add(&self.counters.write_errors, 1);
        }
        if self.remove(client) {
            info!(
                "client {client} disconnected: {ended}; clients: {}",
                self.subscribers.len()
            );
        } else {
            debug!("client {client} writer ended ({ended})");
        }
    }

    /// Takes a subscriber out of the registry, which drops its queue's
    /// senders, and wakes its writer: the writer drains what is queued, finds
    /// the queue closed and ends the stream. Returns whether it was
    /// registered.
    fn remove(&mut self, client: ClientId) -> bool {
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
        if let Some(writer) = &subscriber.waker {
            writer.unpark();
        }
        debug!(
            "client {client} from {:?} removed from the registry",
            subscriber.peer
        );
        true
    }

    fn update_client_gauge(&self) {
        self.counters
            .clients
            .store(self.subscribers.len(), std::sync::atomic::Ordering::Relaxed);
    }

    fn stats(&self) -> Stats {
        let channels: BTreeMap<String, usize> = self
            .channels
            .iter()
            .map(|(name, members)| (name.to_string(), members.len()))
            .collect();
        let uptime = self.started.elapsed().as_secs();
        Stats::new(&self.counters, channels, self.history.len(), uptime)
    }

    /// Closes every queue, so every writer ends its stream, and waits a
    /// little for them to report.
    fn shut_down(mut self) {
        let open = self.subscribers.len();
        self.everyone = Members::default();
        self.channels.clear();
        for subscriber in std::mem::take(&mut self.subscribers).into_values() {
            if let Some(writer) = subscriber.waker {
                writer.unpark();
            }
        }
        self.update_client_gauge();
        info!("shutting down: closing {open} streams");

        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.writers > 0 {
            match self.commands.recv_deadline(deadline) {
                Ok(Command::Unsubscribe { .. }) => self.writers -= 1,
                Ok(Command::Subscribe { reply, .. }) => {
                    let _ = reply.send(Err(Error::HubStopped));
                }
                Ok(_) => {} // dropping a reply channel answers HubStopped
                Err(_) => break,
            }
        }
        if self.writers > 0 {
            warn!("{} streams did not close in time", self.writers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn start(history: usize, max_clients: usize, queue: usize) -> HubHandle {
        let (hub, handle) = Hub::new(history, max_clients, queue);
        thread::spawn(move || hub.run());
        handle
    }

    fn subscribe(
        hub: &HubHandle,
        channels: &[&str],
        resume: Option<EventId>,
    ) -> Result<(Grant, Receiver<Frame>), Error> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let request = SubscribeRequest {
            channels: channels.iter().map(|c| Channel::new(c).unwrap()).collect(),
            resume,
            queue: tx,
            peer: None,
            waker: None,
        };
        hub.register(request).map(|s| (s, rx))
    }

    fn data_of(frame: &Frame) -> String {
        let text = std::str::from_utf8(frame).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn everyone_gets_global_messages_and_members_get_channel_ones() {
        let hub = start(10, 10, 10);
        let (_, all) = subscribe(&hub, &[], None).unwrap();
        let (_, news) = subscribe(&hub, &["news"], None).unwrap();
        let news_channel = Channel::new("news").unwrap();

        let global = hub.publish(&Event::new("g"), None).unwrap();
        let only_news = hub.publish(&Event::new("n"), Some(&news_channel)).unwrap();
        assert_eq!(global.clients, 2);
        assert_eq!(only_news.clients, 1);
        assert!(only_news.id > global.id);

        assert_eq!(data_of(&all.try_recv().unwrap()), "g");
        assert!(all.try_recv().is_err());
        assert_eq!(data_of(&news.try_recv().unwrap()), "g");
        assert_eq!(data_of(&news.try_recv().unwrap()), "n");
    }

    #[test]
    fn every_recipient_shares_one_frame() {
        let hub = start(10, 10, 10);
        let (_, a) = subscribe(&hub, &[], None).unwrap();
        let (_, b) = subscribe(&hub, &[], None).unwrap();
        hub.publish(&Event::new("x"), None).unwrap();
        let (fa, fb) = (a.recv().unwrap(), b.recv().unwrap());
        assert!(std::ptr::eq(fa.as_ptr(), fb.as_ptr()));
    }

    #[test]
    fn a_full_queue_drops_that_subscriber_only() {
        let hub = start(10, 10, 2);
        let (_, slow) = subscribe(&hub, &[], None).unwrap();
        let (_, fast) = subscribe(&hub, &[], None).unwrap();
        for i in 0..3 {
            hub.publish(&Event::new(i.to_string()), None).unwrap();
            assert_eq!(data_of(&fast.recv().unwrap()), i.to_string());
        }
        let stats = hub.stats().unwrap();
        assert_eq!(stats.clients, 1);
        assert_eq!(stats.dropped_slow, 1);
        // The slow one keeps what was queued, then sees its queue closed.
        assert_eq!(slow.iter().count(), 2);
    }

    #[test]
    fn resume_replays_then_goes_live_without_a_seam() {
        let hub = start(100, 10, 10);
        let first = hub.publish(&Event::new("1"), None).unwrap();
        hub.publish(&Event::new("2"), None).unwrap();
        let (sub, live) = subscribe(&hub, &[], Some(first.id)).unwrap();
        hub.publish(&Event::new("3"), None).unwrap();

        let replayed: Vec<String> = sub.replay.frames.iter().map(data_of).collect();
        assert_eq!(replayed, ["2"]);
        assert!(!sub.replay.gap);
        assert_eq!(data_of(&live.recv().unwrap()), "3");
    }

    #[test]
    fn a_replay_longer_than_the_queue_arrives_whole() {
        let hub = start(100, 10, 2);
        let first = hub.publish(&Event::new("0"), None).unwrap();
        for i in 1..50 {
            hub.publish(&Event::new(i.to_string()), None).unwrap();
        }
        let (sub, _live) = subscribe(&hub, &[], Some(first.id)).unwrap();
        assert_eq!(sub.replay.frames.len(), 49);
        assert_eq!(hub.stats().unwrap().clients, 1);
    }

    #[test]
    fn refuses_subscribers_past_the_limit() {
        let hub = start(0, 1, 1);
        let first = subscribe(&hub, &[], None).unwrap();
        assert!(matches!(subscribe(&hub, &[], None), Err(Error::HubFull)));
        hub.unsubscribe(first.0.client, Ended::Closed);
        assert!(subscribe(&hub, &[], None).is_ok());
    }

    #[test]
    fn empty_channels_leave_the_stats() {
        let hub = start(0, 10, 1);
        let (a, _qa) = subscribe(&hub, &["x", "y"], None).unwrap();
        let (_b, _qb) = subscribe(&hub, &["y"], None).unwrap();
        let stats = hub.stats().unwrap();
        assert_eq!(stats.channels.get("x"), Some(&1));
        assert_eq!(stats.channels.get("y"), Some(&2));

        hub.unsubscribe(a.client, Ended::Closed);
        let stats = hub.stats().unwrap();
        assert_eq!(stats.channels.get("x"), None);
        assert_eq!(stats.channels.get("y"), Some(&1));
    }

    #[test]
    fn an_in_process_subscription_receives_and_leaves_when_dropped() {
        let hub = start(10, 10, 10);
        let first = hub.publish(&Event::new("before"), None).unwrap();
        hub.publish(&Event::new("missed"), None).unwrap();
        let subscription = hub.subscribe(&[], Some(first.id)).unwrap();
        assert_eq!(
            subscription
                .replay()
                .iter()
                .map(data_of)
                .collect::<Vec<_>>(),
            ["missed"]
        );
        hub.publish(&Event::new("live"), None).unwrap();
        assert_eq!(data_of(&subscription.frames().recv().unwrap()), "live");
        assert_eq!(hub.stats().unwrap().clients, 1);
        drop(subscription);
        assert_eq!(hub.stats().unwrap().clients, 0);
    }

    #[test]
    fn a_stopped_hub_says_so() {
        let hub = start(0, 1, 1);
        hub.shut_down();
        // Commands are taken in order, so this publish is never served.
        assert!(matches!(
            hub.publish(&Event::new("x"), None),
            Err(Error::HubStopped)
        ));
    }
}
