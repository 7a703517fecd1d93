//! Finding the socket under a connection that a framework hands over
//! without it.
//!
//! A stream is watched for hang-ups and gets a write timeout through its
//! socket (`EventStream::run_through`). Some frameworks hand the connection
//! over after the response head as a boxed reader-writer with no socket in
//! reach (rouille's `Upgrade`: a `Box<dyn ReadWrite + Send>`). The
//! connection is still one of this process's descriptors, and a TCP
//! connection is named by its two addresses, both of which the application
//! knows: the listening port, and the peer's address the framework reports.
//! [`find_connection`] looks through the process's open descriptors for the
//! one with those addresses and returns a second handle to it. Options set
//! through that handle (the write timeout) are the connection's own, and
//! the watcher sees the connection's hang-up through it.
//!
//! It reads `/proc/self/fd`, so it works on Linux only, and costs a system
//! call or three per open descriptor of the process: fine at a subscribe,
//! not on every write.

#![allow(unsafe_code)]

use std::io;
use std::net::{SocketAddr, TcpStream};

/// A second handle to this process's TCP connection with `peer`, accepted
/// on `local_port`: the socket under a connection a framework has handed
/// over without it, for [`EventStream::run_through`]. Dropping it closes
/// only this handle; the connection stays open until its owner closes it
/// too.
///
/// [`EventStream::run_through`]: crate::EventStream::run_through
///
/// # Errors
///
/// [`io::ErrorKind::NotFound`] if no descriptor of the process is that
/// connection (it was closed already), [`io::ErrorKind::Unsupported`]
/// elsewhere than on Linux, or the error reading `/proc/self/fd`.
///
/// # Example
///
/// ```
/// use std::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let (accepted, peer) = listener.accept()?;
/// # if cfg!(target_os = "linux") {
/// let found = sse_hub::find_connection(port, peer)?;
/// assert_eq!(found.peer_addr()?, client.local_addr()?);
/// // The same connection: an option set through one handle shows on the other.
/// found.set_nodelay(true)?;
/// assert!(accepted.nodelay()?);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn find_connection(local_port: u16, peer: SocketAddr) -> io::Result<TcpStream> {
    #[cfg(target_os = "linux")]
    return linux::find(local_port, peer);
    #[cfg(not(target_os = "linux"))]
    return Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "finding a connection's socket needs /proc/self/fd (Linux)",
    ));
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::net::{SocketAddr, TcpStream};
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;

    pub(super) fn find(local_port: u16, peer: SocketAddr) -> io::Result<TcpStream> {
        for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<RawFd>().ok())
            else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.as_os_str().as_bytes().starts_with(b"socket:"));
            if !is_socket {
                continue;
            }
            // SAFETY: F_DUPFD_CLOEXEC takes no pointer. If `fd` was closed
            // or reused since it was listed, the call fails or copies some
            // other descriptor, which the address check below turns away;
            // the original is never touched.
            let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if copy < 0 {
                continue;
            }
            // SAFETY: `copy` was just made by the call above and is owned by
            // no one else.
            let socket = TcpStream::from(unsafe { OwnedFd::from_raw_fd(copy) });
            let matches = socket.peer_addr().is_ok_and(|p| p == peer)
                && socket.local_addr().is_ok_and(|l| l.port() == local_port);
            if matches {
                return Ok(socket);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no open connection with {peer} on port {local_port}"),
        ))
    }
}
