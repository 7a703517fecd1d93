//! One subscriber's stream, from its first byte to its last, on any
//! [`Write`]: the response head, the opening `connection` event (with
//! `retry:` and the resume point), a `gap` event when history cannot cover
//! the resume, the replay, then live batches and heartbeats until the
//! stream ends, and the proper end of the HTTP body.
//!
//! Frames enter from the hub through the subscriber's queue (`queue.rs`);
//! bytes leave through the writer the caller hands over: a socket, or
//! whatever its own HTTP server gives it. The thread that runs the stream
//! sleeps while the queue is empty; when it wakes it takes everything
//! queued and writes the lot as one batch (one HTTP chunk, one `write`, one
//! flush), so a burst costs one system call, not one per event. If nothing
//! arrives for a heartbeat interval it writes a keep-alive comment instead.
//! When the hub closes the queue (hang-up, shutdown, the application's
//! call) it writes what is left, ends the body and returns; a subscriber
//! dropped for falling behind gets none of what is left, only the end, and
//! catches up from history when it resumes.
//!
//! A stream offered gzip, whose client accepts it, is compressed batch by
//! batch with its own compressor (`gzip.rs`): each batch is compressed and
//! flushed (a sync flush) into the same one chunk, one write, so events
//! are never held back; the end of the body ends the gzip member first.
//!
//! [`StreamRequest`] is what a subscriber asked for (channels, last event
//! ID, HTTP framing, gzip); [`EventStream::open`] registers it with the
//! hub, which can still refuse it (so the caller can still answer with an
//! error); [`EventStream::run_on_socket`] (or [`EventStream::run_through`],
//! or [`EventStream::run`] on any writer) then writes the stream.

mod http;
mod request;

pub use request::{Framing, StreamRequest};

pub(crate) use http::{
    ALLOW_ORIGIN, CHUNK_HEADER_ROOM, RETRY_AFTER_SECS, chunk_size_line, closing_response,
};

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::core::channel::Channel;
use crate::core::client_id::ClientId;
use crate::core::closed::Closed;
use crate::core::command::{Grant, SubscribeRequest};
use crate::core::direct::Socket;
use crate::core::event_id::EventId;
use crate::core::gzip::Gzip;
use crate::core::hangup::{HangUps, Watch};
use crate::core::hub::Hub;
use crate::core::metrics::Counters;
use crate::core::queue::{Queue, Took};
use crate::core::sse::{HEARTBEAT, push_control_event, push_retry_line};
use crate::error::Error;

use http::{Body, MAX_BATCH};

/// Why a stream ended.
#[derive(Debug)]
pub enum Ended {
    /// The hub closed it; the body was ended properly.
    Closed(Closed),
    /// A write failed, or blocked past the socket's write timeout (or the
    /// stream's gzip compression failed, which zlib does only on a bug).
    WriteFailed(io::Error),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Closed(Closed::Slow) => f.write_str("dropped: its queue was full (slow reader)"),
            Ended::Closed(Closed::HungUp) => f.write_str("the client hung up"),
            Ended::Closed(Closed::Asked(why)) => write!(f, "closed: {why}"),
            Ended::Closed(Closed::Shutdown) => f.write_str("closed: the hub is stopping"),
            Ended::WriteFailed(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                f.write_str("write timed out (the client stopped reading)")
            }
            Ended::WriteFailed(e) => write!(f, "write failed: {e}"),
        }
    }
}

