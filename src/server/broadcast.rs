//! `POST /broadcast`: check the publisher, read and check the body, publish
//! through the hub, reply with the new IDs.
//!
//! Checks run cheapest first and before anything is published: method,
//! bearer token (`access.rs`; before the body is read, so an
//! unauthenticated client cannot make the server read a large body),
//! declared size, body size as read, the body itself (`core/publish.rs`:
//! UTF-8, JSON, fields, all or nothing for a batch), then whether the
//! token covers every message's channel. With an `Idempotency-Key`, a
//! repeat gets the first reply and publishes nothing
//! (`idempotency.rs`). Any failure answers `{"error": ...}` and publishes
//! nothing.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sse_hub_tiny_http::{Method, Request};

use crate::core::publish::PublishBody;

use super::idempotency::{Claim, check_key};

use super::Context;
use super::reply::Refusal;
use super::route::method_not_allowed;

/// Room read into at a time; a body is at most `--max-body` anyway.
const READ_STEP: usize = 16 * 1024;

/// Answers one publish request.
#[inline(never)]
pub(super) fn publish(ctx: &Arc<Context>, mut request: Request) {
    if *request.method() != Method::Post {
        request.stop_reading();
        return method_not_allowed(ctx, request, "POST, OPTIONS");
    }
    let key = match idempotency_key(&request) {
        Ok(key) => key,
        Err(refusal) => {
            request.stop_reading();
            return ctx.replies.refuse(request, &refusal);
        }
    };
    let publisher = match ctx.access.check_publisher(&request) {
        Ok(publisher) => publisher,
        Err(refusal) => {
            request.stop_reading();
            return ctx.replies.refuse(request, &refusal);
        }
    };
    let body = read_body(&mut request, ctx.config.max_body, ctx.config.body_timeout);
    // The next request on this connection may idle as long as any.
    let _ = request.set_read_timeout(Some(ctx.config.idle_timeout));
    if body.is_err() {
        // Where the body ends is not known, or not worth waiting for: the
        // connection closes after the reply.
        request.stop_reading();
    }
    let outcome = body.and_then(|body| {
        let body = PublishBody::parse(&body)?;
        publisher.check(body.messages())?;
        let Some(key) = &key else {
            return Ok(Answer::Now(body.publish(&ctx.hub)?.into_bytes()));
        };
        if let Claim::Replay(reply) = ctx.keys.claim(key)? {
            return Ok(Answer::Before(reply));
        }
        match body.publish(&ctx.hub) {
            Ok(reply) => {
                ctx.keys.complete(key, reply.as_bytes());
                Ok(Answer::Now(reply.into_bytes()))
            }
            Err(e) => {
                ctx.keys.release(key);
                Err(e.into())
            }
        }
    });
    match outcome {
        Ok(Answer::Now(reply)) => ctx
            .replies
            .send(request, 200, "application/json", reply, &[]),
        Ok(Answer::Before(reply)) => ctx.replies.send(
            request,
            200,
            "application/json",
            reply,
            &[("Idempotent-Replayed", "true")],
        ),
        Err(refusal) => ctx.replies.refuse(request, &refusal),
    }
}

/// The reply to a publish.
enum Answer {
    /// Published now.
    Now(Vec<u8>),
    /// Published before, under the same `Idempotency-Key`: the first reply.
    Before(Vec<u8>),
}

/// The request's `Idempotency-Key`, if it has one.
fn idempotency_key(request: &Request) -> Result<Option<String>, Refusal> {
    let mut values = request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Idempotency-Key"))
        .map(|h| h.value.as_str());
    let Some(key) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::Malformed(
            "Idempotency-Key is given twice".to_owned(),
        ));
    }
    check_key(key).map_err(Refusal::Malformed)?;
    Ok(Some(key.to_owned()))
}

/// Reads at most `limit` bytes of body, all of it within `timeout`: each
/// read from the socket may wait only for what is left of it.
fn read_body(request: &mut Request, limit: usize, timeout: Duration) -> Result<Vec<u8>, Refusal> {
    let declared = request.body_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(Refusal::BodyTooLarge { limit });
    }
    let deadline = Instant::now() + timeout;
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refusal::BodyTimedOut);
        }
        request
            .set_read_timeout(Some(left))
            .map_err(Refusal::BodyUnreadable)?;
        let filled = body.len();
        body.resize(filled + READ_STEP.min(limit + 1 - filled), 0);
        let reading = Instant::now();
        let read = request.as_reader().read(&mut body[filled..]);
        body.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => break,
            Ok(_) if body.len() > limit => return Err(Refusal::BodyTooLarge { limit }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The chunked decoder reports a read that timed out as a broken
            // chunk: any failure once the time was up is the deadline.
            Err(_) if reading.elapsed() >= left => return Err(Refusal::BodyTimedOut),
            Err(e) => return Err(Refusal::BodyUnreadable(e)),
        }
    }
    if declared.is_some_and(|n| body.len() < n) {
        let short = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "it ended before its Content-Length",
        );
        return Err(Refusal::BodyUnreadable(short));
    }
    Ok(body)
}
