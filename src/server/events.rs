//! `GET /events`: turn a request into a subscriber with a thread of its own
//! that writes its stream.
//!
//! On the worker: read the query (`channel=`, `lastEventId=`) and the
//! `Last-Event-ID` header (400 if they are bad), register the subscriber
//! with the hub (503 if the hub is full), and start its thread (503 if the
//! system refuses one). The thread writes the whole stream (`core/writer.rs`)
//! until it ends.
//!
//! The thread runs only that short write path, so that its stack, of which
//! every page once touched stays in memory for the stream's whole life,
//! stays small: thousands of subscribers each keep one.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use log::{debug, warn};
use sse_hub_tiny_http::{HTTPVersion, Method, Request};

use crate::core::writer::{EventStream, Framing, StreamRequest};
use crate::error::Error;

use super::accept::{Context, InProgress};
use super::reply::Refusal;
use super::route::{has_body, header_value, method_not_allowed, query_of};

/// The stream thread's stack: only the pages it touches count towards
/// memory use, and it touches few; the rest is room for a panic message and
/// backtrace.
const WRITER_STACK: usize = 128 * 1024;

/// Answers `GET /events` (on a worker): either an error now, or a thread
/// that owns the request, and its connection's `in_progress`, from here on.
pub(super) fn subscribe(ctx: &Arc<Context>, request: Request, in_progress: InProgress) {
    if *request.method() != Method::Get {
        return method_not_allowed(ctx, request, "GET, OPTIONS");
    }
    if has_body(&request) {
        // Refused rather than drained: a body that never ends would hold
        // the stream before its first byte.
        return ctx.replies.refuse(request, &Refusal::UnexpectedBody);
    }
    let http_1_1 = *request.http_version() >= HTTPVersion(1, 1);
    let wanted = StreamRequest::from_query(
        query_of(request.url()),
        header_value(&request, "Last-Event-ID"),
    )
    .and_then(|wanted| wanted.cors_origin(ctx.replies.origin()));
    let wanted = match wanted {
        Ok(wanted) => wanted
            .framing(if http_1_1 {
                Framing::Chunked
            } else {
                Framing::CloseDelimited
            })
            .peer(request.remote_addr().copied()),
        Err(e) => return ctx.replies.refuse(request, &Refusal::from(e)),
    };
    let wanted = if ctx.config.compress {
        wanted.offer_gzip(header_value(&request, "Accept-Encoding"))
    } else {
        wanted
    };
    if ctx.hub.counters().clients.load(Ordering::Relaxed) >= ctx.config.hub.max_clients {
        return refuse(ctx, request, &Error::HubFull);
    }
    let stream = match EventStream::open(&ctx.hub, wanted) {
        Ok(stream) => stream,
        Err(e) => return refuse(ctx, request, &e),
    };
    let client = stream.client();
    if let Some(peer) = request.remote_addr()
        && ctx.connections.streaming(*peer, client)
    {
        ctx.hub
            .close(client, "a request was pipelined behind its stream");
    }

    // The thread takes the request, the stream and the connection's place
    // in line; if it cannot start, they come back here for the 503.
    let (handoff, taken) = crossbeam_channel::bounded::<(Request, EventStream, InProgress)>(1);
    let _ = handoff.send((request, stream, in_progress));
    let started = thread::Builder::new()
        .name("writer".into())
        .stack_size(WRITER_STACK)
        .spawn({
            let taken = taken.clone();
            move || {
                if let Ok((request, stream, in_progress)) = taken.try_recv() {
                    // Nothing can follow an endless response on this
                    // connection, so tiny_http stops reading it (freeing its
                    // thread and socket clone), and the connection closes
                    // when the stream is done.
                    stream.run(request.into_closing_writer());
                    drop(in_progress);
                }
            }
        });
    if let Err(e) = started {
        warn!("cannot start a stream thread: {e}");
        if let Ok((request, stream, _in_progress)) = taken.try_recv() {
            drop(stream); // unsubscribes
            refuse(ctx, request, &Error::HubFull);
        }
    }
}

/// 503 with `Retry-After`, and the connection closes: a subscriber turned
/// away for want of room must not keep a thread and a descriptor of the
/// very capacity it was refused while it waits to try again.
fn refuse(ctx: &Context, request: Request, error: &Error) {
    let http_1_1 = *request.http_version() >= HTTPVersion(1, 1);
    let reply = ctx.replies.unavailable_bytes(http_1_1, error);
    let mut out = request.into_closing_writer();
    if let Err(e) = out.write_all(&reply).and_then(|()| out.flush()) {
        debug!("503 not delivered: {e}");
    }
}
