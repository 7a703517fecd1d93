//! The reader: one thread per node that tails the Redis stream and hands
//! its entries to the hub, in the stream's order.
//!
//! It owns the node's view of Redis: it alone says whether Redis is up or
//! down (in the hub's counters, read by `/stats`, `/metrics` and by
//! publishers, which fail fast while it is down), and it logs each change
//! of that state once.
//!
//! The first time it reaches Redis it reads the stream's recent past into
//! the hub's memory (`XREVRANGE`), so that a restarted node replays from
//! memory. Then it loops on `XREAD BLOCK` from the last entry it has seen.
//! When a call fails it drops the connection, marks Redis down, waits
//! (capped exponential backoff with jitter, so that many nodes do not
//! come back in step) and connects again, reading on from that same last
//! entry: nothing added meanwhile through other nodes is lost. If the
//! stream dropped entries it had not read yet (it was cut off for longer
//! than the stream's length lasts), it tells the hub, which closes the open
//! streams so their clients resume and are told of the gap.
//!
//! A panic inside the loop is caught, logged, and the loop starts again
//! from the last entry handed over: a bug must not leave a deaf node.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use log::{error, info, warn};
use redis::{Connection, RedisError};

use crate::core::event_id::EventId;
use crate::core::metrics::{Counters, REDIS_DOWN, REDIS_UP};
use crate::core::upstream::Feed;

use super::Redis;
use super::stream;

/// How long one `XREAD` waits for an entry: also how soon the reader sees
/// that the hub has stopped.
const BLOCK_MS: u64 = 500;

/// The first wait after a failure, doubled after each failure up to
/// [`BACKOFF_CAP`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to reach Redis.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What the reader shares with the rest of the node.
pub(crate) struct Shared {
    /// Set when the hub stops, or when every handle to it is gone.
    pub(crate) stop: AtomicBool,
    /// How many times Redis went out of reach: connections opened before
    /// the last time are not to be trusted.
    pub(crate) outages: AtomicU64,
    pub(crate) counters: Arc<Counters>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The reader's state; it lives outside the loop, so a panic in the loop
/// loses none of it.
pub(crate) struct Reader {
    redis: Arc<Redis>,
    feed: Feed,
    shared: Arc<Shared>,
    /// Messages the hub keeps, so as many are read when first priming.
    history: usize,
    /// The last entry handed to the hub (or skipped); `None` until the
    /// reader first reached Redis.
    cursor: Option<EventId>,
    /// Whether Redis was up at the last change logged.
    announced: Option<bool>,
    backoff: Backoff,
}

impl Reader {
    pub(crate) fn new(
        redis: Arc<Redis>,
        feed: Feed,
        shared: Arc<Shared>,
        history: usize,
    ) -> Reader {
        Reader {
            redis,
            feed,
            shared,
            history,
            cursor: None,
            announced: None,
            backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_CAP),
        }
    }

    /// Tries once to reach Redis and read its recent past: done before the
    /// node starts serving, so that a node whose Redis is up is up from
    /// its first request. Returns the connection to tail with.
    pub(crate) fn first_contact(&mut self) -> Option<Connection> {
        match self.connect() {
            Ok(connection) => Some(connection),
            Err(e) => {
                self.went_down(&e);
                None
            }
        }
    }

    /// Runs until the hub stops; restarts its loop after a panic.
    pub(crate) fn run(mut self, first: Option<Connection>) {
        let mut first = Some(first);
        restart_after_panic(
            &mut self,
            |reader| reader.tail(first.take().flatten()),
            |reader| {
                // The panic hook has logged the panic itself.
                error!(
                    "the Redis reader failed; it starts again from entry {}",
                    reader
                        .cursor
                        .map_or_else(|| "(none yet)".to_owned(), |c| c.to_string())
                );
                reader.set_state(false);
                thread::sleep(reader.backoff.next());
            },
        );
    }

    /// Connects (unless given a connection), reads, and on failure waits
    /// and connects again; returns when the hub has stopped.
    fn tail(&mut self, mut connection: Option<Connection>) {
        while !self.shared.stopped() {
            let mut live = match connection.take() {
                Some(live) => live,
                None => match self.connect() {
                    Ok(live) => live,
                    Err(e) => {
                        self.went_down(&e);
                        thread::sleep(self.backoff.next());
                        continue;
                    }
                },
            };
            let Some(cursor) = self.cursor else {
                continue; // connect() sets it
            };
            match self.read(&mut live, cursor) {
                Ok(true) => {}
                Ok(false) => return, // the hub has stopped
                Err(e) => {
                    self.went_down(&e);
                    thread::sleep(self.backoff.next());
                    continue;
                }
            }
            connection = Some(live);
        }
    }

