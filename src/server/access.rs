//! Who may subscribe to a private channel and who may publish: JSON Web
//! Tokens, checked against the keys the hub was started with.
//!
//! A token is `header.payload.signature` (RFC 7519). The hub accepts one
//! only if it is signed with a key it was given and with that key's own
//! algorithm: HS256 for `--jwt-secret`, and RS256, ES256 or EdDSA for
//! `--jwt-public-key`, chosen by the kind of key in the file. The token's
//! header cannot choose anything else: a token that names `none`, or HS256
//! against a public key (the classic trick of using the public key as an
//! HMAC secret), is refused before its signature is even looked at. `exp`
//! must be there and in the future, `nbf`, if there, in the past, each with
//! [`CLOCK_SKEW`] of leeway.
//!
//! What a valid token allows is its claim `"sse-hub"` ([`Grants`]): the
//! channels it may `subscribe` to and `publish` to, as [`Pattern`]s. The
//! same patterns say, with `--private`, which channels need a token at
//! all.
//!
//! Data enters from a request: for `GET /events` the channels it asked for
//! and a token from `Authorization: Bearer`, the query parameter `token=`
//! or the cookie `sse_hub_token`; for `POST /broadcast` the bearer token
//! (never a cookie, which a browser would attach to another site's forged
//! post) before the body is read, then the parsed messages. What leaves is
//! a yes, or a `Refusal` (401 for no token or a bad one, 403 for a good
//! one that does not cover a channel), whose status and words live in
//! `reply.rs`. A token is never logged, nor echoed in a reply.
//!
//! This module holds the rules; the signatures are checked in `jwt.rs`,
//! which is the cargo feature `jwt` (on by default, and always in the
//! binary).

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sse_hub_tiny_http::Request;

use crate::core::Message;
use crate::core::channel::Channel;
pub use crate::core::channel::Pattern;
use crate::error::Error;
use crate::server::config::Config;

#[cfg(feature = "auth")]
use super::auth_callback::AuthCallback;
use super::jwt::Keys;
#[cfg(feature = "jwt")]
pub use super::jwt::mint_hs256;
use super::reply::Refusal;
use super::route::{header_value, query_of};

/// How far `exp` and `nbf` may be off, for clocks that disagree a little.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

pub use super::jwt::MIN_SECRET_LEN;

/// The cookie a subscriber may carry its token in.
pub const TOKEN_COOKIE: &str = "sse_hub_token";

/// What a token allows: its claim `"sse-hub"`, such as
/// `{"subscribe": ["news", "user:42", "room:*"], "publish": ["*"]}`.
/// A missing list allows nothing.
///
/// # Example
///
/// ```
/// use sse_hub::{Channel, access::Grants};
///
/// let grants: Grants = serde_json::from_str(r#"{"subscribe": ["user:42"], "publish": ["room:*"]}"#)?;
/// assert!(grants.may_subscribe(&Channel::new("user:42")?));
/// assert!(!grants.may_subscribe(&Channel::new("user:43")?));
/// assert!(grants.may_publish(Some(&Channel::new("room:1")?)));
/// assert!(!grants.may_publish(None)); // a message for everyone needs "*"
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Channels the holder may join, private ones included.
    #[serde(default)]
    pub subscribe: Vec<Pattern>,
    /// Channels the holder may publish to; `*` also covers messages
    /// without a channel.
    #[serde(default)]
    pub publish: Vec<Pattern>,
}

impl Grants {
    /// True if the token lets its holder join `channel`.
    pub fn may_subscribe(&self, channel: &Channel) -> bool {
        self.subscribe.iter().any(|p| p.matches(channel))
    }

    /// True if the token lets its holder publish to `channel`, or with
    /// `None` to everyone.
    pub fn may_publish(&self, channel: Option<&Channel>) -> bool {
        match channel {
            Some(channel) => self.publish.iter().any(|p| p.matches(channel)),
            None => self.publish.iter().any(Pattern::is_everything),
        }
    }
}

