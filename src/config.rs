//! Settings, built once (from the command line in `main.rs`, or by hand when
//! embedding) and passed down to every part as one shared value.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// How the server behaves. [`Config::default`] gives the documented defaults.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// let config = sse_hub::Config {
///     listen: "127.0.0.1:0".parse().unwrap(),
///     heartbeat: Some(Duration::from_secs(5)),
///     ..sse_hub::Config::default()
/// };
/// assert_eq!(config.history, 1024);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Keep-alive comment on an idle stream this often; `None` sends none.
    pub heartbeat: Option<Duration>,
    /// Reconnection delay sent as `retry:` at the start of every stream, in
    /// milliseconds; 0 sends none.
    pub retry_ms: u64,
    /// Published messages kept for `Last-Event-ID` replay; 0 keeps none.
    pub history: usize,
    /// Capacity of each subscriber's queue, in messages. A subscriber whose
    /// queue is full is dropped and catches up from history when it resumes.
    pub queue: usize,
    /// Most concurrent `/events` streams. The server may lower it at start
    /// when the system's limits cannot hold that many (see the README).
    pub max_clients: usize,
    /// Largest `/broadcast` body, in bytes.
    pub max_body: usize,
    /// If set, `/broadcast` needs `Authorization: Bearer <token>`.
    pub publish_token: Option<String>,
    /// `Access-Control-Allow-Origin` on every response.
    pub cors_origin: String,
    /// Serve the web client from this folder instead of the built-in copy.
    pub static_dir: Option<PathBuf>,
    /// How long one write to a subscriber may block before the subscriber is
    /// dropped (a client that stopped reading).
    pub write_timeout: Duration,
    /// How long a `/broadcast` body may take to arrive.
    pub body_timeout: Duration,
    /// How long a connection may send nothing while a request is expected
    /// (an idle keep-alive connection, or a request head that stopped
    /// halfway) before it is closed. Event streams are not affected.
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 3000)),
            heartbeat: Some(Duration::from_secs(15)),
            retry_ms: 3000,
            history: 1024,
            queue: 256,
            max_clients: 10_000,
            max_body: 65_536,
            publish_token: None,
            cors_origin: "*".to_owned(),
            static_dir: None,
            write_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Checks the values that would otherwise fail later, at a worse moment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting and what it needs.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |why: &str| Err(Error::InvalidConfig(why.to_owned()));
        if self.queue == 0 {
            return invalid("--queue must be at least 1");
        }
        if self.max_body == 0 {
            return invalid("--max-body must be at least 1");
        }
        if self.cors_origin.is_empty() || !is_header_value(&self.cors_origin) {
            return invalid("--cors-origin must be printable ASCII, like * or https://example.com");
        }
        if let Some(token) = &self.publish_token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return invalid("--publish-token must be printable ASCII without spaces");
        }
        if let Some(dir) = &self.static_dir
            && !dir.is_dir()
        {
            return Err(Error::InvalidConfig(format!(
                "--static {} is not a folder",
                dir.display()
            )));
        }
        if self.write_timeout.is_zero()
            || self.body_timeout.is_zero()
            || self.idle_timeout.is_zero()
        {
            return invalid("timeouts must be longer than zero");
        }
        Ok(())
    }
}

fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn rejects_values_that_would_break_later() {
        let bad = [
            Config {
                queue: 0,
                ..Config::default()
            },
            Config {
                cors_origin: "a\r\nSet-Cookie: x".to_owned(),
                ..Config::default()
            },
            Config {
                publish_token: Some("two words".to_owned()),
                ..Config::default()
            },
            Config {
                static_dir: Some(PathBuf::from("/no/such/folder")),
                ..Config::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
