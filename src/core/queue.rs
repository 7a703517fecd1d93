//! A subscriber's queue: the hand-over point between the hub, which fans
//! frames in, and the one thread that takes them out (a writer, or an
//! in-process subscriber), with the wake-up between the two.
//!
//! The hub pushes; it never blocks on a subscriber. A queue holds at most
//! `capacity` events: a push that would go past that is refused, and the hub
//! drops the subscriber, who resumes from history (an empty queue takes any
//! frame, so that a batch larger than the queue still gets through to a
//! subscriber who keeps up).
//!
//! The taker empties the whole queue in one step ([`Queue::take`]: it swaps
//! the queue's buffer for its own empty one, so neither side allocates in
//! steady state), writes everything it got as one batch, and comes back.
//! When the queue is empty it sleeps ([`Queue::wait`]), after noting which
//! thread to wake, under the queue's lock. A push that finds a sleeper
//! takes that note, and returns the thread: the caller wakes it, once,
//! whenever it suits it. Waking a sleeping thread is a system call that
//! costs several microseconds, so the hub defers those calls until it has
//! answered the publisher, and a taker that is awake (busy writing) is never
//! woken again: frames pushed meanwhile go out in its next batch.
//!
//! Because the note is taken and left under the same lock as the frames,
//! no wake-up can be lost: either the push comes first and the taker finds
//! the frame instead of sleeping, or the taker's note comes first and the
//! push finds it. (`std::thread::park` keeps a wake-up that arrives before
//! the sleep, so the order of the wake-up and the sleep does not matter.)
//!
//! A stream on a plain socket may also let the hub write a frame itself
//! while the taker sleeps (`direct.rs`): the push then *claims* the queue
//! instead of handing back the thread, and the hub sends what is queued
//! later ([`Queue::send_claimed`]). The claim lives under the same lock
//! as the note; `direct.rs` has its rules.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::core::closed::Closed;
use crate::core::direct::{self, Sent, Socket};
use crate::core::sse::Frame;

/// What a push did.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Queued; wake this thread, which sleeps waiting for it.
    Wake(Thread),
    /// Queued; the taker is awake and will find it, or the hub holds a
    /// claim that will send it.
    Queued,
    /// Queued and claimed: the taker sleeps, and the hub sends what is
    /// queued itself, with [`Queue::send_claimed`], as soon as it can.
    Claimed,
    /// Refused: the queue holds `capacity` events already.
    Full,
    /// Refused: the queue is closed.
    Closed,
}

/// What a take found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Took {
    /// Frames holding this many events, now in the taker's buffer.
    Events(u64),
    /// Nothing queued.
    Empty,
    /// Nothing queued, and nothing ever will be.
    Closed(Closed),
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Frame>,
    /// Events in `frames` (a frame may hold several).
    events: u64,
    closed: Option<Closed>,
    /// The taker's thread while it sleeps on an empty queue.
    sleeper: Option<Thread>,
    /// The stream's socket, while the taker lets the hub send to it.
    direct: Option<Socket>,
    /// The hub holds the socket and will send what is queued.
    claimed: bool,
    /// Wire bytes, already framed, that a direct send left: the taker
    /// writes them before anything else.
    rest: Vec<u8>,
}

/// What [`Queue::send_claimed`] did.
#[derive(Debug)]
pub(crate) enum Delivered {
    /// Every queued byte went out: these many events.
    Sent(u64),
    /// Not all of it: wake this thread to write the rest.
    Wake(Thread),
    /// No claim (the queue was closed meanwhile), or no one to wake.
    Nothing,
}

/// One subscriber's bounded queue of frames; see the module docs.
#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: u64,
}

/// A taker's buffer keeps at most this many slots between batches, so an
/// idle subscriber does not keep a burst's worth of memory.
const KEEP_SLOTS: usize = 16;

/// How long a taker whose deadline has passed sleeps at a time while the
/// hub's claim on its socket stands (a claim lasts one send).
const CLAIM_POLL: Duration = Duration::from_millis(1);

