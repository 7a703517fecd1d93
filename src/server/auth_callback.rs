//! The auth callback (`--auth-url`, SPEC "Auth callback"): the application's
//! own backend decides who may join a private channel, by the subscriber's
//! session cookie or its own authorization, so a web application need not
//! mint JSON Web Tokens. nchan's `nchan_authorize_request` and Centrifugo's
//! connect proxy work the same way.
//!
//! For a subscriber that asks for private channels without a JWT that
//! covers them, the hub sends `GET <url>` with the subscriber's `Cookie` and
//! `Authorization` and `X-Sse-Hub-Channels: <the private channels asked
//! for>`, and waits at most [`TIMEOUT`]:
//! - `2xx`: the stream opens if every private channel asked for is covered
//!   by the answer's `{"subscribe": [patterns]}` (an answer without a body,
//!   or without `subscribe`, covers what was asked); its `"user"` travels
//!   with the client.
//! - `401` or `403`: the subscriber gets the same.
//! - anything else, no answer in time, no backend: `503` with
//!   `Retry-After`, and no stream. It fails closed.
//!
//! Nothing is cached: every subscribe that needs the backend asks it, so an
//! answer is never reused for another cookie or authorization.

use std::time::Duration;

use serde::Deserialize;
use sse_hub_tiny_http::Request;

use crate::core::channel::{Channel, Pattern};
use crate::error::Error;

use super::reply::Refusal;

/// How long the backend may take to answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// The largest answer read from the backend.
const MAX_ANSWER: u64 = 64 * 1024;

/// The backend, and a client that keeps connections to it open.
pub(crate) struct AuthCallback {
    url: String,
    agent: ureq::Agent,
}

/// A `2xx` answer's body.
#[derive(Deserialize)]
struct Answer {
    /// What the subscriber may join; absent: what it asked for.
    subscribe: Option<Vec<Pattern>>,
    /// Who the subscriber is.
    user: Option<String>,
}

impl AuthCallback {
    /// A callback to `url` (`http://` or `https://`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `auth_url` for a URL the hub cannot
    /// call.
    pub(crate) fn new(url: &str) -> Result<AuthCallback, Error> {
        let parsed: ureq::http::Uri = url.parse().map_err(|e| Error::InvalidConfig {
            field: "auth_url",
            why: format!("not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(Error::InvalidConfig {
                field: "auth_url",
                why: "must be an http:// or https:// URL with a host".to_owned(),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(AuthCallback {
            url: url.to_owned(),
            agent,
        })
    }

    /// Asks the backend whether the subscriber of `request` may join the
    /// `private` channels it asked for; the user it names, if it allows.
    pub(crate) fn ask(
        &self,
        request: &Request,
        private: &[&Channel],
    ) -> Result<Option<String>, Refusal> {
        let asked = private
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut call = self
            .agent
            .get(&self.url)
            .header("X-Sse-Hub-Channels", &asked);
        for header in request.headers() {
            if header.field.equiv("Cookie") || header.field.equiv("Authorization") {
                call = call.header(header.field.as_str().as_str(), header.value.as_str());
            }
        }
        let unavailable = |why: String| {
            Refusal::Unavailable(Error::AuthUnavailable(format!("the auth backend {why}")))
        };
        let mut answer = call
            .call()
            .map_err(|e| unavailable(format!("did not answer: {e}")))?;
        let status = answer.status().as_u16();
        match status {
            200..=299 => {}
            401 | 403 => return Err(Refusal::DeniedByBackend(status)),
            other => return Err(unavailable(format!("answered {other}"))),
        }
        let body = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| unavailable(format!("sent an answer that could not be read: {e}")))?;
        if body.trim().is_empty() {
            return Ok(None);
        }
        let answer: Answer = serde_json::from_str(&body).map_err(|e| {
            unavailable(format!(
                "answered with a body that is not {{\"subscribe\": [...], \"user\": ...}}: {e}"
            ))
        })?;
        if let Some(allowed) = &answer.subscribe
            && let Some(channel) = private
                .iter()
                .find(|c| !allowed.iter().any(|p| p.matches(c)))
        {
            return Err(Refusal::Forbidden(super::access::NotCovered::Subscribe(
                (*channel).clone(),
            )));
        }
        Ok(answer.user)
    }
}
