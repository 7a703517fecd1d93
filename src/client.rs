//! One subscriber's writer: the thread at the end of the path, between the
//! subscriber's queue and its socket.
//!
//! Frames enter from the hub through the queue; bytes leave through the
//! socket. The writer parks while its queue is empty; when it wakes it takes
//! everything queued and writes the lot as one batch (one HTTP chunk, one
//! `write` and one flush), so a burst costs one system call, not one per
//! event. If nothing arrives for a heartbeat interval it writes a
//! keep-alive comment instead, which also reveals a dead client: a write to a
//! closed connection fails, and the writer ends. When the hub closes the queue
//! (slow client, shutdown) the writer writes what is left, ends the HTTP body
//! properly and returns.

use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use crate::hub::Ended;
use crate::metrics::Counters;
use crate::sse::{Frame, HEARTBEAT};

/// A batch stops growing past this many bytes; the rest goes in the next.
pub(crate) const MAX_BATCH: usize = 64 * 1024;

/// After a batch, a buffer that grew past this is released, so an idle
/// subscriber does not keep a burst's worth of memory.
const KEEP_BUFFER: usize = 4 * 1024;

/// Room for the longest chunk-size line, `ffffffffffffffff\r\n`.
const CHUNK_HEADER_ROOM: usize = 18;

/// The body of one event stream: an HTTP/1.1 chunked body, or for HTTP/1.0 a
/// body that ends when the connection closes.
pub(crate) struct Stream {
    out: Box<dyn Write + Send>,
    chunked: bool,
    /// The batch being built. With chunked framing its first
    /// `CHUNK_HEADER_ROOM` bytes are kept free for the chunk-size line, so
    /// the whole chunk goes out in one write.
    batch: Vec<u8>,
}

impl Stream {
    /// A stream on `out`, whose response head has already been written (or
    /// buffered) by the caller.
    pub(crate) fn new(out: Box<dyn Write + Send>, chunked: bool) -> Stream {
        Stream {
            out,
            chunked,
            batch: Vec::new(),
        }
    }

    /// Adds bytes (whole events or comments) to the current batch.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.chunked && self.batch.is_empty() {
            self.batch.resize(CHUNK_HEADER_ROOM, 0);
        }
        self.batch.extend_from_slice(bytes);
    }

    /// Bytes in the current batch.
    pub(crate) fn batch_len(&self) -> usize {
        let room = if self.chunked { CHUNK_HEADER_ROOM } else { 0 };
        self.batch.len().saturating_sub(room)
    }

    /// Writes the current batch (as one chunk) and flushes it to the socket.
    pub(crate) fn send(&mut self) -> io::Result<()> {
        let len = self.batch_len();
        if len == 0 {
            return self.out.flush();
        }
        let start = if self.chunked {
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

    /// Ends the body: the last chunk for chunked framing. The connection
    /// itself closes when the stream is dropped (HTTP/1.0) or when the client
    /// is done with it (HTTP/1.1 keep-alive).
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()?;
        if self.chunked {
            self.out.write_all(b"0\r\n\r\n")?;
        }
        self.out.flush()
    }
}

