//! The command line: every flag with its `SSE_HUB_*` variable, each
//! default taken from the one place that defines it (`Config::default`),
//! and messages that name the flag, or the variable a bad value came from.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};
use sse_hub::access::Pattern;
use sse_hub::{ClusterConfig, Config, Error, HubConfig, TlsFiles};

/// The defaults, from the one place that defines them.
fn defaults() -> Config {
    Config::default()
}

fn secs(duration: Option<Duration>) -> u64 {
    duration.map_or(0, |d| d.as_secs())
}

fn millis(duration: Option<Duration>) -> u64 {
    duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A Server-Sent Events broadcaster: subscribe with GET /events, publish with
/// POST /broadcast.
#[derive(Parser, Debug)]
#[command(
    name = "sse-hub",
    version,
    about,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Args {
    /// Without a command, the hub runs with the options below.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// Address to listen on; port 0 picks a free port
    #[arg(long, env = "SSE_HUB_LISTEN", value_name = "ADDR",
          default_value_t = defaults().listen, value_parser = socket_addr)]
    listen: SocketAddr,

    /// Keep-alive comment to an idle stream this often; 0 = never
    #[arg(long, env = "SSE_HUB_HEARTBEAT", value_name = "SECS",
          default_value_t = secs(defaults().hub.heartbeat),
          allow_negative_numbers = true, value_parser = whole_number)]
    heartbeat: u64,

    /// `retry:` sent at the start of every stream; 0 = none
    #[arg(long, env = "SSE_HUB_RETRY", value_name = "MS",
          default_value_t = millis(defaults().hub.retry),
          allow_negative_numbers = true, value_parser = whole_number)]
    retry: u64,

    /// Published messages kept for Last-Event-ID replay; 0 = none
    #[arg(long, env = "SSE_HUB_HISTORY", value_name = "N",
          default_value_t = defaults().hub.history,
          allow_negative_numbers = true, value_parser = count)]
    history: usize,

    /// Messages older than this are not replayed (a client resuming from
    /// before them gets a gap); 0 = kept until --history pushes them out
    #[arg(long, env = "SSE_HUB_HISTORY_TTL", value_name = "SECS", default_value_t = 0,
          allow_negative_numbers = true, value_parser = whole_number)]
    history_ttl: u64,

    /// Per-client queue capacity, in messages; a client that falls this far
    /// behind is dropped and resumes from history
    #[arg(long, env = "SSE_HUB_QUEUE", value_name = "N",
          default_value_t = defaults().hub.queue,
          allow_negative_numbers = true, value_parser = count)]
    queue: usize,

    /// Concurrent /events streams; more get 503 (lowered at start if the
    /// system's limits cannot hold that many)
    #[arg(long, env = "SSE_HUB_MAX_CLIENTS", value_name = "N",
          default_value_t = defaults().hub.max_clients,
          allow_negative_numbers = true, value_parser = count)]
    max_clients: usize,

    /// Largest /broadcast body; more gets 413
    #[arg(long, env = "SSE_HUB_MAX_BODY", value_name = "BYTES",
          default_value_t = defaults().max_body,
          allow_negative_numbers = true, value_parser = count)]
    max_body: usize,

    /// If set, /broadcast needs `Authorization: Bearer TOKEN` (prefer the
    /// environment variable: a flag shows up in `ps`)
    #[arg(
        long,
        env = "SSE_HUB_PUBLISH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    publish_token: Option<String>,

    /// Access-Control-Allow-Origin on every response
    #[arg(long, env = "SSE_HUB_CORS_ORIGIN", value_name = "ORIGIN",
          default_value_t = defaults().cors_origin)]
    cors_origin: String,

    /// Serve the web client from DIR instead of the copy built into the binary
    #[arg(long = "static", env = "SSE_HUB_STATIC", value_name = "DIR")]
    static_dir: Option<PathBuf>,

    /// A write to a client that blocks this long drops the client
    #[arg(long, env = "SSE_HUB_WRITE_TIMEOUT", value_name = "SECS",
          default_value_t = defaults().hub.write_timeout.as_secs(),
          allow_negative_numbers = true, value_parser = whole_number)]
    write_timeout: u64,

    /// A /broadcast body that takes longer than this to arrive gets 408
    #[arg(long, env = "SSE_HUB_BODY_TIMEOUT", value_name = "SECS",
          default_value_t = defaults().body_timeout.as_secs(),
          allow_negative_numbers = true, value_parser = whole_number)]
    body_timeout: u64,

    /// A connection that sends nothing this long while a request is expected
    /// (idle keep-alive, a stalled request head) is closed; streams are not
    /// affected
    #[arg(long, env = "SSE_HUB_IDLE_TIMEOUT", value_name = "SECS",
          default_value_t = defaults().idle_timeout.as_secs(),
          allow_negative_numbers = true, value_parser = whole_number)]
    idle_timeout: u64,

    /// A request head (request line and headers) must be complete this long
    /// after its first byte, else 408 and the connection is closed
    #[arg(long, env = "SSE_HUB_HEADER_TIMEOUT", value_name = "SECS",
          default_value_t = defaults().header_timeout.as_secs(),
          allow_negative_numbers = true, value_parser = whole_number)]
    header_timeout: u64,

    /// Cluster mode: share a Redis stream with other hubs, as
    /// redis://[:password@]host:port/db (prefer the environment variable if
    /// it holds a password: a flag shows up in `ps`)
    #[arg(
        long,
        env = "SSE_HUB_REDIS",
        value_name = "URL",
        hide_env_values = true
    )]
    redis: Option<String>,

    /// The stream's key in Redis (cluster mode)
    #[arg(long, env = "SSE_HUB_REDIS_STREAM", value_name = "KEY",
          default_value = sse_hub::DEFAULT_STREAM)]
    redis_stream: String,

    /// Gzip event streams for clients that send `Accept-Encoding: gzip`
    /// (HTTP/1.1 only); about 16 KiB more per compressed stream
    #[arg(long, env = "SSE_HUB_COMPRESS", default_value_t = defaults().compress,
          value_parser = BoolishValueParser::new())]
    compress: bool,

    /// Accept JSON Web Tokens signed with SECRET (HS256, at least 32 bytes;
    /// prefer the environment variable: a flag shows up in `ps`)
    #[arg(
        long,
        env = "SSE_HUB_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,

    /// Accept RS256, ES256 or EdDSA tokens verified with the PEM public key
    /// in FILE (the algorithm follows the key)
    #[arg(long, env = "SSE_HUB_JWT_PUBLIC_KEY", value_name = "FILE")]
    jwt_public_key: Option<PathBuf>,

    /// Channels matching PATTERN need a token to join; repeatable, and
    /// SSE_HUB_PRIVATE takes a comma-separated list. `*` at the end matches
    /// any rest: user:*
    #[arg(long, env = "SSE_HUB_PRIVATE", value_name = "PATTERN",
          value_delimiter = ',', value_parser = pattern)]
    private: Vec<Pattern>,

    /// Channels matching PATTERN have presence: joins and leaves are
    /// `presence` events on them, and GET /presence?channel= lists who is
    /// there; repeatable, and SSE_HUB_PRESENCE takes a comma-separated list
    #[arg(long, env = "SSE_HUB_PRESENCE", value_name = "PATTERN",
          value_delimiter = ',', value_parser = pattern)]
    presence: Vec<Pattern>,

    /// Ask this backend whether a subscriber without a covering token may
    /// join the private channels it asked for (GET with its Cookie and
    /// Authorization; 2 s to answer, else 503)
    #[arg(long, env = "SSE_HUB_AUTH_URL", value_name = "URL")]
    auth_url: Option<String>,

    /// Serve HTTPS only, with the certificate chain in this PEM file (the
    /// server's own certificate first, as certbot's fullchain.pem); needs
    /// --tls-key. SIGHUP reads both files again
    #[arg(
        long,
        env = "SSE_HUB_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, a PEM file
    #[arg(
        long,
        env = "SSE_HUB_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Print a JSON Web Token signed with SSE_HUB_JWT_SECRET, for testing
    ///
    /// The token is HS256, as a hub started with the same secret takes:
    /// sse-hub token --subscribe 'user:42' --publish '*' --ttl 1h
    Token(TokenArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct TokenArgs {
    /// A channel the token may join (repeatable); `*` at the end matches any
    /// rest
    #[arg(long, value_name = "PATTERN", value_parser = pattern)]
    pub(crate) subscribe: Vec<Pattern>,

    /// A channel the token may publish to (repeatable); `*` alone also
    /// covers messages for everyone
    #[arg(long, value_name = "PATTERN", value_parser = pattern)]
    pub(crate) publish: Vec<Pattern>,

    /// How long the token is valid: 90s, 30m, 1h, 7d (a bare number is
    /// seconds)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = ttl)]
    pub(crate) ttl: Duration,
}

impl Args {
    pub(crate) fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            hub: HubConfig {
                history: self.history,
                queue: self.queue,
                max_clients: self.max_clients,
                heartbeat: (self.heartbeat > 0).then(|| Duration::from_secs(self.heartbeat)),
                retry: (self.retry > 0).then(|| Duration::from_millis(self.retry)),
                history_ttl: (self.history_ttl > 0).then(|| Duration::from_secs(self.history_ttl)),
                write_timeout: Duration::from_secs(self.write_timeout),
                presence: self.presence,
            },
            max_body: self.max_body,
            publish_token: self.publish_token,
            jwt_secret: self.jwt_secret,
            jwt_public_key: self.jwt_public_key,
            private: self.private,
            auth_url: self.auth_url,
            cors_origin: self.cors_origin,
            static_dir: self.static_dir,
            body_timeout: Duration::from_secs(self.body_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            header_timeout: Duration::from_secs(self.header_timeout),
            compress: self.compress,
            cluster: self.redis.map(|redis| ClusterConfig {
                redis,
                stream: self.redis_stream,
            }),
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
        }
    }
}

