//! The hang-up watcher: one thread that sees at once when a subscriber's
//! connection closes (and, on the server's own connections, when a client
//! sends anything more on it).
//!
//! A stream's thread spends its life writing or asleep; it would only learn
//! that its client is gone when a write fails, which for an idle stream
//! means the next heartbeat, seconds later (and with the kernel's buffers
//! accepting the first write to a gone peer, the one after). Meanwhile the
//! client would count in `/stats` and in publish replies, and hold its
//! thread and descriptor. So while a stream runs, its socket is registered
//! here (`epoll`, one event per socket): a hang-up (the peer's FIN, a
//! reset) makes the watcher close that stream's queue, as the hub does. On
//! the server's own connections, so do bytes arriving (a request pipelined
//! behind the stream, which cannot be answered until the stream ends); on
//! an application's sockets, what the client sends is the application's.
//! The stream's thread wakes, ends the body, leaves the hub and returns.
//!
//! A socket is registered by [`HangUps::watch`] and taken out when the
//! returned [`Watch`] is dropped, which the stream's thread does before its
//! connection can close, so a descriptor number is never watched after it
//! was reused. Each registration has its own token, so an event that was
//! already on its way for an earlier registration names no one.
//!
//! The built-in server runs one watcher under its supervision. Every hub
//! also owns one ([`Watcher`]), started on the first stream that an
//! application runs on its own socket (`EventStream::run_on_socket`) and
//! ended with the hub thread; it holds the streams' queues, never the hub,
//! so it keeps nothing alive. If it cannot start, or dies, that is logged
//! and later streams run unwatched: a hang-up is then noticed at a failed
//! write, and the socket's write timeout still bounds a stalled reader.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::closed::Closed;
use crate::core::queue::Queue;

/// How often the watcher looks whether it is to stop.
const STOP_CHECK_MS: i32 = 500;

/// Events taken from the kernel at once.
const EVENTS: usize = 64;

/// The watcher's state, shared by the streams that register with it: for
/// each registration, the queue of the stream to close.
pub(crate) struct HangUps {
    epoll: Epoll,
    /// Bytes from the client end its stream too (the server's own
    /// connections, whose next request it would otherwise never answer).
    input_ends_stream: bool,
    next_token: AtomicU64,
    watched: Mutex<HashMap<u64, Arc<Queue>>>,
    stopping: AtomicBool,
}

/// A socket being watched; dropping it stops the watch.
pub(crate) struct Watch {
    hangups: Arc<HangUps>,
    fd: RawFd,
    token: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hangups.epoll.remove(self.fd);
        self.hangups.lock().remove(&self.token);
    }
}

