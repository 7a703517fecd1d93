//! The Redis stream: the commands the cluster sends, and the shape of an
//! entry.
//!
//! One entry is one message, with the fields
//!
//! ```text
//! message  the data, as the subscriber receives it (UTF-8)
//! event    the event name, if any
//! channel  the channel, if any
//! origin   <run>-<ticket>: the hub run and the publish that appended it
//! ```
//!
//! Plain fields rather than the encoded SSE bytes, so that any program can
//! publish with `XADD sse-hub * message hello`, and `redis-cli` shows what
//! was sent. Every node checks an entry as `POST /broadcast` checks a body
//! (an entry that breaks a rule is skipped, with a warning) and encodes it
//! itself, once per node.
//!
//! Appending is `XADD ... MAXLEN ~ N`, a batch inside one `MULTI`, so its
//! entries are adjacent and all are added or none. Reading is `XREAD
//! BLOCK` from the last entry seen (`reader.rs`), `XREVRANGE` for the recent
//! past when a node first reaches Redis, and `XRANGE` for a resume that
//! reaches past a node's memory. `XINFO STREAM` tells whether the stream
//! has dropped entries and which it still holds, which decides a `gap`.

use log::warn;
use redis::{Cmd, Connection, RedisError, Value};

use crate::core::channel::Channel;
use crate::core::event_id::EventId;
use crate::core::hub::Message;
use crate::core::sse::Event;
use crate::core::upstream::{Backfill, Incoming, Origin, Until};

/// Entries read at most per `XREAD` or `XRANGE` call.
pub(crate) const READ_COUNT: usize = 1000;

/// One entry, read and checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: EventId,
    pub(crate) event: Event,
    pub(crate) channel: Option<Channel>,
    pub(crate) origin: Option<Origin>,
}

impl Entry {
    /// The entry as the hub thread takes it; `run` is this hub's run tag,
    /// so that its own publishes are known again.
    pub(crate) fn into_incoming(self, run: u64) -> Incoming {
        Incoming {
            id: self.id,
            body: self.event.encode_body(),
            channel: self.channel,
            ticket: self.origin.filter(|o| o.run == run).map(|o| o.ticket),
        }
    }
}

/// The `XADD` of one message, tagged with `origin`.
pub(crate) fn xadd(key: &str, max_len: usize, message: &Message, origin: Origin) -> Cmd {
    let mut command = redis::cmd("XADD");
    command
        .arg(key)
        .arg("MAXLEN")
        .arg("~")
        .arg(max_len.max(1))
        .arg("*")
        .arg("message")
        .arg(message.event.data());
    if let Some(name) = message.event.name() {
        command.arg("event").arg(name.as_str());
    }
    if let Some(channel) = &message.channel {
        command.arg("channel").arg(channel.as_str());
    }
    command
        .arg("origin")
        .arg(format!("{:x}-{}", origin.run, origin.ticket));
    command
}

/// Sends `commands` (each an `XADD`) in one pipeline, one write and one
/// read; inside one `MULTI` if `atomic`, so that they are adjacent in the
/// stream and all are added or none. Returns the IDs Redis gave them.
pub(crate) fn append(
    connection: &mut Connection,
    commands: Vec<Cmd>,
    atomic: bool,
) -> Result<Vec<EventId>, RedisError> {
    let mut pipe = redis::pipe();
    if atomic {
        pipe.atomic();
    }
    for command in commands {
        pipe.add_command(command);
    }
    let ids: Vec<String> = pipe.query(connection)?;
    ids.iter()
        .map(|id| id.parse().map_err(|_| protocol_error("XADD", id)))
        .collect()
}

/// `XREAD BLOCK`: entries after `after`, waiting up to `block_ms` for one;
/// empty when none came. Alongside the entries, the ID of the last one
/// read, skipped ones included.
pub(crate) fn read_after(
    connection: &mut Connection,
    key: &str,
    after: EventId,
    block_ms: u64,
) -> Result<(Vec<Entry>, Option<EventId>), RedisError> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(key)
        .arg(after.to_string())
        .query(connection)?;
    // RESP2: [[key, entries]]; RESP3: {key: entries}; nil when none came.
    let entries = match reply {
        Value::Nil => return Ok((Vec::new(), None)),
        Value::Array(streams) => streams.into_iter().find_map(|stream| match stream {
            Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
            _ => None,
        }),
        Value::Map(streams) => streams.into_iter().next().map(|(_, entries)| entries),
        other => return Err(protocol_error("XREAD", &format!("{other:?}"))),
    };
    Ok(entries.map_or_else(|| (Vec::new(), None), entry_list))
}

