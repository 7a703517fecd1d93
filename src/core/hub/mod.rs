//! [`Hub`]: the handle through which any thread publishes, subscribes and
//! reads figures. It sends commands to the hub thread and waits for the
//! answers; it never touches the hub's state itself.
//!
//! In a cluster the handle also holds the shared log (`upstream.rs`): a
//! publish is appended there, on the publisher's thread, and answered when
//! the hub thread has fanned the entries out as they came back; a resume
//! that reaches past the hub's memory reads the rest from the log, on the
//! subscriber's thread.

pub(crate) mod thread;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use log::info;

use crate::core::channel::{Channel, Pattern};
use crate::core::client_id::ClientId;
use crate::core::closed::Closed;
use crate::core::command::{Command, Grant, Outgoing, Receipt, SubscribeRequest};
use crate::core::config::HubConfig;
use crate::core::event_id::EventId;
use crate::core::hangup::Watcher;
use crate::core::hub::thread::HubThread;
use crate::core::metrics::{Counters, Stats};
use crate::core::presence::{Action, Book, Member};
use crate::core::queue::Queue;
use crate::core::sse::Event;
use crate::core::subscription::Subscription;
use crate::core::upstream::{Feed, Origin, Upstream};
use crate::error::Error;

/// How long a clustered publish waits for its entries to come back from
/// the log before it gives up on reporting them.
const CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// The outcome of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The ID given to the message.
    pub id: EventId,
    /// How many subscribers it was queued for.
    pub clients: usize,
}

impl Published {
    /// The reply body of `POST /broadcast`: `{"id":"<id>","clients":<n>}`.
    pub fn to_json(&self) -> String {
        format!("{{\"id\":\"{}\",\"clients\":{}}}", self.id, self.clients)
    }
}

/// The outcome of a batch publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedBatch {
    /// The ID given to each message, in order.
    pub ids: Vec<EventId>,
    /// How many subscribers at least one of the messages was queued for.
    pub clients: usize,
}

impl PublishedBatch {
    /// The reply body of a batch `POST /broadcast`:
    /// `{"ids":["<id>",...],"clients":<n>}`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(16 + self.ids.len() * 24);
        out.push_str("{\"ids\":[");
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(&id.to_string());
            out.push('"');
        }
        out.push_str("],\"clients\":");
        out.push_str(&self.clients.to_string());
        out.push('}');
        out
    }
}

/// One message of a batch: an event and, if it has one, its channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What to send.
    pub event: Event,
    /// Only the members of this channel receive it; `None`: everyone.
    pub channel: Option<Channel>,
}

/// A running hub, and the handle to it: publish, subscribe and read figures
/// from any thread.
///
/// [`Hub::start`] starts the hub thread; no socket is involved. Cloning a
/// `Hub` gives another handle to the same hub. The hub runs until
/// [`Hub::stop`] is called or every handle is gone; after that every method
/// fails with [`Error::HubStopped`] at once, and never blocks.
///
/// # Example
///
/// ```
/// use sse_hub::{Event, Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig::default())?;
/// let mut subscription = hub.subscribe(&[], None)?;
///
/// let published = hub.publish(&Event::new("hello"), None)?;
/// assert_eq!(published.clients, 1);
///
/// let frame = subscription.recv().expect("the hub is running");
/// let events = frame.dispatch();
/// assert_eq!(events[0].data, "hello");
/// assert_eq!(events[0].last_event_id, published.id.to_string());
///
/// hub.stop();
/// assert!(hub.publish(&Event::new("too late"), None).is_err());
/// # Ok::<(), sse_hub::Error>(())
/// ```
#[derive(Clone)]
pub struct Hub {
    commands: Sender<Command>,
    counters: Arc<Counters>,
    config: Arc<HubConfig>,
    /// Cluster mode: the shared log publishes go through.
    upstream: Option<Arc<dyn Upstream>>,
    /// The random tag of this run of the hub.
    run: u64,
    /// Numbers this run's clustered publishes.
    tickets: Arc<AtomicU64>,
    /// Watches the sockets of streams run on an application's own sockets
    /// (`EventStream::run_on_socket`); its thread starts with the first
    /// such stream and ends with the hub thread.
    watcher: Arc<Watcher>,
    /// Who is in the channels with presence (`presence.rs`).
    presence: Arc<Book>,
}

impl Hub {
    /// Starts a hub thread with `config` and returns a handle to it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting that is out of range, or
    /// [`Error::ThreadDied`] if the system refused the thread.
    pub fn start(config: HubConfig) -> Result<Hub, Error> {
        Hub::start_watched(config, Arc::default(), None, || {})
    }

