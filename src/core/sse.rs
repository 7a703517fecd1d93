//! The Server-Sent Events wire format: how one event becomes bytes, and
//! how a client reads bytes back into events.
//!
//! An [`Event`] (optional name, text data) is checked when it is built, so an
//! event that exists is always valid on the wire. Publishing encodes it once:
//! [`Event::encode_body`] gives the `event:` and `data:` lines on the
//! publisher's thread, the hub prefixes the `id:` line and freezes the result
//! into a [`Frame`], and every recipient writes those same shared bytes.
//!
//! The rules come from the WHATWG HTML standard ("Server-sent events"): a
//! client splits lines at CRLF, lone LF and lone CR alike, so a value must
//! never contain either; data is sent one `data:` line per line of text, and
//! a client joins them back with LF. An empty line ends (dispatches) an
//! event; a line that starts with `:` is a comment. [`Parser`] is that
//! client side, written from the standard: the tests read every encoded
//! event back through it, and an in-process subscriber can use it too.
//!
//! # Example
//!
//! ```
//! use sse_hub::{Event, EventId};
//! use sse_hub::sse::Parser;
//!
//! let event = Event::new("first\nsecond").with_name("update")?;
//! let frame = event.frame(Some("1700000000000-0".parse::<EventId>()?));
//! assert_eq!(
//!     &frame[..],
//!     b"id: 1700000000000-0\nevent: update\ndata: first\ndata: second\n\n"
//! );
//!
//! // What a browser's EventSource makes of those bytes:
//! let dispatched = Parser::new().feed(&frame);
//! assert_eq!(dispatched[0].event_type, "update");
//! assert_eq!(dispatched[0].data, "first\nsecond");
//! assert_eq!(dispatched[0].last_event_id, "1700000000000-0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::core::event_id::EventId;
use crate::error::Error;

/// Longest event name accepted, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 64;

/// Event names the hub sends itself; publishers may not use them.
pub const RESERVED_EVENT_NAMES: [&str; 3] = ["connection", "gap", "presence"];

/// The name of the join and leave events of a channel with presence.
pub(crate) const PRESENCE: &str = "presence";

/// The keep-alive comment written to an idle stream: the line alone. A
/// comment leaves the event being read untouched, and no empty line follows
/// it, because several client libraries report an empty line that ends no
/// data as an empty message.
pub const HEARTBEAT: &[u8] = b": heartbeat\n";

/// Encoded bytes of one or more whole events, ready for any number of
/// sockets.
///
/// Cloning a `Frame` shares the bytes; it never copies them. A frame knows
/// how many events it holds, so that queue limits and delivery counts are
/// in events even when the events of one batch publish travel together.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Arc<[u8]>,
    events: u32,
}

impl Frame {
    /// Wraps bytes that hold `events` complete events.
    pub(crate) fn new(bytes: &[u8], events: u32) -> Frame {
        Frame {
            bytes: Arc::from(bytes),
            events,
        }
    }

    /// How many events the frame holds.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// The events in the frame, as a client reads them.
    pub fn dispatch(&self) -> Vec<Dispatched> {
        Parser::new().feed(&self.bytes)
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:?})", String::from_utf8_lossy(&self.bytes))
    }
}

/// The name of an event: what an `EventSource` listens for with
/// `addEventListener(name, ...)`.
///
/// 1 to 64 bytes, without CR, LF or NUL, and not one of the names the hub
/// reserves for itself (`connection`, `gap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventName(Box<str>);

impl EventName {
    /// Checks `name` and returns it as an `EventName`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEventName`] saying what is wrong with it.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::EventName;
    ///
    /// assert!(EventName::new("reading").is_ok());
    /// assert!(EventName::new("two\nlines").is_err());
    /// assert!(EventName::new("gap").is_err()); // the hub's own
    /// ```
    pub fn new(name: &str) -> Result<EventName, Error> {
        let why = if name.is_empty() || name.len() > MAX_EVENT_NAME_LEN {
            "must be 1 to 64 bytes long"
        } else if name.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            "must not contain CR, LF or NUL"
        } else if RESERVED_EVENT_NAMES.contains(&name) {
            "is reserved: the hub sends `connection`, `gap` and `presence` itself"
        } else {
            return Ok(EventName(name.into()));
        };
        Err(Error::InvalidEventName(why))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event to send: an optional name and its data.
///
/// The data may hold any text. Line breaks of every kind (CRLF, CR, LF)
/// arrive at the client as LF, which is all a client can ever receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    name: Option<EventName>,
    data: String,
}

