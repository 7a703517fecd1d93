//! `GET /events`: turn a request into a subscriber with its own writer
//! thread.
//!
//! On the worker: read the query (`channel=`, `lastEventId=`) and the
//! `Last-Event-ID` header, answer 400 if they are bad, check for room, and
//! start the writer thread. On the writer thread: register with the hub
//! (which answers with the replay owed), write the response head and the
//! opening events (`retry:`, `connection`, maybe `gap`, the replay), then
//! pump live frames until the stream ends (`client.rs`).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;

use log::{debug, warn};
use serde::Serialize;
use tiny_http::{HTTPVersion, Method, Request};

use crate::channel::{Channel, channel_set};
use crate::client::{self, Stream};
use crate::error::Error;
use crate::event_id::EventId;
use crate::hub::{Ended, Grant, SubscribeRequest};
use crate::metrics::Counters;
use crate::sse::{Frame, control_event};
use crossbeam_channel::Receiver;

use super::{
    Context, InProgress, has_body, header, method_not_allowed, query_of, reply_error, to_json,
};

/// The writer's stack. It runs shallow code (channel waits, a copy into the
/// batch, a write); 128 KiB leaves room for a panic message and a backtrace.
/// Only the pages actually touched count towards memory use.
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
    let clients = ctx.hub.counters().clients.load(Ordering::Relaxed);
    if clients >= ctx.config.max_clients {
        return refuse(ctx, request, &Error::HubFull);
    }

    // If the thread cannot start, the request must come back for a 503; the
    // closure that would have owned it is dropped with the error.
    let handoff = Arc::new(Mutex::new(Some(request)));
    let for_writer = Arc::clone(&handoff);
    let writer_ctx = Arc::clone(ctx);
    let started = thread::Builder::new()
        .name("writer".into())
        .stack_size(WRITER_STACK)
        .spawn(move || {
            let request = for_writer.lock().ok().and_then(|mut r| r.take());
            if let Some(request) = request {
                stream(&writer_ctx, request, &wanted);
            }
            drop(in_progress);
        });
    if let Err(e) = started {
        warn!("cannot start a writer thread: {e}");
        let request = handoff.lock().ok().and_then(|mut r| r.take());
        if let Some(request) = request {
            refuse(ctx, request, &Error::HubFull);
        }
    }
}

/// 503 with `Retry-After`.
fn refuse(ctx: &Context, request: Request, error: &Error) {
    let retry_after: Vec<_> = header("Retry-After", RETRY_AFTER_SECS)
        .into_iter()
        .collect();
    reply_error(ctx, request, 503, error, &retry_after);
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

/// The writer thread's work: register, stream until the end, report.
fn stream(ctx: &Context, request: Request, wanted: &Wanted) {
    let peer = request.remote_addr().copied();
    let resume = wanted.last_event_id.as_deref().map(str::parse::<EventId>);
    let (queue, frames) = crossbeam_channel::unbounded();
    let grant = ctx.hub.register(SubscribeRequest {
        channels: wanted.channels.clone(),
        resume: resume.clone().and_then(Result::ok),
        queue,
        peer,
    });
    let grant = match grant {
        Ok(grant) => grant,
        Err(e) => return refuse(ctx, request, &e),
    };
    let client = grant.client;
    if let Some(peer) = peer
        && ctx.connections.streaming(peer, client)
    {
        ctx.hub
            .close(client, "a request was pipelined behind its stream");
    }

    let chunked = *request.http_version() >= HTTPVersion(1, 1);
    let bad_id = resume.is_some_and(|r| r.is_err());
    let ended = write_stream(
        ctx,
        request.into_writer(),
        chunked,
        wanted,
        grant,
        bad_id,
        &frames,
    );
    // The connection's response writer is dropped by now, so the requests
    // that waited behind the stream can be answered.
    if let Some(peer) = peer {
        if let Ended::WriteFailed(e) = &ended {
            // A client that stopped reading keeps tiny_http's reading thread
            // waiting on its connection; close it from outside.
            debug!("client {client}: {e}; closing its connection");
            ctx.reaper.close_soon(peer);
        } else if !chunked {
            // A close-delimited body ends only when the connection closes.
            ctx.reaper.close_soon(peer);
        }
    }
    ctx.hub.unsubscribe(client, ended);
}

/// Writes the head, the opening events and then live frames until the
/// queue closes or a write fails.
fn write_stream(
    ctx: &Context,
    mut out: Box<dyn Write + Send>,
    chunked: bool,
    wanted: &Wanted,
    grant: Grant,
    bad_id: bool,
    frames: &Receiver<Frame>,
) -> Ended {
    if let Err(e) = out.write_all(&response_head(ctx, chunked)) {
        return Ended::WriteFailed(e);
    }
    let mut stream = Stream::new(out, chunked);
    if let Err(e) = open(ctx, &mut stream, wanted, grant, bad_id) {
        return Ended::WriteFailed(e);
    }
    match client::pump(
        &mut stream,
        frames,
        ctx.config.heartbeat,
        ctx.hub.counters(),
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

/// Writes what every stream starts with: `retry:`, the `connection` event,
/// a `gap` event if history cannot cover the resume, then the replay.
fn open(
    ctx: &Context,
    stream: &mut Stream,
    wanted: &Wanted,
    grant: Grant,
    bad_id: bool,
) -> std::io::Result<()> {
    if ctx.config.retry_ms > 0 {
        stream.push(format!("retry: {}\n\n", ctx.config.retry_ms).as_bytes());
    }
    let hello = Hello {
        client: grant.client.to_string(),
        channels: wanted.channels.iter().map(Channel::as_str).collect(),
    };
    stream.push(&control_event("connection", &to_json(&hello)));

    let replay = grant.replay;
    if let Some(requested) = &wanted.last_event_id
        && (bad_id || replay.gap)
    {
        let gap = Gap {
            requested,
            oldest: replay.oldest.map(|id| id.to_string()),
        };
        stream.push(&control_event("gap", &to_json(&gap)));
    }
    let delivered = &ctx.hub.counters().delivered;
    let mut replayed = 0;
    for frame in &replay.frames {
        stream.push(frame);
        replayed += 1;
        if stream.batch_len() >= client::MAX_BATCH {
            stream.send()?;
            Counters::add(delivered, replayed);
            replayed = 0;
        }
    }
    stream.send()?;
    Counters::add(delivered, replayed);
    Ok(())
}
