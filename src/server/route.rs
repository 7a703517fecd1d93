//! One request to one route: `/events` to a subscriber's stream,
//! `/broadcast` to a publish, and the small routes (`/healthz`, `/stats`,
//! `/metrics`, the web client) answered here.

use std::sync::Arc;

use sse_hub_tiny_http::{Method, Request};

use super::accept::{Context, InProgress};
use super::reply::Refusal;
use super::{assets, broadcast, events};

/// Answers one request (on a worker thread).
pub(crate) fn route(ctx: &Arc<Context>, request: Request) {
    let in_progress = InProgress::new(ctx, request.remote_addr().copied());
    // Held until the request is answered and dropped: dropping a request
    // whose body was not read drains it, which may wait on the client too.
    let deadline = has_body(&request)
        .then(|| request.remote_addr().copied())
        .flatten()
        .map(|peer| ctx.reaper.arm(peer, ctx.config.body_timeout));

    if *request.method() == Method::Options {
        return ctx.replies.preflight(request);
    }
    match path_of(request.url()) {
        "/events" => events::subscribe(ctx, request, in_progress),
        "/broadcast" => broadcast::publish(ctx, request, deadline.as_ref()),
        "/healthz" => ctx
            .replies
            .small_get(request, "text/plain; charset=utf-8", b"ok".to_vec()),
        "/stats" => match ctx.hub.stats() {
            Ok(stats) => ctx
                .replies
                .small_get(request, "application/json", stats.to_json().into()),
            Err(e) => ctx.replies.refuse(request, &Refusal::from(e)),
        },
        "/metrics" => match ctx.hub.stats() {
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

/// True if the request has a body, which we read (or drain, when the
/// request is dropped) from the socket ourselves, so it may wait on the
/// client.
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

/// Refuses a request whose method the route does not take.
pub(crate) fn method_not_allowed(ctx: &Context, request: Request, allow: &'static str) {
    let method = request.method().clone();
    ctx.replies
        .refuse(request, &Refusal::MethodNotAllowed { method, allow });
}