    /// Like [`Hub::start`], with the counters to share, publishing through
    /// `upstream` if given (a cluster), and calls `on_end` on the hub
    /// thread when it ends, whether it returned or panicked.
    pub(crate) fn start_watched(
        config: HubConfig,
        counters: Arc<Counters>,
        upstream: Option<Arc<dyn Upstream>>,
        on_end: impl FnOnce() + Send + 'static,
    ) -> Result<Hub, Error> {
        /// Calls its function when dropped, also while a panic unwinds.
        struct OnEnd<F: FnOnce()>(Option<F>);
        impl<F: FnOnce()> Drop for OnEnd<F> {
            fn drop(&mut self) {
                if let Some(f) = self.0.take() {
                    f();
                }
            }
        }
        config.validate()?;
        let (hub, commands) = HubThread::new(&config, Arc::clone(&counters), upstream.is_some());
        let run = hub.run_tag();
        let watcher = Arc::new(Watcher::default());
        let on_end = OnEnd(Some({
            let watcher = Arc::clone(&watcher);
            move || {
                watcher.stop();
                on_end();
            }
        }));
        std::thread::Builder::new()
            .name("sse-hub".into())
            .spawn(move || {
                let _on_end = on_end;
                hub.run();
            })
            .map_err(|_| Error::ThreadDied("sse-hub"))?;
        Ok(Hub {
            commands,
            counters,
            presence: Arc::new(Book::new(config.presence.clone())),
            config: Arc::new(config),
            upstream,
            run,
            tickets: Arc::new(AtomicU64::new(1)),
            watcher,
        })
    }

