//! Settings, each with its one default: [`HubConfig`] for a hub on its own
//! (history, queues, client limit, and the heartbeat and `retry:` every
//! stream gets), and [`Config`] for the HTTP server around one. Built once,
//! from the command line in `main.rs` or by hand when embedding, and passed
//! down as one value.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::ClusterConfig;
use crate::error::Error;
use crate::server::access::{Pattern, check_secret};

/// The longest any timeout or interval may be: longer ones would overflow
/// clock arithmetic, and mean "never" anyway.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// How a hub behaves, whatever serves its streams. [`HubConfig::default`]
/// gives the documented defaults.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// let config = sse_hub::HubConfig {
///     history: 100,
///     heartbeat: Some(Duration::from_secs(5)),
///     ..sse_hub::HubConfig::default()
/// };
/// assert_eq!(config.queue, 256);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Published messages kept for `Last-Event-ID` replay; 0 keeps none.
    pub history: usize,
    /// Capacity of each subscriber's queue, in events. A subscriber whose
    /// queue is full is dropped and catches up from history when it resumes.
    pub queue: usize,
    /// Most subscribers at once; past it, subscribing fails with
    /// [`Error::HubFull`].
    pub max_clients: usize,
    /// Keep-alive comment on an idle stream this often; `None` sends none.
    pub heartbeat: Option<Duration>,
    /// Reconnection delay sent as `retry:` at the start of every stream;
    /// `None` sends none.
    pub retry: Option<Duration>,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            history: 1024,
            queue: 256,
            max_clients: 10_000,
            heartbeat: Some(Duration::from_secs(15)),
            retry: Some(Duration::from_millis(3000)),
        }
    }
}

impl HubConfig {
    /// Checks the values that would otherwise fail later, at a worse moment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting and what it needs.
    pub fn validate(&self) -> Result<(), Error> {
        if self.queue == 0 {
            return invalid("queue", "must be at least 1");
        }
        if self.max_clients == 0 {
            return invalid("max_clients", "must be at least 1");
        }
        if let Some(heartbeat) = self.heartbeat {
            check_duration("heartbeat", heartbeat)?;
        }
        if let Some(retry) = self.retry {
            check_duration("retry", retry)?;
        }
        Ok(())
    }
}

/// How the HTTP server behaves. [`Config::default`] gives the documented
/// defaults.
///
/// # Example
///
/// ```
/// let config = sse_hub::Config {
///     listen: "127.0.0.1:0".parse().unwrap(),
///     ..sse_hub::Config::default()
/// };
/// assert_eq!(config.hub.history, 1024);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The hub behind the server.
    pub hub: HubConfig,
    /// Largest `/broadcast` body, in bytes.
    pub max_body: usize,
    /// If set, `/broadcast` needs `Authorization: Bearer <token>`. With
    /// JSON Web Tokens configured too, it is accepted beside them, and
    /// may publish anywhere.
    pub publish_token: Option<String>,
    /// Accept JSON Web Tokens signed with this secret (HS256); at least
    /// 32 bytes.
    pub jwt_secret: Option<String>,
    /// Accept JSON Web Tokens verified with the PEM public key in this
    /// file: RS256 for an RSA key, ES256 for a P-256 key, EdDSA for an
    /// Ed25519 key. Read when the server starts.
    pub jwt_public_key: Option<PathBuf>,
    /// Channels that need a token to join ([`Pattern`]s, such as
    /// `user:*`). Needs `jwt_secret` or `jwt_public_key`.
    pub private: Vec<Pattern>,
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
    /// Gzip event streams for clients that ask for it (`Accept-Encoding:
    /// gzip`) over HTTP/1.1; see [`StreamRequest::offer_gzip`]. Each
    /// compressed stream keeps about 16 KiB more while it is open.
    ///
    /// [`StreamRequest::offer_gzip`]: crate::StreamRequest::offer_gzip
    pub compress: bool,
    /// Cluster mode: share this Redis stream with other hubs. `None`: one
    /// process, history in memory.
    pub cluster: Option<ClusterConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 3000)),
            hub: HubConfig::default(),
            max_body: 65_536,
            publish_token: None,
            jwt_secret: None,
            jwt_public_key: None,
            private: Vec::new(),
            cors_origin: "*".to_owned(),
            static_dir: None,
            write_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            compress: false,
            cluster: None,
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
        self.hub.validate()?;
        if self.max_body == 0 {
            return invalid("max_body", "must be at least 1");
        }
        check_header_value("cors_origin", &self.cors_origin)?;
        if let Some(token) = &self.publish_token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return invalid("publish_token", "must be printable ASCII without spaces");
        }
        if let Some(secret) = &self.jwt_secret {
            check_secret(secret.as_bytes())?;
        }
        if !self.private.is_empty() && self.jwt_secret.is_none() && self.jwt_public_key.is_none() {
            return invalid(
                "private",
                "needs a key to check tokens with, a JWT secret or public key: \
                 without one, nobody could join those channels",
            );
        }
        if let Some(dir) = &self.static_dir
            && !dir.is_dir()
        {
            return invalid("static_dir", &format!("{} is not a folder", dir.display()));
        }
        check_duration("write_timeout", self.write_timeout)?;
        check_duration("body_timeout", self.body_timeout)?;
        check_duration("idle_timeout", self.idle_timeout)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        Ok(())
    }
}

fn invalid(field: &'static str, why: &str) -> Result<(), Error> {
    Err(Error::InvalidConfig {
        field,
        why: why.to_owned(),
    })
}

fn check_duration(field: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        return invalid(field, "must be longer than zero");
    }
    if value > MAX_DURATION {
        return invalid(field, "must be at most a day (86400 seconds)");
    }
    Ok(())
}

/// Checks a value that goes into a response header: printable ASCII.
pub(crate) fn check_header_value(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return invalid(
            field,
            "must be printable ASCII, like * or https://example.com",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn each_bad_value_is_named() {
        let hub = |hub: HubConfig| Config {
            hub,
            ..Config::default()
        };
        let bad = [
            (
                hub(HubConfig {
                    queue: 0,
                    ..HubConfig::default()
                }),
                "queue",
            ),
            (
                hub(HubConfig {
                    max_clients: 0,
                    ..HubConfig::default()
                }),
                "max_clients",
            ),
            (
                hub(HubConfig {
                    heartbeat: Some(Duration::from_secs(u64::MAX)),
                    ..HubConfig::default()
                }),
                "heartbeat",
            ),
            (
                Config {
                    cors_origin: "a\r\nSet-Cookie: x".to_owned(),
                    ..Config::default()
                },
                "cors_origin",
            ),
            (
                Config {
                    publish_token: Some("two words".to_owned()),
                    ..Config::default()
                },
                "publish_token",
            ),
            (
                Config {
                    static_dir: Some(PathBuf::from("/no/such/folder")),
                    ..Config::default()
                },
                "static_dir",
            ),
            (
                Config {
                    jwt_secret: Some("too short".to_owned()),
                    ..Config::default()
                },
                "jwt_secret",
            ),
            (
                Config {
                    private: vec![Pattern::new("user:*").unwrap()],
                    ..Config::default()
                },
                "private",
            ),
            (
                Config {
                    body_timeout: Duration::from_secs(u64::MAX),
                    ..Config::default()
                },
                "body_timeout",
            ),
        ];
        for (config, field) in bad {
            match config.validate() {
                Err(Error::InvalidConfig { field: named, .. }) => assert_eq!(named, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
