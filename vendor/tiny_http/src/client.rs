use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufWriter, Cursor, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::common::{HTTPVersion, Header, Method, StatusCode};
use crate::util::refined_tcp_stream::SocketControl;
use crate::util::{BufferedInput, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{ErrorReply, Request, Response};

/// Patched: the read side, with a count of the bytes read ahead.
type Input = BufferedInput<RefinedTcpStream>;

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
}

// Patched: bounds on the request head. Upstream read lines and headers
// without limit, so one client could grow a buffer until memory ran out.
/// Longest request line or header line accepted, in bytes.
const MAX_LINE_LEN: usize = 8192;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
const LINE_TOO_LONG: &str = "request line or header line too long";
// Patched: what the replies to unreadable requests say.
const URI_TOO_LONG: &str = "request line longer than 8192 bytes";
const HEADERS_TOO_LARGE: &str =
    "request headers too large: at most 100 lines of at most 8192 bytes each";
const UNSUPPORTED_VERSION: &str = "only HTTP/1.0 and HTTP/1.1 are supported";

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the request line was longer than `MAX_LINE_LEN` (414)
    RequestLineTooLong,
    /// a header line was longer than `MAX_LINE_LEN`, or there were more
    /// than `MAX_HEADERS` of them (431)
    HeadersTooLarge(HTTPVersion),
    /// an HTTP version above 1.1 (505)
    UnsupportedVersion,
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    /// Patched: the body's length cannot be trusted (400)
    InvalidFraming(HTTPVersion),
    ReadIoError(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        error_reply: Option<ErrorReply>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let control = read_socket.control();

        let input = BufferedInput::with_capacity(1024, read_socket);
        let held = input.held();
        let mut source = SequentialReaderBuilder::new(input);
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            error_reply,
            control,
            held,
        }
    }

    /// Patched: the reply to a request that cannot be read, with the body
    /// and headers the application's `error_reply` gives for it (upstream
    /// sent an empty body, without the headers the application puts on
    /// every response). The connection closes after it: where the next
    /// request would start is unknown.
    fn error_response(&self, status: u16, message: &str) -> Response<Cursor<Vec<u8>>> {
        let (headers, body) = match &self.error_reply {
            Some(reply) => reply(status, message),
            None => (Vec::new(), Vec::new()),
        };
        let len = body.len();
        Response::new(
            StatusCode(status),
            headers,
            Cursor::new(body),
            Some(len),
            None,
        )
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> IoResult<AsciiString> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b?,
                None => return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF")),
            };

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }

            prev_byte_was_cr = byte == b'\r';

            if buf.len() >= MAX_LINE_LEN {
                return Err(IoError::new(ErrorKind::InvalidData, LINE_TOO_LONG));
            }
            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line().map_err(|e| match e.kind() {
                    ErrorKind::InvalidData => ReadError::RequestLineTooLong,
                    ErrorKind::InvalidInput => ReadError::WrongRequestLine,
                    _ => ReadError::ReadIoError(e),
                })?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // Patched: refuse versions above 1.1 before a `Request` (and its
            // response writer) exists. Upstream answered them on the next
            // writer while the request still held the current one, so the
            // connection thread waited on itself forever.
            if version > HTTPVersion(1, 1) {
                return Err(ReadError::UnsupportedVersion);
            }

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line().map_err(|e| match e.kind() {
                        ErrorKind::InvalidData => ReadError::HeadersTooLarge(version.clone()),
                        ErrorKind::InvalidInput => ReadError::WrongHeader(version.clone()),
                        _ => ReadError::ReadIoError(e),
                    })?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::HeadersTooLarge(version));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // Patched: upstream unwrapped this, so a client that reset the
        // connection before its address was read panicked the thread.
        let remote_addr = match self.remote_addr {
            Ok(addr) => addr,
            Err(ref e) => {
                return Err(ReadError::ReadIoError(IoError::new(
                    e.kind(),
                    e.to_string(),
                )))
            }
        };

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            remote_addr,
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::InvalidFraming => ReadError::InvalidFraming(version),
            }
        })?;

        // Patched: the request can see and control its connection's socket.
        let request = request.with_connection(self.control.clone(), Arc::clone(&self.held));

        // return the request
        Ok(request)
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

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.error_response(
                        400,
                        "malformed request line: expected METHOD /path HTTP/1.1",
                    );
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::RequestLineTooLong) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.error_response(414, URI_TOO_LONG);
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None;
                }

                Err(ReadError::UnsupportedVersion) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.error_response(505, UNSUPPORTED_VERSION);
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None;
                }

                Err(ReadError::HeadersTooLarge(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.error_response(431, HEADERS_TOO_LARGE);
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None;
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.error_response(
                        400,
                        "malformed header line: expected Name: value, in ASCII",
                    );
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::InvalidFraming(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.error_response(
                        400,
                        "the body's length cannot be trusted: send one Content-Length of plain digits, or Transfer-Encoding: chunked alone",
                    );
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None;
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response =
                        self.error_response(408, "request timed out: nothing arrived for too long");
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response =
                        self.error_response(417, "unsupported Expect header: only 100-continue");
                    // Patched: the body is sent (upstream's was empty).
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let writer = self.sink.next().unwrap();
                let response = self.error_response(505, UNSUPPORTED_VERSION);
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                continue;
            }

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

            // returning the request
            return Some(rq);
        }
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
