//! Subscribers: thousands of event streams on one thread, over non-blocking
//! sockets polled with `mio`.
//!
//! Each socket is bound to its own loopback source address
//! (`127.0.0.2` ... `127.0.0.201`, round robin) before it connects, so the
//! number of streams is not capped by one address's ephemeral ports. At most
//! `concurrency` connections are in their handshake at once, so the
//! server's accept queue never overflows (an overflow costs a one-second SYN
//! retry and would be measured as connect time). A stream counts as open
//! when the `200` response head arrives; servers register the subscriber
//! before they answer, so a message published after that reaches it.
//!
//! Bytes read from a socket go through its [`StreamParser`]; every stamp
//! found is handed to the [`Tracker`] with the time of the `read` that
//! brought it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConnection;
use socket2::{Domain, Protocol, Socket, Type};

use crate::stream::{Progress, Stamp, StreamParser};

/// Source addresses used, from 127.0.0.2 on.
const SOURCE_ADDRESSES: u32 = 200;

/// Duplicate detection keeps one bit per subscriber per message, up to this
/// many bits (16 MiB); past that it is skipped.
const MAX_SEEN_BITS: u64 = 128 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    /// Connected; `usize` bytes of the request are written.
    Requesting(usize),
    /// Request sent, waiting for the head.
    Head,
    Open,
    /// Ended after it was open.
    Closed,
    /// Never opened.
    Failed,
}

struct Conn {
    stream: TcpStream,
    /// The TLS session over `stream`, with `--tls-ca`.
    tls: Option<Box<ClientConnection>>,
    state: State,
    parser: StreamParser,
    /// When this attempt started.
    started: Instant,
    /// Attempts so far, this one included.
    attempts: u32,
}

impl Conn {
    fn in_handshake(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::Requesting(_) | State::Head
        )
    }
}

/// Where and how to subscribe.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    /// HTTPS, with this client; plain HTTP without.
    pub tls: Option<crate::tls::Client>,
}

/// How streams are opened.
#[derive(Clone, Copy, Debug)]
pub struct Handshakes {
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// A handshake with no response head after this long is tried again.
    pub head_timeout: Duration,
    /// Tries per stream, the first included.
    pub attempts: u32,
}

