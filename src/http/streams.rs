//! Connections that carry an open event stream, and the requests parked
//! behind them.
//!
//! tiny_http keeps reading a keep-alive connection after handing out a
//! request, and writes that connection's responses strictly in order. So a
//! request pipelined behind `GET /events` on the same connection cannot be
//! answered before the (endless) stream ends, and a worker that tried would
//! wait forever. The acceptor therefore looks every request up here by its
//! peer address (which names one TCP connection): if that connection is
//! streaming, the request is parked and the stream is ended, after which the
//! parked requests are answered in order. Browsers never pipeline; this is
//! about keeping a hostile or confused client from stalling the server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tiny_http::{Method, Request};

use crate::hub::ClientId;

/// True for the one kind of request whose response never ends by itself.
pub(crate) fn opens_stream(request: &Request) -> bool {
    *request.method() == Method::Get && super::path_of(request.url()) == "/events"
}

/// What [`Streams::park`] did with a request.
pub(crate) enum Parked {
    /// The connection is not streaming: here is the request back.
    No(Request),
    /// The request waits behind a stream; end that stream (if it has a
    /// client yet, it is given here, the first time only).
    Behind(Option<ClientId>),
}

#[derive(Default)]
pub(crate) struct Streams {
    open: Mutex<HashMap<SocketAddr, Slot>>,
}

#[derive(Default)]
struct Slot {
    client: Option<ClientId>,
    parked: Vec<Request>,
}

impl Streams {
    /// Notes that the connection from `peer` is about to stream (called by
    /// the acceptor, before the next request of that connection can arrive).
    pub(crate) fn open(&self, peer: SocketAddr) {
        self.lock().insert(peer, Slot::default());
    }

    /// Parks `request` if its connection is streaming.
    pub(crate) fn park(&self, request: Request) -> Parked {
        let Some(peer) = request.remote_addr().copied() else {
            return Parked::No(request);
        };
        let mut open = self.lock();
        let Some(slot) = open.get_mut(&peer) else {
            return Parked::No(request);
        };
        let first = slot.parked.is_empty();
        slot.parked.push(request);
        Parked::Behind(if first { slot.client } else { None })
    }

    /// Records which client streams on `peer`'s connection. Returns true if
    /// requests are parked already, so the stream must end at once.
    pub(crate) fn attach(&self, peer: SocketAddr, client: ClientId) -> bool {
        match self.lock().get_mut(&peer) {
            Some(slot) => {
                slot.client = Some(client);
                !slot.parked.is_empty()
            }
            None => false,
        }
    }

    /// The stream on `peer`'s connection has ended; returns the requests
    /// that waited behind it and can be answered now, oldest first.
    ///
    /// If one of them opens a stream again, it is the last one returned and
    /// the connection stays marked, with the requests after it still parked,
    /// all in one step so that no request of that connection can slip past.
    pub(crate) fn close(&self, peer: SocketAddr) -> Vec<Request> {
        let mut open = self.lock();
        let Some(slot) = open.remove(&peer) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        let mut parked = slot.parked.into_iter();
        while let Some(request) = parked.next() {
            let streams = opens_stream(&request);
            ready.push(request);
            if streams {
                let parked = parked.collect();
                open.insert(
                    peer,
                    Slot {
                        client: None,
                        parked,
                    },
                );
                break;
            }
        }
        ready
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
