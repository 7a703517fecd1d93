//! Every reply the server writes, in one place: the CORS header every
//! response carries, the JSON body of every error, and the status each
//! refusal gets.
//!
//! A route that cannot serve a request returns a [`Refusal`]; its status,
//! its extra headers and its text are decided here, and nowhere else.

use std::fmt;
use std::io::{self, Cursor, Read};
use std::sync::Arc;

use log::debug;
use sse_hub_tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::core::channel::Channel;
use crate::core::stream::ALLOW_ORIGIN;
use crate::error::{Error, error_json};

use super::access::{NotCovered, TOKEN_COOKIE, TokenFault};

/// Why a request is refused: the faults only an HTTP request can have,
/// and the hub's own errors as they reach a route.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A body or query the hub's rules refuse (bad JSON, bad field, bad
    /// channel name).
    Invalid(Error),
    /// A subscribe request came with a body.
    UnexpectedBody,
    /// A header or query parameter the route reads is missing or has a
    /// value it cannot take; the text says which and why.
    Malformed(String),
    /// A publish body is larger than `--max-body`.
    BodyTooLarge { limit: usize },
    /// A publish body did not arrive in time.
    BodyTimedOut,
    /// A publish body could not be read.
    BodyUnreadable(io::Error),
    /// No token where one is needed, or one that is not valid.
    Unauthorized(TokenFault),
    /// A valid token that does not cover a channel asked for.
    Forbidden(NotCovered),
    /// A publish from a browser page on another site (its `Origin`), with
    /// no token configured.
    CrossSite(String),
    /// The auth callback's backend answered 401 or 403.
    DeniedByBackend(u16),
    /// No route or web client file has this path.
    NotFound(String),
    /// `/presence` for a channel that no presence pattern names.
    NoPresence(Channel),
    /// The method is not one the route takes.
    MethodNotAllowed { method: Method, allow: &'static str },
    /// The hub is full or stopped.
    Unavailable(Error),
}

impl Refusal {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Refusal::Invalid(e) | Refusal::Unavailable(e) => e.status(),
            Refusal::UnexpectedBody | Refusal::Malformed(_) | Refusal::BodyUnreadable(_) => 400,
            Refusal::Unauthorized(_) => 401,
            Refusal::Forbidden(_) | Refusal::CrossSite(_) => 403,
            Refusal::DeniedByBackend(status) => *status,
            Refusal::NotFound(_) | Refusal::NoPresence(_) => 404,
            Refusal::MethodNotAllowed { .. } => 405,
            Refusal::BodyTimedOut => 408,
            Refusal::BodyTooLarge { .. } => 413,
        }
    }

    /// Headers the status needs beside the body.
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            // RFC 6750 (3.1): a token that was sent and failed is
            // `invalid_token`; one that does not reach far enough is
            // `insufficient_scope`; a missing one gets no error code.
            Refusal::Unauthorized(TokenFault::Invalid(_)) => {
                vec![(
                    "WWW-Authenticate",
                    r#"Bearer error="invalid_token""#.to_owned(),
                )]
            }
            Refusal::Unauthorized(_) => vec![("WWW-Authenticate", "Bearer".to_owned())],
            Refusal::Forbidden(_) => {
                vec![(
                    "WWW-Authenticate",
                    r#"Bearer error="insufficient_scope""#.to_owned(),
                )]
            }
            Refusal::MethodNotAllowed { allow, .. } => vec![("Allow", (*allow).to_owned())],
            Refusal::Invalid(e) | Refusal::Unavailable(e) => retry_after(e).into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Refusal {
        if error.status() == 503 {
            Refusal::Unavailable(error)
        } else {
            Refusal::Invalid(error)
        }
    }
}

