//! Direct delivery: the hub writes a frame straight to a parked stream's
//! socket, so a steady trickle of messages wakes no thread.
//!
//! The simple path comes first and stays the rule: the hub queues a frame
//! and wakes the subscriber's thread, which writes it (`queue.rs`,
//! `stream/`). At steady traffic that costs every delivery a wake-up, two
//! context switches and a write, for a frame that fits in the socket's
//! buffer many times over. So when the hub pushes a frame to a queue that
//! is empty, whose thread sleeps, and whose stream goes plain onto a TCP
//! socket, it *claims* the socket instead of waking the thread, and later
//! (after answering the publisher, like the wake-ups it defers) sends the
//! frame itself with a non-blocking `send` ([`send`]). If every byte went
//! out, no thread ever woke.
//!
//! The writer thread stays the owner of everything that can block or that
//! carries state: the head, the replay, heartbeats, the end of the body,
//! and any write that does not go through at once. On a partial send the
//! rest of the bytes, already framed, wait in the queue for the writer,
//! which is woken to write them first with its usual write timeout; on
//! `EAGAIN` (the subscriber is not reading) or an error, nothing was sent,
//! and the writer is woken to write the frames itself, or to fail as any
//! write fails, which removes the client.
//!
//! Streams that are gzip or TLS never take this path (their encoder state
//! belongs to the writer), nor streams written to an application's own
//! `Write`: a stream allows it only through
//! `EventStream::run_on_socket` and the built-in server's plain HTTP.
//!
//! ## The claim
//!
//! Everything below happens under the queue's lock, beside the sleeper
//! note of the wake-up protocol (`queue.rs`):
//!
//! ```text
//!            writer notes itself asleep, queue empty, socket allowed
//!   Awake ──────────────────────────────────────────────────────────▶ Parked
//!     ▲                                                                 │
//!     │ writer clears its note                    hub pushes a frame:   │
//!     │ (only while unclaimed)                    claim, note kept      ▼
//!     └──────── Parked ◀─── all sent ───────────────────────────── Claimed
//!                 ▲                                                     │
//!   Awake ◀───────┴──── partial, EAGAIN, error: note taken, woken ──────┘
//! ```
//!
//! - The hub claims only a stream whose writer is parked: its note is set,
//!   and the writer writes nothing while noted asleep.
//! - While a claim stands the writer does not take frames, does not clear
//!   its note and does not return to write a heartbeat: a writer that
//!   wakes early (its heartbeat timer) sleeps again until the claim ends.
//!   So two writers never write to the socket at once.
//! - Frames pushed while claimed join the claimed send, after the first:
//!   the order is the queue's. Whatever the send leaves, the writer writes
//!   before anything queued later.
//! - Closing the queue ends a claim that was not sent yet: the writer
//!   takes the frames as usual. The claim is what keeps the writer, and so
//!   its socket, alive while the hub sends.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use crate::core::sse::Frame;
use crate::core::stream::{CHUNK_HEADER_ROOM, chunk_size_line};

/// A stream's socket and its framing, for the hub's sends while the writer
/// sleeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Socket {
    fd: RawFd,
    /// Chunked HTTP/1.1 framing: the frames go out as one chunk.
    chunked: bool,
}

impl Socket {
    /// `fd` must stay open for as long as the queue allows direct delivery
    /// to it: the writer forbids it before its socket can close.
    pub(crate) fn new(fd: RawFd, chunked: bool) -> Socket {
        Socket { fd, chunked }
    }
}

/// Most frames one send carries; a longer queue goes to the writer.
const MAX_FRAMES: usize = 32;

/// What a direct send did.
#[derive(Debug)]
pub(crate) enum Sent {
    /// Every byte went out.
    All,
    /// Some went out; the rest of the wire bytes are in `rest`.
    Part,
    /// Nothing went out: the socket's buffer is full, the queue is too long
    /// for one send, or the send failed (the writer's own write will say
    /// how).
    Nothing,
}

/// Sends `frames` to `socket` without blocking, framed as the writer would
/// frame them (one chunk). On a partial send, appends what is left of the
/// wire bytes to `rest`.
pub(crate) fn send(socket: Socket, frames: &VecDeque<Frame>, rest: &mut Vec<u8>) -> Sent {
    if frames.is_empty() || frames.len() > MAX_FRAMES {
        return Sent::Nothing;
    }
    let len: usize = frames.iter().map(|frame| frame.len()).sum();
    let mut room = [0u8; CHUNK_HEADER_ROOM];
    let size_line = if socket.chunked {
        let start = chunk_size_line(len, &mut room);
        &room[start..]
    } else {
        &[][..]
    };
    let trailer: &[u8] = if socket.chunked { b"\r\n" } else { b"" };

    let mut parts: [&[u8]; MAX_FRAMES + 2] = [&[]; MAX_FRAMES + 2];
    parts[0] = size_line;
    for (part, frame) in parts[1..].iter_mut().zip(frames) {
        *part = frame;
    }
    parts[frames.len() + 1] = trailer;
    let parts = &parts[..frames.len() + 2];
    let wire = size_line.len() + len + trailer.len();

    let sent = match send_parts(socket.fd, parts) {
        Ok(n) => n,
        Err(_) => return Sent::Nothing,
    };
    if sent >= wire {
        return Sent::All;
    }
    if sent == 0 {
        return Sent::Nothing;
    }
    let mut skip = sent;
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
        } else {
            rest.extend_from_slice(&part[skip..]);
            skip = 0;
        }
    }
    Sent::Part
}