/// Delivery bookkeeping for `messages` stamped messages from `publishers`
/// publishers, to `subscribers` streams.
pub struct Tracker {
    messages: u64,
    publishers: u64,
    pub latency: crate::measure::Histogram,
    /// Per message: deliveries so far, and the time of the latest.
    per_message: Vec<(u32, u64)>,
    sent_ns: Vec<u64>,
    /// One bit per (subscriber, message); `None` if too large, and then
    /// duplicates are not detected ([`Tracker::checks_duplicates`]).
    seen: Option<Vec<u64>>,
    words_per_subscriber: usize,
    /// Per (subscriber, publisher): the last sequence number seen.
    last_seq: Vec<u64>,
    pub received: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Stamps with a sequence number past the plan (another run's messages).
    pub foreign: u64,
    pub last_ns: u64,
    subscribers: u32,
    /// Messages `0..n` have reached every stream (for `--window`).
    delivered: Arc<AtomicU64>,
}

impl Tracker {
    pub fn new(subscribers: usize, messages: u64, publishers: u64) -> Tracker {
        let words = messages.div_ceil(64) as usize;
        let seen = (subscribers as u64 * messages <= MAX_SEEN_BITS)
            .then(|| vec![0u64; words * subscribers]);
        Tracker {
            messages,
            publishers: publishers.max(1),
            latency: crate::measure::Histogram::default(),
            per_message: vec![(0, 0); messages as usize],
            sent_ns: vec![0; messages as usize],
            seen,
            words_per_subscriber: words,
            last_seq: vec![u64::MAX; subscribers * publishers.max(1) as usize],
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            foreign: 0,
            last_ns: 0,
            subscribers: subscribers as u32,
            delivered: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Counts a message as received by every stream once `streams` have it
    /// (the streams that actually opened).
    pub fn expect_streams(&mut self, streams: usize) {
        self.subscribers = streams as u32;
    }

    /// The count of messages, from the first, that every stream has
    /// received; shared with the publishers.
    pub fn delivered_prefix(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.delivered)
    }

    /// Whether duplicates are detected (the plan fits the bitmap).
    pub fn checks_duplicates(&self) -> bool {
        self.seen.is_some()
    }

    fn record(&mut self, subscriber: usize, stamp: Stamp, now_ns: u64) {
        if stamp.seq >= self.messages {
            self.foreign += 1;
            return;
        }
        let seq = stamp.seq as usize;
        if let Some(seen) = &mut self.seen {
            let word = subscriber * self.words_per_subscriber + seq / 64;
            let bit = 1u64 << (seq % 64);
            if seen[word] & bit != 0 {
                self.duplicated += 1;
                return;
            }
            seen[word] |= bit;
        }
        let lane = subscriber * self.publishers as usize + (stamp.seq % self.publishers) as usize;
        let last = self.last_seq[lane];
        if last != u64::MAX && stamp.seq < last {
            self.out_of_order += 1;
        } else {
            self.last_seq[lane] = stamp.seq;
        }
        self.received += 1;
        self.latency.record(now_ns.saturating_sub(stamp.sent_ns));
        let entry = &mut self.per_message[seq];
        entry.0 += 1;
        entry.1 = entry.1.max(now_ns);
        self.sent_ns[seq] = stamp.sent_ns;
        self.last_ns = self.last_ns.max(now_ns);
        let mut prefix = self.delivered.load(Ordering::Relaxed) as usize;
        while prefix < self.per_message.len() && self.per_message[prefix].0 >= self.subscribers {
            prefix += 1;
        }
        self.delivered.store(prefix as u64, Ordering::Release);
    }

    /// Fan-out completion: for each message that reached all `subscribers`,
    /// the time from its send until the last of them had it. Returns the
    /// histogram and how many messages were complete.
    pub fn fan_out(&self, subscribers: u32) -> (crate::measure::Histogram, u64) {
        let mut histogram = crate::measure::Histogram::default();
        let mut complete = 0;
        for (&(count, last), &sent) in self.per_message.iter().zip(&self.sent_ns) {
            if subscribers > 0 && count >= subscribers {
                complete += 1;
                histogram.record(last.saturating_sub(sent));
            }
        }
        (histogram, complete)
    }
}

/// The streams and the poll that drives them.
pub struct Subscribers {
    target: Target,
    request: Vec<u8>,
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    wanted: usize,
    concurrency: usize,
    head_timeout: Duration,
    attempts: u32,
    /// Streams before this one are done with their handshake.
    unsettled_from: usize,
    origin: Instant,
    buf: Vec<u8>,
    stamps: Vec<Stamp>,
    pub tracker: Tracker,
    pub opened: usize,
    pub failed: usize,
    pub closed: usize,
    pub failures: Vec<String>,
    /// Handshakes abandoned for lack of a response head and tried again.
    pub retried: u64,
    /// Time since the clock's origin at which the last stream opened.
    pub last_open_ns: u64,
}

impl Subscribers {
    pub fn new(
        target: Target,
        wanted: usize,
        handshakes: Handshakes,
        tracker: Tracker,
        origin: Instant,
    ) -> io::Result<Subscribers> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
            target.path, target.addr
        )
        .into_bytes();
        Ok(Subscribers {
            target,
            request,
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::with_capacity(wanted),
            wanted,
            concurrency: handshakes.concurrency.max(1),
            head_timeout: handshakes.head_timeout,
            attempts: handshakes.attempts.max(1),
            unsettled_from: 0,
            origin,
            buf: vec![0; 256 * 1024],
            stamps: Vec::with_capacity(1024),
            tracker,
            opened: 0,
            failed: 0,
            closed: 0,
            failures: Vec::new(),
            retried: 0,
            last_open_ns: 0,
        })
    }

    /// Streams open now.
    pub fn open_now(&self) -> usize {
        self.opened - self.closed
    }