/// The `Retry-After` field an error's status asks for, if any.
fn retry_after(error: &Error) -> Option<(&'static str, String)> {
    error
        .retry_after()
        .map(|secs| ("Retry-After", secs.to_string()))
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Invalid(e) | Refusal::Unavailable(e) => e.fmt(f),
            Refusal::UnexpectedBody => f.write_str("a subscribe request takes no body"),
            Refusal::Malformed(why) => f.write_str(why),
            Refusal::BodyTooLarge { limit } => {
                write!(f, "body is larger than the limit of {limit} bytes")
            }
            Refusal::BodyTimedOut => f.write_str("body did not arrive in time"),
            Refusal::BodyUnreadable(e) => write!(f, "body could not be read: {e}"),
            Refusal::Unauthorized(fault) => match fault {
                TokenFault::NotThePublishToken => f.write_str(
                    "missing or wrong bearer token: send the header Authorization: Bearer <token>",
                ),
                TokenFault::NoneToPublish => f.write_str(
                    "no token: publishing needs one, sent as the header Authorization: Bearer <token>",
                ),
                TokenFault::NoneToSubscribe(channel) => write!(
                    f,
                    "no token: channel {channel} is private; send a token as the header \
                     Authorization: Bearer <token>, the query parameter token= or the cookie \
                     {TOKEN_COOKIE}"
                ),
                TokenFault::Invalid(why) => write!(f, "bad token: {why}"),
            },
            Refusal::DeniedByBackend(401) => f.write_str(
                "the application did not recognise this subscriber: sign in first",
            ),
            Refusal::DeniedByBackend(_) => {
                f.write_str("the application does not let this subscriber join these channels")
            }
            Refusal::CrossSite(origin) => write!(
                f,
                "cross-site publish refused: a page at {origin} may not publish to this hub; \
                 publish from the hub's own origin, name a trusted page with --cors-origin, \
                 or set --publish-token"
            ),
            Refusal::Forbidden(what) => match what {
                NotCovered::Subscribe(channel) => write!(
                    f,
                    "the token does not allow subscribing to channel {channel}"
                ),
                NotCovered::Publish { channel, index } => {
                    if let Some(index) = index {
                        write!(f, "batch element {index}: ")?;
                    }
                    match channel {
                        Some(channel) => write!(
                            f,
                            "the token does not allow publishing to channel {channel}"
                        ),
                        None => f.write_str(
                            "the token does not allow publishing to everyone: a message \
                             without a channel needs \"*\" in the token's publish list",
                        ),
                    }
                }
            },
            Refusal::NotFound(path) => write!(f, "no such page: {path}"),
            Refusal::NoPresence(channel) => write!(
                f,
                "channel {channel} has no presence: no --presence pattern names it"
            ),
            Refusal::MethodNotAllowed { method, allow } => {
                write!(f, "method {method} is not allowed here; use {allow}")
            }
        }
    }
}

/// What every reply carries: the `Access-Control-Allow-Origin` header.
pub(crate) struct Replies {
    cors: Header,
    origin: String,
}

impl Replies {
    /// Replies for a server whose `--cors-origin` is `origin` (checked by
    /// the configuration).
    pub(crate) fn new(origin: &str) -> Result<Replies, Error> {
        let cors = header(ALLOW_ORIGIN, origin).ok_or_else(|| Error::InvalidConfig {
            field: "cors_origin",
            why: "is not a valid header value".to_owned(),
        })?;
        Ok(Replies {
            cors,
            origin: origin.to_owned(),
        })
    }

    /// The origin the CORS header names.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// How tiny_http builds its own replies, to requests it cannot read:
    /// the same JSON error and headers as every other.
    pub(crate) fn error_reply(&self) -> sse_hub_tiny_http::ErrorReply {
        let headers: Vec<Header> = [("Content-Type", "application/json")]
            .iter()
            .filter_map(|(name, value)| header(name, value))
            .chain([self.cors.clone()])
            .collect();
        Arc::new(move |_status, what| (headers.clone(), error_json(what).into_bytes()))
    }

    /// Sends a complete response with the CORS header.
    pub(crate) fn send(
        &self,
        request: Request,
        status: u16,
        content_type: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) {
        let length = body.len();
        let mut response = Response::new(
            StatusCode(status),
            Vec::new(),
            Cursor::new(body),
            Some(length),
            None,
        );
        add_headers(&mut response, &[("Content-Type", content_type)]);
        add_headers(&mut response, extra);
        self.respond(request, response);
    }

    /// Sends `{"error": "..."}` with the refusal's status and headers.
    pub(crate) fn refuse(&self, request: Request, refusal: &Refusal) {
        let body = error_json(&refusal.to_string());
        let headers = refusal.headers();
        let extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.send(
            request,
            refusal.status(),
            "application/json",
            body.into_bytes(),
            &extra,
        );
    }

    /// Sends `response` with the CORS header. A client that has gone away
    /// by now is no one's problem.
    pub(crate) fn respond<R: Read>(&self, request: Request, mut response: Response<R>) {
        response.add_header(self.cors.clone());
        if let Err(e) = request.respond(response) {
            debug!("response not delivered: {e}");
        }
    }

    /// A GET (or HEAD) route with a fixed body.
    pub(crate) fn small_get(&self, request: Request, content_type: &str, body: Vec<u8>) {
        match request.method() {
            Method::Get | Method::Head => self.send(request, 200, content_type, body, &[]),
            _ => {
                let method = request.method().clone();
                self.refuse(
                    request,
                    &Refusal::MethodNotAllowed {
                        method,
                        allow: "GET, HEAD, OPTIONS",
                    },
                );
            }
        }
    }

    /// CORS preflight: any route, `204` with what browsers need to know.
    pub(crate) fn preflight(&self, request: Request) {
        let mut response = Response::empty(204);
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
        self.respond(request, response);
    }
}

/// A header from a name and value known to be valid ASCII.
pub(crate) fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Adds headers given as names and values known to be valid ASCII.
pub(crate) fn add_headers<R: Read>(response: &mut Response<R>, headers: &[(&str, &str)]) {
    for header in headers
        .iter()
        .filter_map(|(name, value)| header(name, value))
    {
        response.add_header(header);
    }
}
