//! From a request on the socket to a worker: the acceptor.
//!
//! One thread, the acceptor, takes requests from tiny_http (`recv`) and
//! answers none of them itself: tiny_http writes the responses of one
//! connection in order, so a response can wait behind an endless event
//! stream, and a thread that waits there must never be the one that takes
//! the next request. The acceptor hands each request to a small pool of
//! workers (`pool.rs`), one request per connection at a time and in order
//! (`connections.rs`); a request that arrives behind an open event stream
//! ends that stream first.
//!
//! Workers route each request (`route.rs`). A request whose body tiny_http
//! has not read yet is handled under a deadline (`reaper.rs`), so a client
//! that stops sending cannot hold a worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use log::error;
use sse_hub_tiny_http::Request;

use crate::config::Config;
use crate::core::Hub;

use super::assets::Assets;
use super::connections::{Admitted, Connections};
use super::pool::Pool;
use super::reaper::Reaper;
use super::reply::Replies;
use super::route::route;

/// Everything a worker needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) hub: Hub,
    pub(crate) reaper: Reaper,
    pub(crate) replies: Replies,
    pub(crate) connections: Connections,
    pub(crate) assets: Assets,
    pool: Pool,
    stopping: AtomicBool,
}

impl Context {
    pub(crate) fn new(config: Config, replies: Replies, hub: Hub, reaper: Reaper) -> Context {
        let assets = Assets::new(config.static_dir.clone());
        Context {
            config,
            hub,
            reaper,
            replies,
            connections: Connections::default(),
            pool: Pool::new(),
            assets,
            stopping: AtomicBool::new(false),
        }
    }

    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Queues a request for a worker, starting one if none is free.
    fn submit(self: &Arc<Context>, request: Request) {
        if self.pool.queue(request) {
            let ctx = Arc::clone(self);
            if let Err(e) = self.pool.start_worker(move |request| route(&ctx, request)) {
                error!("cannot start a request worker: {e}");
            }
        }
    }
}

/// A request in progress on its connection. Dropping it (when the request
/// is answered, its stream has ended, or its handler panicked) lets the next
/// request of the same connection run.
pub(crate) struct InProgress {
    ctx: Arc<Context>,
    peer: Option<SocketAddr>,
}

impl InProgress {
    pub(crate) fn new(ctx: &Arc<Context>, peer: Option<SocketAddr>) -> InProgress {
        InProgress {
            ctx: Arc::clone(ctx),
            peer,
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Some(peer) = self.peer
            && let Some(next) = self.ctx.connections.finish(peer)
        {
            self.ctx.submit(next);
        }
    }
}

/// Takes requests from tiny_http and hands them out until the server stops.
///
/// # Errors
///
/// The error tiny_http reported if it stopped taking requests on its own.
pub(crate) fn accept(
    server: &sse_hub_tiny_http::Server,
    ctx: &Arc<Context>,
) -> std::io::Result<()> {
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(_) if ctx.stopping() => return Ok(()),
            Err(e) => return Err(e),
        };
        match ctx.connections.admit(request) {
            Admitted::Now(request) => ctx.submit(request),
            Admitted::Waiting {
                end_stream: Some(client),
            } => ctx
                .hub
                .close(client, "a request was pipelined behind its stream"),
            Admitted::Waiting { end_stream: None } => {}
        }
    }
}