/// `XREVRANGE + - COUNT n`: the newest `n` entries, oldest first, and the
/// ID of the newest one, skipped or not.
pub(crate) fn newest(
    connection: &mut Connection,
    key: &str,
    n: usize,
) -> Result<(Vec<Entry>, Option<EventId>), RedisError> {
    if n == 0 {
        return Ok((Vec::new(), None));
    }
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(n)
        .query(connection)?;
    // Newest first: the reader goes on after the first one, skipped or not.
    let newest = match &reply {
        Value::Array(items) => items.first().and_then(|item| match item {
            Value::Array(parts) => parts.first().and_then(text)?.parse().ok(),
            _ => None,
        }),
        _ => None,
    };
    let (mut entries, _) = entry_list(reply);
    entries.reverse();
    Ok((entries, newest))
}

/// What `XINFO STREAM` says of the stream's past: what it holds, and what
/// it may have dropped. All empty when the stream does not exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extent {
    /// The ID of `first-entry`: the oldest entry held.
    pub(crate) oldest: Option<EventId>,
    /// `last-generated-id`: the newest entry ever added.
    pub(crate) last_generated: Option<EventId>,
    /// `max-deleted-entry-id`: the newest entry removed by `XDEL` (Redis 7;
    /// trimming does not set it).
    pub(crate) max_deleted: Option<EventId>,
    /// Whether entries were dropped at all: more were added than are held
    /// (`entries-added` against `length`; assumed, before Redis 7).
    pub(crate) dropped_any: bool,
}

impl Extent {
    /// The newest ID the stream may have dropped. Trimming drops the oldest
    /// entries, so everything before the oldest one held may be gone;
    /// that is conservative, as a `gap` may be.
    pub(crate) fn dropped_through(&self) -> Option<EventId> {
        let trimmed = if self.dropped_any {
            match self.oldest {
                Some(oldest) => predecessor(oldest),
                None => self.last_generated,
            }
        } else {
            None
        };
        trimmed.max(self.max_deleted)
    }

    /// Whether the stream may have dropped an entry newer than `id`.
    pub(crate) fn lost_after(&self, id: EventId) -> bool {
        self.dropped_through().is_some_and(|dropped| dropped > id)
    }
}

/// The greatest ID below `id`, if any.
fn predecessor(id: EventId) -> Option<EventId> {
    match (id.ms(), id.seq()) {
        (0, 0) => None,
        (ms, 0) => Some(EventId::new(ms - 1, u64::MAX)),
        (ms, seq) => Some(EventId::new(ms, seq - 1)),
    }
}

/// `XINFO STREAM`.
pub(crate) fn extent(connection: &mut Connection, key: &str) -> Result<Extent, RedisError> {
    let reply: Result<Value, RedisError> =
        redis::cmd("XINFO").arg("STREAM").arg(key).query(connection);
    let reply = match reply {
        Ok(reply) => reply,
        // A stream nothing was ever added to does not exist.
        Err(e) if e.to_string().contains("no such key") => return Ok(Extent::default()),
        Err(e) => return Err(e),
    };
    let pairs = match pairs(reply) {
        Ok(pairs) => pairs,
        Err(other) => return Err(protocol_error("XINFO STREAM", &format!("{other:?}"))),
    };
    let id = |value: &Value| {
        text(value)
            .and_then(|id| id.parse().ok())
            .filter(|&id| id != EventId::new(0, 0))
    };
    let number = |value: &Value| match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    };
    let mut extent = Extent::default();
    let (mut length, mut added) = (None, None);
    for (name, value) in pairs {
        match text(&name).as_deref() {
            Some("length") => length = number(&value),
            Some("entries-added") => added = number(&value),
            Some("last-generated-id") => extent.last_generated = id(&value),
            Some("max-deleted-entry-id") => extent.max_deleted = id(&value),
            Some("first-entry") => {
                if let Value::Array(entry) = &value {
                    extent.oldest = entry.first().and_then(id);
                }
            }
            _ => {}
        }
    }
    extent.dropped_any = match (added, length) {
        (Some(added), Some(length)) => added > length,
        _ => true,
    };
    Ok(extent)
}

