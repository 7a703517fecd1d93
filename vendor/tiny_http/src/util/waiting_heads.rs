//! Patched: the connections waiting for a request head, oldest first, so
//! that the ones that have waited longest can be shed.
//!
//! A connection enters when it starts to wait for a head (just accepted, or
//! done with its previous request) and leaves when the head is read or the
//! connection ends. When the accept thread runs short of file descriptors,
//! or the system refuses a thread, the oldest are shed: their socket is
//! shut down, so that their thread reads the end of the stream, closes the
//! connection and is free for a new one. A flood of slow heads (a client
//! that sends one byte every few seconds, a thousand times over) then never
//! keeps a new client from being served. With a bound, shedding starts as
//! soon as more connections than that wait, before anything runs short.

use std::collections::BTreeMap;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::util::refined_tcp_stream::SocketControl;

/// The registry of connections waiting for a head.
pub(crate) struct WaitingHeads {
    /// By order of entry: the smallest key has waited longest.
    entries: Mutex<BTreeMap<u64, SocketControl>>,
    next: AtomicU64,
    max: Option<usize>,
}

/// A connection's place in the registry; it leaves when this is dropped.
pub(crate) struct Waiting {
    heads: Arc<WaitingHeads>,
    key: u64,
}

impl WaitingHeads {
    /// A registry that sheds the oldest as soon as more than `max` wait.
    pub(crate) fn new(max: Option<usize>) -> WaitingHeads {
        WaitingHeads {
            entries: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            max,
        }
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<u64, SocketControl>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters a connection that starts to wait for a head now.
    pub(crate) fn enter(heads: &Arc<WaitingHeads>, socket: SocketControl) -> Waiting {
        let key = heads.next.fetch_add(1, Ordering::Relaxed);
        let over = {
            let mut entries = heads.entries();
            entries.insert(key, socket);
            heads.max.map_or(0, |max| entries.len().saturating_sub(max))
        };
        if over > 0 {
            heads.shed_oldest(over);
        }
        Waiting {
            heads: Arc::clone(heads),
            key,
        }
    }

    /// Sheds up to `n` of the connections that have waited longest; how
    /// many were shed.
    pub(crate) fn shed_oldest(&self, n: usize) -> usize {
        let shed: Vec<SocketControl> = {
            let mut entries = self.entries();
            let mut shed = Vec::with_capacity(n.min(entries.len()));
            while shed.len() < n {
                match entries.pop_first() {
                    Some((_, socket)) => shed.push(socket),
                    None => break,
                }
            }
            shed
        };
        for socket in &shed {
            let _ = socket.shutdown(Shutdown::Both);
        }
        shed.len()
    }

    /// How many connections wait for a head.
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.heads.entries().remove(&self.key);
    }
}
