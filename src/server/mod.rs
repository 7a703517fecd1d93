//! The HTTP server around a hub: the path a request takes, one module per
//! room on it.
//!
//! ```text
//!  socket ─> tiny_http ─> acceptor ─> worker pool ─> route
//!            (accept.rs)  (accept.rs)  (pool.rs)     (route.rs)
//!              ├─ GET /events ───> events.rs: register, then a thread
//!              │                   writes the stream (core/writer.rs)
//!              ├─ POST /broadcast ─> broadcast.rs: check, publish (core)
//!              └─ the rest ──────> assets.rs, /healthz, /stats, /metrics
//!  every reply: reply.rs
//! ```
//!
//! Starting and stopping: the [`Server`] binds the socket (`listener.rs`),
//! starts a hub, the acceptor and the reaper on their own threads, and
//! watches them. [`Server::run`] blocks until a [`Stopper`] asks it to
//! stop, then shuts down in order: the hub closes every stream (each ends
//! its HTTP body properly), the acceptor stops taking requests, and `run`
//! returns. If one of those threads ends on its own instead (a bug, a
//! panic), `run` returns an error at once: a process whose hub is dead must
//! not look alive to its supervisor.
//!
//! What the server does to the process, and a library user should know:
//! at [`Server::bind`] it raises the soft limit on open files to the hard
//! limit (`capacity.rs`), and its reaper lists the process's open file
//! descriptors to find a stalled connection (`reaper.rs`).

mod accept;
mod assets;
mod broadcast;
pub mod capacity;
mod connections;
mod events;
mod listener;
mod pool;
mod reaper;
mod reply;
mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};

use crate::config::Config;
use crate::core::Hub;
use crate::error::Error;

use accept::Context;
use reaper::Reaper;
use reply::Replies;

/// How long `run` waits for the hub to close every stream at shutdown; the
/// hub itself gives its writers a little less.
const STOP_GRACE: Duration = Duration::from_millis(1800);

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
/// client.write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).unwrap();
/// assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("\r\n\r\nok"));
///
/// stopper.stop();
/// serving.join().unwrap()?;
/// # Ok::<(), sse_hub::Error>(())
/// ```
pub struct Server {
    http: Arc<sse_hub_tiny_http::Server>,
    ctx: Arc<Context>,
    hub: Hub,
    reaper: Reaper,
    local_addr: SocketAddr,
    signals: (Sender<Signal>, Receiver<Signal>),
}

impl Server {
    /// Checks the configuration, works out how many subscribers the system
    /// can hold (possibly lowering `hub.max_clients`, with a warning), binds
    /// the listening socket and starts the hub, so that publishing works at
    /// once; streams are served from [`Server::run`] on.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], [`Error::CannotListen`], or
    /// [`Error::ThreadDied`] if the system refused a thread.
    pub fn bind(mut config: Config) -> Result<Server, Error> {
        config.validate()?;
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
        config.hub.max_clients = capacity.max_clients;

        let cannot_listen = |source| Error::CannotListen {
            addr: config.listen,
            source,
        };
        let listener =
            listener::bind(config.listen, config.write_timeout).map_err(cannot_listen)?;
        let local_addr = listener.local_addr().map_err(cannot_listen)?;
        let replies = Replies::new(&config.cors_origin)?;
        let options = sse_hub_tiny_http::ConnectionOptions {
            // A connection that idles while a request is expected is closed.
            read_timeout: Some(config.idle_timeout),
            // The requests tiny_http answers itself (it cannot read them)
            // get the CORS header like every other response.
            error_headers: vec![replies.cors_header()],
        };
        let http = sse_hub_tiny_http::Server::from_listener_with_options(listener, None, options)
            .map_err(|e| Error::CannotListen {
            addr: config.listen,
            source: std::io::Error::other(e.to_string()),
        })?;

        let signals = crossbeam_channel::unbounded();
        let hub_ended = Report("hub", signals.0.clone());
        let hub = match &config.cluster {
            None => Hub::start_watched(config.hub.clone(), Arc::default(), None, move || {
                drop(hub_ended);
            })?,
            Some(cluster) => start_clustered(&config, cluster, hub_ended)?,
        };
        let reaper = Reaper::new(local_addr.port());
        let ctx = Context::new(config, replies, hub.clone(), reaper.clone());
        Ok(Server {
            http: Arc::new(http),
            ctx: Arc::new(ctx),
            hub,
            reaper,
            local_addr,
            signals,
        })
    }

    /// The address actually bound (the real port when configured with 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
    /// [`Error::ThreadDied`] if the hub, the acceptor or the reaper ended
    /// unexpectedly; the server has then stopped serving.
    pub fn run(self) -> Result<(), Error> {
        let (tell, signals) = self.signals;
        let Server {
            http,
            ctx,
            hub,
            reaper,
            ..
        } = self;
        let acceptor = {
            let (http, ctx) = (Arc::clone(&http), Arc::clone(&ctx));
            move || {
                if let Err(e) = accept::accept(&http, &ctx) {
                    error!("the HTTP server stopped taking requests: {e}");
                }
            }
        };
        supervise("acceptor", &tell, acceptor)?;
        supervise("reaper", &tell, move || reaper.run())?;

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
            hub.counters()
                .clients
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        ctx.stop();
        hub.stop();
        http.unblock();
        let deadline = Instant::now() + STOP_GRACE;
        while let Ok(signal) = signals.recv_deadline(deadline) {
            if matches!(signal, Signal::Ended { thread: "hub" }) {
                break;
            }
        }
        info!("stopped");
        Ok(())
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
