//! Patched: a request's body, read to exactly where it ends.
//!
//! A body enters as the connection's byte stream, positioned just after
//! the request head, and leaves through [`Body`]'s `Read` as the body's own
//! bytes: `Content-Length` of them, or the data of a chunked body (RFC 9112
//! section 7.1) with its chunk extensions and trailer fields read and
//! dropped. A chunked body outside the grammar (a chunk size that is not
//! hex or does not fit, a missing CRLF after the data, a bare LF) is an
//! `InvalidData` error, and stays one.
//!
//! A body that was read to its end says so through the flag it shares with
//! its connection: only then may the connection read another request
//! after it. Anything else (a body refused before it was read, one cut
//! short by an error or a deadline) leaves the connection out of step with
//! the client, so it is closed instead of guessed at.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::head::{is_tchar, Framing, MAX_HEAD, MAX_HEADERS};

/// The longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// A request body over `source` (the connection after the head).
pub(crate) struct Body<R> {
    source: R,
    state: State,
    /// The line being read, kept across a read that failed part-way.
    line: Vec<u8>,
    /// Set once the body has been read to its end.
    done: Arc<AtomicBool>,
}

#[derive(Debug)]
enum State {
    /// This many bytes of a `Content-Length` body are left.
    Length(usize),
    /// Reading a chunk-size line into `line`.
    ChunkSize,
    /// This many bytes of a chunk's data are left.
    ChunkData(usize),
    /// Reading the CRLF after a chunk's data into `line`.
    ChunkEnd,
    /// Reading trailer fields, `fields` of them so far.
    Trailer {
        fields: usize,
        bytes: usize,
    },
    Done,
    /// The body broke the grammar: every read fails with this.
    Failed(&'static str),
}

impl<R: Read> Body<R> {
    /// A body framed by `framing`; `done` is set once it is read to its end
    /// (at once for an empty body).
    pub(crate) fn new(source: R, framing: Framing, done: Arc<AtomicBool>) -> Body<R> {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        done.store(matches!(state, State::Done), Ordering::Release);
        Body {
            source,
            state,
            line: Vec::new(),
            done,
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        self.done.store(true, Ordering::Release);
    }

    fn fail(&mut self, why: &'static str) -> io::Error {
        self.state = State::Failed(why);
        invalid(why)
    }

    /// Reads one line of at most `limit` bytes (without its CRLF) into
    /// `line`, which keeps what was read if a read fails (a timeout), so
    /// that a later call goes on from there.
    fn read_line(&mut self, line: &mut Vec<u8>, limit: usize) -> io::Result<()> {
        loop {
            let mut byte = [0];
            if self.source.read(&mut byte)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the chunked body ended early",
                ));
            }
            match (line.last(), byte[0]) {
                (Some(b'\r'), b'\n') => {
                    line.pop();
                    return Ok(());
                }
                (Some(b'\r'), _) => return Err(self.fail("a chunked body with a bare CR")),
                (_, b'\n') => return Err(self.fail("a chunked body with a bare LF")),
                (_, 0) => return Err(self.fail("a chunked body with a NUL byte")),
                _ => {}
            }
            if line.len() >= limit {
                return Err(self.fail("a chunk-size or trailer line too long"));
            }
            line.push(byte[0]);
        }
    }
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Failed(why) => return Err(invalid(why)),
                State::Length(left) => {
                    let want = left.min(buf.len());
                    let n = self.source.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the body ended before its Content-Length",
                        ));
                    }
                    if left == n {
                        self.finish();
                    } else {
                        self.state = State::Length(left - n);
                    }
                    return Ok(n);
                }
                State::ChunkData(left) => {
                    let want = left.min(buf.len());
                    let n = self.source.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the chunked body ended early",
                        ));
                    }
                    self.state = if left == n {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - n)
                    };
                    return Ok(n);
                }
                State::ChunkSize => {
                    let mut line = std::mem::take(&mut self.line);
                    let read = self.read_line(&mut line, MAX_CHUNK_LINE);
                    if let Err(e) = read {
                        self.line = line;
                        return Err(e);
                    }
                    let size = chunk_size(&line);
                    line.clear();
                    self.line = line;
                    self.state = match size {
                        Ok(0) => State::Trailer {
                            fields: 0,
                            bytes: 0,
                        },
                        Ok(n) => State::ChunkData(n),
                        Err(why) => return Err(self.fail(why)),
                    };
                }
                State::ChunkEnd => {
                    let mut line = std::mem::take(&mut self.line);
                    let read = self.read_line(&mut line, 1);
                    let empty = line.is_empty();
                    line.clear();
                    self.line = line;
                    match read {
                        Ok(()) if empty => self.state = State::ChunkSize,
                        Ok(()) => return Err(self.fail("no CRLF after a chunk's data")),
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            return Err(self.fail("no CRLF after a chunk's data"))
                        }
                        Err(e) => return Err(e),
                    }
                }
                State::Trailer { fields, bytes } => {
                    let mut line = std::mem::take(&mut self.line);
                    let read = self.read_line(&mut line, MAX_HEAD);
                    if let Err(e) = read {
                        self.line = line;
                        return Err(e);
                    }
                    let length = line.len();
                    let valid = is_field_line(&line);
                    line.clear();
                    self.line = line;
                    if length == 0 {
                        self.finish();
                        return Ok(0);
                    }
                    if !valid {
                        return Err(self.fail("a malformed trailer field"));
                    }
                    if fields + 1 > MAX_HEADERS || bytes + length > MAX_HEAD {
                        return Err(self.fail("too many trailer fields"));
                    }
                    self.state = State::Trailer {
                        fields: fields + 1,
                        bytes: bytes + length,
                    };
                }
            }
        }
    }
}

