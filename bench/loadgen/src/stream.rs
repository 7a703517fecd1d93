//! An incremental reader for one `text/event-stream` response: the HTTP head,
//! then a chunked (or close-delimited) body, then SSE lines.
//!
//! Bytes enter through [`StreamParser::feed`] exactly as they came off the
//! socket, in pieces of any size; the payload stamps of `data:` lines leave
//! through the `out` vector. It is built to be cheap, because one thread runs
//! thousands of these: no allocation per event, `memchr` to find line ends,
//! and only the first [`LINE_PREFIX`] bytes of a line are kept, since the
//! stamp (`<seq> <send_ns>`) sits at the start of the data and the padding
//! after it is never looked at.

use memchr::memchr;

/// Bytes of each line kept: enough for `data: ` and two 20-digit numbers.
pub const LINE_PREFIX: usize = 56;

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The longest event ID kept for a resume (`Last-Event-ID`).
const MAX_ID: usize = 48;

/// The `seq` of the marker [`StreamParser::events`] puts out for a `gap`
/// event.
pub const GAP: u64 = u64::MAX;

/// One message as a subscriber saw it: the stamp the publisher wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub sent_ns: u64,
}

/// Where the response stands after a call to [`StreamParser::feed`]; the
/// status code is in [`StreamParser::status`] once the head is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still reading the response head.
    Head,
    /// Reading the body.
    Body,
    /// The server ended the body (last chunk).
    Ended,
    /// The bytes do not make sense as HTTP.
    Broken,
}

#[derive(Clone, Copy, Debug)]
enum Chunk {
    /// Reading the hex size; `seen` once a digit arrived, `ext` inside a
    /// `;extension`.
    Size { value: usize, seen: bool, ext: bool },
    /// Inside chunk data, this many bytes left.
    Data(usize),
    /// After chunk data, expecting CRLF.
    DataEnd,
    /// The last chunk was read.
    Done,
}

pub struct StreamParser {
    head: Option<Vec<u8>>,
    status: Option<u16>,
    chunked: bool,
    chunk: Chunk,
    line: [u8; LINE_PREFIX],
    line_len: usize,
    /// Whole events, as an `EventSource` sees them (see [`StreamParser::events`]).
    events: Option<Box<Events>>,
}

/// What an event-level parser keeps: the fields of the event being read,
/// and the ID of the last event dispatched.
#[derive(Default)]
struct Events {
    stamp: Option<Stamp>,
    gap: bool,
    id: Option<([u8; MAX_ID], usize)>,
    last_id: Option<([u8; MAX_ID], usize)>,
}

impl Default for StreamParser {
    fn default() -> StreamParser {
        StreamParser::new()
    }
}

impl StreamParser {
    pub fn new() -> StreamParser {
        StreamParser {
            head: Some(Vec::new()),
            status: None,
            chunked: false,
            chunk: Chunk::Size {
                value: 0,
                seen: false,
                ext: false,
            },
            line: [0; LINE_PREFIX],
            line_len: 0,
            events: None,
        }
    }

    /// A parser that hands out stamps only when their event is dispatched
    /// (at the empty line that ends it), as a browser would: a connection
    /// cut in the middle of an event does not count it. A `gap` event puts
    /// out a stamp with the `seq` [`GAP`], and the `id:` of every event
    /// dispatched is kept for a resume ([`StreamParser::last_id`]).
    pub fn events() -> StreamParser {
        StreamParser {
            events: Some(Box::default()),
            ..StreamParser::new()
        }
    }

    /// The ID of the last event dispatched that had one (event parsers only).
    pub fn last_id(&self) -> Option<&[u8]> {
        let (id, len) = self.events.as_ref()?.last_id.as_ref()?;
        Some(&id[..*len])
    }