    /// How a cluster's reader hands the log's entries to this hub.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn feed(&self) -> Feed {
        Feed {
            commands: self.commands.clone(),
            run: self.run,
        }
    }

    /// The settings the hub runs with.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Publishes `event` to every subscriber, or only to the members of
    /// `channel`, and returns its ID and how many subscribers it was queued
    /// for. The event is encoded here, on the caller's thread; the call
    /// returns once the message is queued, without waiting for any
    /// subscriber.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub has stopped.
    pub fn publish(&self, event: &Event, channel: Option<&Channel>) -> Result<Published, Error> {
        if let Some(upstream) = &self.upstream {
            let message = Message {
                event: event.clone(),
                channel: channel.cloned(),
            };
            let receipt =
                self.publish_upstream(upstream.as_ref(), std::slice::from_ref(&message))?;
            let id = *receipt.ids.first().ok_or(Error::HubStopped)?;
            return Ok(Published {
                id,
                clients: receipt.clients,
            });
        }
        let batch = vec![Outgoing {
            body: event.encode_body(),
            channel: channel.cloned(),
        }];
        let receipt = self.send_batch(batch)?;
        let id = *receipt.ids.first().ok_or(Error::HubStopped)?;
        Ok(Published {
            id,
            clients: receipt.clients,
        })
    }

    /// Publishes `messages` in order, as one step: they get consecutive
    /// IDs, and no other publish comes between them.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub has stopped; then nothing was
    /// published.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Channel, Event, Hub, HubConfig, Message};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let batch = [
    ///     Message { event: Event::new("one"), channel: None },
    ///     Message { event: Event::new("two"), channel: Some(Channel::new("news")?) },
    /// ];
    /// let published = hub.publish_batch(&batch)?;
    /// assert_eq!(published.ids.len(), 2);
    /// assert!(published.ids[0] < published.ids[1]);
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn publish_batch(&self, messages: &[Message]) -> Result<PublishedBatch, Error> {
        if messages.is_empty() {
            return Ok(PublishedBatch {
                ids: Vec::new(),
                clients: 0,
            });
        }
        if let Some(upstream) = &self.upstream {
            let receipt = self.publish_upstream(upstream.as_ref(), messages)?;
            return Ok(PublishedBatch {
                ids: receipt.ids,
                clients: receipt.clients,
            });
        }
        let batch = messages
            .iter()
            .map(|m| Outgoing {
                body: m.event.encode_body(),
                channel: m.channel.clone(),
            })
            .collect();
        let receipt = self.send_batch(batch)?;
        Ok(PublishedBatch {
            ids: receipt.ids,
            clients: receipt.clients,
        })
    }

    /// Cluster: appends `messages` to the log, then waits until the hub
    /// thread has fanned them out as they came back, so that the publisher
    /// reads its own write and learns this node's count.
    fn publish_upstream(
        &self,
        upstream: &dyn Upstream,
        messages: &[Message],
    ) -> Result<Receipt, Error> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = crossbeam_channel::bounded(1);
        // Registered before the append: the entries can come back through
        // the reader before the append call has even returned here.
        self.send(Command::Expect {
            ticket,
            messages: messages.len(),
            reply,
        })?;
        let origin = Origin {
            run: self.run,
            ticket,
        };
        if let Err(e) = upstream.append(messages, origin) {
            let _ = self.send(Command::Forget { ticket });
            return Err(e);
        }
        match answer.recv_timeout(CONFIRM_WAIT) {
            Ok(receipt) => Ok(receipt),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.send(Command::Forget { ticket });
                Err(Error::RedisUnavailable(format!(
                    "the message reached Redis but did not come back to this node within \
                     {} s; it may or may not be delivered",
                    CONFIRM_WAIT.as_secs()
                )))
            }
            Err(RecvTimeoutError::Disconnected) => Err(Error::HubStopped),
        }
    }

    fn send_batch(&self, batch: Vec<Outgoing>) -> Result<Receipt, Error> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Publish { batch, reply })?;
        answer.recv().map_err(|_| Error::HubStopped)
    }

    /// A snapshot of the hub's figures, with every channel that has
    /// members.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub has stopped.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.stats_listing(usize::MAX, &[])
    }

    /// A snapshot of the hub's figures for anyone to read, as `/stats` and
    /// `/metrics` serve it: it lists at most `limit` channels, those with
    /// the most members, and none that a pattern of `hide` matches (private
    /// channels, whose names may say whose they are).
    /// [`Stats::channels_total`] still counts every channel with members.
    /// The hub keeps only `limit` candidates while it looks, so the answer
    /// stays small however many channels clients open.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub has stopped.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Channel, Hub, HubConfig, Pattern};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let public = hub.subscribe(&[Channel::new("news")?], None)?;
    /// let private = hub.subscribe(&[Channel::new("user:42")?], None)?;
    /// let stats = hub.stats_listing(100, &[Pattern::new("user:*")?])?;
    /// assert_eq!(stats.channels_total, 2);
    /// assert_eq!(stats.channels.keys().collect::<Vec<_>>(), ["news"]);
    /// # drop((public, private));
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn stats_listing(&self, limit: usize, hide: &[Pattern]) -> Result<Stats, Error> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Stats {
            limit,
            hide: hide.to_vec(),
            reply,
        })?;
        answer.recv().map_err(|_| Error::HubStopped)
    }

    /// Subscribes from inside this process: the returned [`Subscription`]
    /// receives the frames an `/events` stream would carry (the replay of
    /// what was published after `last_event_id`, then live messages), and
    /// counts as a client like any other, so the client limit and the queue
    /// limit apply. Dropping it unsubscribes.
    ///
    /// # Errors
    ///
    /// [`Error::HubFull`] or [`Error::HubStopped`].
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Channel, Event, Hub, HubConfig};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let first = hub.publish(&Event::new("missed"), None)?;
    /// let second = hub.publish(&Event::new("also missed"), None)?;
    ///
    /// // Resuming after the first message replays the second.
    /// let mut subscription = hub.subscribe(&[], Some(first.id))?;
    /// assert_eq!(subscription.replay().len(), 1);
    /// assert_eq!(subscription.replay()[0].dispatch()[0].data, "also missed");
    /// assert!(!subscription.gap());
    ///
    /// // A message for a channel it did not join never arrives.
    /// hub.publish(&Event::new("news"), Some(&Channel::new("news")?))?;
    /// assert!(subscription.try_recv().is_none());
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn subscribe(
        &self,
        channels: &[Channel],
        last_event_id: Option<EventId>,
    ) -> Result<Subscription, Error> {
        let queue = Arc::new(Queue::new(self.config.queue));
        let grant = self.register(SubscribeRequest {
            channels: channels.to_vec(),
            resume: last_event_id,
            queue: Arc::clone(&queue),
            user: None,
        })?;
        Ok(Subscription::new(self.clone(), grant, queue))
    }

    /// Stops the hub: every stream ends (each with the proper end of its
    /// HTTP body), and every later call fails with [`Error::HubStopped`].
    /// Returns at once; the streams end within about a second and a half.
    pub fn stop(&self) {
        if let Some(upstream) = &self.upstream {
            upstream.stop();
        }
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Ends one client's stream: it gets what is queued for it, then the
    /// end of the stream.
    pub fn close(&self, client: ClientId, why: &'static str) {
        self.close_for(client, Closed::Asked(why));
    }

    /// Ends one client's stream for `why`.
    pub(crate) fn close_for(&self, client: ClientId, why: Closed) {
        let _ = self.send(Command::Close { client, why });
    }

    /// Registers a subscriber and returns what it is owed. In a cluster,
    /// the part of its replay that the hub's memory does not reach is read
    /// from the log here, on the calling (the subscriber's) thread.
    pub(crate) fn register(&self, request: SubscribeRequest) -> Result<Grant, Error> {
        let channels = request.channels.clone();
        let user = request.user.clone();
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Subscribe { request, reply })?;
        let mut grant = answer.recv().map_err(|_| Error::HubStopped)??;
        if let (Some((after, until)), Some(upstream)) = (grant.backfill, &self.upstream) {
            match upstream.backfill(after, until, &channels) {
                Ok(backfill) => {
                    let mut frames = backfill.frames;
                    frames.append(&mut grant.replay.frames);
                    grant.replay.frames = frames;
                    grant.replay.gap |= backfill.gap;
                    grant.replay.oldest = backfill.oldest.or(grant.replay.oldest);
                }
                Err(e) => {
                    info!(
                        "client {}: replay after {after} not read from Redis, so it gets a gap: {e}",
                        grant.client
                    );
                    grant.replay.gap = true;
                }
            }
        }
        let joined = self.presence.join(grant.client, &channels, user.as_deref());
        if !joined.is_empty() {
            if let Some(upstream) = &self.upstream {
                let member = Member {
                    client: grant.client,
                    user: user.clone(),
                };
                for channel in &joined {
                    upstream.joined(channel, &member);
                }
            }
            self.announce(Action::Join, grant.client, &joined, user.as_deref());
        }
        Ok(grant)
    }

    pub(crate) fn unsubscribe(&self, client: ClientId) {
        // If the hub is gone there is no one left to tell.
        let _ = self.send(Command::Unsubscribe { client });
        if let Some((channels, user)) = self.presence.leave(client) {
            if let Some(upstream) = &self.upstream {
                for channel in &channels {
                    upstream.left(channel, client);
                }
            }
            self.announce(Action::Leave, client, &channels, user.as_deref());
        }
    }

    /// Publishes a join or leave on each of `channels` (channels with
    /// presence), as one batch. A hub that cannot publish (stopped, or a
    /// cluster without Redis) says so in the log; the client's stream is
    /// not held up for it.
    fn announce(&self, action: Action, client: ClientId, channels: &[Channel], user: Option<&str>) {
        let data = action.data(client, user);
        let messages: Vec<Message> = channels
            .iter()
            .map(|channel| Message {
                event: Event::presence(data.clone()),
                channel: Some(channel.clone()),
            })
            .collect();
        if let Err(e) = self.publish_batch(&messages) {
            info!("client {client}: presence not published: {e}");
        }
    }

    /// Who is in `channel`, oldest client first: each member's client ID
    /// and user; in a cluster, on every node. `Ok(None)` if no presence
    /// pattern of [`HubConfig::presence`] names the channel.
    ///
    /// # Errors
    ///
    /// [`Error::RedisUnavailable`] if a cluster's Redis cannot be asked.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Channel, Hub, HubConfig, Pattern};
    ///
    /// let hub = Hub::start(HubConfig {
    ///     presence: vec![Pattern::new("room:*")?],
    ///     ..HubConfig::default()
    /// })?;
    /// let room = Channel::new("room:1")?;
    /// let mut watcher = hub.subscribe(&[room.clone()], None)?;
    /// let ann = hub.subscribe(&[room.clone()], None)?;
    /// assert_eq!(hub.presence(&room)?.map(|m| m.len()), Some(2));
    ///
    /// // Joins and leaves are `presence` events on the channel.
    /// drop(ann);
    /// let events: Vec<_> = std::iter::from_fn(|| watcher.recv_event_timeout(std::time::Duration::from_secs(5)))
    ///     .take(3)
    ///     .collect();
    /// let actions: Vec<String> = events
    ///     .iter()
    ///     .map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["action"].to_string())
    ///     .collect();
    /// assert_eq!(actions, ["\"join\"", "\"join\"", "\"leave\""]);
    /// assert_eq!(hub.presence(&room)?.map(|m| m.len()), Some(1));
    /// assert_eq!(hub.presence(&Channel::new("news")?)?, None);
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn presence(&self, channel: &Channel) -> Result<Option<Vec<Member>>, Error> {
        let Some(local) = self.presence.members(channel) else {
            return Ok(None);
        };
        match &self.upstream {
            Some(upstream) => upstream.members(channel).map(Some),
            None => Ok(Some(local)),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The hub's hang-up watcher.
    pub(crate) fn watcher(&self) -> &Arc<Watcher> {
        &self.watcher
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::HubStopped)
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("config", &self.config).finish()
    }
}
