//! Patched: a buffered reader that tells how much it holds.

use std::io::{BufReader, Read, Result as IoResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A `BufReader` that keeps a count, shared with each request of the
/// connection, of the bytes it has read from the socket and not handed out
/// yet: the rest of a request's body, or requests pipelined behind it.
pub struct BufferedInput<R> {
    inner: BufReader<R>,
    held: Arc<AtomicUsize>,
}

impl<R: Read> BufferedInput<R> {
    pub fn with_capacity(capacity: usize, inner: R) -> BufferedInput<R> {
        BufferedInput {
            inner: BufReader::with_capacity(capacity, inner),
            held: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The shared count of bytes held.
    pub fn held(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.held)
    }
}

impl<R: Read> Read for BufferedInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let n = self.inner.read(buf)?;
        self.held
            .store(self.inner.buffer().len(), Ordering::Relaxed);
        Ok(n)
    }
}