/// `XRANGE` after `after` up to `until`, in chunks, then `XINFO STREAM`:
/// the replay a resuming subscriber of `channels` is owed from the stream.
pub(crate) fn backfill(
    connection: &mut Connection,
    key: &str,
    after: EventId,
    until: Until,
    channels: &[Channel],
) -> Result<Backfill, RedisError> {
    let end = match until {
        Until::Before(id) => format!("({id}"),
        Until::Through(id) => id.to_string(),
    };
    let mut frames = Vec::new();
    let mut from = after;
    loop {
        let reply: Value = redis::cmd("XRANGE")
            .arg(key)
            .arg(format!("({from}"))
            .arg(&end)
            .arg("COUNT")
            .arg(READ_COUNT)
            .query(connection)?;
        let (entries, last) = entry_list(reply);
        for entry in entries {
            if entry.channel.as_ref().is_none_or(|c| channels.contains(c)) {
                frames.push(entry.event.frame(Some(entry.id)));
            }
        }
        match last {
            Some(last) if last > from => from = last,
            _ => break,
        }
    }
    let extent = extent(connection, key)?;
    let gap = extent.lost_after(after);
    Ok(Backfill {
        frames,
        gap,
        oldest: extent.oldest,
    })
}

/// Reads a list of entries (`[[id, [field, value, ...]], ...]`), skipping
/// those that break the rules; also returns the ID of the last entry in
/// the list, skipped or not, so a reader moves past a bad entry.
fn entry_list(reply: Value) -> (Vec<Entry>, Option<EventId>) {
    let Value::Array(items) = reply else {
        return (Vec::new(), None);
    };
    let mut entries = Vec::with_capacity(items.len());
    let mut last = None;
    for item in items {
        let Value::Array(mut parts) = item else {
            continue;
        };
        if parts.len() != 2 {
            continue;
        }
        let fields = parts.pop().unwrap_or(Value::Nil);
        let Some(id) = parts
            .pop()
            .as_ref()
            .and_then(text)
            .and_then(|t| t.parse::<EventId>().ok())
        else {
            continue;
        };
        last = Some(id);
        match entry(id, fields) {
            Ok(entry) => entries.push(entry),
            Err(why) => warn!("redis stream entry {id} skipped: {why}"),
        }
    }
    (entries, last)
}

/// The name-value pairs of a reply that is a map: RESP3 sends a map, RESP2
/// a flat list of names and values. Anything else comes back as it was.
fn pairs(value: Value) -> Result<Vec<(Value, Value)>, Value> {
    match value {
        Value::Map(pairs) => Ok(pairs),
        Value::Array(flat) => {
            let mut flat = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                pairs.push((name, value));
            }
            Ok(pairs)
        }
        other => Err(other),
    }
}

/// One entry from its ID and fields, checked as a publish body is.
fn entry(id: EventId, fields: Value) -> Result<Entry, String> {
    let Ok(pairs) = pairs(fields) else {
        return Err("its fields are not a list".to_owned());
    };
    let (mut message, mut name, mut channel, mut origin) = (None, None, None, None);
    for (field, value) in pairs {
        let Some(value) = into_text(value) else {
            return Err("a field's value is not UTF-8 text".to_owned());
        };
        match text(&field).as_deref() {
            Some("message") => message = Some(value),
            Some("event") => name = Some(value),
            Some("channel") => channel = Some(value),
            Some("origin") => origin = parse_origin(&value),
            _ => {} // other programs may keep their own fields beside ours
        }
    }
    let event = Event::new(message.ok_or("it has no field \"message\"")?);
    let event = match name {
        Some(name) => event.with_logged_name(&name).map_err(|e| e.to_string())?,
        None => event,
    };
    let channel = channel
        .map(|c| Channel::new(&c))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(Entry {
        id,
        event,
        channel,
        origin,
    })
}

