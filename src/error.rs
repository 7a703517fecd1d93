//! Everything a public function of this crate can fail with, as one enum
//! whose messages read like sentences: they are what a user sees in a log
//! line or in the `error` field of a JSON reply, so each says what is wrong
//! and, where it helps, what to do.
//!
//! Each error also tells the HTTP status it means when it answers a
//! request ([`Error::status`], [`Error::retry_after`]): the one table the
//! server and every embedding use. Faults that only an HTTP request can
//! have (a missing token, a body too large or too slow) are the server's
//! business, with their status codes, in `server/reply.rs`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// An sse-hub error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be set up on this address.
    CannotListen {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// A setting is out of range.
    InvalidConfig {
        /// The setting, as named in the server's `Config` or in
        /// [`HubConfig`](crate::HubConfig).
        field: &'static str,
        /// What it must be.
        why: String,
    },
    /// A limit of the system leaves no room for a single subscriber.
    SystemLimit {
        /// The limit, as a user would look it up (`open files (ulimit -n)`).
        limit: &'static str,
        /// Its value.
        value: u64,
        /// How to raise it.
        raise: &'static str,
    },
    /// An event name breaks the rules; the text says which.
    InvalidEventName(&'static str),
    /// A channel name breaks the rules; the text says which.
    InvalidChannel(&'static str),
    /// A channel pattern (`--private`, or a token's lists) breaks the
    /// rules; the text says which.
    InvalidPattern(&'static str),
    /// A subscriber asked for more than 32 distinct channels.
    TooManyChannels,
    /// A publish body is not UTF-8.
    BodyNotUtf8,
    /// A publish body is not JSON; the text is the parser's.
    BodyNotJson(String),
    /// A publish body is JSON but neither an object nor an array of them.
    BodyNotAnObject,
    /// A publish body has no `message` field.
    MissingMessage,
    /// A publish body has a field other than `message`, `event` and
    /// `channel`.
    UnknownField(String),
    /// A publish body gives a field twice; which value was meant is not
    /// known.
    DuplicateField(String),
    /// A publish body's `event` field is not a string.
    EventNotAString,
    /// A publish body's `channel` field is not a string.
    ChannelNotAString,
    /// A batch publish body holds more messages than allowed.
    TooManyMessages {
        /// The most a batch may hold.
        limit: usize,
    },
    /// An element of a batch publish body is wrong.
    InBatch {
        /// Its position in the batch, from 0.
        index: usize,
        /// What is wrong with it.
        error: Box<Error>,
    },
    /// The hub already holds as many streams as it may.
    HubFull,
    /// The hub has stopped, so nothing can be published or subscribed.
    HubStopped,
    /// An internal thread ended, or could not be started; the hub cannot go
    /// on serving.
    ThreadDied(&'static str),
    /// Cluster mode: Redis cannot be reached, or did not answer in time;
    /// the text says what failed and whether anything was published.
    RedisUnavailable(String),
    /// A publish with the same `Idempotency-Key` is still running; try
    /// again shortly.
    PublishInProgress,
    /// The auth callback's backend did not give a usable answer; the text
    /// says what happened. The subscriber may try again.
    AuthUnavailable(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CannotListen { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")?;
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(
                        f,
                        " (is another sse-hub running there? choose another address, \
                         or port 0 for any free one, like 127.0.0.1:0)"
                    )?;
                }
                Ok(())
            }
            Error::InvalidConfig { field, why } => write!(f, "invalid setting `{field}`: {why}"),
            Error::SystemLimit {
                limit,
                value,
                raise,
            } => write!(
                f,
                "{limit} is {value}, which leaves no room for a single subscriber; {raise}"
            ),
            Error::InvalidEventName(why) => write!(f, "event name {why}"),
            Error::InvalidChannel(why) => write!(f, "channel name {why}"),
            Error::InvalidPattern(why) => write!(f, "channel pattern {why}"),
            Error::TooManyChannels => f.write_str("at most 32 distinct channels per subscriber"),
            Error::BodyNotUtf8 => f.write_str("body is not valid UTF-8"),
            Error::BodyNotJson(why) => write!(f, "body is not valid JSON: {why}"),
            Error::BodyNotAnObject => f.write_str(
                "body must be a JSON object, like {\"message\": \"hello\"}, or an array of them",
            ),
            Error::MissingMessage => f.write_str("missing field \"message\""),
            Error::DuplicateField(name) => {
                let name = serde_json::to_string(name).unwrap_or_default();
                write!(f, "field {name} is given twice")
            }
            Error::UnknownField(name) => {
                let name = serde_json::to_string(name).unwrap_or_default();
                write!(
                    f,
                    "unknown field {name}: the fields are message, event and channel"
                )
            }
            Error::EventNotAString => f.write_str("field \"event\" must be a string"),
            Error::ChannelNotAString => f.write_str("field \"channel\" must be a string"),
            Error::TooManyMessages { limit } => {
                write!(f, "a batch holds at most {limit} messages")
            }
            Error::InBatch { index, error } => write!(f, "batch element {index}: {error}"),
            Error::HubFull => f.write_str("the hub is full, try again later"),
            Error::HubStopped => f.write_str("the hub has stopped"),
            Error::ThreadDied(name) => write!(f, "internal thread `{name}` stopped unexpectedly"),
            Error::RedisUnavailable(why) => f.write_str(why),
            Error::AuthUnavailable(why) => write!(f, "{why}; try again later"),
            Error::PublishInProgress => {
                f.write_str("a publish with this Idempotency-Key is still in progress; try again")
            }
        }
    }
}

impl Error {
    /// The HTTP status this error means when it is the answer to a
    /// request: `503` when the hub cannot serve now (full, stopped, its
    /// Redis out of reach), `500` for a fault of the server's own set-up,
    /// and `400` for everything a request got wrong.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Channel, Error};
    ///
    /// assert_eq!(Error::HubFull.status(), 503);
    /// assert_eq!(Error::HubFull.retry_after(), Some(5));
    /// let bad = Channel::new("a b").unwrap_err();
    /// assert_eq!((bad.status(), bad.retry_after()), (400, None));
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            Error::HubFull
            | Error::HubStopped
            | Error::ThreadDied(_)
            | Error::RedisUnavailable(_)
            | Error::PublishInProgress
            | Error::AuthUnavailable(_) => 503,
            Error::CannotListen { .. }
            | Error::InvalidConfig { .. }
            | Error::SystemLimit { .. } => 500,
            _ => 400,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`),
    /// for the errors that pass ([`Error::status`] 503).
    pub fn retry_after(&self) -> Option<u32> {
        (self.status() == 503).then_some(crate::core::stream::RETRY_AFTER_SECS)
    }

    /// A whole HTTP/1.1 reply for this error, for a connection that
    /// closes after it: its [`status`](Error::status), `Retry-After` where
    /// one applies, `Access-Control-Allow-Origin` if `cors_origin` is given,
    /// and the JSON body. For an application that answers on a socket of
    /// its own (a plain `TcpListener`) before any stream starts.
    ///
    /// # Example
    ///
    /// ```
    /// let reply = String::from_utf8(sse_hub::Error::HubFull.to_http_response(Some("*"))).unwrap();
    /// assert!(reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    /// assert!(reply.contains("\r\nRetry-After: 5\r\n"));
    /// assert!(reply.contains("\r\nConnection: close\r\n"));
    /// assert!(reply.ends_with("{\"error\":\"the hub is full, try again later\"}"));
    /// ```
    pub fn to_http_response(&self, cors_origin: Option<&str>) -> Vec<u8> {
        let retry = self.retry_after().map(|secs| secs.to_string());
        let mut fields = Vec::new();
        if let Some(origin) = cors_origin {
            fields.push((crate::core::stream::ALLOW_ORIGIN, origin));
        }
        if let Some(secs) = &retry {
            fields.push(("Retry-After", secs.as_str()));
        }
        crate::core::stream::closing_response(
            self.status(),
            &fields,
            "application/json",
            self.to_json().as_bytes(),
        )
    }

    /// The JSON body of an error reply: `{"error":"<this error>"}`.
    pub fn to_json(&self) -> String {
        error_json(&self.to_string())
    }
}

/// `{"error":"<what>"}`, the body of every error reply.
pub(crate) fn error_json(what: &str) -> String {
    let mut out = String::from("{\"error\":");
    out.push_str(&serde_json::to_string(what).unwrap_or_default());
    out.push('}');
    out
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::CannotListen { source, .. } => Some(source),
            Error::InBatch { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}