/// A subscriber the hub has registered, whose stream is ready to be
/// written; see the module docs.
///
/// Live messages queue up for it from the moment it is opened, so run it
/// soon. Dropping it without running it unsubscribes.
///
/// # Example
///
/// Any [`Write`] will do; here, a buffer, and a hub stopped in the middle
/// so the stream ends:
///
/// ```
/// use sse_hub::{Event, EventStream, Hub, HubConfig, StreamRequest};
/// use sse_hub::sse::Parser;
///
/// let hub = Hub::start(HubConfig::default())?;
/// let stream = EventStream::open(&hub, StreamRequest::new())?;
/// hub.publish(&Event::new("hello"), None)?;
/// hub.stop();
///
/// let mut body = Vec::new();
/// stream.run(&mut body);
/// let text = String::from_utf8(body).unwrap();
/// assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
///
/// let events = Parser::new().feed(text.split_once("\r\n\r\n").unwrap().1.as_bytes());
/// assert_eq!(events[0].event_type, "connection");
/// assert_eq!(events[0].retry, Some(3000));
/// assert_eq!(events[1].data, "hello");
/// # Ok::<(), sse_hub::Error>(())
/// ```
pub struct EventStream {
    hub: Hub,
    request: StreamRequest,
    grant: Grant,
    queue: Arc<Queue>,
    /// The stream's compressor, if it is gzip; made when the stream opens,
    /// dropped when it ends.
    gzip: Option<Gzip>,
    /// True once the stream has run and said goodbye to the hub.
    done: bool,
    /// The plain socket the stream is written to, if the hub may send to
    /// it directly while this thread sleeps (`core/direct.rs`).
    direct: Option<RawFd>,
}

impl EventStream {
    /// Registers a subscriber for `request` with `hub`: from now on live
    /// messages queue up for it, and the replay it is owed is set aside.
    /// A stream that is to be gzip gets its compressor here; if there is no
    /// memory for one, the stream is sent plain instead (see
    /// [`EventStream::gzip`]).
    ///
    /// # Errors
    ///
    /// [`Error::HubFull`] past the hub's client limit, or
    /// [`Error::HubStopped`].
    pub fn open(hub: &Hub, request: StreamRequest) -> Result<EventStream, Error> {
        let queue = Arc::new(Queue::new(hub.config().queue));
        let resume = request
            .last_event_id
            .as_deref()
            .and_then(|id| id.parse::<EventId>().ok());
        let grant = hub.register(SubscribeRequest {
            channels: request.channels.clone(),
            resume,
            queue: Arc::clone(&queue),
            user: request.user.clone(),
        })?;
        let gzip = match request.gzip().then(Gzip::new) {
            Some(Ok(gzip)) => Some(gzip),
            Some(Err(e)) => {
                warn!("client {}: sending the stream plain: {e}", grant.client);
                None
            }
            None => None,
        };
        Ok(EventStream {
            hub: hub.clone(),
            request,
            grant,
            queue,
            gzip,
            done: false,
            direct: None,
        })
    }

    /// The subscriber's ID.
    pub fn client(&self) -> ClientId {
        self.grant.client
    }

    /// True if the body is gzip-compressed (`Content-Encoding: gzip`). An
    /// application that writes the response head itself
    /// ([`Framing::BodyOnly`]) asks this after opening the stream.
    pub fn gzip(&self) -> bool {
        self.gzip.is_some()
    }

    /// Writes the stream to `socket` until it ends, the way the built-in
    /// server writes its own: the socket gets the hub's
    /// [`write_timeout`](crate::HubConfig::write_timeout), so a subscriber
    /// that stops reading is dropped and this thread freed within it, and
    /// the hub's hang-up watcher watches the socket while the stream runs,
    /// so a subscriber that closes its connection leaves the hub at once,
    /// also while nothing is published. Only a hang-up ends the stream:
    /// bytes the subscriber sends stay unread, for the application. Returns
    /// why it ended; the socket is yours again, its write timeout still
    /// set.
    ///
    /// The watcher is one thread per hub, started with the first stream
    /// run this way and ended when the hub stops. If it cannot start, that
    /// is logged and streams run unwatched (see [`EventStream::run`]); the
    /// write timeout still holds.
    ///
    /// # Example
    ///
    /// A subscriber that hangs up is gone without a write to notice it:
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use sse_hub::{Closed, Ended, EventStream, Hub, HubConfig, StreamRequest};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (socket, _) = listener.accept().unwrap();
    ///
    /// let stream = EventStream::open(&hub, StreamRequest::new())?;
    /// let serving = std::thread::spawn(move || stream.run_on_socket(&socket));
    /// drop(client); // the subscriber leaves
    /// let ended = serving.join().unwrap();
    /// assert!(matches!(ended, Ended::Closed(Closed::HungUp) | Ended::WriteFailed(_)));
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn run_on_socket(mut self, socket: &TcpStream) -> Ended {
        self.direct = Some(socket.as_raw_fd());
        self.run_through(socket, socket)
    }