impl HangUps {
    /// The server's watcher, ready to [`run`](HangUps::run) on a thread of
    /// its own: a hang-up ends a stream, and so does a request pipelined
    /// behind it.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn new() -> io::Result<HangUps> {
        HangUps::with(true)
    }

    /// A watcher for an application's sockets: only a hang-up ends a
    /// stream. What the client sends is the application's to read; it may
    /// even be the rest of the request the stream answers.
    pub(crate) fn hang_ups_only() -> io::Result<HangUps> {
        HangUps::with(false)
    }

    fn with(input_ends_stream: bool) -> io::Result<HangUps> {
        Ok(HangUps {
            epoll: Epoll::new()?,
            input_ends_stream,
            next_token: AtomicU64::new(0),
            watched: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        })
    }

    /// Watches `fd`, the socket of the stream that takes from `queue`,
    /// until the returned guard is dropped.
    pub(crate) fn watch(self: &Arc<HangUps>, fd: RawFd, queue: &Arc<Queue>) -> io::Result<Watch> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(token, Arc::clone(queue));
        if let Err(e) = self.epoll.add(fd, token, self.input_ends_stream) {
            self.lock().remove(&token);
            return Err(e);
        }
        Ok(Watch {
            hangups: Arc::clone(self),
            fd,
            token,
        })
    }

    /// Makes [`HangUps::run`] return soon.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The watcher thread's body: until stopped, closes the stream of every
    /// client whose socket hangs up (or, if input ends streams, receives
    /// anything). Returns early only if the kernel refuses to wait
    /// (logged).
    pub(crate) fn run(&self) {
        let mut events = [Event::default(); EVENTS];
        while !self.stopping.load(Ordering::Relaxed) {
            let ready = match self.epoll.wait(&mut events, STOP_CHECK_MS) {
                Ok(ready) => ready,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("the hang-up watcher cannot wait for events: {e}");
                    return;
                }
            };
            for event in &events[..ready] {
                let queue = self.lock().get(&event.token).cloned();
                let Some(queue) = queue else {
                    continue; // that stream has ended already
                };
                let why = if event.hung_up {
                    Closed::HungUp
                } else {
                    Closed::Asked("a request was pipelined behind its stream")
                };
                // The stream's thread wakes, ends, and leaves the hub.
                if let Some(thread) = queue.close(why) {
                    thread.unpark();
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Queue>>> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A hub's own watcher, started on first use and ended with the hub.
#[derive(Default)]
pub(crate) struct Watcher {
    state: Mutex<WatcherState>,
}

#[derive(Default)]
enum WatcherState {
    #[default]
    NotStarted,
    Running(Arc<HangUps>),
    /// It could not start, or its thread ended on its own: streams run
    /// unwatched from now on.
    Failed,
    /// The hub has stopped.
    Stopped,
}

impl Watcher {
    /// Watches `fd` for the stream that takes from `queue`, starting the
    /// watcher thread if this is the first time. `None` if there is no
    /// watcher (it failed, which was logged, or the hub has stopped).
    pub(crate) fn watch(self: &Arc<Watcher>, fd: RawFd, queue: &Arc<Queue>) -> Option<Watch> {
        let hangups = {
            let mut state = self.lock();
            if matches!(*state, WatcherState::NotStarted) {
                *state = match self.start() {
                    Ok(hangups) => WatcherState::Running(hangups),
                    Err(e) => {
                        log::error!("the hang-up watcher cannot start, streams run unwatched: {e}");
                        WatcherState::Failed
                    }
                };
            }
            match &*state {
                WatcherState::Running(hangups) => Arc::clone(hangups),
                _ => return None,
            }
        };
        hangups
            .watch(fd, queue)
            .map_err(|e| log::warn!("cannot watch a stream's connection: {e}"))
            .ok()
    }

    /// Ends the watcher thread, if it runs; later streams run unwatched.
    pub(crate) fn stop(&self) {
        if let WatcherState::Running(hangups) =
            std::mem::replace(&mut *self.lock(), WatcherState::Stopped)
        {
            hangups.stop();
        }
    }

    fn start(self: &Arc<Watcher>) -> io::Result<Arc<HangUps>> {
        /// Marks the watcher failed if its thread ends without being asked
        /// to, also by a panic.
        struct Supervisor(Arc<Watcher>);
        impl Drop for Supervisor {
            fn drop(&mut self) {
                let mut state = self.0.lock();
                if matches!(*state, WatcherState::Running(_)) {
                    log::error!("the hang-up watcher ended; streams run unwatched from now on");
                    *state = WatcherState::Failed;
                }
            }
        }
        let hangups = Arc::new(HangUps::hang_ups_only()?);
        let (watcher, running) = (Arc::clone(self), Arc::clone(&hangups));
        std::thread::Builder::new()
            .name("sse-hub-hangups".into())
            .spawn(move || {
                // Made here, not before the spawn: if the spawn fails, the
                // caller still holds the lock this would take.
                let _supervisor = Supervisor(watcher);
                running.run();
            })?;
        Ok(hangups)
    }

    fn lock(&self) -> MutexGuard<'_, WatcherState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the kernel reported for one socket.
#[derive(Clone, Copy, Default)]
struct Event {
    token: u64,
    /// The peer closed its side or reset the connection (else: bytes
    /// arrived).
    hung_up: bool,
}

#[cfg(target_os = "linux")]
use linux::Epoll;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use super::Event;

    /// An epoll instance.
    pub(super) struct Epoll(OwnedFd);

    impl Epoll {
        pub(super) fn new() -> io::Result<Epoll> {
            // SAFETY: epoll_create1 takes no pointers; a non-negative result
            // is a new descriptor that we own.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and is owned by no one else.
            Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        /// Reports `fd` once, when its peer hangs up, or with `input` when
        /// it sends bytes. (A reset or an error is always reported.)
        pub(super) fn add(&self, fd: RawFd, token: u64, input: bool) -> io::Result<()> {
            let input = if input { libc::EPOLLIN } else { 0 };
            let mut event = libc::epoll_event {
                events: (input | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
                u64: token,
            };
            // SAFETY: `event` is a valid epoll_event for the call's duration.
            let done =
                unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
            if done < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        pub(super) fn remove(&self, fd: RawFd) {
            // SAFETY: a null event is allowed for EPOLL_CTL_DEL; a
            // descriptor that is not registered only makes the call fail.
            unsafe {
                libc::epoll_ctl(
                    self.0.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                );
            }
        }

        /// Waits up to `timeout_ms` for events; returns how many it wrote.
        pub(super) fn wait(&self, out: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
            let mut raw = [libc::epoll_event { events: 0, u64: 0 }; super::EVENTS];
            let max = raw.len().min(out.len()) as i32;
            // SAFETY: `raw` holds `max` writable events.
            let n =
                unsafe { libc::epoll_wait(self.0.as_raw_fd(), raw.as_mut_ptr(), max, timeout_ms) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            let gone = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            for (slot, event) in out.iter_mut().zip(&raw[..n]) {
                *slot = Event {
                    token: event.u64,
                    hung_up: event.events & gone != 0,
                };
            }
            Ok(n)
        }
    }
}

/// Elsewhere no hang-up is seen early: a gone client is noticed when a
/// write to it fails (at the latest, the next heartbeat).
#[cfg(not(target_os = "linux"))]
struct Epoll;

#[cfg(not(target_os = "linux"))]
impl Epoll {
    fn new() -> io::Result<Epoll> {
        Ok(Epoll)
    }

    fn add(&self, _fd: RawFd, _token: u64, _input: bool) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, _fd: RawFd) {}

    fn wait(&self, _out: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
        std::thread::sleep(std::time::Duration::from_millis(timeout_ms as u64));
        Ok(0)
    }
}
