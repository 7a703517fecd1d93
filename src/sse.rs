//! The Server-Sent Events wire format: how one event becomes bytes.
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
//! a client joins them back with LF. An empty line ends an event.
//!
//! # Example
//!
//! ```
//! use sse_hub::{Event, EventId};
//!
//! let event = Event::new("first\nsecond").with_name("update")?;
//! let frame = event.frame(Some("1700000000000-0".parse::<EventId>()?));
//! assert_eq!(
//!     &frame[..],
//!     b"id: 1700000000000-0\nevent: update\ndata: first\ndata: second\n\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::Error;
use crate::event_id::EventId;

/// Longest event name accepted, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 64;

/// Event names the hub sends itself; publishers may not use them.
pub const RESERVED_EVENT_NAMES: [&str; 2] = ["connection", "gap"];

/// The keep-alive comment written to an idle stream. The empty line after it
/// dispatches nothing (a comment leaves the data buffer empty) but makes
/// proxies that forward whole events pass it on.
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// Encoded bytes of one event, ready for any number of sockets.
///
/// Cloning a `Frame` shares the bytes; it never copies them.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Arc<[u8]>);

impl Frame {
    /// Wraps bytes that already hold one or more complete events.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Frame {
        Frame(Arc::from(bytes))
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:?})", String::from_utf8_lossy(&self.0))
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
    pub fn new(name: &str) -> Result<EventName, Error> {
        let why = if name.is_empty() || name.len() > MAX_EVENT_NAME_LEN {
            "must be 1 to 64 bytes long"
        } else if name.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            "must not contain CR, LF or NUL"
        } else if RESERVED_EVENT_NAMES.contains(&name) {
            "is reserved: the hub sends `connection` and `gap` itself"
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
        if let Some(name) = &self.name {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_str().as_bytes());
            out.push(b'\n');
        }
        push_data_lines(&mut out, &self.data);
        out.push(b'\n');
        out
    }

    /// The whole event as a frame, with an `id:` line if `id` is given.
    pub fn frame(&self, id: Option<EventId>) -> Frame {
        let mut out = Vec::new();
        if let Some(id) = id {
            push_id_line(&mut out, id);
        }
        out.extend_from_slice(&self.encode_body());
        Frame::from_bytes(&out)
    }
}

/// An event the hub sends itself (`connection`, `gap`): a reserved name and
/// no `id:` line, so it does not move the client's last event ID.
pub(crate) fn control_event(name: &str, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + data.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    push_data_lines(&mut out, data);
    out.push(b'\n');
    out
}

/// Appends `id: <ms>-<seq>\n`.
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
pub(crate) fn push_data_lines(out: &mut Vec<u8>, data: &str) {
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
