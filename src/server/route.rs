//! One request to one route, on the thread that serves its connection:
//! `/events` to a subscriber's stream, `/broadcast` to a publish, and the
//! small routes (`/healthz`, `/stats`, `/metrics`, the web client) answered
//! here.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use log::error;
use sse_hub_tiny_http::{Method, Request};

use crate::core::channel::Channel;
use crate::core::metrics::Stats;
use crate::error::Error;

use super::Context;
use super::reply::Refusal;
use super::{assets, broadcast, events};

/// Answers one request. A bug in one handler costs that request (it gets a
/// `500`), never the connection's thread.
///
/// Each route is a function of its own (`#[inline(never)]`): a stream runs
/// for hours below this frame, and every stack page a frame ever touched
/// stays in memory as long, so this frame must not hold the locals of
/// every other route.
pub(crate) fn route(ctx: &Arc<Context>, request: Request) {
    if catch_unwind(AssertUnwindSafe(|| handle(ctx, request))).is_err() {
        error!("a request handler panicked; the request got a 500");
    }
}

fn handle(ctx: &Arc<Context>, request: Request) {
    let path = path_of(request.url());
    let publish = path == "/broadcast" && *request.method() == Method::Post;
    if !publish && has_body(&request) {
        // No other request's body is read; the connection closes after the
        // reply instead of waiting for the body to find the next request.
        request.stop_reading();
    }
    if *request.method() == Method::Options {
        return ctx.replies.preflight(request);
    }
    match path {
        "/events" => events::subscribe(ctx, request),
        "/broadcast" => broadcast::publish(ctx, request),
        "/healthz" => ctx
            .replies
            .small_get(request, "text/plain; charset=utf-8", b"ok".to_vec()),
        "/stats" => match public_stats(ctx) {
            Ok(stats) => ctx
                .replies
                .small_get(request, "application/json", stats.to_json().into()),
            Err(e) => ctx.replies.refuse(request, &Refusal::from(e)),
        },
        "/presence" => presence(ctx, request),
        "/metrics" => match public_stats(ctx) {
            Ok(stats) => ctx.replies.small_get(
                request,
                "text/plain; version=0.0.4; charset=utf-8",
                stats.to_prometheus().into_bytes(),
            ),
            Err(e) => ctx.replies.refuse(request, &Refusal::from(e)),
        },
        _ => assets::serve(ctx, request),
    }
}

/// `GET /presence?channel=NAME`: who is in a channel with presence, on
/// every node (SPEC "Presence"). A private channel's list needs the right
/// to join it, checked as `/events` would.
fn presence(ctx: &Context, request: Request) {
    let channel = form_urlencoded::parse(query_of(request.url()).as_bytes())
        .find(|(key, _)| key == "channel")
        .map(|(_, name)| Channel::new(&name));
    let channel = match channel {
        Some(Ok(channel)) => channel,
        Some(Err(e)) => return ctx.replies.refuse(request, &Refusal::from(e)),
        None => {
            let missing = Refusal::Malformed("presence needs ?channel=NAME".to_owned());
            return ctx.replies.refuse(request, &missing);
        }
    };
    if let Err(refusal) = ctx
        .access
        .check_subscriber(&request, std::slice::from_ref(&channel))
    {
        return ctx.replies.refuse(request, &refusal);
    }
    match ctx.hub.presence(&channel) {
        Ok(Some(members)) => {
            let body = serde_json::json!({
                "channel": channel.as_str(),
                "count": members.len(),
                "clients": members,
            });
            ctx.replies
                .small_get(request, "application/json", body.to_string().into_bytes());
        }
        Ok(None) => ctx.replies.refuse(request, &Refusal::NoPresence(channel)),
        Err(e) => ctx.replies.refuse(request, &Refusal::from(e)),
    }
}

/// Channels `/stats` and `/metrics` list at most (SPEC "Other routes").
const LISTED_CHANNELS: usize = 100;

/// The figures anyone may read: the largest public channels, never a
/// private one's name, and a size that does not grow with the names
/// clients choose.
fn public_stats(ctx: &Context) -> Result<Stats, Error> {
    ctx.hub.stats_listing(LISTED_CHANNELS, &ctx.config.private)
}

/// True if the request has a body.
pub(crate) fn has_body(request: &Request) -> bool {
    header_value(request, "Transfer-Encoding").is_some()
        || request.body_length().is_some_and(|n| n > 0)
}

pub(crate) fn path_of(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

pub(crate) fn query_of(url: &str) -> &str {
    url.split_once('?').map_or("", |(_, query)| query)
}

/// The value of the request's first header called `name`.
pub(crate) fn header_value<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Every value of a list-valued header field, joined with `, ` as RFC 9110
/// (5.3) says a recipient may: two `Accept-Encoding` fields mean the same
/// as one that lists both. `None` if the field is absent.
pub(crate) fn header_list(request: &Request, name: &'static str) -> Option<String> {
    let mut values = request
        .headers()
        .iter()
        .filter(|h| h.field.equiv(name))
        .map(|h| h.value.as_str());
    let first = values.next()?;
    Some(values.fold(first.to_owned(), |all, value| all + ", " + value))
}

/// Refuses a request whose method the route does not take.
pub(crate) fn method_not_allowed(ctx: &Context, request: Request, allow: &'static str) {
    let method = request.method().clone();
    ctx.replies
        .refuse(request, &Refusal::MethodNotAllowed { method, allow });
}
