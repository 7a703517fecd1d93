//! The listening socket, built here rather than by tiny_http so that every
//! accepted connection inherits the options an event stream needs (Linux
//! copies these from the listener to each accepted socket).
//!
//! - `TCP_NODELAY`: events are written in whole batches already; waiting to
//!   coalesce them further would only add latency.
//! - A send timeout (`SO_SNDTIMEO`): a subscriber that stops reading fills
//!   its socket buffer, and the next write would block forever. With the
//!   timeout it fails, and the writer ends.
//! - `TCP_USER_TIMEOUT` and keep-alive probes: a peer that vanished without
//!   a word (cable pulled, phone gone) is noticed by the kernel even when
//!   nothing is being written.
//!
//! Never a receive timeout: on a listener it would make `accept` time out,
//! and tiny_http would treat that as an error.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

/// Pending connections the kernel may queue while the acceptor catches up
/// (capped by `net.core.somaxconn`). Large, for reconnect storms.
const BACKLOG: i32 = 4096;

/// Idle time before the first keep-alive probe, and between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 6;

/// Binds `addr` with the options above; `write_timeout` bounds each write to
/// a client.
pub(crate) fn bind(addr: SocketAddr, write_timeout: Duration) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted hub can bind its port again while old connections linger
    // in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(write_timeout))?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket.set_keepalive(true)?;
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(write_timeout * 3))?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
