//! Cluster mode: any number of hubs share one Redis stream, so that a
//! message published on any node reaches the subscribers of every node,
//! with one ID and in one order.
//!
//! A room of its own beside the core, not inside it: the core knows only
//! the trait of a shared log (`core/upstream.rs`) and never opens a
//! socket; this module is the one that speaks Redis. It enters the core's
//! path twice. A publish leaves through [`Upstream::append`] (`XADD`, on
//! the publisher's thread) and comes back, like every other node's, through
//! the reader (`reader.rs`), which tails the stream and hands entries to
//! the hub thread in the stream's order; the hub fans them out with their
//! Redis IDs. A resume that reaches further back than the node's memory
//! reads the rest with `XRANGE` (`stream.rs`), on the subscriber's thread.
//! Publishes that arrive together are sent to Redis together (`group.rs`).
//!
//! The library builds this only with the `cluster` feature (on by
//! default); [`ClusterConfig`] exists either way, so a [`Config`] reads the
//! same, and a build without the feature refuses one with a clear error.
//!
//! [`Config`]: crate::Config

use crate::core::Hub;
use crate::core::config::HubConfig;
use crate::error::Error;

#[cfg(feature = "cluster")]
mod group;
#[cfg(feature = "cluster")]
pub(crate) mod keys;
#[cfg(feature = "cluster")]
mod presence;
#[cfg(feature = "cluster")]
mod reader;
#[cfg(feature = "cluster")]
mod stream;

/// The stream's key in Redis when none is given.
pub const DEFAULT_STREAM: &str = "sse-hub";

/// Where a clustered hub's Redis stream is.
///
/// # Example
///
/// ```
/// let cluster = sse_hub::ClusterConfig::new("redis://127.0.0.1:6379/0");
/// assert_eq!(cluster.stream, "sse-hub");
/// assert!(cluster.validate().is_ok());
/// assert!(sse_hub::ClusterConfig::new("127.0.0.1:6379").validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port/db`.
    pub redis: String,
    /// The stream's key.
    pub stream: String,
}

impl ClusterConfig {
    /// The Redis at `url`, with the default stream key.
    pub fn new(url: &str) -> ClusterConfig {
        ClusterConfig {
            redis: url.to_owned(),
            stream: DEFAULT_STREAM.to_owned(),
        }
    }

    /// Checks the URL and the key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `redis` (a URL that does not parse,
    /// or a build without the `cluster` feature) or `redis_stream`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.stream.is_empty() {
            return Err(Error::InvalidConfig {
                field: "redis_stream",
                why: "must not be empty".to_owned(),
            });
        }
        check_url(&self.redis)
    }
}

#[cfg(feature = "cluster")]
fn check_url(url: &str) -> Result<(), Error> {
    let invalid = |why: String| Error::InvalidConfig {
        field: "redis",
        why: format!("{why}; expected redis://[:password@]host:port/db"),
    };
    // The crate also takes `host:port` and the like; the contract is a URL.
    if !url.contains("://") {
        return Err(invalid(format!("{url:?} is not a URL")));
    }
    redis::Client::open(url).map_err(|e| invalid(format!("{url:?} is not a Redis URL ({e})")))?;
    Ok(())
}

impl ClusterConfig {
    /// Starts a hub that shares this Redis stream with
    /// every other hub on it: publishes go to the stream, and the
    /// stream's entries, from any node, are fanned out here.
    ///
    /// Returns once it has tried Redis once: if Redis is out of reach
    /// the hub starts all the same, in the down state (publishes fail
    /// with [`Error::RedisUnavailable`]), and keeps trying.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad setting or URL, or
    /// [`Error::ThreadDied`] if the system refused a thread.
    ///
    /// # Example
    ///
    /// Without the `cluster` feature it fails with
    /// [`Error::InvalidConfig`].
    ///
    /// With no Redis there (nothing listens on port 1), the hub runs
    /// down: streams open, publishes are refused, and it keeps trying.
    ///
    /// ```
    /// use sse_hub::{ClusterConfig, Error, Event, Hub, HubConfig, RedisState};
    ///
    /// let cluster = ClusterConfig::new("redis://127.0.0.1:1/0");
    /// let hub = cluster.start_hub(HubConfig::default())?;
    /// assert_eq!(hub.stats()?.redis, Some(RedisState::Down));
    /// let subscription = hub.subscribe(&[], None)?;
    /// let refused = hub.publish(&Event::new("hello"), None);
    /// assert!(matches!(refused, Err(Error::RedisUnavailable(_))));
    /// # drop(subscription);
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn start_hub(&self, config: HubConfig) -> Result<Hub, Error> {
        start_watched(config, self, || {})
    }
}