impl Queue {
    /// An empty queue for at most `capacity` events.
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                events: 0,
                closed: None,
                sleeper: None,
                direct: None,
                claimed: false,
                rest: Vec::new(),
            }),
            capacity: capacity as u64,
        }
    }

    /// Queues `frame` (hub side).
    pub(crate) fn push(&self, frame: &Frame) -> Pushed {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Pushed::Closed;
        }
        let events = u64::from(frame.events());
        if state.events > 0 && state.events + events > self.capacity {
            return Pushed::Full;
        }
        state.frames.push_back(frame.clone());
        state.events += events;
        if state.claimed {
            return Pushed::Queued;
        }
        if state.sleeper.is_some()
            && state.direct.is_some()
            && state.frames.len() == 1
            && state.rest.is_empty()
        {
            state.claimed = true;
            return Pushed::Claimed;
        }
        match state.sleeper.take() {
            Some(thread) => Pushed::Wake(thread),
            None => Pushed::Queued,
        }
    }

    /// Sends what a claim holds (hub side, after [`Pushed::Claimed`]),
    /// without blocking, and ends the claim; see `direct.rs`.
    pub(crate) fn send_claimed(&self) -> Delivered {
        let mut guard = self.lock();
        let state = &mut *guard;
        if !state.claimed {
            return Delivered::Nothing;
        }
        state.claimed = false;
        let sent = match state.direct {
            Some(socket) => direct::send(socket, &state.frames, &mut state.rest),
            None => Sent::Nothing,
        };
        match sent {
            Sent::All => {
                state.frames.clear();
                return Delivered::Sent(std::mem::take(&mut state.events));
            }
            // What went out, went out; the events stay counted until the
            // taker has written the rest.
            Sent::Part => state.frames.clear(),
            Sent::Nothing => {}
        }
        state
            .sleeper
            .take()
            .map_or(Delivered::Nothing, Delivered::Wake)
    }

    /// Lets the hub send to `socket` while the taker sleeps (taker side),
    /// until [`Queue::forbid_direct`]. The socket must stay open until then.
    pub(crate) fn allow_direct(&self, socket: Socket) {
        self.lock().direct = Some(socket);
    }

    /// Ends what [`Queue::allow_direct`] allowed (taker side, awake: so no
    /// claim stands).
    pub(crate) fn forbid_direct(&self) {
        let mut state = self.lock();
        debug_assert!(!state.claimed);
        state.direct = None;
    }

    /// Moves the bytes a direct send left into `into` (taker side, after
    /// [`Took::Events`]): they go on the wire as they are, before the
    /// frames taken with them.
    pub(crate) fn take_rest(&self, into: &mut Vec<u8>) {
        std::mem::swap(&mut self.lock().rest, into);
    }

    /// Closes the queue (hub side): the taker gets what is queued, then
    /// [`Took::Closed`]. Returns the taker's thread if it sleeps, to be
    /// woken. Closing twice keeps the first reason.
    pub(crate) fn close(&self, why: Closed) -> Option<Thread> {
        let mut state = self.lock();
        state.closed.get_or_insert(why);
        // A claim not sent yet ends here: the taker writes the frames.
        state.claimed = false;
        state.sleeper.take()
    }

    /// True once the hub has dropped this subscriber for falling behind
    /// (taker side): what is still queued is not worth writing, since the
    /// subscriber resumes from history.
    pub(crate) fn dropped_slow(&self) -> bool {
        self.lock().closed == Some(Closed::Slow)
    }

    /// Moves everything queued into `into`, which must be empty (taker
    /// side).
    pub(crate) fn take(&self, into: &mut VecDeque<Frame>) -> Took {
        debug_assert!(into.is_empty());
        let mut state = self.lock();
        if state.claimed {
            // The hub is sending what is queued: nothing for the taker.
            return Took::Empty;
        }
        if state.frames.is_empty() && state.rest.is_empty() {
            return match state.closed {
                Some(why) => {
                    state.sleeper = None;
                    Took::Closed(why)
                }
                None => Took::Empty,
            };
        }
        // Awake with work: no claim may start until the taker sleeps again.
        state.sleeper = None;
        std::mem::swap(&mut state.frames, into);
        Took::Events(std::mem::take(&mut state.events))
    }

    /// True if nothing is queued and no claim stands (taker side); the
    /// taker is then awake, its note cleared, so no claim can start.
    fn idle(&self) -> bool {
        let mut state = self.lock();
        if state.claimed {
            return false;
        }
        state.sleeper = None;
        state.frames.is_empty() && state.rest.is_empty() && state.closed.is_none()
    }

    /// Sleeps until a push or a close, or until `timeout` (`None`: no
    /// limit) has passed, unless something is queued already (taker side).
    /// It may also return early for no reason: the caller looks again.
    pub(crate) fn wait(&self, timeout: Option<Duration>) {
        {
            let mut state = self.lock();
            let ready =
                !state.frames.is_empty() || !state.rest.is_empty() || state.closed.is_some();
            if ready && !state.claimed {
                return;
            }
            state.sleeper = Some(thread::current());
        }
        match timeout {
            Some(timeout) => thread::park_timeout(timeout),
            None => thread::park(),
        }
        // Woken by a push, which took the note, or by the timeout or a
        // spurious wake-up, which did not: a stale note would cost a later
        // push a needless wake-up. Under a claim the note stays: the hub
        // counts on it, and takes it if the taker must finish the send.
        let mut state = self.lock();
        if !state.claimed {
            state.sleeper = None;
        }
    }

    /// The one consumer loop (taker side): moves everything queued into
    /// `into`, which must be empty, sleeping while the queue is empty until
    /// a push, a close, or `deadline` (`None`: no limit). Returns
    /// [`Took::Empty`] only once the deadline has passed; a deadline that
    /// has passed already makes it look once, without sleeping. Between
    /// sleeps it releases what `into` holds beyond a few slots.
    pub(crate) fn next_batch(&self, into: &mut VecDeque<Frame>, deadline: Option<Instant>) -> Took {
        loop {
            match self.take(into) {
                Took::Empty => trim(into),
                took => return took,
            }
            let left = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        if self.idle() {
                            return Took::Empty;
                        }
                        // A claim stands (the hub is sending) or something
                        // came: look again shortly.
                        Some(CLAIM_POLL)
                    } else {
                        Some(left)
                    }
                }
                None => None,
            };
            self.wait(left);
        }
    }

    /// Events queued now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.lock().events
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the
        // state is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Releases what a drained buffer holds beyond a few slots.
