//! The HTTP server around a hub: the path a request takes, one module per
//! room on it.
//!
//! ```text
//!  socket ─> tiny_http: accept thread, then one thread per connection,
//!            which reads each request and hands it to route.rs
//!              ├─ GET /events ───> events.rs: access.rs checks the token a
//!              │                   private channel needs; register with the hub, then
//!              │                   this same thread writes the stream
//!              │                   (core/stream/); hangup.rs watches
//!              │                   the socket meanwhile
//!              ├─ POST /broadcast ─> broadcast.rs: check (the token: access.rs),
//!              │                     read, publish
//!              └─ the rest ──────> assets.rs, /healthz, /stats, /metrics
//!  every reply: reply.rs
//! ```
//!
//! A request is answered on the thread that read it, so a connection's
//! requests are answered in order, a publish crosses to the hub thread and
//! back and nothing else, and a slow client holds only its own connection.
//! A subscriber's stream runs on its connection's thread, and when it ends
//! the thread goes back to serving: the next subscriber often finds one
//! waiting.
//!
//! Starting and stopping: the [`Server`] binds the socket (`listener.rs`),
//! starts a hub, tiny_http's accept thread and the hang-up watcher, and
//! watches them all. [`Server::run`] blocks until a [`Stopper`] asks it to
//! stop, then shuts down in order: the hub closes every stream (each ends
//! its HTTP body properly), the port closes, and `run` returns. If one of
//! those threads ends on its own instead (a bug, a panic), `run` returns an
//! error at once: a process whose hub or port is dead must not look alive
//! to its supervisor, so the binary exits non-zero and the supervisor
//! restarts it.
//!
//! What the server does to the process, which a library user should know:
//! at [`Server::bind`] it raises the soft limit on open files to the hard
//! limit (`capacity.rs`), and it may lower `max_clients` to what the
//! system's limits can hold. Nothing else outside its own sockets and
//! threads.

pub mod access;
mod assets;
#[cfg(feature = "auth")]
mod auth_callback;
mod broadcast;
pub mod capacity;
pub(crate) mod config;
mod events;
pub(crate) mod idempotency;
mod jwt;
mod listener;
mod reply;
mod route;
#[cfg(feature = "tls")]
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};

use crate::core::Hub;
use crate::core::hangup::HangUps;
use crate::error::Error;
use crate::server::config::Config;

use access::Access;
use assets::Assets;
use reply::Replies;

/// How long `run` waits for the hub to close every stream at shutdown; the
/// hub itself gives its streams a little less.
const STOP_GRACE: Duration = Duration::from_millis(1800);

/// The stack of a connection's thread. Only the pages a thread touches
/// count towards memory, and a stream's thread, which lives as long as its
/// stream, touches few; the rest is room for the deepest request.
const CONNECTION_STACK: usize = 256 * 1024;

/// Everything a request's handler needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) access: Access,
    pub(crate) hub: Hub,
    pub(crate) replies: Arc<Replies>,
    pub(crate) assets: Assets,
    pub(crate) hangups: Arc<HangUps>,
    /// `Idempotency-Key`s of recent publishes.
    pub(crate) keys: idempotency::Keys,
}

