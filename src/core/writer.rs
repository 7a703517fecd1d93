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
//! When the hub closes the queue (slow client, hang-up, shutdown) it writes
//! what is left, ends the body and returns.
//!
//! A stream offered gzip, whose client accepts it, is compressed batch by
//! batch with its own compressor (`gzip.rs`): each batch is compressed and
//! flushed (a sync flush) into the same one chunk, one write, so events
//! are never held back; the end of the body ends the gzip member first.
//!
//! [`StreamRequest`] is what a subscriber asked for (channels, last event
//! ID, HTTP framing, gzip); [`EventStream::open`] registers it with the
//! hub, which can still refuse it (so the caller can still answer with an
//! error); [`EventStream::run`] then writes the stream.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::{info, warn};

use crate::core::channel::{Channel, channel_set};
use crate::core::command::{ClientId, Grant, SubscribeRequest};
use crate::core::event_id::EventId;
use crate::core::gzip::{self, Gzip};
use crate::core::handle::Hub;
use crate::core::metrics::Counters;
use crate::core::queue::{self, Closed, Queue, Took};
use crate::core::sse::{HEARTBEAT, push_control_event, push_retry_line};
use crate::error::Error;

/// A batch stops growing past this many bytes; the rest goes in the next.
pub(crate) const MAX_BATCH: usize = 64 * 1024;

/// After a batch, a buffer that grew past this is released, so an idle
/// subscriber does not keep a burst's worth of memory.
const KEEP_BUFFER: usize = 4 * 1024;

/// Room for the longest chunk-size line, `ffffffffffffffff\r\n`.
const CHUNK_HEADER_ROOM: usize = 18;

/// How the stream's bytes are framed on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An HTTP/1.1 response: the head, then a chunked body that ends with
    /// the last chunk, so the connection can carry another request after
    /// it. Several common clients hang on a close-delimited HTTP/1.1 body.
    Chunked,
    /// An HTTP/1.0 response: the head (`Connection: close`), then a body
    /// that ends when the connection closes.
    CloseDelimited,
    /// No head and no framing: only the events. For an HTTP server that
    /// writes the head and frames the body itself.
    BodyOnly,
}

/// What a subscriber asked for: the query and headers of `GET /events`,
/// checked.
///
/// # Example
///
/// ```
/// use sse_hub::StreamRequest;
///
/// let request = StreamRequest::from_query("channel=news&channel=user:42", Some("1700000000000-3"))?;
/// assert_eq!(request.channels().len(), 2);
/// assert_eq!(request.last_event_id(), Some("1700000000000-3"));
///
/// // The same rules as GET /events: a bad channel name is refused.
/// assert!(StreamRequest::from_query("channel=a%20b", None).is_err());
/// # Ok::<(), sse_hub::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct StreamRequest {
    channels: Vec<Channel>,
    last_event_id: Option<String>,
    framing: Framing,
    cors_origin: Option<String>,
    peer: Option<SocketAddr>,
    /// The server offers gzip for this stream (so the response varies with
    /// `Accept-Encoding`).
    gzip_offered: bool,
    /// The request's `Accept-Encoding` accepts gzip.
    gzip_accepted: bool,
}

impl Default for StreamRequest {
    fn default() -> StreamRequest {
        StreamRequest::new()
    }
}

impl StreamRequest {
    /// A request for every message without a channel, from the start, as a
    /// chunked HTTP/1.1 response with no CORS header, not compressed.
    pub fn new() -> StreamRequest {
        StreamRequest {
            channels: Vec::new(),
            last_event_id: None,
            framing: Framing::Chunked,
            cors_origin: None,
            peer: None,
            gzip_offered: false,
            gzip_accepted: false,
        }
    }

