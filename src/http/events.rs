//! `GET /events`: turn a request into a subscriber with its own writer
//! thread.
//!
//! On the worker: read the query (`channel=`, `lastEventId=`) and the
//! `Last-Event-ID` header (400 if they are bad), start the writer thread
//! (503 if the system refuses one), register with the hub, naming that
//! thread as the one to wake (503 if the hub is full), and prepare the
//! opening of the stream: the response head, `retry:`, the `connection`
//! event, maybe a `gap` event, and the replay the hub owes this client. The
//! writer, handed all that, writes it and pumps live frames until the stream
//! ends (`client.rs`).
//!
//! The writer thread runs only that short write path, so that its stack, of
//! which every page once touched stays in memory for the stream's whole
//! life, stays small: thousands of subscribers each keep one.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use crossbeam_channel::Receiver;
use log::{debug, warn};
use serde::Serialize;
use tiny_http::{HTTPVersion, Method, Request};

use crate::channel::{Channel, channel_set};
use crate::client::{self, Stream};
use crate::error::Error;
use crate::event_id::EventId;
use crate::hub::{ClientId, Ended, Grant, SubscribeRequest};
use crate::metrics::Counters;
use crate::sse::{Frame, push_control_event};

use super::{
    Context, InProgress, error_json, has_body, method_not_allowed, query_of, reply_error, to_json,
};

/// The writer's stack: only the pages it touches count towards memory use,
/// and it touches few; the rest is room for a panic message and backtrace.
const WRITER_STACK: usize = 128 * 1024;

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// The data of the `connection` event.
#[derive(Serialize)]
struct Hello<'a> {
    client: String,
    channels: Vec<&'a str>,
}

/// The data of the `gap` event.
#[derive(Serialize)]
struct Gap<'a> {
    requested: &'a str,
    oldest: Option<String>,
}

/// What a subscriber asked for.
struct Wanted {
    channels: Vec<Channel>,
    /// The last event ID as given, if one was given (non-empty).
    last_event_id: Option<String>,
}

/// Everything a writer thread needs.
struct Subscriber {
    client: ClientId,
    request: Request,
    chunked: bool,
    /// The response head and the opening events, ready to write.
    head: Vec<u8>,
    opening: Vec<u8>,
    replay: Vec<Frame>,
    frames: Receiver<Frame>,
}

/// Answers `GET /events` (on a worker): either an error now, or a writer
/// thread that owns the request, and its connection's `in_progress`, from
/// here on.
pub(super) fn subscribe(ctx: &Arc<Context>, request: Request, in_progress: InProgress) {
    if *request.method() != Method::Get {
        return method_not_allowed(ctx, request, "GET, OPTIONS");
    }
    if has_body(&request) {
        // Refused rather than drained: a body that never ends would hold
        // the stream before its first byte.
        return reply_error(ctx, request, 400, &Error::UnexpectedBody, &[]);
    }
    let wanted = match wanted(&request) {
        Ok(wanted) => wanted,
        Err(e) => return reply_error(ctx, request, 400, &e, &[]),
    };
    if ctx.hub.counters().clients.load(Ordering::Relaxed) >= ctx.config.max_clients {
        return refuse(ctx, request, &Error::HubFull);
    }
    // The writer thread starts first, waiting for its subscriber: the hub
    // needs the thread to wake it. If it cannot start, nothing is registered
    // yet and the request gets a 503.
    let (handoff, setup) = crossbeam_channel::bounded::<Subscriber>(1);
    let writer_ctx = Arc::clone(ctx);
    let started = thread::Builder::new()
        .name("writer".into())
        .stack_size(WRITER_STACK)
        .spawn(move || {
            if let Ok(subscriber) = setup.recv() {
                let client = subscriber.client;
                let ended = stream(&writer_ctx, subscriber);
                writer_ctx.hub.unsubscribe(client, ended);
            }
            drop(in_progress);
        });
    let writer = match started {
        Ok(writer) => writer.thread().clone(),
        Err(e) => {
            warn!("cannot start a writer thread: {e}");
            return refuse(ctx, request, &Error::HubFull);
        }
    };

    let resume = wanted.last_event_id.as_deref().map(str::parse::<EventId>);
    let (queue, frames) = crossbeam_channel::unbounded();
    let grant = ctx.hub.register(SubscribeRequest {
        channels: wanted.channels.clone(),
        resume: resume.clone().and_then(Result::ok),
        queue,
        peer: request.remote_addr().copied(),
        waker: Some(writer),
    });
    let grant = match grant {
        Ok(grant) => grant,
        // Dropping `handoff` ends the waiting writer thread.
        Err(e) => return refuse(ctx, request, &e),
    };
    let client = grant.client;
    if let Some(peer) = request.remote_addr()
        && ctx.connections.streaming(*peer, client)
    {
        ctx.hub
            .close(client, "a request was pipelined behind its stream");
    }

    let chunked = *request.http_version() >= HTTPVersion(1, 1);
    let bad_id = resume.is_some_and(|r| r.is_err());
    let subscriber = Subscriber {
        client,
        head: response_head(ctx, chunked),
        opening: opening(ctx, &wanted, &grant, bad_id),
        replay: grant.replay.frames,
        frames,
        request,
        chunked,
    };
    // The writer waits on the other end (capacity 1: this never blocks).
    if let Err(unsent) = handoff.send(subscriber) {
        ctx.hub.unsubscribe(client, Ended::Closed);
        refuse(ctx, unsent.into_inner().request, &Error::HubFull);
    }
}