    /// Connects; the first time, reads the recent past into the hub, and
    /// afterwards checks that the stream still holds what was not read yet.
    fn connect(&mut self) -> Result<Connection, RedisError> {
        let read_timeout = Duration::from_millis(BLOCK_MS) + super::COMMAND_TIMEOUT;
        let mut connection = self.redis.connect(read_timeout)?;
        let key = &self.redis.key;
        match self.cursor {
            None => {
                let (entries, newest) = stream::newest(&mut connection, key, self.history)?;
                let extent = stream::extent(&mut connection, key)?;
                let complete = entries.len() < self.history;
                let run = self.feed.run;
                let entries = entries.into_iter().map(|e| e.into_incoming(run)).collect();
                // Until the hub has them, nothing can be published here.
                if self
                    .feed
                    .prime(entries, complete, extent.dropped_through())
                    .is_err()
                {
                    self.shared.stop.store(true, Ordering::Relaxed);
                }
                self.cursor = Some(newest.unwrap_or(EventId::new(0, 0)));
            }
            Some(cursor) => {
                let extent = stream::extent(&mut connection, key)?;
                if let Some(trimmed) = extent.dropped_through().filter(|&t| t > cursor) {
                    warn!(
                        "redis: the stream dropped entries after {cursor} before this node \
                         read them (up to {trimmed}); open streams are closed to resume with a gap"
                    );
                    let _ = self.feed.missed(trimmed);
                }
            }
        }
        self.set_state(true);
        self.backoff.reset();
        Ok(connection)
    }

    /// One `XREAD`; hands what came to the hub. `Ok(false)` once the hub
    /// has stopped.
    fn read(&mut self, connection: &mut Connection, cursor: EventId) -> Result<bool, RedisError> {
        let (entries, last) = stream::read_after(connection, &self.redis.key, cursor, BLOCK_MS)?;
        if !entries.is_empty() {
            let run = self.feed.run;
            let incoming = entries.into_iter().map(|e| e.into_incoming(run)).collect();
            if self.feed.ingest(incoming).is_err() {
                return Ok(false);
            }
        }
        if let Some(last) = last {
            self.cursor = Some(last);
        }
        Ok(!self.shared.stopped())
    }

    fn went_down(&mut self, why: &RedisError) {
        if self.announced != Some(false) {
            self.shared.outages.fetch_add(1, Ordering::Relaxed);
            warn!(
                "redis {}: out of reach ({why}); publishes get 503 until it is back, \
                 streams stay open; retrying",
                self.redis.addr
            );
        }
        self.set_state(false);
    }

    fn set_state(&mut self, up: bool) {
        if up && self.announced != Some(true) {
            info!(
                "redis {}: connected; reading stream `{}` after {}",
                self.redis.addr,
                self.redis.key,
                self.cursor
                    .map_or_else(|| "-".to_owned(), |c| c.to_string())
            );
        }
        self.announced = Some(up);
        let state = if up { REDIS_UP } else { REDIS_DOWN };
        self.shared.counters.redis.store(state, Ordering::Relaxed);
    }
}

/// Runs `body` on `state` until it returns; after a panic in it, calls
/// `recover` and runs it again. `state` lives outside the unwinding, so
/// what `body` had recorded before the panic is kept.
fn restart_after_panic<S>(
    state: &mut S,
    mut body: impl FnMut(&mut S),
    mut recover: impl FnMut(&mut S),
) {
    while panic::catch_unwind(AssertUnwindSafe(|| body(state))).is_err() {
        recover(state);
    }
}

/// Waits that double from `first` up to `cap`, each a random time between
/// half and all of the current step, so that nodes that lost Redis
/// together do not all knock at the same moment.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    step: Duration,
    random: RandomState,
    draws: u64,
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            step: first,
            // Seeded from the operating system's random source.
            random: RandomState::new(),
            draws: 0,
        }
    }

    /// The next wait.
    pub(crate) fn next(&mut self) -> Duration {
        self.draws += 1;
        let half = self.step / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        let wait = half + Duration::from_micros(self.random.hash_one(self.draws) % spread);
        self.step = (self.step * 2).min(self.cap);
        wait
    }

    /// Back to the first step, after a success.
    pub(crate) fn reset(&mut self) {
        self.step = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
        let first = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        let mut backoff = Backoff::new(first, cap);
        let mut step = first;
        for _ in 0..10 {
            let wait = backoff.next();
            assert!(
                wait >= step / 2 && wait <= step,
                "{wait:?} for step {step:?}"
            );
            step = (step * 2).min(cap);
        }
        assert!(backoff.next() >= cap / 2);
        backoff.reset();
        assert!(backoff.next() <= first);
    }

    #[test]
    fn a_panic_restarts_the_loop_from_where_it_was() {
        // Each run records a step, and the first two panic right after.
        let mut state = (Vec::new(), 0);
        let mut panics = 0;
        restart_after_panic(
            &mut state,
            |(steps, _)| loop {
                steps.push(steps.len());
                if panics < 2 {
                    panics += 1;
                    panic!("a bug in the loop");
                }
                if steps.len() == 5 {
                    return;
                }
            },
            |(_, recoveries)| *recoveries += 1,
        );
        assert_eq!(state, (vec![0, 1, 2, 3, 4], 2), "nothing recorded is lost");
    }

    #[test]
    fn backoff_waits_differ() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| backoff.next()).collect();
        assert!(waits.len() > 1, "jitter: {waits:?}");
    }
}