/// `IP:PORT`, or `HOST:PORT` resolved to its first address.
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("not an address like 127.0.0.1:3000 ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// A whole number of seconds or milliseconds, 0 or more.
fn whole_number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| "must be a whole number, 0 or more".to_owned())
}

/// A count, 0 or more (the server says which counts must be at least 1).
fn count(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| "must be a whole number, 0 or more".to_owned())
}

/// A channel pattern: a name, or a name's beginning and `*`.
fn pattern(text: &str) -> Result<Pattern, String> {
    Pattern::new(text).map_err(|e| e.to_string())
}

/// A duration for `sse-hub token --ttl`: a whole number with an optional
/// unit, s, m, h or d.
fn ttl(text: &str) -> Result<Duration, String> {
    let wrong = || "must be a whole number with s, m, h or d, like 30m or 1h".to_owned();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(wrong()),
    };
    let secs = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(wrong)?;
    if secs == 0 {
        return Err("must be longer than zero".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Exits with clap's message; a bad value that came from an `SSE_HUB_*`
/// variable rather than the command line is named as that variable.
pub(crate) fn exit_on_bad_arguments(error: clap::Error) -> ! {
    if matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) && let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg)
    {
        let flag = arg.split(' ').next().unwrap_or(arg);
        let given = std::env::args()
            .skip(1)
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        if !given {
            let variable = env_variable(flag);
            let text = error.render().to_string().replace(
                &format!("for '{arg}'"),
                &format!("in {variable} (for {flag})"),
            );
            eprint!("{text}");
            std::process::exit(2);
        }
    }
    error.exit()
}

/// `--max-clients` -> `SSE_HUB_MAX_CLIENTS`.
fn env_variable(flag: &str) -> String {
    format!(
        "SSE_HUB_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// A configuration error in the words of the command line: the flag, not
/// the field of `Config`.
pub(crate) fn in_flag_terms(error: &Error) -> String {
    match error {
        Error::InvalidConfig { field, why } => {
            let flag = match *field {
                "static_dir" => "static".to_owned(),
                other => other.replace('_', "-"),
            };
            format!(
                "invalid value for --{flag} ({}): {why}",
                env_variable(&flag)
            )
        }
        other => other.to_string(),
    }
}
