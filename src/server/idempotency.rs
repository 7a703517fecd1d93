//! `Idempotency-Key` on `POST /broadcast`: a publisher that retries a
//! request whose answer it never saw (a timeout, a cut connection) sends
//! the same key, and the hub publishes only once. A repeat within
//! [`WINDOW`] publishes nothing and gets the first reply again, with
//! `Idempotent-Replayed: true` (the IETF draft "The Idempotency-Key HTTP
//! Header Field").
//!
//! One hub keeps the keys in memory ([`LocalKeys`]), bounded in number and
//! bytes: past either bound the oldest are forgotten early, and the log
//! says so once. A cluster keeps them in Redis ([`SharedKeys`]), so a
//! retry that reaches another node is caught too.
//!
//! A key is claimed before the publish and holds the reply after it. Only a
//! publish that succeeded is remembered: after an error the key is free
//! again, so the retry can succeed. A repeat that arrives while the first
//! is still being published waits for its reply, up to [`WAIT`]; past it,
//! `503` with `Retry-After`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::warn;

use crate::error::Error;

/// How long a key holds its reply.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);

/// How long a repeat waits for the first publish with its key to finish.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Keys one hub remembers at most.
const MAX_KEYS: usize = 100_000;

/// Bytes of keys and replies one hub remembers at most.
const MAX_BYTES: usize = 16 << 20;

/// The longest key (the draft leaves it to the server).
const MAX_KEY_LEN: usize = 128;

/// Checks an `Idempotency-Key` value: 1 to 128 visible ASCII characters.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        ));
    }
    Ok(())
}

/// What claiming a key found.
pub(crate) enum Claim {
    /// The key is new: publish, then [`Keys::complete`] or
    /// [`Keys::release`] it.
    New,
    /// A publish with this key succeeded: its reply.
    Replay(Vec<u8>),
}

/// Where the keys live: this process, or the cluster's Redis.
pub(crate) enum Keys {
    Local(LocalKeys),
    #[cfg(feature = "cluster")]
    Shared(SharedKeys),
}

/// What a claimed key holds in Redis until its publish has a reply.
#[cfg(feature = "cluster")]
const PENDING: &[u8] = b"pending";

/// How often a repeat looks in Redis whether the first publish finished.
#[cfg(feature = "cluster")]
const POLL: Duration = Duration::from_millis(20);

/// The keys of a cluster, in its Redis (`cluster/keys.rs`): claiming is
/// `SET <key> pending NX PX <window>`, so exactly one node gets a key; the
/// reply replaces `pending` when the publish succeeded, and a failed
/// publish deletes the key. A repeat that finds `pending` asks again every
/// [`POLL`] for as long as a repeat may wait.
#[cfg(feature = "cluster")]
pub(crate) struct SharedKeys(crate::cluster::keys::SharedKeys);

#[cfg(feature = "cluster")]
impl SharedKeys {
    pub(crate) fn new(cluster: &crate::cluster::ClusterConfig) -> Result<SharedKeys, Error> {
        crate::cluster::keys::SharedKeys::new(cluster, "idempotency").map(SharedKeys)
    }

