//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::{ClientConnection, HeadLimits};
use connection::Connection;
use util::waiting_heads::WaitingHeads;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod body;
mod client;
mod common;
mod connection;
#[cfg(test)]
mod framing_fuzz;
mod head;
mod request;
mod response;
#[cfg(feature = "ssl-rustls")]
mod ssl;
mod test;
mod util;

/// Patched: how many waiting heads are shed at a time when descriptors or
/// threads run short.
const SHED_AT_ONCE: usize = 16;

/// Patched: whether an accept error means the process is short of
/// descriptors or memory (as opposed to one connection that failed).
fn is_shortage(e: &IoError) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        e.kind() == IoErrorKind::OutOfMemory
    }
}

/// Patched: logs accept errors at most once a second, with how many were
/// left out and how many waiting heads were shed (a descriptor shortage
/// fails every accept, many times a second).
#[derive(Default)]
struct AcceptErrors {
    last: Option<std::time::Instant>,
    unlogged: usize,
    shed: usize,
}

impl AcceptErrors {
    fn log(&mut self, e: &IoError, shed: usize) {
        self.shed += shed;
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        log::warn!(
            "Error accepting new client: {} ({} more since the last report; {} connections waiting for a head shed)",
            e,
            self.unlogged,
            self.shed
        );
        self.last = Some(std::time::Instant::now());
        self.unlogged = 0;
        self.shed = 0;
    }
}

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Patched: builds the reply to a request tiny_http cannot read, from its
/// status and what is wrong: the headers and the body.
pub type ErrorReply = Arc<dyn Fn(u16, &str) -> (Vec<Header>, Vec<u8>) + Send + Sync>;

/// Patched: handles one request on its connection's thread
/// ([`Server::from_listener_with_handler`]).
pub type Handler = Arc<dyn Fn(Request) + Send + Sync>;

/// Patched: options for every connection a server accepts
/// ([`Server::from_listener_with_options`]).
#[derive(Clone, Default)]
pub struct ConnectionOptions {
    /// A read timeout on every accepted TCP connection. A connection that
    /// sends nothing for that long while a request is expected (between
    /// requests, or in the middle of one) is closed, so an idle or stalled
    /// client cannot hold its thread and descriptors for good. (A receive
    /// timeout cannot be set on the listener itself: `accept` would time out
    /// and end the accept loop.)
    pub read_timeout: Option<Duration>,
    /// The headers and body of the replies tiny_http writes itself, to
    /// requests it cannot read (`400`, `408`, `414`, `417`, `431`, `505`),
    /// so that they look like the application's other errors (and carry
    /// the `Access-Control-Allow-Origin` every other response carries, so
    /// that a browser shows the error rather than a CORS failure). `None`:
    /// an empty body, as upstream.
    pub error_reply: Option<ErrorReply>,
    /// The stack size of the threads that serve connections; `None`: the
    /// standard library's default.
    pub stack_size: Option<usize>,
}

impl std::fmt::Debug for ConnectionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("read_timeout", &self.read_timeout)
            .field("error_reply", &self.error_reply.is_some())
            .field("stack_size", &self.stack_size)
            .finish()
    }
}

/// Patched: bounds on reading request heads, for every connection a server
/// accepts ([`Server::from_listener_with_heads`]).
///
/// A head (request line and header fields) is at most 16 KiB, with at most
/// 100 fields; it is parsed in one pass once all of it is in, from a buffer
/// that grows to that size only while it holds a large head.
#[derive(Clone, Debug)]
pub struct HeadOptions {
    /// The whole head must arrive within this of its first byte, else the
    /// client gets `408` and the connection is closed. A connection that
    /// sends nothing at all is closed after the idle timeout
    /// ([`ConnectionOptions::read_timeout`]) instead. Default: 10 seconds.
    pub timeout: Duration,
    /// At most this many connections may wait for a head at once (just
    /// accepted, or idle between requests); past it, those that have waited
    /// longest are shed (closed without a reply). `None` (the default): no
    /// bound of its own. Either way, the oldest are shed when the server
    /// runs out of file descriptors or the system refuses a thread.
    pub max_waiting: Option<usize>,
}