    /// Reads a request the way `GET /events` does: `channel=NAME`
    /// (repeatable) and `lastEventId=ID` from the query string (without the
    /// `?`; percent-decoded), and the `Last-Event-ID` header, which wins over
    /// the query when both are there. An empty ID counts as none. Other
    /// query parameters are ignored: libraries and proxies add their own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] or [`Error::TooManyChannels`]. An ID that
    /// is not of the `<ms>-<seq>` form is not an error: the stream opens
    /// with a `gap` event instead.
    pub fn from_query(query: &str, last_event_id: Option<&str>) -> Result<StreamRequest, Error> {
        let mut names = Vec::new();
        let mut from_query = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "channel" => names.push(value.into_owned()),
                "lastEventId" => from_query = Some(value.into_owned()),
                _ => {}
            }
        }
        let channels = channel_set(names.iter().map(String::as_str))?;
        let last_event_id = last_event_id
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .or(from_query.filter(|id| !id.is_empty()));
        Ok(StreamRequest {
            channels,
            last_event_id,
            ..StreamRequest::new()
        })
    }

    /// Joins `channel` as well.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyChannels`] past 32 distinct channels.
    pub fn channel(mut self, channel: Channel) -> Result<StreamRequest, Error> {
        self.channels = channel_set(
            self.channels
                .iter()
                .map(Channel::as_str)
                .chain([channel.as_str()]),
        )?;
        Ok(self)
    }

    /// Resumes after `id`: the client's last event ID, as it sent it.
    pub fn resume_after(mut self, id: &str) -> StreamRequest {
        self.last_event_id = Some(id.to_owned()).filter(|id| !id.is_empty());
        self
    }

    /// Frames the stream for this kind of response.
    pub fn framing(mut self, framing: Framing) -> StreamRequest {
        self.framing = framing;
        self
    }

    /// Sends `Access-Control-Allow-Origin: <origin>` in the response head.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `origin` is not a printable ASCII header
    /// value.
    pub fn cors_origin(mut self, origin: &str) -> Result<StreamRequest, Error> {
        crate::config::check_header_value("cors_origin", origin)?;
        self.cors_origin = Some(origin.to_owned());
        Ok(self)
    }

    /// Offers gzip, as the server's `--compress` does: the stream is sent
    /// with `Content-Encoding: gzip` if `accept_encoding`, the value of the
    /// request's `Accept-Encoding` header, accepts gzip (`gzip;q=0` and
    /// `identity` do not; `*` does), and the framing is not
    /// [`Framing::CloseDelimited`] (never for HTTP/1.0). Otherwise it is
    /// plain. Either way the head says `Vary: Accept-Encoding`, since the
    /// response now depends on that header. Each compressed stream keeps a
    /// compressor of about 16 KiB while it runs.
    ///
    /// With [`Framing::BodyOnly`] the application writes the head: it adds
    /// `Content-Encoding: gzip` when [`EventStream::gzip`] says so.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Framing, StreamRequest};
    ///
    /// let request = StreamRequest::new().offer_gzip(Some("gzip, deflate, br"));
    /// assert!(request.gzip());
    /// assert!(!StreamRequest::new().offer_gzip(Some("gzip;q=0, *")).gzip());
    /// assert!(!StreamRequest::new().offer_gzip(None).gzip());
    /// // HTTP/1.0 streams stay plain.
    /// let old = request.framing(Framing::CloseDelimited);
    /// assert!(!old.gzip());
    /// ```
    pub fn offer_gzip(mut self, accept_encoding: Option<&str>) -> StreamRequest {
        self.gzip_offered = true;
        self.gzip_accepted = accept_encoding.is_some_and(gzip::accepts_gzip);
        self
    }

    /// Names the client's address in the log lines of the stream.
    pub fn peer(mut self, peer: Option<SocketAddr>) -> StreamRequest {
        self.peer = peer;
        self
    }

    /// The channels asked for, each once, in the order first given.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The last event ID, as the client sent it.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// True if the stream is to be gzip-compressed: offered, accepted, and
    /// not close-delimited (see [`StreamRequest::offer_gzip`]).
    pub fn gzip(&self) -> bool {
        self.gzip_offered && self.gzip_accepted && self.framing != Framing::CloseDelimited
    }
}

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

    /// Writes the stream to `out` until it ends: the hub closes it (the
    /// subscriber fell behind, its connection was seen to close, or the hub
    /// stopped) or a write fails. Blocks the calling thread all that time;
    /// the thread sleeps while there is nothing to write.
    pub fn run(mut self, out: impl Write) -> Ended {
        let client = self.grant.client;
        info!(
            "client {client} connected from {}, channels [{}]",
            self.request
                .peer
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
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

        match self.pump(&mut body) {
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
        let mut last_write = Instant::now();
        loop {
            match self.queue.take(&mut taken) {
                Took::Events(events) => {
                    for frame in taken.drain(..) {
                        body.push(&frame)?;
                        if body.batch_len() >= MAX_BATCH {
                            body.send()?;
                        }
                    }
                    body.send()?;
                    Counters::add(delivered, events);
                    last_write = Instant::now();
                }
                Took::Empty => {
                    queue::trim(&mut taken);
                    let Some(every) = heartbeat else {
                        self.queue.wait(None);
                        continue;
                    };
                    let quiet = last_write.elapsed();
                    if quiet < every {
                        self.queue.wait(Some(every - quiet));
                        continue;
                    }
                    body.push(HEARTBEAT)?;
                    body.send()?;
                    last_write = Instant::now();
                }
                Took::Closed(why) => return Ok(why),
            }
        }
    }

    /// The status line and headers.
    fn head(&self) -> Vec<u8> {
        let mut encoding = String::new();
        if self.request.gzip_offered {
            encoding.push_str("Vary: Accept-Encoding\r\n");
        }
        if self.gzip.is_some() {
            encoding.push_str("Content-Encoding: gzip\r\n");
        }
        let (version, connection, framing) = match self.request.framing {
            Framing::BodyOnly => return Vec::new(),
            Framing::Chunked => ("HTTP/1.1", "keep-alive", "Transfer-Encoding: chunked\r\n"),
            Framing::CloseDelimited => ("HTTP/1.0", "close", ""),
        };
        let cors = self
            .request
            .cors_origin
            .as_deref()
            .map(|origin| format!("Access-Control-Allow-Origin: {origin}\r\n"))
            .unwrap_or_default();
        format!(
            "{version} 200 OK\r\n\
             Content-Type: text/event-stream\r\n\
             Cache-Control: no-cache\r\n\
             Connection: {connection}\r\n\
             X-Accel-Buffering: no\r\n\
             {cors}{encoding}{framing}\r\n"
        )
        .into_bytes()
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

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.done {
            self.hub.unsubscribe(self.grant.client);
        }
    }
}

/// The body of one event stream on `out`, framed as asked and compressed
/// if asked, built a batch at a time.
struct Body<W: Write> {
    out: W,
    framing: Framing,
    /// With `Content-Encoding: gzip`, the stream's compressor: events go
    /// through it as they are pushed, and the batch holds its output.
    gzip: Option<Gzip>,
    /// The batch being built, as it goes on the wire. With chunked framing
    /// its first `CHUNK_HEADER_ROOM` bytes are kept free for the chunk-size
    /// line, so the whole chunk goes out in one write.
    batch: Vec<u8>,
    /// Bytes of events pushed into the batch, before any compression.
    pushed: usize,
}

impl<W: Write> Body<W> {
    fn new(out: W, framing: Framing, gzip: Option<Gzip>) -> Body<W> {
        Body {
            out,
            framing,
            gzip,
            batch: Vec::new(),
            pushed: 0,
        }
    }

    fn chunked(&self) -> bool {
        self.framing == Framing::Chunked
    }

    fn room(&self) -> usize {
        if self.chunked() { CHUNK_HEADER_ROOM } else { 0 }
    }

    /// Keeps the room for the chunk-size line at the start of a new batch.
    fn start_batch(&mut self) {
        if self.batch.is_empty() {
            self.batch.resize(self.room(), 0);
        }
    }

    /// Adds bytes (whole events or comments) to the current batch.
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.start_batch();
        match &mut self.gzip {
            Some(gzip) => gzip.push(bytes, &mut self.batch)?,
            None => self.batch.extend_from_slice(bytes),
        }
        self.pushed += bytes.len();
        Ok(())
    }

    /// Bytes of events in the current batch, before any compression.
    fn batch_len(&self) -> usize {
        self.pushed
    }

    /// Writes the current batch (as one chunk) and flushes it; a gzip
    /// batch is flushed out of the compressor first, so the client can
    /// decode all of it now.
    fn send(&mut self) -> io::Result<()> {
        if self.pushed > 0
            && let Some(gzip) = &mut self.gzip
        {
            gzip.flush(&mut self.batch)?;
        }
        self.pushed = 0;
        self.write_batch()
    }

    /// Writes the bytes of the batch, framed, in one write, and flushes.
    fn write_batch(&mut self) -> io::Result<()> {
        let len = self.batch.len().saturating_sub(self.room());
        if len == 0 {
            self.batch.clear();
            return self.out.flush();
        }
        let start = if self.chunked() {
            // The chunk-size line goes right before the data, in the room
            // kept for it: `<hex length>\r\n`.
            let mut start = CHUNK_HEADER_ROOM - 2;
            self.batch[start..CHUNK_HEADER_ROOM].copy_from_slice(b"\r\n");
            let mut rest = len;
            loop {
                start -= 1;
                self.batch[start] = b"0123456789abcdef"[rest & 0xf];
                rest >>= 4;
                if rest == 0 {
                    break;
                }
            }
            self.batch.extend_from_slice(b"\r\n");
            start
        } else {
            0
        };
        self.out.write_all(&self.batch[start..])?;
        self.out.flush()?;
        if self.batch.capacity() > KEEP_BUFFER {
            self.batch = Vec::new();
        } else {
            self.batch.clear();
        }
        Ok(())
    }

    /// Ends the body: the end of the gzip member (with whatever is still
    /// in the batch, as one chunk), then the last chunk for chunked
    /// framing. The connection itself closes when the caller is done with
    /// it.
    fn finish(mut self) -> io::Result<()> {
        if let Some(mut gzip) = self.gzip.take() {
            self.start_batch();
            gzip.finish(&mut self.batch)?;
            self.pushed = 0;
        }
        self.send()?;
        if self.chunked() {
            self.out.write_all(b"0\r\n\r\n")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::config::HubConfig;
    use crate::core::sse::{Event, Frame, Parser};

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

    /// A gzip reader that is not zlib: what a client decoded so far.
    struct Decoder(flate2::write::GzDecoder<Vec<u8>>);

    impl Decoder {
        fn new() -> Decoder {
            Decoder(flate2::write::GzDecoder::new(Vec::new()))
        }

        fn read(&mut self, bytes: &[u8]) -> String {
            self.0.write_all(bytes).unwrap();
            self.0.flush().unwrap();
            String::from_utf8(std::mem::take(self.0.get_mut())).unwrap()
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
        let mut client = Decoder::new();
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
        let mut client = Decoder::new();
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