/// What a build without the `cluster` feature says to a cluster.
#[cfg(not(feature = "cluster"))]
fn no_cluster_mode() -> Error {
    Error::InvalidConfig {
        field: "redis",
        why: "this build of sse-hub has no cluster mode (the `cluster` feature is off)".to_owned(),
    }
}

#[cfg(not(feature = "cluster"))]
fn check_url(_url: &str) -> Result<(), Error> {
    Err(no_cluster_mode())
}

/// Without the `cluster` feature a cluster is refused.
#[cfg(not(feature = "cluster"))]
pub(crate) fn start_watched(
    _config: crate::core::config::HubConfig,
    _cluster: &ClusterConfig,
    _on_end: impl FnOnce() + Send + 'static,
) -> Result<crate::core::Hub, Error> {
    Err(no_cluster_mode())
}

#[cfg(feature = "cluster")]
pub(crate) use running::start_watched;

#[cfg(feature = "cluster")]
mod running {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    use redis::io::tcp::TcpSettings;
    use redis::{Cmd, Connection, IntoConnectionInfo, RedisError};

    use super::group::Group;
    use super::reader::{Reader, Shared};
    use super::{ClusterConfig, presence, stream};
    use crate::core::Hub;
    use crate::core::channel::Channel;
    use crate::core::client_id::ClientId;
    use crate::core::config::HubConfig;
    use crate::core::event_id::{EventId, now_ms};
    use crate::core::hub::Message;
    use crate::core::metrics::{Counters, REDIS_DOWN, REDIS_UP};
    use crate::core::presence::Member;
    use crate::core::upstream::{Backfill, Origin, Until, Upstream};
    use crate::error::Error;

    /// How long connecting to Redis may take.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// How long Redis may take to answer one command.
    pub(in crate::cluster) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

    /// Idle connections kept for publishers and resumes; more are opened
    /// when needed and closed after use.
    const KEEP_IDLE: usize = 16;

    /// The Redis server and the stream on it.
    pub(in crate::cluster) struct Redis {
        client: redis::Client,
        pub(in crate::cluster) key: String,
        /// `host:port`, for logs (never the password).
        pub(in crate::cluster) addr: String,
    }

    impl Redis {
        /// The cluster's Redis and stream, checked; no connection yet.
        pub(in crate::cluster) fn open(cluster: &ClusterConfig) -> Result<Redis, Error> {
            cluster.validate()?;
            let invalid = |e: RedisError| Error::InvalidConfig {
                field: "redis",
                why: e.to_string(),
            };
            // Every command is one write and waits for its answer: Nagle's
            // delay would only add latency.
            let info = cluster
                .redis
                .as_str()
                .into_connection_info()
                .map_err(invalid)?
                .set_tcp_settings(TcpSettings::default().set_nodelay(true));
            let client = redis::Client::open(info).map_err(invalid)?;
            Ok(Redis {
                addr: client.get_connection_info().addr().to_string(),
                client,
                key: cluster.stream.clone(),
            })
        }

        /// A new connection whose reads wait at most `read_timeout`.
        pub(in crate::cluster) fn connect(
            &self,
            read_timeout: Duration,
        ) -> Result<Connection, RedisError> {
            let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
            connection.set_read_timeout(Some(read_timeout))?;
            connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
            Ok(connection)
        }
    }

