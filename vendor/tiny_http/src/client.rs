use std::io::Result as IoResult;
use std::io::{BufWriter, Cursor, ErrorKind, Write};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, StatusCode};
use crate::head::{self, Head, HeadError, Scan, MAX_HEAD};
use crate::request::RequestCreationError;
use crate::util::refined_tcp_stream::SocketControl;
use crate::util::waiting_heads::WaitingHeads;
use crate::util::{BufferedInput, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{ErrorReply, Request, Response};

/// Patched: the size of a connection's read buffer (between heads) and of
/// its write buffer.
const BUFFER: usize = 512;

/// Patched: the read side, with a count of the bytes read ahead.
type Input = BufferedInput<RefinedTcpStream>;

/// Patched: the bounds on reading a request head, shared by every
/// connection of a server.
pub(crate) struct HeadLimits {
    /// The whole head must arrive within this of its first byte.
    pub(crate) timeout: Duration,
    /// The connections waiting for a head, to shed the oldest.
    pub(crate) waiting: Arc<WaitingHeads>,
}

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<Input>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<Input>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // Patched: builds the replies to requests that cannot be read.
    error_reply: Option<ErrorReply>,

    // Patched: the socket, and the bytes read ahead of the current request,
    // for each request to see.
    control: Option<SocketControl>,
    held: Arc<AtomicUsize>,

    // Patched: the bounds on a head.
    limits: Arc<HeadLimits>,
    // Patched: whether the last request's body was read to its end, and
    // whether a request asked for the connection to end. Either way no
    // further byte is read as a request.
    body_done: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    /// Patched: the head was refused (its status, or no reply at all).
    Head(HeadError),
    /// Patched: the head did not arrive in time (408).
    TimedOut,
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed,
    /// Patched: the connection ends without a reply: the client closed it
    /// or stayed idle, or it cannot be read on in step with the client.
    Closed,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        error_reply: Option<ErrorReply>,
        limits: Arc<HeadLimits>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let control = read_socket.control();

        // Patched: 512 bytes each way, not 1 KiB. A connection keeps both
        // buffers as long as it lives, which for an event stream is hours,
        // thousands of times over; the read buffer grows only while it
        // holds a large head.
        let input = BufferedInput::with_capacity(BUFFER, read_socket);
        let held = input.held();
        let mut source = SequentialReaderBuilder::new(input);
        let first_header = source.next().expect("a sequence of readers never ends");

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(BUFFER, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            error_reply,
            control,
            held,
            limits,
            body_done: Arc::new(AtomicBool::new(true)),
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Patched: sends the reply to a request that cannot be read, with the
    /// body and headers the application's `error_reply` gives for it
    /// (upstream sent an empty body, without the headers the application
    /// puts on every response), and `Connection: close`: where the next
    /// request would start is unknown, so the connection closes after it.
    fn refuse(&mut self, status: u16, message: &str) {
        let (headers, body) = match &self.error_reply {
            Some(reply) => reply(status, message),
            None => (Vec::new(), Vec::new()),
        };
        let len = body.len();
        let response = Response::new(
            StatusCode(status),
            headers,
            Cursor::new(body),
            Some(len),
            None,
        );
        if let Some(mut writer) = self.sink.next() {
            let _ = response
                .print(&mut writer, HTTPVersion(1, 1), &[], false, None, true)
                .and_then(|()| writer.flush());
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Patched: reads one request head, in one pass over the buffered
    /// bytes once they hold all of it (see `head.rs`).
    ///
    /// Nothing is read if the previous request's body was not read to its
    /// end, or a request asked for the connection to end: those bytes (a
    /// refused body, with perhaps a request hidden in it) must never be
    /// read as a request. While it waits, the connection is in the
    /// registry of waiting heads, from which the oldest are shed when
    /// descriptors or threads run short. The head must be complete within
    /// the head timeout of its first byte (408); a connection that sends
    /// nothing for its idle timeout (the socket's read timeout) is closed
    /// without a reply.
    fn read_head(&mut self) -> Result<Head, ReadError> {
        let limits = Arc::clone(&self.limits);
        let input = self
            .next_header_source
            .inner()
            .map_err(|_| ReadError::Closed)?;
        if self.closing.load(Ordering::Acquire) || !self.body_done.load(Ordering::Acquire) {
            return Err(ReadError::Closed);
        }
        let control = self.control.as_ref();
        let _waiting = control.map(|c| WaitingHeads::enter(&limits.waiting, c.clone()));
        let idle = control.and_then(|c| c.read_timeout().ok().flatten());
        let mut started: Option<Instant> = None;
        let mut scan = Scan::default();
        let result = loop {
            let skip = match head::leading_empty_lines(input.buffered()) {
                Ok(n) => n,
                Err(e) => break Err(ReadError::Head(e)),
            };
            if skip > 0 {
                input.consume(skip);
            }
            if skip > 0 || !input.buffered().is_empty() {
                started.get_or_insert_with(Instant::now);
            }
            match head::find_end(input.buffered(), &mut scan) {
                Err(e) => break Err(ReadError::Head(e)),
                Ok(Some(n)) => {
                    let parsed = head::parse(&input.buffered()[..n]);
                    input.consume(n);
                    break parsed.map_err(ReadError::Head);
                }
                Ok(None) => {}
            }
            if input.buffered().len() >= MAX_HEAD {
                break Err(ReadError::Head(if scan.past_request_line() {
                    HeadError::TooLarge
                } else {
                    HeadError::TargetTooLong
                }));
            }
            if let (Some(start), Some(control)) = (started, control) {
                let left = limits.timeout.saturating_sub(start.elapsed());
                if left.is_zero() {
                    break Err(ReadError::TimedOut);
                }
                let _ = control.set_read_timeout(Some(idle.map_or(left, |idle| idle.min(left))));
            }
            match input.fill_head() {
                Ok(0) => break Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break Err(if started.is_some() {
                        ReadError::TimedOut
                    } else {
                        ReadError::Closed
                    });
                }
                Err(_) => break Err(ReadError::Closed),
            }
        };
        if let (Some(_), Some(control)) = (started, control) {
            let _ = control.set_read_timeout(idle);
        }
        result
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let head = self.read_head()?;

        // building the writer for the request
        let writer = self.sink.next().ok_or(ReadError::Closed)?;

        // follow-up for next potential request
        let mut data_source = self.source.next().ok_or(ReadError::Closed)?;
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // Patched: upstream unwrapped this, so a client that reset the
        // connection before its address was read panicked the thread.
        let remote_addr = match self.remote_addr {
            Ok(addr) => addr,
            Err(_) => return Err(ReadError::Closed),
        };

        let request = crate::request::new_request(
            self.secure,
            head.method,
            head.target,
            head.version,
            head.headers,
            head.framing,
            remote_addr,
            data_source,
            writer,
            Arc::clone(&self.body_done),
        )
        .map_err(|e| match e {
            RequestCreationError::ExpectationFailed => ReadError::ExpectationFailed,
            RequestCreationError::CreationIoError(_) => ReadError::Closed,
        })?;

        // Patched: the request can see and control its connection.
        Ok(request.with_connection(
            self.control.clone(),
            Arc::clone(&self.held),
            Arc::clone(&self.closing),
        ))
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        let rq = match self.read() {
            Ok(rq) => rq,
            Err(ReadError::Head(e)) => {
                // Patched: HTTP/0.9 gets no reply at all (it has no status
                // line); every other refusal its status, and the close.
                if let Some(status) = e.status() {
                    self.refuse(status, e.message());
                }
                return None;
            }
            Err(ReadError::TimedOut) => {
                self.refuse(
                    408,
                    "request timed out: the request head did not arrive in time",
                );
                return None;
            }
            Err(ReadError::ExpectationFailed) => {
                self.refuse(417, "unsupported Expect header: only 100-continue");
                return None;
            }
            Err(ReadError::Closed) => return None,
        };

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        Some(rq)
    }
}