    /// Opens all wanted streams, or as many as open before `deadline`.
    pub fn connect_all(&mut self, deadline: Instant) -> io::Result<()> {
        while self.opened + self.failed < self.wanted && Instant::now() < deadline {
            let in_handshake = self.conns.len() - self.opened - self.failed;
            let room = self.concurrency.saturating_sub(in_handshake);
            for _ in 0..room.min(self.wanted - self.conns.len()) {
                self.start_one()?;
            }
            self.pump(Duration::from_millis(5))?;
            self.retry_stalled()?;
        }
        Ok(())
    }

    fn start_one(&mut self) -> io::Result<()> {
        let index = self.conns.len();
        let conn = self.connect(index, 1)?;
        self.conns.push(conn);
        Ok(())
    }

    /// A new socket for stream `index`, connecting (or failed at once).
    fn connect(&mut self, index: usize, attempts: u32) -> io::Result<Conn> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        if self.target.addr.ip().is_loopback() {
            let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
            let source = Ipv4Addr::from(first + index as u32 % SOURCE_ADDRESSES);
            socket.bind(&SocketAddrV4::new(source, 0).into())?;
        }
        let state = match socket.connect(&self.target.addr.into()) {
            Ok(()) => State::Connecting,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => State::Connecting,
            Err(e) => {
                self.note_failure(format!("stream {index}: connect: {e}"));
                State::Failed
            }
        };
        let mut stream = TcpStream::from_std(socket.into());
        let tls = match &self.target.tls {
            Some(client) => Some(Box::new(client.session()?)),
            None => None,
        };
        if state == State::Connecting {
            self.poll.registry().register(
                &mut stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        Ok(Conn {
            stream,
            tls,
            state,
            parser: StreamParser::new(),
            started: Instant::now(),
            attempts,
        })
    }

    /// Gives up on handshakes that got no response head in time: closes
    /// the socket and connects again, as a client with a timeout would,
    /// up to `attempts` tries in all.
    fn retry_stalled(&mut self) -> io::Result<()> {
        let now = Instant::now();
        while self.unsettled_from < self.conns.len()
            && !self.conns[self.unsettled_from].in_handshake()
        {
            self.unsettled_from += 1;
        }
        for index in self.unsettled_from..self.conns.len() {
            let conn = &mut self.conns[index];
            if !conn.in_handshake() || now - conn.started < self.head_timeout {
                continue;
            }
            if conn.attempts >= self.attempts {
                let why = format!("no response head after {} tries", conn.attempts);
                self.fail(index, why);
                continue;
            }
            let _ = self.poll.registry().deregister(&mut conn.stream);
            let attempts = conn.attempts + 1;
            self.retried += 1;
            // Replacing the connection drops (closes) the stalled socket.
            self.conns[index] = self.connect(index, attempts)?;
        }
        Ok(())
    }

    fn note_failure(&mut self, why: String) {
        self.failed += 1;
        self.keep_sample(why);
    }

    /// Keeps the first few reasons, for the report.
    fn keep_sample(&mut self, why: String) {
        if self.failures.len() < 5 {
            self.failures.push(why);
        }
    }

    /// Waits up to `timeout` for socket events and handles them.
    pub fn pump(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let tokens: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for index in tokens {
            self.serve(index);
        }
        Ok(())
    }

    fn serve(&mut self, index: usize) {
        if self.conns[index].state == State::Connecting {
            let conn = &mut self.conns[index];
            match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(index, format!("connect: {e}")),
                Ok(None) => {}
            }
            match conn.stream.peer_addr() {
                Ok(_) => conn.state = State::Requesting(0),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.fail(index, format!("connect: {e}")),
            }
        }
        if let State::Requesting(mut written) = self.conns[index].state {
            let conn = &mut self.conns[index];
            if let Some(tls) = &mut conn.tls {
                // Queued as plaintext, and sent once the handshake is done.
                if let Err(e) = tls.writer().write_all(&self.request) {
                    return self.fail(index, format!("request: {e}"));
                }
                written = self.request.len();
            }
            while written < self.request.len() {
                match conn.stream.write(&self.request[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        conn.state = State::Requesting(written);
                        return;
                    }
                    Err(e) => return self.fail(index, format!("request: {e}")),
                }
            }
            conn.state = State::Head;
        }
        if matches!(self.conns[index].state, State::Head | State::Open) {
            if self.conns[index].tls.is_some() {
                self.read_tls(index);
            } else {
                self.read(index);
            }
        }
    }