/// Why a request gets 401.
#[derive(Debug)]
pub(crate) enum TokenFault {
    /// A private channel was asked for without any token.
    NoneToSubscribe(Channel),
    /// A publish came without a bearer token, and tokens are JWTs.
    NoneToPublish,
    /// Only `--publish-token` is set, and this publish did not carry it.
    NotThePublishToken,
    /// A token that does not verify; the text says why, never what it was.
    Invalid(Cow<'static, str>),
}

/// Why a request gets 403: what a valid token did not cover.
#[derive(Debug)]
pub(crate) enum NotCovered {
    /// Joining this channel.
    Subscribe(Channel),
    /// Publishing to this channel, or (`None`) to everyone; `index` is the
    /// element of a batch.
    Publish {
        channel: Option<Channel>,
        index: Option<usize>,
    },
}

/// The hub's access rules, built once from the configuration.
pub(crate) struct Access {
    /// The keys tokens are verified with, if any are configured.
    keys: Option<Keys>,
    private: Vec<Pattern>,
    publish_token: Option<String>,
    /// `--cors-origin` when it names one origin (not `*`): a page there may
    /// publish when no token is configured.
    trusted_origin: Option<String>,
    /// The hub serves HTTPS itself: its own origin is `https://`.
    serves_tls: bool,
    /// `--auth-url`: the application's backend decides who may join.
    #[cfg(feature = "auth")]
    callback: Option<AuthCallback>,
    #[cfg(not(feature = "auth"))]
    callback: Option<std::convert::Infallible>,
}

/// Who is publishing, known before the body is read.
pub(crate) enum Publisher {
    /// Anyone may publish anything: no token is configured, or the request
    /// carried the static `--publish-token`.
    Unrestricted,
    /// A token's holder, who may publish where it says.
    Holder(Grants),
}

impl Access {
    /// Reads the keys a configuration that passed
    /// [`Config::validate`] names.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `jwt_public_key`: a key file that
    /// cannot be read or holds no public key the hub can use.
    pub(crate) fn new(config: &Config) -> Result<Access, Error> {
        Ok(Access {
            keys: Keys::new(config)?,
            private: config.private.clone(),
            publish_token: config.publish_token.clone(),
            trusted_origin: (config.cors_origin != "*").then(|| config.cors_origin.clone()),
            #[cfg(feature = "tls")]
            serves_tls: config.tls.is_some(),
            #[cfg(not(feature = "tls"))]
            serves_tls: false,
            #[cfg(feature = "auth")]
            callback: config
                .auth_url
                .as_deref()
                .map(AuthCallback::new)
                .transpose()?,
            #[cfg(not(feature = "auth"))]
            callback: None,
        })
    }

    fn uses_jwt(&self) -> bool {
        self.keys.is_some()
    }

    fn is_private(&self, channel: &Channel) -> bool {
        self.private.iter().any(|p| p.matches(channel))
    }

    /// Checks a subscriber who asked for `channels`: a private one needs a
    /// valid token that covers it, or (with `--auth-url`) the application's
    /// yes; public channels and the global stream need nothing, and a token
    /// sent along with them is not even read. Returns who the subscriber
    /// is, if the token (`sub`) or the application said.
    pub(crate) fn check_subscriber(
        &self,
        request: &Request,
        channels: &[Channel],
    ) -> Result<Option<String>, Refusal> {
        let private: Vec<&Channel> = channels.iter().filter(|c| self.is_private(c)).collect();
        let Some(first) = private.first() else {
            return Ok(None);
        };
        let by_token = match subscriber_token(request) {
            None => Err(Refusal::Unauthorized(TokenFault::NoneToSubscribe(
                (*first).clone(),
            ))),
            Some(token) => self.verify(&token).and_then(|(grants, user)| {
                match private.iter().find(|c| !grants.may_subscribe(c)) {
                    Some(channel) => Err(Refusal::Forbidden(NotCovered::Subscribe(
                        (*channel).clone(),
                    ))),
                    None => Ok(user),
                }
            }),
        };
        // A valid token that covers the channels needs no call; without
        // one, the application decides (its session cookie, or its own
        // kind of Authorization header).
        match (&self.callback, by_token) {
            (_, Ok(user)) => Ok(user),
            #[cfg(feature = "auth")]
            (Some(callback), Err(_)) => callback.ask(request, &private),
            (_, Err(refusal)) => Err(refusal),
        }
    }