    /// Lets the hub send frames straight to `fd` while this stream's thread
    /// sleeps (`core/direct.rs`), if the stream is not gzip. `fd` must be
    /// the plain socket that the writer given to [`EventStream::run`]
    /// writes to, unbuffered between batches, and stay open while it runs.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn deliver_directly(&mut self, fd: RawFd) {
        self.direct = Some(fd);
    }

    /// Like [`EventStream::run_on_socket`], writing through `out`, which
    /// carries the stream to `socket`'s connection: the writer a framework
    /// hands over after the response head (rouille's `Upgrade` hands over
    /// a `Box<dyn ReadWrite>` with no socket in reach; see
    /// [`find_connection`](crate::find_connection)), or a TLS stream on it.
    /// `socket` gets the write timeout and is watched for hang-ups; the
    /// stream is written to `out` only.
    pub fn run_through(self, out: impl Write, socket: &TcpStream) -> Ended {
        let client = self.grant.client;
        if let Err(e) = socket.set_write_timeout(Some(self.hub.config().write_timeout)) {
            warn!("client {client}: cannot set a write timeout on its socket: {e}");
        }
        let watch = self.hub.watcher().watch(socket.as_raw_fd(), &self.queue);
        let timeout = self.hub.config().write_timeout;
        let ended = self.run(Bounded {
            out,
            timeout,
            held_since: None,
        });
        // Before the caller can close the socket and its number be reused.
        drop(watch);
        ended
    }

    /// Watches `fd`, this stream's socket, with `hangups` until the guard
    /// is dropped (the built-in server's own watcher).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn watch_with(&self, hangups: &Arc<HangUps>, fd: RawFd) -> io::Result<Watch> {
        hangups.watch(fd, &self.queue)
    }

    /// Writes the stream to `out`, any writer, until it ends: the hub
    /// closes it (the subscriber fell behind, or the hub stopped) or a
    /// write fails. Blocks the calling thread all that time; the thread
    /// sleeps while there is nothing to write.
    ///
    /// On a socket, prefer [`EventStream::run_on_socket`] or
    /// [`EventStream::run_through`]. Here nothing watches the connection
    /// and nothing bounds a write, so on a writer that has neither a
    /// watcher nor a write timeout of its own:
    ///
    /// - a subscriber that hangs up is noticed only when a write to it
    ///   fails. The kernel takes the first write after a hang-up and fails
    ///   the next, so an idle stream learns of it up to two heartbeats
    ///   later (about 30 s with the default 15 s heartbeat; never, with no
    ///   heartbeat). Until then it counts as a client, in `/stats` and in
    ///   publish replies, and holds this thread and its descriptor;
    /// - a subscriber that stops reading is dropped by the hub when its
    ///   queue fills, but this thread stays blocked in the write that filled
    ///   the socket's buffer, with that buffer, until the operating system
    ///   gives up on the connection (minutes, or never while the peer's
    ///   kernel acknowledges).
    ///
    /// The writer must carry bytes out as they are written. A framework's
    /// response body that it *reads* from you (a `Read` body through a pipe)
    /// does not: its encoder buffers (rouille's and tiny_http's chunked
    /// encoder, 8 KiB), so nothing reaches the subscriber until the buffer
    /// fills, and a dead subscriber is never noticed, since heartbeats only
    /// fill the buffer. Have the framework hand over the connection after
    /// the response head instead, and write the body to it
    /// ([`Framing::BodyOnly`] with [`EventStream::response_headers`]).
    pub fn run(mut self, out: impl Write) -> Ended {
        let client = self.grant.client;
        info!(
            "client {client} connected from {}{}, channels [{}]",
            self.request
                .peer
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            self.request
                .user
                .as_deref()
                .map_or_else(String::new, |user| format!(" as {user:?}")),
            self.request
                .channels
                .iter()
                .map(Channel::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let ended = self.write(out);
        match &ended {
            Ended::Closed(Closed::Slow) => warn!("client {client} {ended}"),
            _ => info!("client {client} disconnected: {ended}"),
        }
        if matches!(ended, Ended::WriteFailed(_)) {
            Counters::add(&self.hub.counters().write_errors, 1);
        }
        self.hub.unsubscribe(client);
        self.done = true;
        ended
    }

    fn write(&mut self, mut out: impl Write) -> Ended {
        if let Err(e) = out.write_all(&self.head()) {
            return Ended::WriteFailed(e);
        }
        let mut body = Body::new(out, self.request.framing, self.gzip.take());
        if let Err(e) = body.push(&self.opening()) {
            return Ended::WriteFailed(e);
        }
        let delivered = &self.hub.counters().delivered;
        let mut replayed = 0;
        for frame in std::mem::take(&mut self.grant.replay.frames) {
            if let Err(e) = body.push(&frame) {
                return Ended::WriteFailed(e);
            }
            replayed += u64::from(frame.events());
            if body.batch_len() >= MAX_BATCH {
                if let Err(e) = body.send() {
                    return Ended::WriteFailed(e);
                }
                Counters::add(delivered, replayed);
                replayed = 0;
            }
        }
        if let Err(e) = body.send() {
            return Ended::WriteFailed(e);
        }
        Counters::add(delivered, replayed);

        let direct = self.direct.filter(|_| !body.gzip());
        if let Some(fd) = direct {
            self.queue.allow_direct(Socket::new(fd, body.chunked()));
        }
        let pumped = self.pump(&mut body);
        if direct.is_some() {
            // Awake, so no claim stands; from here on the writer alone
            // writes, until the socket is the caller's again.
            self.queue.forbid_direct();
        }
        match pumped {
            Ok(why) => match body.finish() {
                Ok(()) => Ended::Closed(why),
                Err(e) => Ended::WriteFailed(e),
            },
            Err(e) => Ended::WriteFailed(e),
        }
    }

    /// Writes live frames until the queue closes (returns why) or a write
    /// fails.
    fn pump<W: Write>(&self, body: &mut Body<W>) -> io::Result<Closed> {
        let heartbeat = self.hub.config().heartbeat;
        let delivered = &self.hub.counters().delivered;
        let mut taken = VecDeque::new();
        let mut rest = Vec::new();
        let mut last_write = Instant::now();
        loop {
            let next_heartbeat = heartbeat.map(|every| last_write + every);
            match self.queue.next_batch(&mut taken, next_heartbeat) {
                Took::Events(_) if self.queue.dropped_slow() => {
                    // The backlog of a reader that could not keep up would
                    // only hold this thread; it resumes from history. Bytes
                    // a direct send left end their chunk, so the body
                    // still ends properly.
                    self.write_rest(body, &mut rest)?;
                    taken.clear();
                    continue;
                }
                Took::Events(events) => {
                    self.write_rest(body, &mut rest)?;
                    for frame in taken.drain(..) {
                        body.push(&frame)?;
                        if body.batch_len() >= MAX_BATCH {
                            body.send()?;
                        }
                    }
                    body.send()?;
                    Counters::add(delivered, events);
                }
                // Quiet for a whole heartbeat interval.
                Took::Empty => {
                    body.push(HEARTBEAT)?;
                    body.send()?;
                }
                Took::Closed(why) => return Ok(why),
            }
            last_write = Instant::now();
        }
    }

    /// Writes what a direct send left of its bytes, if anything, as they
    /// are: they carry their own framing.
    fn write_rest<W: Write>(&self, body: &mut Body<W>, rest: &mut Vec<u8>) -> io::Result<()> {
        if self.direct.is_none() {
            return Ok(());
        }
        self.queue.take_rest(rest);
        if !rest.is_empty() {
            body.write_raw(rest)?;
            rest.clear();
            rest.shrink_to(0);
        }
        Ok(())
    }

    /// The header fields an event stream's response needs, whoever writes
    /// the head: `Content-Type: text/event-stream`, `Cache-Control:
    /// no-cache`, `X-Accel-Buffering: no` (so nginx does not buffer it),
    /// `Access-Control-Allow-Origin` if the request named an origin,
    /// `Vary: Accept-Encoding` if gzip was offered and `Content-Encoding:
    /// gzip` if the stream is compressed. An application that writes the
    /// head itself ([`Framing::BodyOnly`]) sends each of these, and frames
    /// the body (chunked, or close-delimited) as its server does.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{EventStream, Framing, Hub, HubConfig, StreamRequest};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let request = StreamRequest::new().framing(Framing::BodyOnly).cors_origin("*")?;
    /// let stream = EventStream::open(&hub, request)?;
    /// let fields = stream.response_headers();
    /// assert!(fields.contains(&("Content-Type", "text/event-stream".to_owned())));
    /// assert!(fields.contains(&("Access-Control-Allow-Origin", "*".to_owned())));
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("Content-Type", "text/event-stream".to_owned()),
            ("Cache-Control", "no-cache".to_owned()),
            ("X-Accel-Buffering", "no".to_owned()),
        ];
        if let Some(origin) = self.request.cors_origin.as_deref() {
            fields.push((ALLOW_ORIGIN, origin.to_owned()));
        }
        if self.request.gzip_offered {
            fields.push(("Vary", "Accept-Encoding".to_owned()));
        }
        if self.gzip.is_some() {
            fields.push(("Content-Encoding", "gzip".to_owned()));
        }
        fields
    }

    /// The status line and header fields, framing included; nothing for
    /// [`Framing::BodyOnly`].
    fn head(&self) -> Vec<u8> {
        let (version, connection, chunked) = match self.request.framing {
            Framing::BodyOnly => return Vec::new(),
            Framing::Chunked => ("HTTP/1.1", "keep-alive", true),
            Framing::CloseDelimited => ("HTTP/1.0", "close", false),
        };
        let fields = self.response_headers();
        let mut all: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        all.push(("Connection", connection));
        if chunked {
            all.push(("Transfer-Encoding", "chunked"));
        }
        http::head(version, 200, &all)
    }

    /// What every stream starts with: the `connection` event, carrying
    /// `retry:` and the resume point, and a `gap` event if history cannot
    /// cover the resume (or the ID was not one).
    fn opening(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        if let Some(retry) = self.hub.config().retry {
            let ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
            push_retry_line(&mut out, ms);
        }
        let mut hello = format!("{{\"client\":\"{}\",\"channels\":[", self.grant.client);
        for (i, channel) in self.request.channels.iter().enumerate() {
            if i > 0 {
                hello.push(',');
            }
            // Channel names hold nothing JSON would need escaped.
            hello.push('"');
            hello.push_str(channel.as_str());
            hello.push('"');
        }
        hello.push_str("]}");
        let resume_point = self.grant.resume_point;
        push_control_event(&mut out, resume_point, "connection", &hello);

        if let Some(requested) = &self.request.last_event_id {
            let valid = requested.parse::<EventId>().is_ok();
            if !valid || self.grant.replay.gap {
                let requested = serde_json::to_string(requested).unwrap_or_default();
                let oldest = self
                    .grant
                    .replay
                    .oldest
                    .map_or_else(|| "null".to_owned(), |id| format!("\"{id}\""));
                let gap = format!("{{\"requested\":{requested},\"oldest\":{oldest}}}");
                push_control_event(&mut out, resume_point, "gap", &gap);
            }
        }
        out
    }
}

