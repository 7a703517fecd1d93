//! The HTTP server's settings, each with its one default: [`Config`], the
//! hub's [`HubConfig`] inside it. Built once, from the command line or by
//! hand when embedding, and passed down as one value.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::ClusterConfig;
use crate::core::channel::Pattern;
use crate::core::config::{HubConfig, check_duration, check_header_value, invalid};
use crate::error::Error;

use super::jwt::check_secret;
#[cfg(feature = "tls")]
use super::tls::TlsFiles;

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
    /// The hub behind the server. Its `write_timeout` bounds every write
    /// to a subscriber of this server too (`--write-timeout`).
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
    /// `user:*`), or the application's yes through `auth_url`. Needs
    /// `jwt_secret`, `jwt_public_key` or `auth_url`.
    pub private: Vec<Pattern>,
    /// Ask this backend (`GET`, with the subscriber's `Cookie` and
    /// `Authorization`) whether a subscriber without a covering token may
    /// join the private channels it asked for (SPEC "Auth callback").
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub auth_url: Option<String>,
    /// `Access-Control-Allow-Origin` on every response.
    pub cors_origin: String,
    /// Serve the web client from this folder instead of the built-in copy.
    pub static_dir: Option<PathBuf>,
    /// How long a `/broadcast` body may take to arrive.
    pub body_timeout: Duration,
    /// How long a connection may send nothing while a request is expected
    /// (an idle keep-alive connection, or a request head that stopped
    /// halfway) before it is closed. Event streams are not affected.
    pub idle_timeout: Duration,
    /// How long a request head (the request line and the headers) may take
    /// from its first byte to its end: past it, `408` and the connection
    /// is closed, so a client that drips a head byte by byte cannot hold a
    /// connection for ever.
    pub header_timeout: Duration,
    /// Gzip event streams for clients that ask for it (`Accept-Encoding:
    /// gzip`) over HTTP/1.1; see [`StreamRequest::offer_gzip`]. Each
    /// compressed stream keeps about 16 KiB more while it is open.
    ///
    /// [`StreamRequest::offer_gzip`]: crate::StreamRequest::offer_gzip
    pub compress: bool,
    /// Cluster mode: share this Redis stream with other hubs. `None`: one
    /// process, history in memory.
    pub cluster: Option<ClusterConfig>,
    /// Serve HTTPS only, with this certificate and key. `None`: plain HTTP.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<TlsFiles>,
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
            #[cfg(feature = "auth")]
            auth_url: None,
            cors_origin: "*".to_owned(),
            static_dir: None,
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            compress: false,
            cluster: None,
            #[cfg(feature = "tls")]
            tls: None,
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
        #[cfg(feature = "auth")]
        if self.auth_url.is_some() && self.private.is_empty() {
            return invalid(
                "auth_url",
                "needs --private patterns: the backend is asked about private channels only",
            );
        }
        #[cfg(feature = "auth")]
        let asks_backend = self.auth_url.is_some();
        #[cfg(not(feature = "auth"))]
        let asks_backend = false;
        if !self.private.is_empty()
            && self.jwt_secret.is_none()
            && self.jwt_public_key.is_none()
            && !asks_backend
        {
            return invalid(
                "private",
                "needs a key to check tokens with (a JWT secret or public key) or an \
                 --auth-url to ask: without one, nobody could join those channels",
            );
        }
        if let Some(dir) = &self.static_dir
            && !dir.is_dir()
        {
            return invalid("static_dir", &format!("{} is not a folder", dir.display()));
        }
        check_duration("body_timeout", self.body_timeout)?;
        check_duration("idle_timeout", self.idle_timeout)?;
        check_duration("header_timeout", self.header_timeout)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        Ok(())
    }
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