/// 503 with `Retry-After`, and the connection closes: a subscriber turned
/// away for want of room must not keep a thread and a descriptor of the
/// very capacity it was refused while it waits to try again.
fn refuse(ctx: &Context, request: Request, error: &Error) {
    let version = if *request.http_version() >= HTTPVersion(1, 1) {
        "HTTP/1.1"
    } else {
        "HTTP/1.0"
    };
    let body = error_json(&error.to_string());
    let reply = format!(
        "{version} 503 Service Unavailable\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {length}\r\n\
         Retry-After: {RETRY_AFTER_SECS}\r\n\
         Access-Control-Allow-Origin: {origin}\r\n\
         Connection: close\r\n\r\n{body}",
        length = body.len(),
        origin = ctx.config.cors_origin,
    );
    let mut out = request.into_closing_writer();
    if let Err(e) = out.write_all(reply.as_bytes()).and_then(|()| out.flush()) {
        debug!("503 not delivered: {e}");
    }
}

/// Reads channels and the last event ID from the query and headers.
fn wanted(request: &Request) -> Result<Wanted, Error> {
    let mut names = Vec::new();
    let mut from_query = None;
    for (key, value) in form_urlencoded::parse(query_of(request.url()).as_bytes()) {
        match &*key {
            "channel" => names.push(value.into_owned()),
            "lastEventId" => from_query = Some(value.into_owned()),
            _ => {}
        }
    }
    let channels = channel_set(names.iter().map(String::as_str))?;
    let from_header = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Last-Event-ID"))
        .map(|h| h.value.as_str().to_owned());
    // The header wins; an empty one counts as absent (a browser sends none
    // then, but other clients may).
    let last_event_id = from_header
        .filter(|id| !id.is_empty())
        .or(from_query.filter(|id| !id.is_empty()));
    Ok(Wanted {
        channels,
        last_event_id,
    })
}

/// The writer thread's work: write the opening, then live frames until the
/// queue closes or a write fails. Returns why the stream ended.
fn stream(ctx: &Context, subscriber: Subscriber) -> Ended {
    // Nothing can follow an endless response on this connection, so
    // tiny_http stops reading it (freeing its thread and socket clone), and
    // the connection closes when the stream is dropped.
    let mut out = subscriber.request.into_closing_writer();
    if let Err(e) = out.write_all(&subscriber.head) {
        return Ended::WriteFailed(e);
    }
    let mut stream = Stream::new(out, subscriber.chunked);
    stream.push(&subscriber.opening);
    let delivered = &ctx.hub.counters().delivered;
    let mut replayed = 0;
    for frame in &subscriber.replay {
        stream.push(frame);
        replayed += 1;
        if stream.batch_len() >= client::MAX_BATCH {
            if let Err(e) = stream.send() {
                return Ended::WriteFailed(e);
            }
            Counters::add(delivered, replayed);
            replayed = 0;
        }
    }
    if let Err(e) = stream.send() {
        return Ended::WriteFailed(e);
    }
    Counters::add(delivered, replayed);
    drop(subscriber.replay);

    let counters = ctx.hub.counters();
    match client::pump(
        &mut stream,
        &subscriber.frames,
        ctx.config.heartbeat,
        counters,
    ) {
        Ended::Closed => match stream.finish() {
            Ok(()) => Ended::Closed,
            Err(e) => Ended::WriteFailed(e),
        },
        failed => failed,
    }
}

/// The status line and headers of a stream.
fn response_head(ctx: &Context, chunked: bool) -> Vec<u8> {
    let (version, connection, framing) = if chunked {
        ("HTTP/1.1", "keep-alive", "Transfer-Encoding: chunked\r\n")
    } else {
        ("HTTP/1.0", "close", "")
    };
    format!(
        "{version} 200 OK\r\n\
         Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         Connection: {connection}\r\n\
         X-Accel-Buffering: no\r\n\
         Access-Control-Allow-Origin: {origin}\r\n\
         {framing}\r\n",
        origin = ctx.config.cors_origin,
    )
    .into_bytes()
}

/// What every stream starts with: `retry:`, the `connection` event, and a
/// `gap` event if history cannot cover the resume (or the ID was not one).
fn opening(ctx: &Context, wanted: &Wanted, grant: &Grant, bad_id: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if ctx.config.retry_ms > 0 {
        out.extend_from_slice(format!("retry: {}\n\n", ctx.config.retry_ms).as_bytes());
    }
    let hello = Hello {
        client: grant.client.to_string(),
        channels: wanted.channels.iter().map(Channel::as_str).collect(),
    };
    push_control_event(&mut out, "connection", &to_json(&hello));
    if let Some(requested) = &wanted.last_event_id
        && (bad_id || grant.replay.gap)
    {
        let gap = Gap {
            requested,
            oldest: grant.replay.oldest.map(|id| id.to_string()),
        };
        push_control_event(&mut out, "gap", &to_json(&gap));
    }
    out
}