/// A writer whose `write_all` fails once it has been held up for `timeout`.
/// The socket's own timeout bounds each system call; but a reader that
/// takes a few bytes now and then makes each call return some progress, and
/// would keep one batch's `write_all` going for as long as it liked.
struct Bounded<W> {
    out: W,
    timeout: Duration,
    /// When the write that has not gone through whole yet began.
    held_since: Option<Instant>,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = Instant::now();
        if self
            .held_since
            .is_some_and(|since| now.duration_since(since) >= self.timeout)
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took too long to take one write",
            ));
        }
        let written = self.out.write(buf)?;
        self.held_since = (written < buf.len()).then(|| self.held_since.unwrap_or(now));
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.done {
            self.hub.unsubscribe(self.grant.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::core::config::HubConfig;

    #[test]
    fn the_chunk_size_line_is_hex() {
        let mut room = [0; CHUNK_HEADER_ROOM];
        let start = chunk_size_line(0x1a2b, &mut room);
        assert_eq!(&room[start..], b"1a2b\r\n");
        let start = chunk_size_line(0, &mut room);
        assert_eq!(&room[start..], b"0\r\n");
        let start = chunk_size_line(usize::MAX, &mut room);
        assert_eq!(&room[start..], b"ffffffffffffffff\r\n");
    }
    use crate::core::sse::{Event, Frame, Parser};
    use crate::testkit::GzipReader;

    /// A socket stand-in that records each write.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn frame(text: &str) -> Frame {
        Frame::new(text.as_bytes(), 1)
    }

    #[test]
    fn a_batch_goes_out_as_one_chunk_in_one_write() {
        let recorder = Recorder::default();
        let mut body = Body::new(recorder.clone(), Framing::Chunked, None);
        body.push(&frame("data: a\n\n")).unwrap();
        body.push(&frame("data: b\n\n")).unwrap();
        body.send().unwrap();
        body.finish().unwrap();
        let writes = recorder.0.lock().unwrap().clone();
        assert_eq!(
            writes,
            [
                b"12\r\ndata: a\n\ndata: b\n\n\r\n".to_vec(),
                b"0\r\n\r\n".to_vec()
            ]
        );
    }

    #[test]
    fn close_delimited_and_bare_bodies_are_raw() {
        for framing in [Framing::CloseDelimited, Framing::BodyOnly] {
            let recorder = Recorder::default();
            let mut body = Body::new(recorder.clone(), framing, None);
            body.push(b"data: x\n\n").unwrap();
            body.send().unwrap();
            body.finish().unwrap();
            assert_eq!(recorder.0.lock().unwrap().concat(), b"data: x\n\n");
        }
    }

    /// Splits a chunked body into its chunks' data; panics on bad framing.
    /// The last chunk must end it.
    fn chunks(mut wire: &[u8]) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        loop {
            let line = wire.iter().position(|&b| b == b'\n').unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&wire[..line - 1]).unwrap(), 16).unwrap();
            wire = &wire[line + 1..];
            if size == 0 {
                assert_eq!(wire, b"\r\n", "bytes after the last chunk");
                return chunks;
            }
            chunks.push(wire[..size].to_vec());
            assert_eq!(&wire[size..size + 2], b"\r\n");
            wire = &wire[size + 2..];
        }
    }

    #[test]
    fn a_gzip_batch_is_one_chunk_that_decodes_at_once() {
        let recorder = Recorder::default();
        let gzip = Gzip::new().unwrap();
        let mut body = Body::new(recorder.clone(), Framing::Chunked, Some(gzip));
        body.push(&frame("data: a\n\n")).unwrap();
        body.push(&frame("data: b\n\n")).unwrap();
        assert_eq!(body.batch_len(), 18);
        body.send().unwrap();
        body.push(HEARTBEAT).unwrap();
        body.send().unwrap();
        body.send().unwrap(); // nothing pushed: nothing written
        body.finish().unwrap();
        let writes = recorder.0.lock().unwrap().clone();
        // Two batches, the end of the gzip member, and the last chunk.
        assert_eq!(writes.len(), 4);
        assert_eq!(writes[3], b"0\r\n\r\n");
        let mut client = GzipReader::new();
        let decoded: Vec<String> = writes[..3]
            .iter()
            .flat_map(|write| chunks(&[write.as_slice(), b"0\r\n\r\n"].concat()))
            .map(|chunk| client.read(&chunk))
            .collect();
        assert_eq!(decoded, ["data: a\n\ndata: b\n\n", ": heartbeat\n", ""]);
        client.0.try_finish().unwrap(); // a whole member, trailer checked
    }

    #[test]
    fn a_gzip_stream_says_so_and_ends_its_member_before_the_last_chunk() {
        let hub = hub(HubConfig::default());
        let request = StreamRequest::new().offer_gzip(Some("gzip"));
        let stream = EventStream::open(&hub, request).unwrap();
        assert!(stream.gzip());
        hub.publish(&Event::new("hello"), None).unwrap();
        hub.stop();
        let mut out = Vec::new();
        stream.run(&mut out);
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = std::str::from_utf8(&out[..split]).unwrap();
        assert!(head.contains("\r\nContent-Encoding: gzip\r\n"), "{head}");
        assert!(head.contains("\r\nVary: Accept-Encoding\r\n"), "{head}");
        let mut client = GzipReader::new();
        let text: String = chunks(&out[split..])
            .iter()
            .map(|chunk| client.read(chunk))
            .collect();
        client.0.try_finish().unwrap();
        let events = Parser::new().feed(text.as_bytes());
        assert_eq!(events[0].event_type, "connection");
        assert_eq!(events[1].data, "hello");
    }

    #[test]
    fn an_offer_not_taken_is_plain_and_still_says_vary() {
        let hub = hub(HubConfig::default());
        for (accept, framing) in [
            (None, Framing::Chunked),
            (Some("gzip;q=0"), Framing::Chunked),
            (Some("gzip"), Framing::CloseDelimited),
        ] {
            let request = StreamRequest::new().framing(framing).offer_gzip(accept);
            let stream = EventStream::open(&hub, request).unwrap();
            assert!(!stream.gzip(), "{accept:?} {framing:?}");
            let head = String::from_utf8(stream.head()).unwrap();
            assert!(!head.contains("Content-Encoding"), "{head}");
            assert!(head.contains("\r\nVary: Accept-Encoding\r\n"), "{head}");
        }
        let plain = EventStream::open(&hub, StreamRequest::new()).unwrap();
        assert!(!String::from_utf8(plain.head()).unwrap().contains("Vary"));
    }

    fn hub(config: HubConfig) -> Hub {
        Hub::start(config).unwrap()
    }

    /// Runs `stream` to its end on another thread; returns what it wrote.
    fn run_to_end(stream: EventStream) -> std::thread::JoinHandle<(Vec<u8>, Ended)> {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let ended = stream.run(&mut out);
            (out, ended)
        })
    }

    #[test]
    fn the_opening_carries_retry_and_the_resume_point() {
        let hub = hub(HubConfig::default());
        let first = hub.publish(&Event::new("before"), None).unwrap();
        let request = StreamRequest::new().framing(Framing::BodyOnly);
        let stream = EventStream::open(&hub, request).unwrap();
        let client = stream.client();
        let writer = run_to_end(stream);
        hub.stop();
        let (out, ended) = writer.join().unwrap();
        assert!(matches!(ended, Ended::Closed(Closed::Shutdown)));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!(
                "retry: 3000\nid: {}\nevent: connection\ndata: {{\"client\":\"{client}\",\"channels\":[]}}\n\n",
                first.id
            )
        );
    }

    #[test]
    fn a_gap_carries_the_resume_point_too() {
        let hub = hub(HubConfig {
            history: 1,
            ..HubConfig::default()
        });
        let first = hub.publish(&Event::new("1"), None).unwrap();
        hub.publish(&Event::new("2"), None).unwrap();
        let third = hub.publish(&Event::new("3"), None).unwrap();
        let request = StreamRequest::new()
            .framing(Framing::BodyOnly)
            .resume_after(&first.id.to_string());
        let writer = run_to_end(EventStream::open(&hub, request).unwrap());
        hub.stop();
        let (out, _) = writer.join().unwrap();
        let events = Parser::new().feed(&out);
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["connection", "gap", "message"]);
        let resume = first.id.to_string();
        assert_eq!(events[0].id.as_deref(), Some(resume.as_str()));
        assert_eq!(events[1].id.as_deref(), Some(resume.as_str()));
        assert_eq!(
            events[1].data,
            format!("{{\"requested\":\"{resume}\",\"oldest\":\"{}\"}}", third.id)
        );
        assert_eq!(events[2].data, "3");
    }

    #[test]
    fn a_bad_id_opens_with_a_gap_naming_it() {
        let hub = hub(HubConfig::default());
        let request = StreamRequest::new()
            .framing(Framing::BodyOnly)
            .resume_after("not-an-id\"");
        let writer = run_to_end(EventStream::open(&hub, request).unwrap());
        hub.stop();
        let (out, _) = writer.join().unwrap();
        let events = Parser::new().feed(&out);
        assert_eq!(events[1].event_type, "gap");
        assert_eq!(
            events[1].data,
            "{\"requested\":\"not-an-id\\\"\",\"oldest\":null}"
        );
    }

    #[test]
    fn an_idle_stream_gets_bare_heartbeat_lines() {
        let hub = hub(HubConfig {
            heartbeat: Some(std::time::Duration::from_millis(5)),
            retry: None,
            ..HubConfig::default()
        });
        let stream = EventStream::open(&hub, StreamRequest::new()).unwrap();
        let recorder = Recorder::default();
        let writer = {
            let recorder = recorder.clone();
            std::thread::spawn(move || stream.run(recorder))
        };
        std::thread::sleep(std::time::Duration::from_millis(60));
        hub.stop();
        writer.join().unwrap();
        let writes = recorder.0.lock().unwrap().clone();
        // Head, opening, heartbeats, last chunk.
        let heartbeats = &writes[2..writes.len() - 1];
        assert!(!heartbeats.is_empty());
        assert!(heartbeats.iter().all(|w| w == b"c\r\n: heartbeat\n\r\n"));
    }

    #[test]
    fn a_stream_dropped_as_slow_writes_none_of_its_backlog() {
        let hub = hub(HubConfig {
            queue: 2,
            ..HubConfig::default()
        });
        let request = StreamRequest::new().framing(Framing::BodyOnly);
        let stream = EventStream::open(&hub, request).unwrap();
        for n in 0..3 {
            hub.publish(&Event::new(n.to_string()), None).unwrap();
        }
        let mut out = Vec::new();
        let ended = stream.run(&mut out);
        assert!(matches!(ended, Ended::Closed(Closed::Slow)), "{ended}");
        let events = Parser::new().feed(&out);
        assert_eq!(events.len(), 1, "the opening alone");
    }

    /// Takes one byte a call, like a reader that takes a few now and then.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.extend(buf.first());
            Ok(buf.len().min(1))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_held_up_past_the_timeout_fails_though_each_call_gets_somewhere() {
        let mut patient = Bounded {
            out: Trickle(Vec::new()),
            timeout: Duration::from_secs(60),
            held_since: None,
        };
        patient.write_all(b"abc").unwrap();
        let mut hasty = Bounded {
            out: Trickle(Vec::new()),
            timeout: Duration::ZERO,
            held_since: None,
        };
        let e = hasty.write_all(b"abc").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(hasty.out.0, b"a");
        // A write that goes through whole starts afresh.
        hasty.held_since = None;
        hasty.write_all(b"d").unwrap();
    }

    #[test]
    fn a_big_backlog_is_split_into_bounded_batches() {
        let hub = hub(HubConfig {
            queue: 10,
            ..HubConfig::default()
        });
        let request = StreamRequest::new().framing(Framing::BodyOnly);
        let stream = EventStream::open(&hub, request).unwrap();
        let big = "x".repeat(40_000);
        for _ in 0..4 {
            hub.publish(&Event::new(big.clone()), None).unwrap();
        }
        hub.stop();
        let recorder = Recorder::default();
        stream.run(recorder.clone());
        let writes = recorder.0.lock().unwrap().clone();
        // The opening alone, then two batches of two events.
        assert_eq!(
            writes.len(),
            3,
            "{:?}",
            writes.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(Parser::new().feed(&writes.concat()).len(), 5);
    }
}
