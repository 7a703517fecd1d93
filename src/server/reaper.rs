//! Deadlines on connections, for what tiny_http cannot bound by itself.
//!
//! tiny_http never hands out a connection's socket, so a request thread
//! cannot set a read timeout on it, nor close it: a client that sends half a
//! body and stops would hold the thread reading it forever. The reaper
//! closes such connections from the outside. A thread arms
//! a [`Deadline`] for a peer address before it does something that may wait
//! on that client, and drops it when done; a deadline that passes first gets
//! the connection shut down for reading, which makes a blocked read on it
//! return at once, while the reply (`408`) can still be written.
//!
//! Finding the socket: the reaper lists this process's open file
//! descriptors and picks the TCP socket whose local port is the listener's
//! and whose peer is the address in question (a TCP connection is named by
//! that pair). That costs two system calls per open descriptor, so it is
//! done only when a deadline actually passes, at most once per tick for all
//! of them together.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, warn};

/// How often the reaper looks for passed deadlines.
const TICK: Duration = Duration::from_millis(100);

/// Shuts down connections whose deadline passed. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Reaper {
    shared: Arc<Shared>,
}

struct Shared {
    /// The listener's port: connections to close are on this local port.
    port: u16,
    next_token: AtomicU64,
    armed: Mutex<BTreeMap<u64, Armed>>,
}

struct Armed {
    peer: SocketAddr,
    at: Instant,
    expired: Arc<AtomicBool>,
}

/// A pending shutdown of one connection; dropping it disarms it.
pub(crate) struct Deadline {
    shared: Arc<Shared>,
    token: u64,
    expired: Arc<AtomicBool>,
}

impl Deadline {
    /// True once the deadline passed and the connection was shut down.
    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Relaxed)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.shared.lock().remove(&self.token);
    }
}

impl Reaper {
    /// A reaper for connections accepted on local port `port`.
    pub(crate) fn new(port: u16) -> Reaper {
        Reaper {
            shared: Arc::new(Shared {
                port,
                next_token: AtomicU64::new(0),
                armed: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Shuts down the connection from `peer` in `after`, unless the returned
    /// guard is dropped first.
    pub(crate) fn arm(&self, peer: SocketAddr, after: Duration) -> Deadline {
        let expired = Arc::new(AtomicBool::new(false));
        let token = self.shared.next_token.fetch_add(1, Relaxed);
        let armed = Armed {
            peer,
            at: Instant::now() + after,
            expired: Arc::clone(&expired),
        };
        self.shared.lock().insert(token, armed);
        Deadline {
            shared: Arc::clone(&self.shared),
            token,
            expired,
        }
    }

    /// The reaper thread's body: never returns.
    pub(crate) fn run(&self) {
        loop {
            thread::sleep(TICK);
            let now = Instant::now();
            let due: HashSet<SocketAddr> = {
                let mut armed = self.shared.lock();
                let passed: Vec<u64> = armed
                    .iter()
                    .filter(|(_, a)| a.at <= now)
                    .map(|(&token, _)| token)
                    .collect();
                passed
                    .into_iter()
                    .filter_map(|token| armed.remove(&token))
                    .map(|a| {
                        a.expired.store(true, Relaxed);
                        a.peer
                    })
                    .collect()
            };
            if !due.is_empty() {
                let closed = shut_down_connections(self.shared.port, &due);
                debug!(
                    "deadline passed for {} connections, {closed} shut down",
                    due.len()
                );
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Armed>> {
        self.armed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Shuts down reading on every TCP connection on local `port` whose peer is
/// in `peers`. Returns how many it found.
#[cfg(target_os = "linux")]
fn shut_down_connections(port: u16, peers: &HashSet<SocketAddr>) -> usize {
    use std::os::fd::RawFd;

    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        warn!("cannot list /proc/self/fd; stalled connections stay open");
        return 0;
    };
    let mut closed = 0;
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let (Some(local), Some(peer)) = (local_addr(fd), peer_addr(fd)) else {
            continue;
        };
        if local.port() == port && peers.contains(&peer) {
            // SAFETY: shutdown(2) on a descriptor number has no memory
            // effects; if the descriptor was closed meanwhile it fails.
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
            closed += 1;
        }
    }
    closed
}

#[cfg(not(target_os = "linux"))]
fn shut_down_connections(_port: u16, _peers: &HashSet<SocketAddr>) -> usize {
    warn!("closing stalled connections is only implemented on Linux");
    0
}

#[cfg(target_os = "linux")]
fn local_addr(fd: std::os::fd::RawFd) -> Option<SocketAddr> {
    socket_addr(fd, libc::getsockname)
}

#[cfg(target_os = "linux")]
fn peer_addr(fd: std::os::fd::RawFd) -> Option<SocketAddr> {
    socket_addr(fd, libc::getpeername)
}

/// The address `name` (getsockname or getpeername) gives for `fd`, if it is
/// an IP socket.
#[cfg(target_os = "linux")]
fn socket_addr(
    fd: std::os::fd::RawFd,
    name: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> Option<SocketAddr> {
    // SAFETY: the call writes at most `len` bytes into the storage that
    // `try_init` provides; any descriptor number is acceptable to it.
    let result = unsafe {
        socket2::SockAddr::try_init(|storage, len| match name(fd, storage.cast(), len) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        })
    };
    result.ok()?.1.as_socket()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_passed_deadline_unblocks_a_read_on_that_connection_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client_a = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let client_b = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut served_a, peer_a) = listener.accept().unwrap();
        let (served_b, _) = listener.accept().unwrap();

        let reaper = Reaper::new(port);
        let runner = reaper.clone();
        thread::spawn(move || runner.run());
        let deadline = reaper.arm(peer_a, Duration::from_millis(10));

        // Blocks until the reaper shuts the connection down: then EOF.
        let mut buf = [0u8; 8];
        assert_eq!(served_a.read(&mut buf).unwrap(), 0);
        assert!(deadline.expired());

        // The other connection is untouched.
        served_b.set_nonblocking(true).unwrap();
        let mut served_b = served_b;
        let still_open = served_b.read(&mut buf).unwrap_err();
        assert_eq!(still_open.kind(), std::io::ErrorKind::WouldBlock);
        drop(client_b);
    }

    #[test]
    fn a_dropped_deadline_never_fires() {
        let reaper = Reaper::new(1);
        let deadline = reaper.arm("127.0.0.1:9".parse().unwrap(), Duration::ZERO);
        drop(deadline);
        assert!(reaper.shared.lock().is_empty());
    }
}