impl Event {
    /// An unnamed event (a browser delivers it to `onmessage`).
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            name: None,
            data: data.into(),
        }
    }

    /// The same event under a name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEventName`] if the name breaks the rules of
    /// [`EventName::new`].
    pub fn with_name(self, name: &str) -> Result<Event, Error> {
        Ok(Event {
            name: Some(EventName::new(name)?),
            ..self
        })
    }

    /// A join or leave of a channel with presence: the one reserved name
    /// that travels as a published message.
    pub(crate) fn presence(data: String) -> Event {
        Event {
            name: Some(EventName(PRESENCE.into())),
            data,
        }
    }

    /// The same event under a name read back from the hub's own log (a
    /// cluster's stream), where `presence` is the hub's own and allowed.
    ///
    /// # Errors
    ///
    /// As [`Event::with_name`], for any other reserved name.
    pub(crate) fn with_logged_name(self, name: &str) -> Result<Event, Error> {
        if name == PRESENCE {
            return Ok(Event::presence(self.data));
        }
        self.with_name(name)
    }

    /// The event's name, if it has one.
    pub fn name(&self) -> Option<&EventName> {
        self.name.as_ref()
    }

    /// The event's data.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The `event:` and `data:` lines and the closing empty line: everything
    /// but the `id:` line, which only the hub can write.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 16);
        self.push_body(&mut out);
        out
    }

    /// The whole event as a frame, with an `id:` line if `id` is given.
    pub fn frame(&self, id: Option<EventId>) -> Frame {
        let mut out = Vec::with_capacity(self.data.len() + 48);
        if let Some(id) = id {
            push_id_line(&mut out, id);
        }
        self.push_body(&mut out);
        Frame::new(&out, 1)
    }

    fn push_body(&self, out: &mut Vec<u8>) {
        push_event(out, self.name.as_ref().map(EventName::as_str), &self.data);
    }
}

/// Appends an event the hub sends itself (`connection`, `gap`): a reserved
/// name, and the stream's resume point as its `id:`, because several client
/// libraries take their last event ID from every event they dispatch.
pub(crate) fn push_control_event(out: &mut Vec<u8>, id: EventId, name: &str, data: &str) {
    push_id_line(out, id);
    push_event(out, Some(name), data);
}

/// Appends `retry: <ms>`: how long a client waits before it reconnects.
pub(crate) fn push_retry_line(out: &mut Vec<u8>, ms: u64) {
    out.extend_from_slice(b"retry: ");
    out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
    out.push(b'\n');
}

/// Appends the `event:` line (if named), the `data:` lines and the empty
/// line that ends an event.
fn push_event(out: &mut Vec<u8>, name: Option<&str>, data: &str) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    push_data_lines(out, data);
    out.push(b'\n');
}

/// Appends `id: <ms>-<seq>`.
pub(crate) fn push_id_line(out: &mut Vec<u8>, id: EventId) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(digits.format(id.ms()).as_bytes());
    out.push(b'-');
    out.extend_from_slice(digits.format(id.seq()).as_bytes());
    out.push(b'\n');
}

/// Appends one `data:` line per line of `data`, splitting at CRLF, CR and LF.
///
/// Every break counts, a trailing one included: `"a\n"` becomes `data: a` and
/// a bare `data:`, which a client joins back into `"a\n"`. (`str::lines` would
/// lose that last empty line, and would leave a lone CR inside a value, where
/// a client reads it as the end of the line.) Empty data is one bare `data:`
/// line, so the event still fires.
fn push_data_lines(out: &mut Vec<u8>, data: &str) {
    let bytes = data.as_bytes();
    let mut start = 0;
    loop {
        let rest = &bytes[start..];
        let Some(at) = memchr::memchr2(b'\r', b'\n', rest) else {
            push_data_line(out, rest);
            return;
        };
        push_data_line(out, &rest[..at]);
        let crlf = rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n');
        start += at + if crlf { 2 } else { 1 };
    }
}

fn push_data_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.is_empty() {
        out.extend_from_slice(b"data:\n");
    } else {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// One event as an `EventSource` dispatches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatched {
    /// The event's type: its `event:` name, or `message` without one.
    pub event_type: String,
    /// The `data:` lines, joined with LF.
    pub data: String,
    /// The stream's last event ID when the event was dispatched: the last
    /// `id:` seen so far, on this event or an earlier one.
    pub last_event_id: String,
    /// The `id:` of this very event, if it had one.
    pub id: Option<String>,
    /// The last valid `retry:` value seen so far on the stream, in
    /// milliseconds.
    pub retry: Option<u64>,
}

