//! Everything that can go wrong, as one enum whose messages read like
//! sentences: they are what a user sees in a log line or in the `error` field
//! of a JSON reply, so each says what is wrong and, where it helps, what to do.

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
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// An event name breaks the rules; the text says which.
    InvalidEventName(&'static str),
    /// A channel name breaks the rules; the text says which.
    InvalidChannel(&'static str),
    /// A subscriber asked for more than 32 distinct channels.
    TooManyChannels,
    /// A publish body is not UTF-8.
    BodyNotUtf8,
    /// A publish body is not JSON; the text is the parser's.
    BodyNotJson(String),
    /// A publish body is JSON but not an object.
    BodyNotAnObject,
    /// A publish body has no `message` field.
    MissingMessage,
    /// A publish body's `event` field is not a string.
    EventNotAString,
    /// A publish body's `channel` field is not a string.
    ChannelNotAString,
    /// A subscribe request came with a body.
    UnexpectedBody,
    /// A publish body is larger than `--max-body`.
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A publish body did not arrive in time.
    BodyTimedOut,
    /// A publish body could not be read.
    BodyUnreadable(io::Error),
    /// A publish request lacks the right bearer token.
    Unauthorized,
    /// No route or web client file has this path.
    NotFound(String),
    /// The hub already holds `--max-clients` streams.
    HubFull,
    /// The hub has stopped, so nothing can be published or subscribed.
    HubStopped,
    /// An internal thread ended; the process cannot go on serving.
    ThreadDied(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CannotListen { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")
            }
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::InvalidEventName(why) => write!(f, "event name {why}"),
            Error::InvalidChannel(why) => write!(f, "channel name {why}"),
            Error::TooManyChannels => f.write_str("at most 32 distinct channels per subscriber"),
            Error::BodyNotUtf8 => f.write_str("body is not valid UTF-8"),
            Error::BodyNotJson(why) => write!(f, "body is not valid JSON: {why}"),
            Error::BodyNotAnObject => {
                f.write_str("body must be a JSON object, like {\"message\": \"hello\"}")
            }
            Error::MissingMessage => f.write_str("missing field \"message\""),
            Error::EventNotAString => f.write_str("field \"event\" must be a string"),
            Error::ChannelNotAString => f.write_str("field \"channel\" must be a string"),
            Error::UnexpectedBody => f.write_str("a subscribe request takes no body"),
            Error::BodyTooLarge { limit } => {
                write!(f, "body is larger than the limit of {limit} bytes")
            }
            Error::BodyTimedOut => f.write_str("body did not arrive in time"),
            Error::BodyUnreadable(e) => write!(f, "body could not be read: {e}"),
            Error::Unauthorized => f.write_str(
                "missing or wrong bearer token: send the header Authorization: Bearer <token>",
            ),
            Error::NotFound(path) => write!(f, "no such page: {path}"),
            Error::HubFull => f.write_str("the hub is full, try again later"),
            Error::HubStopped => f.write_str("the hub has stopped"),
            Error::ThreadDied(name) => write!(f, "internal thread `{name}` stopped unexpectedly"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::CannotListen { source, .. } | Error::BodyUnreadable(source) => Some(source),
            _ => None,
        }
    }
}
