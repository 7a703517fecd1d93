//! Patched: a connection's read buffer, which holds a whole request head.
//!
//! Bytes enter from the socket; they leave either as a request head (the
//! connection looks at [`BufferedInput::buffered`], and [`consume`]s the
//! head once it is parsed) or through `Read`, as a body and whatever
//! follows it. The buffer grows only while a head is read, to at most
//! [`MAX_HEAD`] bytes, and goes back to its small size as soon as what it
//! holds has been read out, so a connection keeps a large buffer only as
//! long as it holds a large head.
//!
//! [`consume`]: BufferedInput::consume

use std::io::{Read, Result as IoResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::head::MAX_HEAD;

/// A buffered reader that keeps a count, shared with each request of the
/// connection, of the bytes it has read from the socket and not handed out
/// yet: the rest of a request's body, or requests pipelined behind it.
pub struct BufferedInput<R> {
    inner: R,
    /// `buf[start..]` is read from the socket and not handed out yet.
    buf: Vec<u8>,
    start: usize,
    /// The capacity the buffer goes back to.
    small: usize,
    held: Arc<AtomicUsize>,
}

impl<R: Read> BufferedInput<R> {
    pub fn with_capacity(capacity: usize, inner: R) -> BufferedInput<R> {
        BufferedInput {
            inner,
            buf: Vec::new(),
            start: 0,
            small: capacity,
            held: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The shared count of bytes held.
    pub fn held(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.held)
    }

    /// The bytes read and not handed out yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Hands out the first `n` buffered bytes (a parsed head).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        self.settle();
    }

    /// Reads more bytes from the socket into the buffer, which may grow to
    /// hold [`MAX_HEAD`] bytes; the number read, 0 at the end of the
    /// stream. Call it only while fewer than [`MAX_HEAD`] bytes are held.
    pub fn fill_head(&mut self) -> IoResult<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let held = self.buf.len();
        let room = if held < self.small {
            self.small
        } else {
            (held * 2).min(MAX_HEAD)
        };
        if self.buf.capacity() < room {
            self.buf.reserve_exact(room - held);
        }
        let n = self.read_more(room)?;
        Ok(n)
    }

    /// Reads into the spare room of the buffer, up to `room` bytes held.
    fn read_more(&mut self, room: usize) -> IoResult<usize> {
        let held = self.buf.len();
        self.buf.resize(room.max(held), 0);
        let read = self.inner.read(&mut self.buf[held..]);
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(held + n);
        self.held
            .store(self.buf.len() - self.start, Ordering::Relaxed);
        read
    }

    /// Once everything held is handed out, the buffer goes back to its
    /// small size (and a large one is returned to the allocator).
    fn settle(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > self.small {
                self.buf = Vec::new();
            }
        }
        self.held
            .store(self.buf.len() - self.start, Ordering::Relaxed);
    }
}

impl<R: Read> Read for BufferedInput<R> {
    fn read(&mut self, out: &mut [u8]) -> IoResult<usize> {
        if self.start == self.buf.len() {
            if out.len() >= self.small {
                return self.inner.read(out);
            }
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() < self.small {
                self.buf.reserve_exact(self.small);
            }
            let small = self.small;
            if self.read_more(small)? == 0 {
                return Ok(0);
            }
        }
        let available = &self.buf[self.start..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.start += n;
        self.settle();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_large_head_is_held_then_the_buffer_shrinks() {
        let head = vec![b'a'; MAX_HEAD];
        let mut input = BufferedInput::with_capacity(512, Cursor::new(head));
        while input.buffered().len() < MAX_HEAD {
            assert!(input.fill_head().unwrap() > 0);
        }
        assert!(input.buf.capacity() <= MAX_HEAD + 512);
        input.consume(MAX_HEAD - 10);
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 10);
        assert!(input.buf.capacity() <= 512);
        assert_eq!(input.held().load(Ordering::Relaxed), 0);
    }

    #[test]
    fn reads_after_a_head_come_from_the_buffer_first() {
        let mut input =
            BufferedInput::with_capacity(512, Cursor::new(b"HEAD\r\n\r\nbody".to_vec()));
        input.fill_head().unwrap();
        input.consume(8);
        let mut body = String::new();
        input.read_to_string(&mut body).unwrap();
        assert_eq!(body, "body");
    }
}