/// A client's reading of an event stream, as the WHATWG HTML standard
/// describes it ("Interpreting an event stream"): feed it bytes as they
/// arrive, in pieces of any size, and it returns the events they complete.
///
/// # Example
///
/// ```
/// use sse_hub::sse::Parser;
///
/// let mut parser = Parser::new();
/// assert!(parser.feed(b"retry: 3000\nid: 7-0\nda").is_empty());
/// let events = parser.feed(b"ta: hello\n\n: a comment\n");
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].data, "hello");
/// assert_eq!(events[0].last_event_id, "7-0");
/// assert_eq!(events[0].retry, Some(3000));
/// ```
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The previous piece ended in CR: an LF that starts the next one
    /// belongs to that CR.
    after_cr: bool,
    /// Nothing has been read yet (a leading BOM is dropped).
    started: bool,
    data: String,
    event_type: String,
    this_id: Option<String>,
    last_event_id: String,
    retry: Option<u64>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Reads `bytes`, the next piece of the stream, and returns the events
    /// it completes. A line that is not complete yet waits for the next
    /// piece.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Dispatched> {
        let mut dispatched = Vec::new();
        if !self.started && !bytes.is_empty() {
            self.line.extend_from_slice(bytes);
            if self.line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.line) {
                return dispatched; // maybe a BOM, not whole yet
            }
            self.started = true;
            let pending = std::mem::take(&mut self.line);
            let pending = pending.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&pending);
            self.read(pending, &mut dispatched);
            return dispatched;
        }
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.read(bytes, &mut dispatched);
        dispatched
    }

    fn read(&mut self, bytes: &[u8], dispatched: &mut Vec<Dispatched>) {
        self.after_cr = false;
        let mut rest = bytes;
        while let Some(at) = memchr::memchr2(b'\r', b'\n', rest) {
            self.line.extend_from_slice(&rest[..at]);
            let line = std::mem::take(&mut self.line);
            self.process(&String::from_utf8_lossy(&line), dispatched);
            self.line = line;
            self.line.clear();
            if rest[at] == b'\r' {
                match rest.get(at + 1) {
                    Some(b'\n') => rest = &rest[at + 2..],
                    Some(_) => rest = &rest[at + 1..],
                    None => {
                        self.after_cr = true;
                        return;
                    }
                }
            } else {
                rest = &rest[at + 1..];
            }
        }
        self.line.extend_from_slice(rest);
    }

    fn process(&mut self, line: &str, dispatched: &mut Vec<Dispatched>) {
        if line.is_empty() {
            let id = self.this_id.take();
            let event_type = std::mem::take(&mut self.event_type);
            if self.data.is_empty() {
                return;
            }
            let mut data = std::mem::take(&mut self.data);
            data.pop(); // the LF after the last line
            dispatched.push(Dispatched {
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type
                },
                data,
                last_event_id: self.last_event_id.clone(),
                id,
                retry: self.retry,
            });
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                value.clone_into(&mut self.last_event_id);
                self.this_id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &str) -> String {
        String::from_utf8(Event::new(data).encode_body()).unwrap()
    }

    #[test]
    fn one_line() {
        assert_eq!(body("hello"), "data: hello\n\n");
    }

    #[test]
    fn empty_data_is_one_bare_data_line() {
        assert_eq!(body(""), "data:\n\n");
    }

    #[test]
    fn every_kind_of_line_break_splits() {
        assert_eq!(body("a\nb"), "data: a\ndata: b\n\n");
        assert_eq!(body("a\r\nb"), "data: a\ndata: b\n\n");
        assert_eq!(body("a\rb"), "data: a\ndata: b\n\n");
        assert_eq!(body("a\r\rb"), "data: a\ndata:\ndata: b\n\n");
        assert_eq!(body("a\n\r\nb"), "data: a\ndata:\ndata: b\n\n");
    }

    #[test]
    fn trailing_and_leading_breaks_are_kept() {
        assert_eq!(body("a\n"), "data: a\ndata:\n\n");
        assert_eq!(body("\na"), "data:\ndata: a\n\n");
        assert_eq!(body("\r\n"), "data:\ndata:\n\n");
    }

    #[test]
    fn a_cr_cannot_smuggle_a_field() {
        assert_eq!(
            body("x\revent: evil\rid: 1"),
            "data: x\ndata: event: evil\ndata: id: 1\n\n"
        );
    }

    #[test]
    fn leading_spaces_and_colons_survive() {
        assert_eq!(body("  two spaces"), "data:   two spaces\n\n");
        assert_eq!(body(":not a comment"), "data: :not a comment\n\n");
    }

    #[test]
    fn named_event_with_id() {
        let id: EventId = "1700000000000-7".parse().unwrap();
        let frame = Event::new("{\"a\":1}")
            .with_name("update")
            .unwrap()
            .frame(Some(id));
        assert_eq!(
            &frame[..],
            b"id: 1700000000000-7\nevent: update\ndata: {\"a\":1}\n\n"
        );
    }

    #[test]
    fn unicode_passes_unchanged() {
        assert_eq!(body("héllo — 你好 🎉"), "data: héllo — 你好 🎉\n\n");
    }

    #[test]
    fn event_names_are_checked() {
        assert!(EventName::new("update").is_ok());
        assert!(EventName::new(&"x".repeat(64)).is_ok());
        for bad in ["", "a\nb", "a\rb", "a\0b", "connection", "gap"] {
            assert!(EventName::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(EventName::new(&"x".repeat(65)).is_err());
    }
}

/// Property tests: whatever the text, an encoded event reads back, through a
/// WHATWG parser, as exactly that event. Also the shared pieces of the other
/// modules' property tests: the parser, tricky text, and the time-boxed fuzz
/// pass that CI runs with `--include-ignored`.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::{as_received, dispatch, fuzz, tricky_text};

    /// The rule for event names, written out independently of the code.
    fn name_is_valid(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && !name.contains(['\r', '\n', '\0'])
            && name != "connection"
            && name != "gap"
    }

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![
            tricky_text(),
            "[a-z]{0,3}",
            "[a-zA-Z0-9:._ -]{60,68}",
            (30usize..35).prop_map(|n| "é".repeat(n)),
            Just("connection".to_owned()),
            Just("gap".to_owned()),
            Just("Connection".to_owned()),
        ]
    }

    fn a_name_is_checked(name: String) -> Result<(), TestCaseError> {
        match EventName::new(&name) {
            Ok(checked) => {
                prop_assert!(name_is_valid(&name), "accepted {name:?}");
                prop_assert_eq!(checked.as_str(), name.as_str());
            }
            Err(e) => {
                prop_assert!(!name_is_valid(&name), "refused {name:?}: {e}");
                prop_assert!(matches!(e, Error::InvalidEventName(_)));
            }
        }
        Ok(())
    }

    fn valid_name() -> impl Strategy<Value = Option<String>> {
        prop::option::of(names().prop_filter("a valid name", |n| name_is_valid(n)))
    }

    fn ids() -> impl Strategy<Value = Option<EventId>> {
        prop::option::of((any::<u64>(), any::<u64>()).prop_map(|(ms, seq)| EventId::new(ms, seq)))
    }

    /// The encoder's promise: one event, no CR on the wire, and a client
    /// reads back the data with line breaks as LF, the name and the ID.
    fn an_event_reads_back(
        (data, name, id): (String, Option<String>, Option<EventId>),
    ) -> Result<(), TestCaseError> {
        let mut event = Event::new(data.clone());
        if let Some(name) = &name {
            event = event.with_name(name).expect("a valid name");
        }
        let frame = event.frame(id);
        prop_assert!(!frame.contains(&b'\r'), "a CR reached the wire");
        prop_assert!(frame.ends_with(b"\n\n"));
        let expected = Dispatched {
            event_type: name.unwrap_or_else(|| "message".to_owned()),
            data: as_received(&data),
            last_event_id: id.map(|id| id.to_string()).unwrap_or_default(),
            id: id.map(|id| id.to_string()),
            retry: None,
        };
        prop_assert_eq!(dispatch(&frame), vec![expected]);
        // A body without the ID line is an event of its own as well.
        prop_assert_eq!(dispatch(&event.encode_body()).len(), 1);
        Ok(())
    }

    fn events() -> impl Strategy<Value = (String, Option<String>, Option<EventId>)> {
        (tricky_text(), valid_name(), ids())
    }

    proptest! {
        #[test]
        fn encoded_events_read_back_with_line_breaks_as_lf(event in events()) {
            an_event_reads_back(event)?;
        }

        #[test]
        fn event_names_follow_the_rule(name in names()) {
            a_name_is_checked(name)?;
        }

        #[test]
        fn back_to_back_frames_read_back_as_as_many_events(
            datas in prop::collection::vec(tricky_text(), 1..6)
        ) {
            let stream: Vec<u8> = datas
                .iter()
                .flat_map(|data| Event::new(data.clone()).encode_body())
                .collect();
            let received: Vec<String> = dispatch(&stream).into_iter().map(|e| e.data).collect();
            let expected: Vec<String> = datas.iter().map(|d| as_received(d)).collect();
            prop_assert_eq!(received, expected);
        }

        #[test]
        fn a_stream_cut_anywhere_reads_the_same(
            datas in prop::collection::vec(tricky_text(), 1..4),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let stream: Vec<u8> = datas
                .iter()
                .flat_map(|data| Event::new(data.clone()).encode_body())
                .collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut parser = Parser::new();
            let mut received = Vec::new();
            let mut from = 0;
            for to in at.into_iter().chain([stream.len()]) {
                received.extend(parser.feed(&stream[from..to]));
                from = to;
            }
            prop_assert_eq!(received, dispatch(&stream));
        }
    }

    #[test]
    #[ignore = "fuzz pass, about 12 s: CI runs it with --include-ignored"]
    fn fuzz_pass() {
        fuzz("sse: encode and read back", events(), an_event_reads_back);
        fuzz("sse: event names", names(), a_name_is_checked);
    }
}
