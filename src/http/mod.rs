//! The HTTP side: from a request on the socket to a route.
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
//! Workers route: `/events` starts a subscriber's writer thread
//! (`events.rs`), `/broadcast` publishes through the hub (`broadcast.rs`),
//! the rest are small replies (`/healthz`, `/stats`, `/metrics`, the web
//! client from `assets.rs`). A request whose body tiny_http has not read yet
//! is handled under a deadline (`reaper.rs`), so a client that stops sending
//! cannot hold a worker.

mod assets;
mod broadcast;
mod connections;
mod events;
pub(crate) mod listener;
mod pool;
pub(crate) mod reaper;

use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{debug, error};
use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::config::Config;
use crate::error::Error;
use crate::hub::HubHandle;

use assets::Assets;
use connections::{Admitted, Connections};
use pool::Pool;
use reaper::Reaper;

/// Everything a worker needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) hub: HubHandle,
    pub(crate) reaper: Reaper,
    connections: Connections,
    pool: Pool,
    assets: Assets,
    cors: Header,
    stopping: AtomicBool,
}

/// The `Access-Control-Allow-Origin` header that every response carries.
pub(crate) fn cors_header(config: &Config) -> Result<Header, Error> {
    header("Access-Control-Allow-Origin", &config.cors_origin)
        .ok_or_else(|| Error::InvalidConfig("--cors-origin is not a valid header value".into()))
}

impl Context {
    /// `cors`: see [`cors_header`].
    pub(crate) fn new(config: Config, cors: Header, hub: HubHandle, reaper: Reaper) -> Context {
        let assets = Assets::new(config.static_dir.clone());
        Context {
            config,
            hub,
            reaper,
            connections: Connections::default(),
            pool: Pool::new(),
            assets,
            cors,
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
pub(crate) fn accept(server: &tiny_http::Server, ctx: &Arc<Context>) -> std::io::Result<()> {
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

/// Answers one request (on a worker thread).
fn route(ctx: &Arc<Context>, request: Request) {
    let in_progress = InProgress {
        ctx: Arc::clone(ctx),
        peer: request.remote_addr().copied(),
    };
    // Held until the request is answered and dropped: dropping a request
    // whose body was not read drains it, which may wait on the client too.
    let deadline = has_body(&request)
        .then(|| request.remote_addr().copied())
        .flatten()
        .map(|peer| ctx.reaper.arm(peer, ctx.config.body_timeout));

    if *request.method() == Method::Options {
        return preflight(ctx, request);
    }
    match path_of(request.url()) {
        "/events" => events::subscribe(ctx, request, in_progress),
        "/broadcast" => broadcast::publish(ctx, request, deadline.as_ref()),
        "/healthz" => small_get(ctx, request, "text/plain; charset=utf-8", b"ok".to_vec()),
        "/stats" => match ctx.hub.stats() {
            Ok(stats) => small_get(ctx, request, "application/json", stats.to_json().into()),
            Err(e) => reply_error(ctx, request, 503, &e, &[]),
        },
        "/metrics" => match ctx.hub.stats() {
            Ok(stats) => {
                let text = stats.to_prometheus().into_bytes();
                small_get(
                    ctx,
                    request,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                );
            }
            Err(e) => reply_error(ctx, request, 503, &e, &[]),
        },
        _ => assets::serve(ctx, request),
    }
}

/// True if the request has a body, which we read (or drain, when the
/// request is dropped) from the socket ourselves, so it may wait on the
/// client.
fn has_body(request: &Request) -> bool {
    let chunked = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Transfer-Encoding"));
    chunked || request.body_length().is_some_and(|n| n > 0)
}

fn path_of(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

fn query_of(url: &str) -> &str {
    url.split_once('?').map_or("", |(_, query)| query)
}

/// A header from a name and value known to be valid ASCII.
fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Adds headers given as names and values known to be valid ASCII.
fn add_headers<R: Read>(response: &mut Response<R>, headers: &[(&str, &str)]) {
    for header in headers
        .iter()
        .filter_map(|(name, value)| header(name, value))
    {
        response.add_header(header);
    }
}

/// Sends `response`. A client that has gone away by now is no one's problem.
fn respond<R: Read>(request: Request, response: Response<R>) {
    if let Err(e) = request.respond(response) {
        debug!("response not delivered: {e}");
    }
}

/// Sends a complete response with the CORS header.
fn reply(
    ctx: &Context,
    request: Request,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[Header],
) {
    let length = body.len();
    let mut response = Response::new(
        StatusCode(status),
        Vec::new(),
        Cursor::new(body),
        Some(length),
        None,
    );
    response.add_header(ctx.cors.clone());
    add_headers(&mut response, &[("Content-Type", content_type)]);
    for extra in extra {
        response.add_header(extra.clone());
    }
    respond(request, response);
}

/// Compact JSON text of a value that always serializes (plain structs of
/// strings and numbers).
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The body of every error reply.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// `{"error": "<what>"}`.
fn error_json(what: &str) -> String {
    to_json(&ErrorBody { error: what })
}

/// Sends `{"error": "..."}` with `status`.
fn reply_error(ctx: &Context, request: Request, status: u16, error: &Error, extra: &[Header]) {
    send_error(ctx, request, status, &error.to_string(), extra);
}

fn send_error(ctx: &Context, request: Request, status: u16, what: &str, extra: &[Header]) {
    let body = error_json(what);
    reply(
        ctx,
        request,
        status,
        "application/json",
        body.into_bytes(),
        extra,
    );
}

/// `405 Method Not Allowed` listing what is.
fn method_not_allowed(ctx: &Context, request: Request, allow: &str) {
    let what = format!(
        "method {} is not allowed here; use {allow}",
        request.method()
    );
    let allow = header("Allow", allow).into_iter().collect::<Vec<_>>();
    send_error(ctx, request, 405, &what, &allow);
}

/// A GET (or HEAD) route with a fixed body.
fn small_get(ctx: &Context, request: Request, content_type: &str, body: Vec<u8>) {
    match request.method() {
        Method::Get | Method::Head => reply(ctx, request, 200, content_type, body, &[]),
        _ => method_not_allowed(ctx, request, "GET, HEAD, OPTIONS"),
    }
}

/// CORS preflight: any route, `204` with what browsers need to know.
fn preflight(ctx: &Context, request: Request) {
    let mut response = Response::empty(204).with_header(ctx.cors.clone());
    add_headers(
        &mut response,
        &[
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            (
                "Access-Control-Allow-Headers",
                "Content-Type, Authorization, Last-Event-ID",
            ),
            ("Access-Control-Max-Age", "86400"),
        ],
    );
    respond(request, response);
}
