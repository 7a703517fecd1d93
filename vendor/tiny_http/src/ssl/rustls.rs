//! Patched: a TLS connection on rustls 0.23, over the same shared socket as
//! a plain one, so that a request can still see and control its socket
//! (a read shut down, a hang-up watched) whether or not it is encrypted.

use crate::connection::Connection;
use crate::util::refined_tcp_stream::Stream as RefinedStream;
use std::error::Error;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The socket as rustls sees it: reads and writes go to the connection that
/// the plain-socket controls share.
pub(crate) struct SharedSocket(Arc<Connection>);

impl Read for SharedSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, SharedSocket>;

/// An owned rustls connection, shared by the reading and the writing half
/// of one HTTP connection (which take turns: a request is read, then
/// answered), and the socket under it.
pub(crate) struct RustlsStream {
    tls: Arc<Mutex<Tls>>,
    socket: Arc<Connection>,
}

impl RustlsStream {
    /// A poisoned lock (a panic while it was held) still guards a session
    /// whose state rustls keeps consistent; an error from it ends the
    /// connection as any other would.
    fn lock(&self) -> MutexGuard<'_, Tls> {
        self.tls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn peer_addr(&mut self) -> std::io::Result<Option<SocketAddr>> {
        self.socket.peer_addr()
    }

    /// Before the write half closes, the session says so (`close_notify`),
    /// so the client can tell the end of a response from a cut connection:
    /// an event stream over HTTP/1.0 ends where the connection does.
    pub(crate) fn shutdown(&mut self, how: Shutdown) -> std::io::Result<()> {
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let mut tls = self.lock();
            tls.conn.send_close_notify();
            // Only write what is queued: a read here could wait on the
            // client. The socket's write timeout bounds the wait.
            while tls.conn.wants_write() {
                let tls = &mut *tls;
                if tls.conn.write_tls(&mut tls.sock).is_err() {
                    break;
                }
            }
        }
        self.socket.shutdown(how)
    }

    pub(crate) fn socket(&self) -> &Arc<Connection> {
        &self.socket
    }
}

impl Clone for RustlsStream {
    fn clone(&self) -> Self {
        RustlsStream {
            tls: Arc::clone(&self.tls),
            socket: Arc::clone(&self.socket),
        }
    }
}

impl Read for RustlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.lock().read(buf)
    }
}

impl Write for RustlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

/// The server's TLS settings, made by the application (certificates,
/// protocols, ALPN).
pub(crate) struct RustlsContext(Arc<rustls::ServerConfig>);

impl RustlsContext {
    pub(crate) fn new(config: Arc<rustls::ServerConfig>) -> Self {
        RustlsContext(config)
    }

    /// Wraps an accepted socket; no byte is read or written here (the
    /// accept thread must not wait on a client): the handshake happens at
    /// the connection's first read, on its own thread.
    pub(crate) fn accept(
        &self,
        stream: Connection,
    ) -> Result<RustlsStream, Box<dyn Error + Send + Sync + 'static>> {
        let connection = rustls::ServerConnection::new(Arc::clone(&self.0))?;
        let socket = Arc::new(stream);
        let tls = rustls::StreamOwned::new(connection, SharedSocket(Arc::clone(&socket)));
        Ok(RustlsStream {
            tls: Arc::new(Mutex::new(tls)),
            socket,
        })
    }
}

impl From<RustlsStream> for RefinedStream {
    fn from(stream: RustlsStream) -> Self {
        Self::Https(stream)
    }
}