enum Signal {
    Stop,
    Ended { thread: &'static str },
}

/// Asks a running [`Server`] to stop. Cheap to clone; safe to call from a
/// signal handler's thread, and more than once.
#[derive(Clone)]
pub struct Stopper(Sender<Signal>);

impl Stopper {
    /// Asks the server to stop: close every stream and return from `run`.
    pub fn stop(&self) {
        let _ = self.0.send(Signal::Stop);
    }
}

/// An sse-hub server, bound and ready to run.
///
/// # Example
///
/// ```
/// use std::io::{Read, Write};
///
/// let config = sse_hub::Config {
///     listen: "127.0.0.1:0".parse().unwrap(),
///     ..sse_hub::Config::default()
/// };
/// let server = sse_hub::Server::bind(config)?;
/// let addr = server.local_addr();
/// let stopper = server.stopper();
/// let serving = std::thread::spawn(move || server.run());
///
/// let mut client = std::net::TcpStream::connect(addr).unwrap();
/// client.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).unwrap();
/// assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("\r\n\r\nok"));
///
/// stopper.stop();
/// serving.join().unwrap()?;
/// # Ok::<(), sse_hub::Error>(())
/// ```
pub struct Server {
    /// Held for its drop, which closes the port and ends the accept thread.
    _port: sse_hub_tiny_http::Server,
    hub: Hub,
    hangups: Arc<HangUps>,
    local_addr: SocketAddr,
    signals: (Sender<Signal>, Receiver<Signal>),
    /// The certificate being served, with TLS.
    #[cfg(feature = "tls")]
    certificates: Option<Arc<tls::Certificates>>,
}

impl Server {
    /// Checks the configuration, works out how many subscribers the system
    /// can hold (possibly lowering `hub.max_clients`, with a warning), binds
    /// the listening socket and starts the hub and the threads that serve
    /// connections: the server serves from here on; [`Server::run`] watches
    /// it and stops it when asked.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], [`Error::CannotListen`], or
    /// [`Error::ThreadDied`] if the system refused a thread.
    pub fn bind(mut config: Config) -> Result<Server, Error> {
        config.validate()?;
        let access = Access::new(&config)?;
        let capacity = capacity::plan(config.hub.max_clients);
        if let Some(limit) = &capacity.lowered_by {
            warn!(
                "max_clients {} lowered to {}: {} is {}, room for about {} subscribers \
                 (each takes a thread, a file descriptor and 4 memory maps); to hold more, {}",
                config.hub.max_clients,
                capacity.max_clients,
                limit.name,
                limit.value,
                limit.clients,
                limit.raise
            );
        }
        if let (0, Some(limit)) = (capacity.max_clients, &capacity.lowered_by) {
            return Err(Error::SystemLimit {
                limit: limit.name,
                value: limit.value,
                raise: limit.raise,
            });
        }
        config.hub.max_clients = capacity.max_clients;

        let cannot_listen = |source| Error::CannotListen {
            addr: config.listen,
            source,
        };
        let listener =
            listener::bind(config.listen, config.hub.write_timeout).map_err(cannot_listen)?;
        let local_addr = listener.local_addr().map_err(cannot_listen)?;
        let replies = Arc::new(Replies::new(&config.cors_origin)?);

        let signals = crossbeam_channel::unbounded();
        let hub_ended = Report("hub", signals.0.clone());
        let hub = match &config.cluster {
            None => Hub::start_watched(config.hub.clone(), Arc::default(), None, move || {
                drop(hub_ended);
            })?,
            Some(cluster) => start_clustered(&config, cluster, hub_ended)?,
        };
        let hangups = Arc::new(HangUps::new().map_err(|_| Error::ThreadDied("hang-up watcher"))?);
        supervise("hang-up watcher", &signals.0, {
            let hangups = Arc::clone(&hangups);
            move || hangups.run()
        })?;

        let options = sse_hub_tiny_http::ConnectionOptions {
            // A connection that idles while a request is expected is closed.
            read_timeout: Some(config.idle_timeout),
            // The requests tiny_http answers itself (it cannot read them)
            // get the same JSON errors and CORS header as every other.
            error_reply: Some(replies.error_reply()),
            stack_size: Some(CONNECTION_STACK),
        };
        let config_header_timeout = config.header_timeout;
        #[cfg(feature = "tls")]
        let (tls_config, certificates) = match &config.tls {
            Some(files) => {
                let certificates = tls::Certificates::load(files.clone())?;
                let rustls = certificates.server_config()?;
                (
                    Some(sse_hub_tiny_http::SslConfig(Arc::new(rustls))),
                    Some(certificates),
                )
            }
            None => (None, None),
        };
        #[cfg(not(feature = "tls"))]
        let tls_config = None;
        let keys = match &config.cluster {
            #[cfg(feature = "cluster")]
            Some(cluster) => idempotency::Keys::Shared(idempotency::SharedKeys::new(cluster)?),
            _ => idempotency::Keys::Local(idempotency::LocalKeys::default()),
        };
        let ctx = Arc::new(Context {
            keys,
            assets: Assets::new(config.static_dir.clone()),
            access,
            config,
            hub: hub.clone(),
            replies,
            hangups: Arc::clone(&hangups),
        });
        let accept_ended = Report("acceptor", signals.0.clone());
        // A head must be whole within the header timeout. The connections
        // waiting for one have no bound of their own: when descriptors or
        // threads run short, the fork sheds those that have waited longest.
        let heads = sse_hub_tiny_http::HeadOptions {
            timeout: config_header_timeout,
            max_waiting: None,
        };
        let http = sse_hub_tiny_http::Server::from_listener_with_heads(
            listener,
            options,
            heads,
            tls_config,
            Arc::new(move |request| route::route(&ctx, request)),
            Box::new(move || drop(accept_ended)),
        )
        .map_err(|e| Error::CannotListen {
            addr: local_addr,
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Server {
            _port: http,
            hub,
            hangups,
            local_addr,
            signals,
            #[cfg(feature = "tls")]
            certificates,
        })
    }

    /// The address actually bound (the real port when configured with 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` if the server serves TLS ([`Config::tls`]), else `http`.
    pub fn scheme(&self) -> &'static str {
        #[cfg(feature = "tls")]
        if self.certificates.is_some() {
            return "https";
        }
        "http"
    }