/// The size in a chunk-size line: `1*HEXDIG` that fits, then chunk
/// extensions, each `BWS ";" BWS name [ BWS "=" BWS value ]`, whose names
/// and values are tokens (values also quoted strings).
fn chunk_size(line: &[u8]) -> Result<usize, &'static str> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err("a chunk size that is not hex");
    }
    let mut size: usize = 0;
    for b in &line[..digits] {
        let digit = (*b as char).to_digit(16).unwrap_or(0) as usize;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(digit))
            .ok_or("a chunk size too large")?;
    }
    if extensions(&line[digits..]) {
        Ok(size)
    } else {
        Err("a chunk size that is not hex, or a malformed chunk extension")
    }
}

/// Whether `rest` is a list of chunk extensions (or nothing).
fn extensions(mut rest: &[u8]) -> bool {
    fn skip_ws(s: &[u8]) -> &[u8] {
        let n = s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        &s[n..]
    }
    fn token(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|b| is_tchar(**b)).count();
        (n > 0).then(|| &s[n..])
    }
    fn quoted(s: &[u8]) -> Option<&[u8]> {
        let mut at = 1;
        while let Some(&b) = s.get(at) {
            match b {
                b'"' => return Some(&s[at + 1..]),
                b'\\' => match s.get(at + 1) {
                    Some(&e) if e == b'\t' || (0x20..0x7f).contains(&e) || e >= 0x80 => at += 2,
                    _ => return None,
                },
                b'\t' | 0x20..=0x7e | 0x80..=0xff => at += 1,
                _ => return None,
            }
        }
        None
    }
    loop {
        rest = skip_ws(rest);
        if rest.is_empty() {
            return true;
        }
        if rest[0] != b';' {
            return false;
        }
        rest = match token(skip_ws(&rest[1..])) {
            Some(r) => r,
            None => return false,
        };
        let after = skip_ws(rest);
        if after.first() == Some(&b'=') {
            let value = skip_ws(&after[1..]);
            rest = match value.first() {
                Some(b'"') => match quoted(value) {
                    Some(r) => r,
                    None => return false,
                },
                _ => match token(value) {
                    Some(r) => r,
                    None => return false,
                },
            };
        }
    }
}

/// Whether `line` is a field line, `name ":" OWS value OWS`, with a token
/// name and a value of visible characters, spaces and tabs.
fn is_field_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|b| is_tchar(**b)).count();
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..]
            .iter()
            .all(|&b| b == b'\t' || b == b' ' || (0x21..0x7f).contains(&b) || b >= 0x80)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// Reads a whole body of `framing` from `bytes`: the body, and how many
    /// bytes of `bytes` it took; or the error.
    pub(crate) fn read_body(bytes: &[u8], framing: Framing) -> io::Result<(Vec<u8>, usize)> {
        let done = Arc::new(AtomicBool::new(false));
        let mut cursor = Cursor::new(bytes);
        let mut body = Body::new(&mut cursor, framing, Arc::clone(&done));
        let mut out = Vec::new();
        // Small reads, to cross every boundary.
        let mut buf = [0; 3];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert!(
            done.load(Ordering::Acquire),
            "a body read to its end says so"
        );
        drop(body);
        Ok((out, cursor.position() as usize))
    }

    fn chunked(bytes: &str) -> io::Result<(Vec<u8>, usize)> {
        read_body(bytes.as_bytes(), Framing::Chunked)
    }

    #[test]
    fn a_chunked_body_is_decoded_to_its_end() {
        let (body, used) = chunked("5\r\nhello\r\n1;a=b ; c=\"d;e\"\r\n!\r\n0\r\n\r\nGET").unwrap();
        assert_eq!(body, b"hello!");
        assert_eq!(
            used,
            "5\r\nhello\r\n1;a=b ; c=\"d;e\"\r\n!\r\n0\r\n\r\n".len()
        );
    }

    #[test]
    fn trailer_fields_are_read_and_ignored() {
        let bytes = "3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other:two\r\n\r\nNEXT";
        let (body, used) = chunked(bytes).unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(used, bytes.len() - 4);
    }

    #[test]
    fn bad_chunk_sizes_are_refused() {
        for bad in [
            "x\r\n",
            "0x5\r\nhello\r\n0\r\n\r\n",
            "-5\r\n",
            " 5\r\nhello\r\n0\r\n\r\n",
            "+5\r\nhello\r\n0\r\n\r\n",
            "fffffffffffffffff\r\n",
            "5\nhello\r\n0\r\n\r\n",
            "5\r\nhello\n0\r\n\r\n",
            "5\r\nhelloXX0\r\n\r\n",
            "5;\r\nhello\r\n0\r\n\r\n",
            "5;a=\r\nhello\r\n0\r\n\r\n",
            "5 x\r\nhello\r\n0\r\n\r\n",
            "0\r\nbad trailer\r\n\r\n",
            "0\r\n\n",
            "5\r\nhel",
        ] {
            assert!(chunked(bad).is_err(), "{:?} was accepted", bad);
        }
    }

    #[test]
    fn a_failed_body_stays_failed_and_is_not_done() {
        let done = Arc::new(AtomicBool::new(false));
        let mut body = Body::new(
            Cursor::new(&b"zz\r\n"[..]),
            Framing::Chunked,
            Arc::clone(&done),
        );
        let mut buf = [0; 8];
        assert!(body.read(&mut buf).is_err());
        assert!(body.read(&mut buf).is_err());
        assert!(!done.load(Ordering::Acquire));
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let (body, used) = read_body(b"helloGET /", Framing::Length(5)).unwrap();
        assert_eq!((body.as_slice(), used), (&b"hello"[..], 5));
        assert!(read_body(b"hel", Framing::Length(5)).is_err());
    }
}