    /// Checks a publisher's bearer token, before its body is read. With
    /// JWTs configured, the static `--publish-token` is accepted too.
    ///
    /// With no token configured anyone may publish, but not through a
    /// visitor's browser from another site: a request with an `Origin`
    /// that is neither the hub's own nor `--cors-origin` is refused (SPEC
    /// "POST /broadcast", cross-site publishing). A token is proof enough
    /// on its own, since a page elsewhere cannot read it.
    pub(crate) fn check_publisher(&self, request: &Request) -> Result<Publisher, Refusal> {
        if self.publish_token.is_none() && !self.uses_jwt() {
            return match header_value(request, "Origin") {
                Some(origin) if !self.may_publish_from(request, origin) => {
                    Err(Refusal::CrossSite(origin.to_owned()))
                }
                _ => Ok(Publisher::Unrestricted),
            };
        }
        let bearer = bearer_token(request);
        if let (Some(expected), Some(given)) = (&self.publish_token, bearer)
            && constant_time_eq(given.as_bytes(), expected.as_bytes())
        {
            return Ok(Publisher::Unrestricted);
        }
        if !self.uses_jwt() {
            return Err(Refusal::Unauthorized(TokenFault::NotThePublishToken));
        }
        let token = bearer.ok_or(Refusal::Unauthorized(TokenFault::NoneToPublish))?;
        Ok(Publisher::Holder(self.verify(token)?.0))
    }

    /// What a token allows, if the hub can verify it.
    fn verify(&self, token: &str) -> Result<(Grants, Option<String>), Refusal> {
        let invalid = |why| Refusal::Unauthorized(TokenFault::Invalid(why));
        match &self.keys {
            Some(keys) => keys.verify(token).map_err(invalid),
            None => Err(invalid("the hub takes no tokens".into())),
        }
    }
}

impl Publisher {
    /// Checks that the publisher may publish every one of `messages`: all
    /// or nothing, so a batch with one channel not covered publishes none.
    pub(crate) fn check(&self, messages: &[Message]) -> Result<(), Refusal> {
        let Publisher::Holder(grants) = self else {
            return Ok(());
        };
        let batch = messages.len() > 1;
        match messages
            .iter()
            .enumerate()
            .find(|(_, m)| !grants.may_publish(m.channel.as_ref()))
        {
            Some((index, message)) => Err(Refusal::Forbidden(NotCovered::Publish {
                channel: message.channel.clone(),
                index: batch.then_some(index),
            })),
            None => Ok(()),
        }
    }
}

/// The credentials of an `Authorization: Bearer` header (the scheme in
/// any case).
fn bearer_token(request: &Request) -> Option<&str> {
    let (scheme, credentials) = header_value(request, "Authorization")?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| credentials.trim())
}

impl Access {
    /// Whether a browser page at `origin` may publish: it is the hub's own
    /// origin (the scheme and the `Host` the request came to), or the
    /// trusted `--cors-origin`.
    fn may_publish_from(&self, request: &Request, origin: &str) -> bool {
        let Some(origin) = Origin::parse(origin) else {
            return false; // `null` (a sandboxed page, a file) or malformed
        };
        if self
            .trusted_origin
            .as_deref()
            .and_then(Origin::parse)
            .is_some_and(|trusted| trusted == origin)
        {
            return true;
        }
        // A proxy that ends TLS in front of the hub says so.
        let forwarded_https = header_value(request, "X-Forwarded-Proto").is_some_and(|proto| {
            let first = proto.split(',').next().unwrap_or_default();
            first.trim().eq_ignore_ascii_case("https")
        });
        let scheme = if self.serves_tls || forwarded_https {
            "https"
        } else {
            "http"
        };
        header_value(request, "Host")
            .and_then(|host| Origin::parse(&format!("{scheme}://{host}")))
            .is_some_and(|own| own == origin)
    }
}

/// An origin (RFC 6454) in the form compared: scheme and host lower case,
/// the port given explicitly only when it is not the scheme's default.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// `scheme://host[:port]` with nothing after it, else `None`.
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        // An IPv6 literal keeps its colons inside brackets.
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port.parse().ok()?)),
            _ => (rest, None),
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b);
        if host.is_empty() || !host.bytes().all(valid) {
            return None;
        }
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.filter(|&p| p != default_port),
        })
    }
}