    /// Something to reload the TLS certificate and key with, from any
    /// thread, when the server serves TLS; the binary calls it on SIGHUP,
    /// as certbot's renewals expect.
    ///
    /// # Example
    ///
    /// ```
    /// let server = sse_hub::Server::bind(sse_hub::Config {
    ///     listen: "127.0.0.1:0".parse().unwrap(),
    ///     ..sse_hub::Config::default()
    /// })?;
    /// assert!(server.tls_reloader().is_none(), "plain HTTP has nothing to reload");
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_reloader(&self) -> Option<tls::TlsReloader> {
        self.certificates.clone().map(tls::TlsReloader)
    }

    /// The server's hub: publish into its streams, subscribe, read its
    /// figures, from any thread.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// Something to stop the server with, from any thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.signals.0.clone())
    }

    /// Serves until stopped.
    ///
    /// # Errors
    ///
    /// [`Error::ThreadDied`] if the hub, the accept thread or the hang-up
    /// watcher ended unexpectedly; the server has then stopped serving.
    pub fn run(self) -> Result<(), Error> {
        let signals = &self.signals.1;
        let died = match signals.recv() {
            Ok(Signal::Ended { thread }) => Some(thread),
            Ok(Signal::Stop) | Err(_) => None,
        };
        if let Some(thread) = died {
            error!(
                "internal thread `{thread}` stopped; exiting so that a supervisor can restart the hub"
            );
            return Err(Error::ThreadDied(thread));
        }

        info!(
            "stopping: closing {} streams",
            self.hub
                .counters()
                .clients
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        self.hub.stop();
        let deadline = Instant::now() + STOP_GRACE;
        while let Ok(signal) = signals.recv_deadline(deadline) {
            if matches!(signal, Signal::Ended { thread: "hub" }) {
                break;
            }
        }
        drop(self);
        info!("stopped");
        Ok(())
    }
}

impl Drop for Server {
    /// Stops the hub and the watcher; then dropping `http` closes the port
    /// and ends the accept thread.
    fn drop(&mut self) {
        self.hub.stop();
        self.hangups.stop();
    }
}

/// Starts the hub of a cluster node (see `src/cluster/`).
fn start_clustered(
    config: &Config,
    cluster: &crate::cluster::ClusterConfig,
    hub_ended: Report,
) -> Result<Hub, Error> {
    crate::cluster::start_watched(config.hub.clone(), cluster, move || drop(hub_ended))
}

/// Runs `body` on a named thread that reports its end (normal or by panic)
/// on `tell`.
fn supervise(
    name: &'static str,
    tell: &Sender<Signal>,
    body: impl FnOnce() + Send + 'static,
) -> Result<(), Error> {
    let report = Report(name, tell.clone());
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _report = report;
            body();
        })
        .map(drop)
        .map_err(|_| Error::ThreadDied(name))
}

/// Reports the end of a thread when dropped, whether the thread returned
/// or panicked.
struct Report(&'static str, Sender<Signal>);

impl Drop for Report {
    fn drop(&mut self) {
        let _ = self.1.send(Signal::Ended { thread: self.0 });
    }
}
