use std::io::Result as IoResult;
use std::io::{Read, Write};

use std::sync::{Arc, Mutex};

use super::handoff::{handoff, Giver as Sender, Taker as Receiver};

use std::mem;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    next: Option<Sender<R>>,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    // Patched: dropping it (with the writer) hands the turn to write on.
    on_finish: Sender<()>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        let (tx, rx) = handoff();

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => Some(SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: Some(tx),
            }),

            SequentialReaderBuilderInner::NotFirst(previous) => Some(SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: Some(tx),
            }),
        }
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        let (tx, rx) = handoff();
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        Some(SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: tx,
        })
    }
}

impl<R: Read + Send> SequentialReader<R> {
    /// Patched: the reader itself, once it is this reader's turn (waits
    /// for the previous one to hand it over).
    pub fn inner(&mut self) -> IoResult<&mut R> {
        if let SequentialReaderInner::Waiting(ref recv) = self.inner {
            match recv.take() {
                Some(reader) => self.inner = SequentialReaderInner::MyTurn(reader),
                None => {
                    self.inner = SequentialReaderInner::Empty;
                }
            }
        }
        match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => Ok(reader),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection is gone",
            )),
        }
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut reader = match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => return reader.read(buf),
            // Patched: upstream unwrapped; a previous reader that went away
            // without handing the connection on means the connection is gone.
            SequentialReaderInner::Waiting(ref mut recv) => match recv.take() {
                Some(reader) => reader,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the connection is gone",
                    ))
                }
            },
            SequentialReaderInner::Empty => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the connection is gone",
                ))
            }
        };

        let result = reader.read(buf);
        self.inner = SequentialReaderInner::MyTurn(reader);
        result
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        // The previous writer handed over its turn, or went away: either
        // way it is done.
        if let Some(v) = self.trigger.take() {
            v.take();
        }

        self.writer.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        if let Some(v) = self.trigger.take() {
            v.take();
        }

        self.writer.lock().unwrap().flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        let reader = match inner {
            SequentialReaderInner::MyTurn(reader) => Some(reader),
            SequentialReaderInner::Waiting(recv) => recv.take(),
            SequentialReaderInner::Empty => None,
        };
        if let (Some(reader), Some(next)) = (reader, self.next.take()) {
            next.give(reader);
        }
    }
}