/// A subscriber's token: the bearer header, else `token=` in the query
/// (an EventSource cannot set headers), else the cookie.
fn subscriber_token(request: &Request) -> Option<Cow<'_, str>> {
    let from_query = || {
        form_urlencoded::parse(query_of(request.url()).as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| Cow::Owned(value.into_owned()))
    };
    let from_cookie = || {
        request
            .headers()
            .iter()
            .filter(|h| h.field.equiv("Cookie"))
            .flat_map(|h| h.value.as_str().split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == TOKEN_COOKIE)
            .map(|(_, value)| Cow::Borrowed(value.trim_matches('"')))
    };
    bearer_token(request)
        .map(Cow::Borrowed)
        .or_else(from_query)
        .or_else(from_cookie)
        .filter(|token| !token.is_empty())
}

/// Compares every byte whatever the first difference, so the time taken does
/// not tell an attacker how much of a guess was right. (The length is not
/// secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> Channel {
        Channel::new(name).unwrap()
    }

    fn pattern(text: &str) -> Pattern {
        Pattern::new(text).unwrap()
    }

    #[test]
    fn origins_compare_by_scheme_host_and_effective_port() {
        let parse = |text| Origin::parse(text);
        assert_eq!(parse("http://a.example"), parse("HTTP://A.EXAMPLE:80"));
        assert_eq!(parse("https://a.example:443"), parse("https://a.example"));
        assert_ne!(parse("http://a.example"), parse("https://a.example"));
        assert_ne!(parse("http://a.example:8080"), parse("http://a.example"));
        assert_eq!(parse("http://[::1]:3000"), parse("http://[::1]:3000"));
        assert_ne!(parse("http://[::1]:3000"), parse("http://[::1]"));
        for bad in [
            "null",
            "a.example",
            "ftp://a.example",
            "http://",
            "http://a.example/",
            "http://a.example:99999",
            "http://a.example:x",
            "http://a b",
            "http://user@a.example",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn a_star_at_the_end_matches_any_rest() {
        assert!(pattern("room:*").matches(&channel("room:")));
        assert!(!pattern("room:*").matches(&channel("room")));
        assert!(pattern("*").matches(&channel("anything")));
        assert!(pattern("*").is_everything());
        assert!(!pattern("a*").is_everything());
        assert!(pattern("a").matches(&channel("a")));
        assert!(!pattern("a").matches(&channel("ab")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "**", "a*b", "*a", "a b", "é", &"x".repeat(65)] {
            assert!(Pattern::new(bad).is_err(), "{bad:?}");
        }
        assert!(Pattern::new(&format!("{}*", "x".repeat(64))).is_ok());
    }

    #[test]
    fn patterns_read_and_print_the_same() {
        for text in ["*", "news", "user:*", "a/b.c-d_e:f"] {
            assert_eq!(pattern(text).to_string(), text);
        }
    }

    #[test]
    fn only_star_covers_a_message_for_everyone() {
        let grants = Grants {
            subscribe: vec![],
            publish: vec![pattern("a*")],
        };
        assert!(grants.may_publish(Some(&channel("ab"))));
        assert!(!grants.may_publish(None));
        let everything = Grants {
            subscribe: vec![],
            publish: vec![pattern("*")],
        };
        assert!(everything.may_publish(None));
        assert!(!Grants::default().may_subscribe(&channel("a")));
    }

    #[test]
    fn a_claim_with_a_bad_pattern_or_an_unknown_list_is_refused() {
        assert!(serde_json::from_str::<Grants>(r#"{"subscribe": ["a b"]}"#).is_err());
        assert!(serde_json::from_str::<Grants>(r#"{"subscibe": ["a"]}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Grants>("{}").unwrap(),
            Grants::default()
        );
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let secret = "0123456789abcdef0123456789abcdef";
        let config = Config {
            jwt_secret: Some(secret.to_owned()),
            ..Config::default()
        };
        let access = Access::new(&config).unwrap();
        let grants = Grants {
            subscribe: vec![pattern("user:42")],
            publish: vec![pattern("*")],
        };
        let token = mint_hs256(secret.as_bytes(), &grants, Duration::from_secs(60)).unwrap();
        assert_eq!(access.verify(&token).unwrap(), (grants.clone(), None));

        let other = mint_hs256(&[b'x'; 32], &grants, Duration::from_secs(60)).unwrap();
        assert!(matches!(
            access.verify(&other),
            Err(Refusal::Unauthorized(TokenFault::Invalid(_)))
        ));
        assert!(mint_hs256(b"short", &grants, Duration::from_secs(60)).is_err());
    }
}