    /// The node's side of the stream for publishers and resumes: a few
    /// pooled connections. (The reader has a connection of its own.)
    struct RedisLog {
        redis: Arc<Redis>,
        /// Idle connections, each with the reader's count of outages when
        /// it was opened: one opened before the last outage is stale (its
        /// Redis may have restarted) and is dropped rather than used.
        idle: Mutex<Vec<(u64, Connection)>>,
        shared: Arc<Shared>,
        max_len: usize,
        /// Single-message appends of concurrent publishers, sent together.
        group: Group<Cmd>,
        /// `--history-ttl` in milliseconds: entries older than it are
        /// trimmed from the stream (`XTRIM MINID`).
        ttl_ms: Option<u64>,
        /// When the stream was last trimmed by age (Unix ms).
        trimmed_ms: AtomicU64,
        /// This node's clients in channels with presence.
        present: presence::Local,
    }

    impl RedisLog {
        /// With `--history-ttl`, drops the stream's entries that are older,
        /// at most once a second, on a publisher's thread after its append
        /// (`MINID ~` lets Redis trim whole nodes only, cheaply). Best
        /// effort: replay skips expired entries anyway.
        fn trim_by_age(&self) {
            let Some(ttl) = self.ttl_ms else { return };
            let now = now_ms();
            let last = self.trimmed_ms.load(Ordering::Relaxed);
            if now < last.saturating_add(1000)
                || self
                    .trimmed_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return;
            }
            let cutoff = EventId::new(now.saturating_sub(ttl), 0);
            let trimmed = self.with_connection(|connection| {
                redis::cmd("XTRIM")
                    .arg(&self.redis.key)
                    .arg("MINID")
                    .arg("~")
                    .arg(cutoff.to_string())
                    .query::<u64>(connection)
            });
            if let Err(e) = trimmed {
                log::debug!("the stream was not trimmed by age: {e}");
            }
        }

        /// Runs `call` on a pooled connection; a connection that failed is
        /// dropped rather than pooled.
        fn with_connection<T>(
            &self,
            call: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
        ) -> Result<T, Error> {
            let outages = self.shared.outages.load(Ordering::Relaxed);
            let pooled = self.idle.lock().ok().and_then(|mut idle| {
                idle.retain(|(opened, _)| *opened == outages);
                idle.pop()
            });
            let mut connection = match pooled {
                Some((_, connection)) => connection,
                None => self
                    .redis
                    .connect(COMMAND_TIMEOUT)
                    .map_err(|e| unavailable(&e))?,
            };
            let outcome = call(&mut connection).map_err(|e| unavailable(&e))?;
            if let Ok(mut idle) = self.idle.lock()
                && idle.len() < KEEP_IDLE
            {
                idle.push((outages, connection));
            }
            Ok(outcome)
        }

