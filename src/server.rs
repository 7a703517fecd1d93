//! Starting and stopping: the [`Server`] binds the socket, starts the hub,
//! the acceptor and the reaper on their own threads, and watches them.
//!
//! [`Server::run`] blocks until a [`Stopper`] asks it to stop, then shuts
//! down in order: the hub closes every stream (each writer ends its HTTP
//! body properly), the acceptor stops taking requests, and `run` returns.
//! If one of those threads ends on its own instead (a bug, a panic), `run`
//! returns an error at once: a process whose hub is dead must not look alive
//! to its supervisor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};

use crate::capacity;
use crate::config::Config;
use crate::error::Error;
use crate::http::{self, Context, listener, reaper::Reaper};
use crate::hub::{Hub, HubHandle};

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
/// ```no_run
/// let config = sse_hub::Config {
///     listen: "127.0.0.1:0".parse().unwrap(),
///     ..sse_hub::Config::default()
/// };
/// let server = sse_hub::Server::bind(config)?;
/// println!("listening on http://{}", server.local_addr());
/// let stopper = server.stopper();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(60));
///     stopper.stop();
/// });
/// server.run()?;
/// # Ok::<(), sse_hub::Error>(())
/// ```
pub struct Server {
    http: Arc<tiny_http::Server>,
    ctx: Arc<Context>,
    hub: Hub,
    handle: HubHandle,
    reaper: Reaper,
    local_addr: SocketAddr,
    signals: (Sender<Signal>, Receiver<Signal>),
}

impl Server {
    /// Checks the configuration, works out how many subscribers the system
    /// can hold (possibly lowering `max_clients`, with a warning), and binds
    /// the listening socket. Logs `listening on http://IP:PORT`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] or [`Error::CannotListen`].
    pub fn bind(mut config: Config) -> Result<Server, Error> {
        config.validate()?;
        let capacity = capacity::plan(config.max_clients);
        if let Some(limit) = &capacity.lowered_by {
            warn!(
                "--max-clients {} lowered to {}: {} is {}, room for about {} subscribers \
                 (each takes a thread, a file descriptor and 4 memory maps); to hold more, {}",
                config.max_clients,
                capacity.max_clients,
                limit.name,
                limit.value,
                limit.clients,
                limit.raise
            );
        }
        config.max_clients = capacity.max_clients;

        let cannot_listen = |source| Error::CannotListen {
            addr: config.listen,
            source,
        };
        let listener =
            listener::bind(config.listen, config.write_timeout).map_err(cannot_listen)?;
        let local_addr = listener.local_addr().map_err(cannot_listen)?;
        let cors = http::cors_header(&config)?;
        let options = tiny_http::ConnectionOptions {
            // A connection that idles while a request is expected is closed.
            read_timeout: Some(config.idle_timeout),
            // The requests tiny_http answers itself (it cannot read them)
            // get the CORS header like every other response.
            error_headers: vec![cors.clone()],
        };
        let http = tiny_http::Server::from_listener_with_options(listener, None, options).map_err(
            |e| Error::CannotListen {
                addr: config.listen,
                source: std::io::Error::other(e.to_string()),
            },
        )?;

        let (hub, handle) = Hub::new(config.history, config.max_clients, config.queue);
        let reaper = Reaper::new(local_addr.port());
        let ctx = Context::new(config, cors, handle.clone(), reaper.clone());
        info!("listening on http://{local_addr}");
        Ok(Server {
            http: Arc::new(http),
            ctx: Arc::new(ctx),
            hub,
            handle,
            reaper,
            local_addr,
            signals: crossbeam_channel::unbounded(),
        })
    }

    /// The address actually bound (the real port when configured with 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to publish through and read stats from, from any thread.
    pub fn hub(&self) -> HubHandle {
        self.handle.clone()
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
            handle,
            reaper,
            ..
        } = self;
        supervise("hub", &tell, move || hub.run())?;
        let acceptor = {
            let (http, ctx) = (Arc::clone(&http), Arc::clone(&ctx));
            move || {
                if let Err(e) = http::accept(&http, &ctx) {
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

        info!("stopping");
        ctx.stop();
        handle.shut_down();
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

/// Runs `body` on a named thread that reports its end (normal or by panic)
/// on `tell`.
fn supervise(
    name: &'static str,
    tell: &Sender<Signal>,
    body: impl FnOnce() + Send + 'static,
) -> Result<(), Error> {
    struct Report(&'static str, Sender<Signal>);
    impl Drop for Report {
        fn drop(&mut self) {
            let _ = self.1.send(Signal::Ended { thread: self.0 });
        }
    }
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