    /// The response's status code, once its head was read.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Takes the next bytes of the response; appends every stamped `data:`
    /// line completed by them to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Stamp>) -> Progress {
        if let Some(head) = &mut self.head {
            let before = head.len();
            head.extend_from_slice(bytes);
            let Some(end) = find_head_end(head, before.saturating_sub(3)) else {
                return if head.len() > MAX_HEAD {
                    Progress::Broken
                } else {
                    Progress::Head
                };
            };
            let Some(parsed) = parse_head(&head[..end]) else {
                return Progress::Broken;
            };
            self.chunked = parsed.chunked;
            self.status = Some(parsed.status);
            bytes = &bytes[end - before..];
            self.head = None;
        }
        if !self.chunked {
            self.lines(bytes, out);
            return Progress::Body;
        }
        while !bytes.is_empty() {
            match self.chunk {
                Chunk::Size { value, seen, ext } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.chunk = match b {
                        b'\n' if seen && value == 0 => Chunk::Done,
                        b'\n' if seen => Chunk::Data(value),
                        b'\r' => Chunk::Size { value, seen, ext },
                        b';' => Chunk::Size {
                            value,
                            seen,
                            ext: true,
                        },
                        _ if ext => Chunk::Size { value, seen, ext },
                        _ => match (b as char).to_digit(16) {
                            Some(d) if value < usize::MAX >> 8 => Chunk::Size {
                                value: value * 16 + d as usize,
                                seen: true,
                                ext,
                            },
                            _ => return Progress::Broken,
                        },
                    };
                }
                Chunk::Data(left) => {
                    let take = left.min(bytes.len());
                    self.lines(&bytes[..take], out);
                    bytes = &bytes[take..];
                    self.chunk = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    match b {
                        b'\r' => {}
                        b'\n' => {
                            self.chunk = Chunk::Size {
                                value: 0,
                                seen: false,
                                ext: false,
                            }
                        }
                        _ => return Progress::Broken,
                    }
                }
                Chunk::Done => return Progress::Ended,
            }
        }
        if matches!(self.chunk, Chunk::Done) {
            Progress::Ended
        } else {
            Progress::Body
        }
    }

    /// Splits body bytes into lines, keeping a bounded prefix of each.
    fn lines(&mut self, mut bytes: &[u8], out: &mut Vec<Stamp>) {
        while !bytes.is_empty() {
            match memchr(b'\n', bytes) {
                Some(at) => {
                    self.keep(&bytes[..at]);
                    let line = &self.line[..self.line_len];
                    match &mut self.events {
                        Some(events) => events.line(line, out),
                        None => {
                            if let Some(stamp) = parse_stamp(line) {
                                out.push(stamp);
                            }
                        }
                    }
                    self.line_len = 0;
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.keep(bytes);
                    return;
                }
            }
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = LINE_PREFIX - self.line_len;
        let take = room.min(bytes.len());
        self.line[self.line_len..self.line_len + take].copy_from_slice(&bytes[..take]);
        self.line_len += take;
    }
}

impl Events {
    /// One line of the body (its kept prefix), without the LF.
    fn line(&mut self, line: &[u8], out: &mut Vec<Stamp>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if std::mem::take(&mut self.gap) {
                out.push(Stamp {
                    seq: GAP,
                    sent_ns: 0,
                });
            }
            if let Some(stamp) = self.stamp.take() {
                out.push(stamp);
            }
            if let Some(id) = self.id.take() {
                self.last_id = Some(id);
            }
        } else if let Some(value) = field(line, b"id") {
            let mut id = [0; MAX_ID];
            let len = value.len().min(MAX_ID);
            id[..len].copy_from_slice(&value[..len]);
            self.id = Some((id, len));
        } else if let Some(value) = field(line, b"event") {
            self.gap = value == b"gap";
        } else if let Some(stamp) = parse_stamp(line) {
            self.stamp = Some(stamp);
        }
    }
}

/// The value of the field `name` if `line` is that field.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

fn find_head_end(head: &[u8], from: usize) -> Option<usize> {
    head[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4)
}

/// What a response head says about the body after it.
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    /// `Content-Length`, 0 without one.
    pub length: usize,
    /// The connection closes after this response.
    pub close: bool,
}