    /// [`Subscribers::read`] through the TLS session: sends what the
    /// session has to send (the handshake, the request), reads records
    /// until the socket says WouldBlock, and hands the plaintext on.
    fn read_tls(&mut self, index: usize) {
        loop {
            let Conn { stream, tls, .. } = &mut self.conns[index];
            let Some(tls) = tls.as_mut() else { return };
            while tls.wants_write() {
                match tls.write_tls(stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return self.end(index, format!("write: {e}")),
                }
            }
            match tls.read_tls(stream) {
                Ok(0) => return self.end(index, "closed by the server".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.end(index, format!("read: {e}")),
            }
            if let Err(e) = tls.process_new_packets() {
                return self.end(index, format!("TLS: {e}"));
            }
            loop {
                let Some(tls) = self.conns[index].tls.as_mut() else {
                    return;
                };
                match tls.reader().read(&mut self.buf) {
                    Ok(0) => return self.end(index, "the server closed the session".into()),
                    Ok(n) => {
                        if !self.consume(index, n) {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return self.end(index, format!("TLS read: {e}")),
                }
            }
        }
    }

    fn read(&mut self, index: usize) {
        loop {
            let conn = &mut self.conns[index];
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => return self.end(index, "closed by the server".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.end(index, format!("read: {e}")),
            };
            if !self.consume(index, n) {
                return;
            }
            // Edge-triggered: read until the socket says WouldBlock.
        }
    }

    /// Parses the `n` bytes of the response in `buf`; false once the
    /// stream has ended or failed.
    fn consume(&mut self, index: usize, n: usize) -> bool {
        let conn = &mut self.conns[index];
        let now_ns = self.origin.elapsed().as_nanos() as u64;
        self.stamps.clear();
        let progress = conn.parser.feed(&self.buf[..n], &mut self.stamps);
        for &stamp in &self.stamps {
            self.tracker.record(index, stamp, now_ns);
        }
        if conn.state == State::Head {
            match conn.parser.status() {
                Some(200) => {
                    conn.state = State::Open;
                    self.opened += 1;
                    self.last_open_ns = now_ns;
                }
                Some(status) => {
                    self.fail(index, format!("status {status}"));
                    return false;
                }
                None => {}
            }
        }
        match progress {
            Progress::Ended => self.end(index, "the server ended the body".into()),
            Progress::Broken => self.end(index, "unreadable response".into()),
            Progress::Head | Progress::Body => return true,
        }
        false
    }

    /// A stream ended: before it opened it failed, after it was closed.
    fn end(&mut self, index: usize, why: String) {
        if self.conns[index].state == State::Open {
            self.conns[index].state = State::Closed;
            let _ = self
                .poll
                .registry()
                .deregister(&mut self.conns[index].stream);
            self.closed += 1;
            self.keep_sample(format!("stream {index}: {why}"));
        } else {
            self.fail(index, why);
        }
    }

    fn fail(&mut self, index: usize, why: String) {
        let conn = &mut self.conns[index];
        if matches!(conn.state, State::Failed | State::Closed) {
            return;
        }
        conn.state = State::Failed;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.note_failure(format!("stream {index}: {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_loss_duplicates_order_and_completion() {
        let mut tracker = Tracker::new(2, 4, 1);
        let stamp = |seq| Stamp {
            seq,
            sent_ns: 100 * seq,
        };
        for seq in 0..4 {
            tracker.record(0, stamp(seq), 100 * seq + 10);
        }
        tracker.record(1, stamp(1), 500);
        tracker.record(1, stamp(0), 600); // late: out of order
        tracker.record(1, stamp(1), 700); // again: duplicate
        tracker.record(1, stamp(9), 700); // not ours
        assert_eq!(tracker.received, 6);
        assert_eq!(tracker.duplicated, 1);
        assert_eq!(tracker.out_of_order, 1);
        assert_eq!(tracker.foreign, 1);
        let (fan_out, complete) = tracker.fan_out(2);
        assert_eq!(complete, 2);
        assert_eq!(fan_out.max(), 600);
    }
}