/// `<run in hex>-<ticket>`.
fn parse_origin(text: &str) -> Option<Origin> {
    let (run, ticket) = text.split_once('-')?;
    Some(Origin {
        run: u64::from_str_radix(run, 16).ok()?,
        ticket: ticket.parse().ok()?,
    })
}

/// A reply value as text, if it is UTF-8 text, without copying it.
fn into_text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// A reply value as text, if it is UTF-8 text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn protocol_error(command: &'static str, got: &str) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Parse,
        "unexpected reply",
        format!("{command} answered {got}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn raw_entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn an_entry_reads_back_as_the_message_it_was() {
        let reply = Value::Array(vec![raw_entry(
            "1700000000000-3",
            &[
                "message",
                "hi\nthere",
                "event",
                "note",
                "channel",
                "news",
                "origin",
                "ff-7",
            ],
        )]);
        let (entries, last) = entry_list(reply);
        let id = EventId::new(1_700_000_000_000, 3);
        assert_eq!(last, Some(id));
        assert_eq!(
            entries,
            [Entry {
                id,
                event: Event::new("hi\nthere").with_name("note").unwrap(),
                channel: Some(Channel::new("news").unwrap()),
                origin: Some(Origin {
                    run: 0xff,
                    ticket: 7
                }),
            }]
        );
        let mine = entries.into_iter().next().unwrap().into_incoming(0xff);
        assert_eq!(mine.ticket, Some(7));
        assert_eq!(mine.body, b"event: note\ndata: hi\ndata: there\n\n");
    }

    #[test]
    fn an_entry_from_another_program_needs_only_a_message() {
        let (entries, _) = entry_list(Value::Array(vec![raw_entry(
            "5-0",
            &["message", "x", "by", "cron"],
        )]));
        assert_eq!(entries[0].event, Event::new("x"));
        assert_eq!(entries[0].origin, None);
        assert_eq!(
            entries.into_iter().next().unwrap().into_incoming(1).ticket,
            None
        );
    }

    #[test]
    fn entries_that_break_the_rules_are_skipped_but_still_move_the_reader_on() {
        let reply = Value::Array(vec![
            raw_entry("1-0", &["message", "ok"]),
            raw_entry("2-0", &["event", "no message"]),
            raw_entry("3-0", &["message", "x", "event", "gap"]),
            raw_entry("4-0", &["message", "x", "channel", "a b"]),
        ]);
        let (entries, last) = entry_list(reply);
        assert_eq!(entries.len(), 1);
        assert_eq!(last, Some(EventId::new(4, 0)));
    }

    #[test]
    fn what_a_trimmed_stream_may_have_lost() {
        let trimmed = Extent {
            oldest: Some(EventId::new(10, 0)),
            last_generated: Some(EventId::new(12, 0)),
            max_deleted: None,
            dropped_any: true,
        };
        assert_eq!(trimmed.dropped_through(), Some(EventId::new(9, u64::MAX)));
        assert!(trimmed.lost_after(EventId::new(9, 5)));
        assert!(!trimmed.lost_after(EventId::new(10, 0)));
        let whole = Extent {
            dropped_any: false,
            ..trimmed
        };
        assert!(
            !whole.lost_after(EventId::new(0, 0)),
            "nothing dropped, nothing lost"
        );
        let emptied = Extent {
            oldest: None,
            ..trimmed
        };
        assert!(emptied.lost_after(EventId::new(11, 0)));
        assert!(!emptied.lost_after(EventId::new(12, 0)));
        let deleted = Extent {
            max_deleted: Some(EventId::new(11, 3)),
            ..trimmed
        };
        assert!(deleted.lost_after(EventId::new(11, 0)), "XDEL counts too");
        assert!(!Extent::default().lost_after(EventId::new(1, 0)));
    }

    #[test]
    fn origins_read_back() {
        assert_eq!(
            parse_origin("1a2b-9"),
            Some(Origin {
                run: 0x1a2b,
                ticket: 9
            })
        );
        assert_eq!(parse_origin("zz-9"), None);
        assert_eq!(parse_origin("12"), None);
    }
}