        fn up(&self) -> bool {
            self.shared.counters.redis.load(Ordering::Relaxed) == REDIS_UP
        }
    }

    fn unavailable(e: &RedisError) -> Error {
        Error::RedisUnavailable(format!(
            "Redis failed ({e}); nothing was published, try again later"
        ))
    }

    impl Upstream for RedisLog {
        fn append(&self, messages: &[Message], origin: Origin) -> Result<Vec<EventId>, Error> {
            // While the reader cannot reach Redis, a publish could not be
            // read back either: fail at once rather than after a timeout.
            if !self.up() {
                return Err(Error::RedisUnavailable(
                    "this node cannot reach Redis; nothing was published, try again later"
                        .to_owned(),
                ));
            }
            let key = &self.redis.key;
            let ids = if let [message] = messages {
                let command = stream::xadd(key, self.max_len, message, origin);
                let id = self.group.append(command, |commands| {
                    self.with_connection(|connection| stream::append(connection, commands, false))
                })?;
                vec![id]
            } else {
                let commands = messages
                    .iter()
                    .map(|message| stream::xadd(key, self.max_len, message, origin))
                    .collect();
                self.with_connection(|connection| stream::append(connection, commands, true))?
            };
            self.trim_by_age();
            Ok(ids)
        }

        fn backfill(
            &self,
            after: EventId,
            until: Until,
            channels: &[Channel],
        ) -> Result<Backfill, Error> {
            if !self.up() {
                return Err(Error::RedisUnavailable(
                    "this node cannot reach Redis".to_owned(),
                ));
            }
            self.with_connection(|connection| {
                stream::backfill(connection, &self.redis.key, after, until, channels)
            })
        }

        fn stop(&self) {
            self.shared.stop.store(true, Ordering::Relaxed);
        }

        fn joined(&self, channel: &Channel, member: &Member) {
            self.present.add(channel, member);
            let written = self.with_connection(|connection| {
                presence::write(
                    connection,
                    &self.redis.key,
                    channel,
                    std::slice::from_ref(member),
                )
            });
            if let Err(e) = written {
                // The next refresh writes it.
                log::debug!("client {}: presence not written yet: {e}", member.client);
            }
        }

        fn left(&self, channel: &Channel, client: ClientId) {
            self.present.remove(channel, client);
            let deleted = self.with_connection(|connection| {
                presence::delete(connection, &self.redis.key, channel, client)
            });
            if let Err(e) = deleted {
                // Its node stops vouching for it: it lapses by itself.
                log::debug!("client {client}: presence not deleted: {e}");
            }
        }

        fn members(&self, channel: &Channel) -> Result<Vec<Member>, Error> {
            self.with_connection(|connection| presence::read(connection, &self.redis.key, channel))
        }
    }

    /// Writes this node's present clients again every
    /// [`presence::REFRESH`], so that they stay listed while the node
    /// lives; ends when the hub stops. A failed round is tried again at the
    /// next; a panic is caught and the loop goes on.
    fn refresh_presence(log: &std::sync::Weak<RedisLog>, shared: &Shared) {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while !shared.stop.load(Ordering::Relaxed) {
            thread::sleep(step);
            waited += step;
            if waited < presence::REFRESH {
                continue;
            }
            waited = Duration::ZERO;
            let Some(log) = log.upgrade() else { return };
            let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                log.with_connection(|connection| {
                    presence::refresh(connection, &log.redis.key, &log.present)
                })
            }));
            match round {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("presence not refreshed this round: {e}"),
                Err(_) => log::error!("the presence refresh panicked; it goes on"),
            }
        }
    }

    impl Drop for RedisLog {
        /// The last hub handle is gone: the reader stops too, and with it
        /// the hub thread.
        fn drop(&mut self) {
            self.shared.stop.store(true, Ordering::Relaxed);
        }
    }

    /// [`ClusterConfig::start_hub`], calling `on_end` when the hub thread ends.
    pub(crate) fn start_watched(
        config: HubConfig,
        cluster: &ClusterConfig,
        on_end: impl FnOnce() + Send + 'static,
    ) -> Result<Hub, Error> {
        let redis = Arc::new(Redis::open(cluster)?);
        let history = config.history;
        // The reader keeps the hub's figure of Redis's state current; it
        // starts down, until the first contact.
        let counters = Arc::new(Counters::default());
        counters.redis.store(REDIS_DOWN, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            counters: Arc::clone(&counters),
        });
        let log = RedisLog {
            redis: Arc::clone(&redis),
            idle: Mutex::new(Vec::new()),
            shared: Arc::clone(&shared),
            max_len: history,
            group: Group::new(),
            ttl_ms: config
                .history_ttl
                .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            trimmed_ms: AtomicU64::new(0),
            present: presence::Local::default(),
        };
        let log = Arc::new(log);
        let presence_log = Arc::downgrade(&log);
        let presence_shared = Arc::clone(&shared);
        let hub = Hub::start_watched(config, counters, Some(log), on_end)?;
        thread::Builder::new()
            .name("redis-presence".into())
            .stack_size(64 * 1024)
            .spawn(move || refresh_presence(&presence_log, &presence_shared))
            .map_err(|_| Error::ThreadDied("redis-presence"))?;
        let mut reader = Reader::new(redis, hub.feed(), shared, history);
        let first = reader.first_contact();
        thread::Builder::new()
            .name("redis-reader".into())
            .spawn(move || reader.run(first))
            .map_err(|_| Error::ThreadDied("redis-reader"))?;
        Ok(hub)
    }
}

#[cfg(feature = "cluster")]
use running::{COMMAND_TIMEOUT, Redis};