/// Parses a response head (status line and headers); `None` without a
/// status code.
pub fn parse_head(head: &[u8]) -> Option<Head> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parsed = Head {
        status: status_line.split(' ').nth(1)?.parse().ok()?,
        chunked: false,
        length: 0,
        close: status_line.starts_with("HTTP/1.0"),
    };
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value.eq_ignore_ascii_case("close");
        }
    }
    Some(parsed)
}

/// `data: <seq> <sent_ns>[ anything]` -> the stamp; any other line -> None.
pub fn parse_stamp(line: &[u8]) -> Option<Stamp> {
    let rest = line.strip_prefix(b"data:")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let (seq, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix(b" ")?;
    let (sent_ns, _) = leading_number(rest)?;
    Some(Stamp { seq, sent_ns })
}

fn leading_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let mut value = 0u64;
    for &b in &bytes[..digits] {
        value = value * 10 + u64::from(b - b'0');
    }
    Some((value, &bytes[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    fn chunk(body: &str) -> Vec<u8> {
        format!("{:x}\r\n{body}\r\n", body.len()).into_bytes()
    }

    #[test]
    fn reads_stamps_from_a_chunked_stream_in_any_split() {
        let mut wire = HEAD.to_vec();
        wire.extend(chunk(
            "retry: 3000\n\nevent: connection\ndata: {\"client\":\"1\"}\n\n",
        ));
        wire.extend(chunk("id: 1-0\ndata: 7 123456 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n\nid: 1-1\ndata: 8 123999 y\n\n"));
        wire.extend_from_slice(b"0\r\n\r\n");
        for split in 1..wire.len() {
            let mut parser = StreamParser::new();
            let mut out = Vec::new();
            let mut ended = false;
            for piece in wire.chunks(split) {
                match parser.feed(piece, &mut out) {
                    Progress::Ended => ended = true,
                    Progress::Broken => panic!("broken at split {split}"),
                    _ => {}
                }
            }
            assert_eq!(parser.status(), Some(200));
            assert!(ended, "split {split}");
            assert_eq!(
                out,
                [
                    Stamp {
                        seq: 7,
                        sent_ns: 123456
                    },
                    Stamp {
                        seq: 8,
                        sent_ns: 123999
                    }
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn reads_a_close_delimited_stream() {
        let mut parser = StreamParser::new();
        let mut out = Vec::new();
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1 2\n\n";
        assert_eq!(parser.feed(wire, &mut out), Progress::Body);
        assert_eq!(parser.status(), Some(200));
        assert_eq!(out, [Stamp { seq: 1, sent_ns: 2 }]);
    }

    #[test]
    fn an_event_parser_counts_whole_events_and_keeps_their_ids() {
        let mut wire = HEAD.to_vec();
        wire.extend(chunk("id: 5-0\nevent: connection\ndata: {}\n\n"));
        wire.extend(chunk("id: 5-0\nevent: gap\ndata: {}\n\n: heartbeat\n"));
        wire.extend(chunk("id: 6-1\ndata: 7 99 xx\n\nid: 6-2\ndata: 8 99"));
        let mut parser = StreamParser::events();
        let mut out = Vec::new();
        assert_eq!(parser.feed(&wire, &mut out), Progress::Body);
        assert_eq!(
            out,
            [
                Stamp {
                    seq: GAP,
                    sent_ns: 0
                },
                Stamp {
                    seq: 7,
                    sent_ns: 99
                }
            ]
        );
        // The last event was cut before its end: neither it nor its ID count.
        assert_eq!(parser.last_id(), Some(&b"6-1"[..]));
    }

    #[test]
    fn ignores_lines_without_a_stamp() {
        assert_eq!(parse_stamp(b"data: hello"), None);
        assert_eq!(parse_stamp(b": heartbeat"), None);
        assert_eq!(parse_stamp(b"id: 5 6"), None);
        assert_eq!(parse_stamp(b"data:5 6"), Some(Stamp { seq: 5, sent_ns: 6 }));
    }
}
