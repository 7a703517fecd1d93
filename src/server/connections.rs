//! One request at a time per connection, in the order it was sent.
//!
//! tiny_http reads a connection's next request as soon as the previous one
//! is handed out (at once, when its body was small enough to read ahead), so
//! without this table two requests of one keep-alive connection could run on
//! two workers at the same time: pipelined publishes would reach the hub out
//! of order. The acceptor therefore admits a request only when its
//! connection (named by the peer address) has nothing in progress; a later
//! one waits here, and the worker that finishes a request takes the next one
//! of the same connection.
//!
//! An event stream is a request in progress that never finishes by itself,
//! and tiny_http writes a connection's responses strictly in order, so
//! nothing behind a stream could ever be answered. A request that arrives
//! behind one therefore ends that stream, after which it is answered.
//! Browsers never pipeline; this keeps a hostile or confused client from
//! holding requests (and workers) forever.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use sse_hub_tiny_http::Request;

use crate::core::command::ClientId;

/// What [`Connections::admit`] decided.
pub(crate) enum Admitted {
    /// Nothing else of this connection is in progress: handle it now.
    Now(Request),
    /// It waits for the request in progress on its connection; if that one
    /// is an event stream, end it (the stream's client is given once, with
    /// the first request to wait).
    Waiting { end_stream: Option<ClientId> },
}

#[derive(Default)]
pub(crate) struct Connections {
    busy: Mutex<HashMap<SocketAddr, Slot>>,
}

#[derive(Default)]
struct Slot {
    /// The client streaming on this connection, if it is an event stream.
    stream: Option<ClientId>,
    waiting: VecDeque<Request>,
}

impl Connections {
    /// Admits `request`, or queues it behind its connection's request in
    /// progress. Called by the acceptor, in the order requests arrive.
    pub(crate) fn admit(&self, request: Request) -> Admitted {
        let Some(peer) = request.remote_addr().copied() else {
            return Admitted::Now(request);
        };
        match self.lock().entry(peer) {
            Entry::Vacant(vacant) => {
                vacant.insert(Slot::default());
                Admitted::Now(request)
            }
            Entry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                slot.waiting.push_back(request);
                let first = slot.waiting.len() == 1;
                Admitted::Waiting {
                    end_stream: slot.stream.filter(|_| first),
                }
            }
        }
    }

    /// Records that the request in progress on `peer`'s connection is the
    /// event stream of `client`. Returns true if requests wait behind it
    /// already, so the stream must end at once.
    pub(crate) fn streaming(&self, peer: SocketAddr, client: ClientId) -> bool {
        match self.lock().get_mut(&peer) {
            Some(slot) => {
                slot.stream = Some(client);
                !slot.waiting.is_empty()
            }
            None => false,
        }
    }

    /// The request in progress on `peer`'s connection is finished (answered,
    /// or its stream ended). Returns the next request of that connection,
    /// which is now in progress, if one waits.
    pub(crate) fn finish(&self, peer: SocketAddr) -> Option<Request> {
        let mut busy = self.lock();
        let Entry::Occupied(mut occupied) = busy.entry(peer) else {
            return None;
        };
        let slot = occupied.get_mut();
        slot.stream = None;
        let next = slot.waiting.pop_front();
        if next.is_none() {
            occupied.remove();
        }
        next
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
