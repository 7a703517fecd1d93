//! The one place raw HTTP is written: status lines and header fields (the
//! head of every event stream, and the few replies the server writes by
//! hand), and the chunked framing of an event stream's body, batch by
//! batch, compressed if asked.
//!
//! A head is `<version> <status> <reason>\r\n`, then `Name: value\r\n`
//! per field, then an empty line (RFC 9112, section 2.1). A chunked body
//! is a series of `<hex length>\r\n<bytes>\r\n` chunks ended by the last
//! chunk `0\r\n\r\n` (section 7.1); each batch of events is one chunk,
//! written with one `write`, its size line put in room kept in front of
//! it so nothing is copied.

use std::io::{self, Write};

use crate::core::gzip::Gzip;

use super::request::Framing;

/// A batch stops growing past this many bytes; the rest goes in the next.
pub(crate) const MAX_BATCH: usize = 64 * 1024;

/// After a batch, a buffer that grew past this is released, so an idle
/// subscriber does not keep a burst's worth of memory.
const KEEP_BUFFER: usize = 4 * 1024;

/// Room for the longest chunk-size line, `ffffffffffffffff\r\n`.
pub(crate) const CHUNK_HEADER_ROOM: usize = 18;

/// Writes `<hex len>\r\n` at the end of `room`; returns where it starts.
pub(crate) fn chunk_size_line(len: usize, room: &mut [u8; CHUNK_HEADER_ROOM]) -> usize {
    let mut start = CHUNK_HEADER_ROOM - 2;
    room[start..].copy_from_slice(b"\r\n");
    let mut left = len;
    loop {
        start -= 1;
        room[start] = b"0123456789abcdef"[left & 0xf];
        left >>= 4;
        if left == 0 {
            return start;
        }
    }
}

/// The header that tells a browser which origins may read a response.
pub(crate) const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";

/// Seconds a client is asked to wait after a `503` (`Retry-After`).
pub(crate) const RETRY_AFTER_SECS: u32 = 5;

/// The reason phrase for the statuses the hub writes itself.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A whole head: the status line for `version` (`HTTP/1.1`) and `status`,
/// each field, and the empty line that ends the head. Names and values
/// must be printable ASCII (the callers' are constants, or checked when
/// configured).
pub(crate) fn head(version: &str, status: u16, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(version.as_bytes());
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A complete response with a `Content-Length` body, after which the
/// connection closes: for replies written on a connection that will not
/// carry another request.
pub(crate) fn closing_response(
    status: u16,
    fields: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let length = itoa::Buffer::new().format(body.len()).to_owned();
    let mut all = vec![("Content-Type", content_type), ("Content-Length", &length)];
    all.extend_from_slice(fields);
    all.push(("Connection", "close"));
    let mut out = head("HTTP/1.1", status, &all);
    out.extend_from_slice(body);
    out
}

/// The body of one event stream on `out`, framed as asked and compressed
/// if asked, built a batch at a time.
pub(crate) struct Body<W: Write> {
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
    pub(crate) fn new(out: W, framing: Framing, gzip: Option<Gzip>) -> Body<W> {
        Body {
            out,
            framing,
            gzip,
            batch: Vec::new(),
            pushed: 0,
        }
    }

    pub(crate) fn chunked(&self) -> bool {
        self.framing == Framing::Chunked
    }

    pub(crate) fn gzip(&self) -> bool {
        self.gzip.is_some()
    }

    /// Writes bytes that carry their own framing straight out, between
    /// batches (what a direct send left, `core/direct.rs`).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert_eq!(self.batch.len(), 0, "between batches only");
        self.out.write_all(bytes)?;
        self.out.flush()
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
    pub(crate) fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.start_batch();
        match &mut self.gzip {
            Some(gzip) => gzip.push(bytes, &mut self.batch)?,
            None => self.batch.extend_from_slice(bytes),
        }
        self.pushed += bytes.len();
        Ok(())
    }

    /// Bytes of events in the current batch, before any compression.
    pub(crate) fn batch_len(&self) -> usize {
        self.pushed
    }

    /// Writes the current batch (as one chunk) and flushes it; a gzip
    /// batch is flushed out of the compressor first, so the client can
    /// decode all of it now.
    pub(crate) fn send(&mut self) -> io::Result<()> {
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
            // kept for it.
            let room: &mut [u8; CHUNK_HEADER_ROOM] = (&mut self.batch[..CHUNK_HEADER_ROOM])
                .try_into()
                .expect("the room is kept at the start of every batch");
            let start = chunk_size_line(len, room);
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
    pub(crate) fn finish(mut self) -> io::Result<()> {
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