/// Writes queued frames to `stream` until the queue closes or a write fails.
///
/// The calling thread parks while the queue is empty; whoever puts a frame
/// into an empty queue unparks it (see the hub's notes on waking writers).
/// It does not wait inside the channel: a blocked channel receiver spins and
/// yields before it sleeps, and a thousand writers doing that keep both
/// cores busy waiting.
///
/// `heartbeat` is how long the stream may stay silent before a keep-alive
/// comment goes out (`None`: never). Counts written events in `counters`.
/// Returns why it stopped; on [`Ended::Closed`] the stream is still usable,
/// for [`Stream::finish`].
pub(crate) fn pump(
    stream: &mut Stream,
    queue: &Receiver<Frame>,
    heartbeat: Option<Duration>,
    counters: &Counters,
) -> Ended {
    let mut last_write = Instant::now();
    loop {
        let written = match queue.try_recv() {
            Ok(frame) => {
                stream.push(&frame);
                let mut events = 1;
                while stream.batch_len() < MAX_BATCH {
                    let Ok(frame) = queue.try_recv() else { break };
                    stream.push(&frame);
                    events += 1;
                }
                stream
                    .send()
                    .map(|()| Counters::add(&counters.delivered, events))
            }
            Err(TryRecvError::Empty) => {
                let Some(every) = heartbeat else {
                    thread::park();
                    continue;
                };
                let quiet = last_write.elapsed();
                if quiet < every {
                    // Woken early by a frame, by the end of the stream, or
                    // for no reason at all: the loop finds out which.
                    thread::park_timeout(every - quiet);
                    continue;
                }
                stream.push(HEARTBEAT);
                stream.send()
            }
            Err(TryRecvError::Disconnected) => return Ended::Closed,
        };
        if let Err(e) = written {
            return Ended::WriteFailed(e);
        }
        last_write = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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
        Frame::from_bytes(text.as_bytes())
    }

    #[test]
    fn a_burst_goes_out_as_one_chunk_in_one_write() {
        let recorder = Recorder::default();
        let mut stream = Stream::new(Box::new(recorder.clone()), true);
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(frame("data: a\n\n")).unwrap();
        tx.send(frame("data: b\n\n")).unwrap();
        drop(tx);
        let counters = Counters::default();

        assert!(matches!(
            pump(&mut stream, &rx, None, &counters),
            Ended::Closed
        ));
        stream.finish().unwrap();

        let writes = recorder.0.lock().unwrap().clone();
        assert_eq!(
            writes,
            [
                b"12\r\ndata: a\n\ndata: b\n\n\r\n".to_vec(),
                b"0\r\n\r\n".to_vec()
            ]
        );
        assert_eq!(
            counters
                .delivered
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn close_delimited_bodies_are_raw() {
        let recorder = Recorder::default();
        let mut stream = Stream::new(Box::new(recorder.clone()), false);
        stream.push(b"data: x\n\n");
        stream.send().unwrap();
        stream.finish().unwrap();
        assert_eq!(recorder.0.lock().unwrap().concat(), b"data: x\n\n");
    }

    #[test]
    fn an_idle_stream_gets_heartbeats() {
        let recorder = Recorder::default();
        let mut stream = Stream::new(Box::new(recorder.clone()), true);
        let (tx, rx) = crossbeam_channel::unbounded::<Frame>();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(tx);
        });
        pump(
            &mut stream,
            &rx,
            Some(Duration::from_millis(5)),
            &Counters::default(),
        );
        closer.join().unwrap();
        let writes = recorder.0.lock().unwrap().clone();
        assert!(!writes.is_empty());
        assert!(writes.iter().all(|w| w == b"d\r\n: heartbeat\n\n\r\n"));
    }

    /// The wake protocol under load: writers park while their queue is
    /// empty and are woken only by the publish that makes it non-empty. A
    /// wake-up lost (or late) leaves a writer asleep (no heartbeat here)
    /// with frames in its queue: then not everything is written, or the hub
    /// drops it when its queue overflows.
    #[test]
    fn parked_writers_never_miss_a_wake_up() {
        use crate::hub::{Hub, SubscribeRequest};
        use crate::sse::Event;
        use std::sync::atomic::Ordering::Relaxed;

        const WRITERS: usize = 200;
        const MESSAGES: u64 = 3000;
        // Queues longer than the run: no writer can be dropped for falling
        // behind, so one that stops writing has slept through a wake-up.
        let (hub, handle) = Hub::new(0, WRITERS, MESSAGES as usize + 1);
        std::thread::spawn(move || hub.run());
        let mut writers = Vec::new();
        for _ in 0..WRITERS {
            let (queue, frames) = crossbeam_channel::unbounded();
            let counters = Arc::new(Counters::default());
            let written = Arc::clone(&counters);
            let writer = std::thread::spawn(move || {
                let mut stream = Stream::new(Box::new(io::sink()), true);
                pump(&mut stream, &frames, None, &written)
            });
            let request = SubscribeRequest {
                channels: Vec::new(),
                resume: None,
                queue,
                peer: None,
                waker: Some(writer.thread().clone()),
            };
            handle.register(request).unwrap();
            writers.push((writer, counters));
        }
        for i in 0..MESSAGES {
            handle.publish(&Event::new(i.to_string()), None).unwrap();
        }
        let guard = std::time::Instant::now();
        for (_, counters) in &writers {
            while counters.delivered.load(Relaxed) < MESSAGES {
                assert!(
                    guard.elapsed() < Duration::from_secs(20),
                    "a writer slept through its wake-up"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(handle.stats().unwrap().dropped_slow, 0);
        handle.shut_down();
        for (writer, _) in writers {
            assert!(matches!(writer.join().unwrap(), Ended::Closed));
        }
    }

    #[test]
    fn a_big_backlog_is_split_into_bounded_batches() {
        let recorder = Recorder::default();
        let mut stream = Stream::new(Box::new(recorder.clone()), false);
        let (tx, rx) = crossbeam_channel::unbounded();
        let big = frame(&format!("data: {}\n\n", "x".repeat(40_000)));
        for _ in 0..4 {
            tx.send(big.clone()).unwrap();
        }
        drop(tx);
        pump(&mut stream, &rx, None, &Counters::default());
        let writes = recorder.0.lock().unwrap().clone();
        assert_eq!(
            writes.len(),
            2,
            "two frames fit under the batch limit at a time"
        );
        assert_eq!(writes.concat().len(), 4 * big.len());
    }
}
