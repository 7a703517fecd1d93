//! `GET /events`: turn a request into a subscriber, and write its stream
//! on this same thread, the one that serves its connection.
//!
//! Read the query (`channel=`, `lastEventId=`) and the `Last-Event-ID`
//! header (400 if they are bad), check the token a private channel needs
//! (`access.rs`: 401 or 403), register the subscriber with the hub (503
//! if the hub is full), then write the whole stream (`core/stream/`)
//! until it ends, while the hang-up watcher (`core/hangup.rs`) watches the
//! socket. When the stream ends the thread goes back to the connection: a
//! request that was pipelined behind the stream is answered next.

use std::io::Write;
use std::sync::Arc;

use log::{debug, warn};
use sse_hub_tiny_http::{HTTPVersion, Method, Request};

use crate::core::stream::{EventStream, Framing, StreamRequest};
use crate::error::Error;

use super::Context;
use super::reply::Refusal;
use super::route::{has_body, header_list, header_value, method_not_allowed, query_of};

/// Answers `GET /events`: an error, or the stream until it ends.
#[inline(never)]
pub(super) fn subscribe(ctx: &Arc<Context>, request: Request) {
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
        wanted.offer_gzip(header_list(&request, "Accept-Encoding").as_deref())
    } else {
        wanted
    };
    let wanted = match ctx.access.check_subscriber(&request, wanted.channels()) {
        Ok(user) => wanted.user(user),
        Err(refusal) => return ctx.replies.refuse(request, &refusal),
    };
    let mut stream = match EventStream::open(&ctx.hub, wanted) {
        Ok(stream) => stream,
        Err(e) => return refuse(ctx, request, &e),
    };
    let client = stream.client();
    if let Some(fd) = request.socket_fd().filter(|_| plain(ctx)) {
        // The writer below writes straight to this socket, flushing every
        // batch: the hub may send to it while this thread sleeps.
        stream.deliver_directly(fd);
    }
    let _watch = request.socket_fd().and_then(|fd| {
        stream
            .watch_with(&ctx.hangups, fd)
            .map_err(|e| warn!("client {client}: cannot watch its connection: {e}"))
            .ok()
    });
    // Bytes already read behind this request are a request pipelined
    // behind the stream; the watcher sees those that come later.
    if request.bytes_read_ahead() > 0 {
        ctx.hub
            .close(client, "a request was pipelined behind its stream");
    }
    stream.run(request.into_writer());
    // `_watch` ends here, while the connection is still open.
}

/// True if connections are plain TCP, not TLS.
fn plain(ctx: &Context) -> bool {
    #[cfg(feature = "tls")]
    return ctx.config.tls.is_none();
    #[cfg(not(feature = "tls"))]
    return true;
}

/// 503 with `Retry-After`, and the connection closes: a subscriber turned
/// away for want of room must not keep a thread and a descriptor of the
/// very capacity it was refused while it waits to try again.
fn refuse(ctx: &Context, request: Request, error: &Error) {
    let reply = error.to_http_response(Some(ctx.replies.origin()));
    request.stop_reading();
    let mut out = request.into_writer();
    if let Err(e) = out.write_all(&reply).and_then(|()| out.flush()) {
        debug!("503 not delivered: {e}");
    }
}