impl Default for HeadOptions {
    fn default() -> HeadOptions {
        HeadOptions {
            timeout: Duration::from_secs(10),
            max_waiting: None,
        }
    }
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Patched: configuration of the server for TLS, a rustls server
/// configuration made by the application (certificates, ALPN, a resolver
/// that can change the certificate while the server runs). Without the
/// `ssl-rustls` feature there is none: `Option<SslConfig>` is always `None`.
#[cfg(feature = "ssl-rustls")]
#[derive(Debug, Clone)]
pub struct SslConfig(pub Arc<rustls::ServerConfig>);

/// Patched: without the `ssl-rustls` feature there is no TLS configuration.
#[cfg(not(feature = "ssl-rustls"))]
#[derive(Debug, Clone)]
pub enum SslConfig {}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(feature = "ssl-rustls")]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_options(listener, ssl_config, ConnectionOptions::default())
    }

    /// Patched: like `from_listener`, with [`ConnectionOptions`] for every
    /// accepted connection.
    pub fn from_listener_with_options<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
        options: ConnectionOptions,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let messages = MessagesQueue::with_capacity(8);
        let inside_messages = messages.clone();
        Self::start(
            listener.into(),
            ssl_config,
            options,
            messages,
            Box::new(move |client: ClientConnection| {
                // Synchronization is needed for HTTPS requests to avoid a deadlock
                if client.secure() {
                    let (sender, receiver) = mpsc::channel();
                    for rq in client {
                        inside_messages.push(rq.with_notify_sender(sender.clone()).into());
                        if receiver.recv().is_err() {
                            break;
                        }
                    }
                } else {
                    for rq in client {
                        inside_messages.push(rq.into());
                    }
                }
            }),
            None,
            HeadOptions::default(),
        )
    }

    /// Patched: a server that hands each request to `handler` on the thread
    /// that serves its connection, one request after the other, instead of
    /// queueing it for `recv`. A request is handled right where it was read,
    /// so a connection's requests are handled in order, and a handler that
    /// takes long (a long-lived response) holds only its own connection.
    ///
    /// `on_accept_end` runs if the thread that accepts connections ever
    /// ends (or panics): the port then takes no more connections, and the
    /// application should stop rather than look alive.
    pub fn from_listener_with_handler<L: Into<Listener>>(
        listener: L,
        options: ConnectionOptions,
        handler: Handler,
        on_accept_end: Box<dyn FnOnce() + Send>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_heads(
            listener,
            options,
            HeadOptions::default(),
            None,
            handler,
            on_accept_end,
        )
    }

    /// Patched: [`Server::from_listener_with_handler`], with bounds on
    /// request heads other than the default ones.
    /// With `ssl`, every connection is TLS (feature `ssl-rustls`).
    pub fn from_listener_with_heads<L: Into<Listener>>(
        listener: L,
        options: ConnectionOptions,
        heads: HeadOptions,
        ssl: Option<SslConfig>,
        handler: Handler,
        on_accept_end: Box<dyn FnOnce() + Send>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::start(
            listener.into(),
            ssl,
            options,
            MessagesQueue::with_capacity(0),
            Box::new(move |client: ClientConnection| {
                for rq in client {
                    handler(rq);
                }
            }),
            Some(on_accept_end),
            heads,
        )
    }

    fn start(
        listener: Listener,
        ssl_config: Option<SslConfig>,
        options: ConnectionOptions,
        messages: Arc<MessagesQueue<Message>>,
        serve: Box<dyn Fn(ClientConnection) + Send + Sync>,
        on_accept_end: Option<Box<dyn FnOnce() + Send>>,
        heads: HeadOptions,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let waiting = Arc::new(WaitingHeads::new(heads.max_waiting));
        let limits = Arc::new(HeadLimits {
            timeout: heads.timeout,
            waiting: Arc::clone(&waiting),
        });
        let ConnectionOptions {
            read_timeout,
            error_reply,
            stack_size,
        } = options;
        let serve: Arc<dyn Fn(ClientConnection) + Send + Sync> = Arc::from(serve);
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(not(feature = "ssl-rustls"))]
        let ssl: Option<()> = ssl_config.map(|config| match config {});
        #[cfg(feature = "ssl-rustls")]
        let ssl = ssl_config.map(|config| crate::ssl::SslContextImpl::new(config.0));

        /// Runs the notification when the accept thread ends, also by panic.
        struct OnEnd(Option<Box<dyn FnOnce() + Send>>);
        impl Drop for OnEnd {
            fn drop(&mut self) {
                if let Some(f) = self.0.take() {
                    f();
                }
            }
        }
        let on_end = OnEnd(on_accept_end);

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are served by the pool
        let inside_close_trigger = close_trigger.clone();
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                let _on_end = on_end;
                // a tasks pool is used to dispatch the connections into threads
                // Patched: a refused thread sheds the oldest waiting heads,
                // whose threads then take the connection queued for them.
                let shed_for_thread = Arc::clone(&waiting);
                let tasks_pool = util::TaskPool::new(
                    stack_size,
                    Box::new(move || {
                        shed_for_thread.shed_oldest(SHED_AT_ONCE);
                    }),
                );
                let mut accept_errors = AcceptErrors::default();

                log::debug!("Running accept thread");
                while !inside_close_trigger.load(Relaxed) {
                    let new_client = match server.accept() {
                        Ok((sock, _)) => {
                            if let (Some(timeout), Connection::Tcp(tcp)) = (read_timeout, &sock) {
                                let _ = tcp.set_read_timeout(Some(timeout));
                            }
                            use util::RefinedTcpStream;
                            let (read_closable, write_closable) = match ssl {
                                None => RefinedTcpStream::new(sock),
                                #[cfg(feature = "ssl-rustls")]
                                Some(ref ssl) => {
                                    // Patched: no I/O here; the handshake
                                    // runs on the connection's thread. A
                                    // session that cannot be set up closes
                                    // this one connection.
                                    let sock = match ssl.accept(sock) {
                                        Ok(s) => s,
                                        Err(e) => {
                                            log::warn!("cannot start a TLS session: {}", e);
                                            continue;
                                        }
                                    };

                                    RefinedTcpStream::new(sock)
                                }
                                #[cfg(not(feature = "ssl-rustls"))]
                                Some(()) => continue,
                            };

                            Ok(ClientConnection::new(
                                write_closable,
                                read_closable,
                                error_reply.clone(),
                                Arc::clone(&limits),
                            ))
                        }
                        Err(e) => Err(e),
                    };

                    match new_client {
                        Ok(client) => {
                            let serve = Arc::clone(&serve);
                            let mut client = Some(client);
                            tasks_pool.spawn(Box::new(move || {
                                if let Some(client) = client.take() {
                                    serve(client);
                                }
                            }));
                        }

                        // Patched: upstream ended the accept thread on any accept
                        // error, so one EMFILE closed the port for good while the
                        // process looked alive. Errors here are about one pending
                        // connection or a passing shortage of resources. Out of
                        // descriptors or memory, the connections that have waited
                        // longest for a head are shed, so that a flood of slow
                        // heads cannot keep new clients out; then accept again,
                        // at once if some were shed, else after a pause (the
                        // backlog keeps the others).
                        Err(e) => {
                            let aborted = matches!(
                                e.kind(),
                                std::io::ErrorKind::ConnectionAborted
                                    | std::io::ErrorKind::Interrupted
                            );
                            let shed = if is_shortage(&e) {
                                waiting.shed_oldest(SHED_AT_ONCE)
                            } else {
                                0
                            };
                            accept_errors.log(&e, shed);
                            if !aborted {
                                thread::sleep(if shed > 0 {
                                    Duration::from_millis(5)
                                } else {
                                    Duration::from_millis(50)
                                });
                            }
                        }
                    }
                }
                log::debug!("Terminating accept thread");
            })?;

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        unimplemented!()
        //self.requests_receiver.lock().len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