fn trim(buffer: &mut VecDeque<Frame>) {
    buffer.shrink_to(KEEP_SLOTS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::direct::Socket;
    use std::sync::Arc;
    use std::time::Instant;

    fn frame(events: u32) -> Frame {
        Frame::new(b"data: x\n\n", events)
    }

    #[test]
    fn holds_at_most_capacity_events() {
        let queue = Queue::new(3);
        assert!(matches!(queue.push(&frame(2)), Pushed::Queued));
        assert!(matches!(queue.push(&frame(2)), Pushed::Full));
        assert!(matches!(queue.push(&frame(1)), Pushed::Queued));
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn an_empty_queue_takes_a_frame_larger_than_its_capacity() {
        let queue = Queue::new(2);
        assert!(matches!(queue.push(&frame(100)), Pushed::Queued));
        assert!(matches!(queue.push(&frame(1)), Pushed::Full));
    }

    #[test]
    fn take_moves_everything_and_reports_events() {
        let queue = Queue::new(10);
        queue.push(&frame(1));
        queue.push(&frame(3));
        let mut got = VecDeque::new();
        assert_eq!(queue.take(&mut got), Took::Events(4));
        assert_eq!(got.len(), 2);
        got.clear();
        assert_eq!(queue.take(&mut got), Took::Empty);
    }

    #[test]
    fn a_closed_queue_hands_out_what_it_holds_then_says_why() {
        let queue = Queue::new(10);
        queue.push(&frame(1));
        assert!(queue.close(Closed::Slow).is_none(), "nobody sleeps");
        queue.close(Closed::Shutdown);
        assert!(matches!(queue.push(&frame(1)), Pushed::Closed));
        let mut got = VecDeque::new();
        assert_eq!(queue.take(&mut got), Took::Events(1));
        got.clear();
        assert_eq!(queue.take(&mut got), Took::Closed(Closed::Slow));
    }

    #[test]
    fn a_push_to_a_sleeper_hands_back_its_thread_once() {
        let queue = Arc::new(Queue::new(10));
        let sleeper = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                queue.wait(None);
                let mut got = VecDeque::new();
                queue.take(&mut got)
            })
        };
        let guard = Instant::now();
        while queue.lock().sleeper.is_none() {
            assert!(guard.elapsed() < Duration::from_secs(20), "never slept");
            thread::sleep(Duration::from_millis(1));
        }
        let Pushed::Wake(woken) = queue.push(&frame(1)) else {
            panic!("the push did not find the sleeper");
        };
        assert_eq!(woken.id(), sleeper.thread().id());
        assert!(
            matches!(queue.push(&frame(1)), Pushed::Queued),
            "woken once"
        );
        woken.unpark();
        assert_eq!(sleeper.join().unwrap(), Took::Events(2));
    }

    /// A claim on a parked taker: the hub sends what fits, and the taker
    /// is woken to write the rest of the chunk, as it is, before anything
    /// queued after it.
    #[test]
    fn a_claimed_send_that_does_not_fit_leaves_the_rest_to_the_taker() {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        use std::os::fd::AsRawFd;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let queue = Arc::new(Queue::new(10));
        queue.allow_direct(Socket::new(server.as_raw_fd(), true));
        let taker = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut got = VecDeque::new();
                let took = queue.next_batch(&mut got, None);
                let mut rest = Vec::new();
                queue.take_rest(&mut rest);
                (took, got.len(), rest)
            })
        };
        let guard = Instant::now();
        while queue.lock().sleeper.is_none() {
            assert!(guard.elapsed() < Duration::from_secs(20), "never slept");
            thread::sleep(Duration::from_millis(1));
        }
        // More than loopback's buffers take at once.
        let big = Frame::new(&vec![b'x'; 32 << 20], 1);
        assert!(matches!(queue.push(&big), Pushed::Claimed));
        assert!(
            matches!(queue.push(&frame(1)), Pushed::Queued),
            "joins the claim"
        );
        let Delivered::Wake(thread) = queue.send_claimed() else {
            panic!("32 MiB went out at once");
        };
        thread.unpark();
        let (took, frames, rest) = taker.join().unwrap();
        assert_eq!(
            took,
            Took::Events(2),
            "the events count once the taker writes them"
        );
        assert_eq!(frames, 0, "the frames went on the wire, in part");
        assert!(
            matches!(queue.send_claimed(), Delivered::Nothing),
            "the claim ended"
        );

        let wire_len = format!("{:x}\r\n", big.len() + 9).len() + big.len() + 9 + 2;
        let mut sent = vec![0; wire_len - rest.len()];
        client.read_exact(&mut sent).unwrap();
        let mut wire = sent;
        wire.extend_from_slice(&rest);
        let head = format!("{:x}\r\n", big.len() + 9);
        assert!(wire.starts_with(head.as_bytes()));
        assert!(wire.ends_with(b"xdata: x\n\n\r\n"));
    }

    /// The protocol under load: a taker that sleeps whenever its queue is
    /// empty, and a pusher that wakes it only when a push says so. A lost
    /// wake-up leaves the taker asleep (no timeout here) and the test hangs
    /// until its guard fails.
    #[test]
    fn no_wake_up_is_ever_lost() {
        const FRAMES: u64 = 200_000;
        let queue = Arc::new(Queue::new(usize::MAX));
        let taker = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut got = VecDeque::new();
                let mut seen = 0;
                while seen < FRAMES {
                    match queue.take(&mut got) {
                        Took::Events(n) => {
                            seen += n;
                            got.clear();
                        }
                        Took::Empty => queue.wait(Some(Duration::from_secs(20))),
                        Took::Closed(_) => unreachable!(),
                    }
                }
                seen
            })
        };
        for _ in 0..FRAMES {
            if let Pushed::Wake(thread) = queue.push(&frame(1)) {
                thread.unpark();
            }
        }
        let guard = Instant::now();
        while !taker.is_finished() {
            assert!(
                guard.elapsed() < Duration::from_secs(15),
                "the taker slept through a wake-up"
            );
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(taker.join().unwrap(), FRAMES);
    }
}