    fn claim(&self, key: &str) -> Result<Claim, Error> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.0.set_new(key, PENDING, WINDOW)? {
                return Ok(Claim::New);
            }
            match self.0.get(key)? {
                Some(reply) if reply != PENDING => return Ok(Claim::Replay(reply)),
                // Gone in between (its publish failed): claim it again.
                None => {}
                Some(_) if Instant::now() >= deadline => return Err(Error::PublishInProgress),
                Some(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn complete(&self, key: &str, reply: &[u8]) {
        if let Err(e) = self.0.set(key, reply, WINDOW) {
            // The publish went out and its reply is on its way; only a
            // retry could publish again.
            warn!("Idempotency-Key {key}: the reply was not stored: {e}");
        }
    }

    fn release(&self, key: &str) {
        if let Err(e) = self.0.delete(key) {
            warn!("Idempotency-Key {key}: not released, it expires by itself: {e}");
        }
    }
}

impl Keys {
    /// Claims `key`, or finds the reply of the publish that has it.
    ///
    /// # Errors
    ///
    /// [`Error::RedisUnavailable`] if the cluster's Redis cannot be asked;
    /// [`Error::PublishInProgress`] if the first publish with the key is
    /// still running after [`WAIT`]. Both are 503: try again.
    pub(crate) fn claim(&self, key: &str) -> Result<Claim, Error> {
        match self {
            Keys::Local(keys) => keys.claim(key),
            #[cfg(feature = "cluster")]
            Keys::Shared(keys) => keys.claim(key),
        }
    }

    /// The publish with `key` succeeded: remember its reply.
    pub(crate) fn complete(&self, key: &str, reply: &[u8]) {
        match self {
            Keys::Local(keys) => keys.complete(key, reply),
            #[cfg(feature = "cluster")]
            Keys::Shared(keys) => keys.complete(key, reply),
        }
    }

    /// The publish with `key` failed: a retry may publish.
    pub(crate) fn release(&self, key: &str) {
        match self {
            Keys::Local(keys) => keys.release(key),
            #[cfg(feature = "cluster")]
            Keys::Shared(keys) => keys.release(key),
        }
    }
}

enum Slot {
    Pending,
    Done(Vec<u8>),
}

struct Entry {
    slot: Slot,
    /// When the key was claimed; it is forgotten [`WINDOW`] later.
    since: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys in the order they were claimed, with when: the oldest first.
    /// A key released and claimed again has a stale line here, told apart
    /// by its time.
    order: VecDeque<(Instant, String)>,
    bytes: usize,
    /// The log said that the bounds forgot keys early.
    warned: bool,
}

/// The keys of one hub, in memory.
#[derive(Default)]
pub(crate) struct LocalKeys {
    inner: Mutex<Inner>,
    finished: Condvar,
}

impl LocalKeys {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claim(&self, key: &str) -> Result<Claim, Error> {
        let deadline = Instant::now() + WAIT;
        let mut inner = self.lock();
        loop {
            let now = Instant::now();
            inner.forget(now);
            match inner.entries.get(key).map(|e| &e.slot) {
                None => break,
                Some(Slot::Done(reply)) => return Ok(Claim::Replay(reply.clone())),
                Some(Slot::Pending) if now >= deadline => return Err(Error::PublishInProgress),
                Some(Slot::Pending) => {
                    inner = self
                        .finished
                        .wait_timeout(inner, deadline - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
            }
        }
        let now = Instant::now();
        inner.bytes += key.len();
        inner.entries.insert(
            key.to_owned(),
            Entry {
                slot: Slot::Pending,
                since: now,
            },
        );
        inner.order.push_back((now, key.to_owned()));
        Ok(Claim::New)
    }

    fn complete(&self, key: &str, reply: &[u8]) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(key) {
            entry.slot = Slot::Done(reply.to_vec());
            inner.bytes += reply.len();
        }
        self.finished.notify_all();
    }

    fn release(&self, key: &str) {
        let mut inner = self.lock();
        if inner.entries.remove(key).is_some() {
            inner.bytes -= key.len();
        }
        self.finished.notify_all();
    }
}

impl Inner {
    /// Forgets keys past [`WINDOW`], and the oldest finished ones while
    /// past a bound.
    fn forget(&mut self, now: Instant) {
        while let Some((since, key)) = self.order.front() {
            let expired = now.duration_since(*since) >= WINDOW;
            let over = self.entries.len() > MAX_KEYS || self.bytes > MAX_BYTES;
            if !expired && !over {
                break;
            }
            let entry = self.entries.get(key).filter(|e| e.since == *since);
            let Some(entry) = entry else {
                // A line left by a key that was released (and maybe
                // claimed again since).
                self.order.pop_front();
                continue;
            };
            if matches!(entry.slot, Slot::Pending) && !expired {
                break; // a publish in flight is never forgotten
            }
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&key) {
                self.bytes -= key.len();
                if let Slot::Done(reply) = entry.slot {
                    self.bytes -= reply.len();
                }
            }
            if !expired && !self.warned {
                self.warned = true;
                warn!(
                    "Idempotency-Key: more than {MAX_KEYS} keys or {} MiB of replies within \
                     {} s; the oldest are forgotten early",
                    MAX_BYTES >> 20,
                    WINDOW.as_secs()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_1_to_128() {
        assert!(check_key("a").is_ok());
        assert!(check_key(&"k".repeat(128)).is_ok());
        assert!(check_key("\"quoted-7f3a\"").is_ok());
        for bad in ["", " ", "a b", "é", "a\tb", &"k".repeat(129)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_replays_its_first_reply_and_a_failed_one_frees_it() {
        let keys = LocalKeys::default();
        assert!(matches!(keys.claim("a"), Ok(Claim::New)));
        keys.complete("a", b"{\"id\":\"1-0\",\"clients\":2}");
        match keys.claim("a") {
            Ok(Claim::Replay(reply)) => assert_eq!(reply, b"{\"id\":\"1-0\",\"clients\":2}"),
            _ => panic!("no replay"),
        }
        assert!(matches!(keys.claim("b"), Ok(Claim::New)));
        keys.release("b");
        assert!(matches!(keys.claim("b"), Ok(Claim::New)));
    }

    #[test]
    fn a_repeat_waits_for_the_first_publish_to_finish() {
        let keys = std::sync::Arc::new(LocalKeys::default());
        assert!(matches!(keys.claim("k"), Ok(Claim::New)));
        let waiter = {
            let keys = std::sync::Arc::clone(&keys);
            std::thread::spawn(move || match keys.claim("k") {
                Ok(Claim::Replay(reply)) => reply,
                _ => panic!("no replay"),
            })
        };
        keys.complete("k", b"first");
        assert_eq!(waiter.join().unwrap(), b"first");
    }

    #[test]
    fn past_the_bound_the_oldest_finished_keys_are_forgotten() {
        let keys = LocalKeys::default();
        for n in 0..=MAX_KEYS {
            let key = n.to_string();
            assert!(matches!(keys.claim(&key), Ok(Claim::New)));
            keys.complete(&key, b"r");
        }
        // The next claim makes room: the very first key is gone.
        assert!(matches!(keys.claim("one more"), Ok(Claim::New)));
        assert!(matches!(keys.claim("0"), Ok(Claim::New)));
        assert!(matches!(keys.claim("5"), Ok(Claim::Replay(_))));
        let inner = keys.lock();
        assert!(inner.entries.len() <= MAX_KEYS + 1);
        assert!(inner.warned);
    }
}