/// One `sendmsg` of `parts`, non-blocking, without SIGPIPE. Retries on
/// EINTR; any other error is returned.
fn send_parts(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_FRAMES + 2];
    for (slot, part) in iov.iter_mut().zip(parts) {
        slot.iov_base = part.as_ptr() as *mut libc::c_void;
        slot.iov_len = part.len();
    }
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iov.as_mut_ptr();
    // `parts` holds at most MAX_FRAMES + 2 entries.
    message.msg_iovlen = parts.len() as _;
    loop {
        // SAFETY: `message` points at `iov`, whose entries point at the
        // borrowed `parts`, all alive for the call; the kernel only reads
        // them. `fd` is open: the caller holds the claim (module docs).
        let n = unsafe { libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n >= 0 {
            // Non-negative, and at most the bytes given.
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn frames_go_out_as_one_chunk() {
        let (server, mut client) = pair();
        let frames: VecDeque<Frame> = [
            Frame::new(b"data: a\n\n", 1),
            Frame::new(b"data: bc\n\n", 1),
        ]
        .into();
        let mut rest = Vec::new();
        let sent = send(Socket::new(server.as_raw_fd(), true), &frames, &mut rest);
        assert!(matches!(sent, Sent::All), "{sent:?}");
        drop(server);
        let mut wire = String::new();
        client.read_to_string(&mut wire).unwrap();
        assert_eq!(wire, "13\r\ndata: a\n\ndata: bc\n\n\r\n");
        assert!(rest.is_empty());
    }

    #[test]
    fn a_full_socket_takes_part_and_the_rest_is_kept() {
        let (server, mut client) = pair();
        let big = vec![b'x'; 32 << 20];
        let frames: VecDeque<Frame> = [Frame::new(&big, 1)].into();
        let mut rest = Vec::new();
        let fd = server.as_raw_fd();
        let sent = send(Socket::new(fd, false), &frames, &mut rest);
        assert!(matches!(sent, Sent::Part), "{sent:?}");
        let went = big.len() - rest.len();
        assert!(went > 0);
        let mut more = Vec::new();
        assert!(matches!(
            send(Socket::new(fd, false), &frames, &mut more),
            Sent::Nothing | Sent::Part
        ));
        drop(server);
        let mut wire = Vec::new();
        client.read_to_end(&mut wire).unwrap();
        assert!(wire.len() >= went);
        assert!(wire.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn a_send_to_a_closed_peer_sends_nothing() {
        let (server, client) = pair();
        drop(client);
        let frames: VecDeque<Frame> = [Frame::new(b"data: a\n\n", 1)].into();
        let mut rest = Vec::new();
        // The first send may be taken before the reset comes back.
        let mut outcomes = Vec::new();
        for _ in 0..50 {
            outcomes.push(send(
                Socket::new(server.as_raw_fd(), true),
                &frames,
                &mut rest,
            ));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(outcomes.iter().any(|sent| matches!(sent, Sent::Nothing)));
    }

    /// The claim under contention: one pusher playing the hub, takers
    /// playing writers that write each chunk in two halves with a pause
    /// between (the widest window for another writer to slip into), a
    /// deadline that makes them write heartbeats at random, and readers
    /// that pause, so sends go through whole, in part, or not at all.
    /// Each reader decodes the chunks and checks every frame comes once,
    /// in order. A hub that sent while a writer writes, or a writer that
    /// wrote during a claim, breaks a chunk or the order.
    #[test]
    fn claims_never_interleave_or_reorder() {
        use crate::core::queue::{Delivered, Pushed, Queue, Took};
        use std::io::Write;
        use std::sync::Arc;
        use std::thread;
        use std::time::{Duration, Instant};

        const STREAMS: usize = 6;
        const FRAMES: usize = 2_000;

        fn small_buffers(socket: &TcpStream) {
            let size: libc::c_int = 4_096;
            for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
                // SAFETY: a valid socket, an int option and its size.
                let rc = unsafe {
                    libc::setsockopt(
                        socket.as_raw_fd(),
                        libc::SOL_SOCKET,
                        option,
                        (&size as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0);
            }
        }

        fn half_and_half(out: &mut TcpStream, bytes: &[u8], pause: bool) {
            let (a, b) = bytes.split_at(bytes.len() / 2);
            out.write_all(a).unwrap();
            if pause {
                thread::sleep(Duration::from_micros(200));
            } else {
                thread::yield_now();
            }
            out.write_all(b).unwrap();
        }

        fn chunk(bytes: &[u8]) -> Vec<u8> {
            let mut wire = format!("{:x}\r\n", bytes.len()).into_bytes();
            wire.extend_from_slice(bytes);
            wire.extend_from_slice(b"\r\n");
            wire
        }

        fn read_all(mut client: TcpStream, seed: u64) {
            // Every frame once, in order; then on to the end of the stream,
            // so that the writers' last heartbeats find a reader.
            let mut rng = seed;
            let mut wire = Vec::new();
            let mut buf = [0u8; 2048];
            let mut next = 0;
            while next < FRAMES {
                let n = client.read(&mut buf).expect("reads");
                assert!(n > 0, "the stream ended at frame {next}");
                wire.extend_from_slice(&buf[..n]);
                // Whole chunks off the front.
                while let Some(eol) = wire.windows(2).position(|w| w == b"\r\n") {
                    let size_text = std::str::from_utf8(&wire[..eol]).expect("a size line");
                    let size = usize::from_str_radix(size_text, 16)
                        .unwrap_or_else(|_| panic!("bad chunk-size line {size_text:?}"));
                    if wire.len() < eol + 2 + size + 2 {
                        break;
                    }
                    let data = &wire[eol + 2..eol + 2 + size];
                    assert_eq!(&wire[eol + 2 + size..eol + 4 + size], b"\r\n", "chunk end");
                    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        if line.starts_with(b":") {
                            continue;
                        }
                        let text = std::str::from_utf8(line).expect("utf-8");
                        let got: usize = text
                            .strip_prefix("data: ")
                            .and_then(|n| n.trim_end_matches('x').parse().ok())
                            .unwrap_or_else(|| panic!("mangled line {text:?}"));
                        assert_eq!(got, next, "frames out of order");
                        next += 1;
                    }
                    wire.drain(..eol + 4 + size);
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng % 7 == 0 {
                    thread::sleep(Duration::from_micros(rng % 1_500));
                }
            }
            while client.read(&mut buf).is_ok_and(|n| n > 0) {}
        }

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut queues = Vec::new();
        let mut takers = Vec::new();
        let mut readers = Vec::new();
        for s in 0..STREAMS {
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut server, _) = listener.accept().unwrap();
            small_buffers(&server);
            small_buffers(&client);
            let queue = Arc::new(Queue::new(usize::MAX));
            queue.allow_direct(Socket::new(server.as_raw_fd(), true));
            queues.push(Arc::clone(&queue));
            readers.push(thread::spawn(move || {
                read_all(client, 0x9e37_79b9 + s as u64)
            }));
            takers.push(thread::spawn(move || {
                let mut taken = VecDeque::new();
                let mut rest = Vec::new();
                let mut rng = 0x2545_f491 + s as u64;
                loop {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let deadline = Instant::now() + Duration::from_micros(rng % 3_000);
                    match queue.next_batch(&mut taken, Some(deadline)) {
                        Took::Events(_) => {
                            queue.take_rest(&mut rest);
                            half_and_half(&mut server, &rest, rng % 3 == 0);
                            rest.clear();
                            let bytes: Vec<u8> = taken.drain(..).flat_map(|f| f.to_vec()).collect();
                            half_and_half(&mut server, &chunk(&bytes), rng % 3 == 1);
                        }
                        Took::Empty => half_and_half(&mut server, &chunk(b": h\n"), false),
                        Took::Closed(_) => break,
                    }
                }
                queue.forbid_direct();
            }));
        }

        let mut claimed = Vec::new();
        let mut wake = Vec::new();
        let mut sent = 0u64;
        for i in 0..FRAMES {
            let frame = Frame::new(
                format!("data: {i}{}\n\n", "x".repeat(i % 1_500)).as_bytes(),
                1,
            );
            for queue in &queues {
                match queue.push(&frame) {
                    Pushed::Claimed => claimed.push(Arc::clone(queue)),
                    Pushed::Wake(thread) => wake.push(thread),
                    Pushed::Queued => {}
                    other => panic!("{other:?}"),
                }
            }
            if i % 3 == 0 {
                for queue in claimed.drain(..) {
                    match queue.send_claimed() {
                        Delivered::Sent(n) => sent += n,
                        Delivered::Wake(thread) => wake.push(thread),
                        Delivered::Nothing => {}
                    }
                }
                for thread in wake.drain(..) {
                    thread.unpark();
                }
            }
            // Now and then a pause, long enough for the writers to sleep.
            match i % 8 {
                0 => thread::sleep(Duration::from_micros(300)),
                4 => thread::yield_now(),
                _ => {}
            }
        }
        for queue in claimed.drain(..) {
            if let Delivered::Wake(thread) = queue.send_claimed() {
                thread.unpark();
            }
        }
        for thread in wake.drain(..) {
            thread.unpark();
        }
        for queue in &queues {
            if let Some(thread) = queue.close(crate::core::closed::Closed::Shutdown) {
                thread.unpark();
            }
        }
        for taker in takers {
            taker.join().expect("a writer ran");
        }
        for reader in readers {
            reader.join().expect("every frame once, in order");
        }
        assert!(sent > 0, "no frame went out directly");
    }
}
