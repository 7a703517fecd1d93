//! The body of a publish, as `POST /broadcast` takes it: a JSON object
//! `{"message": ..., "event": "...", "channel": "..."}`, or an array of up
//! to 1,000 of them (a batch, published as one step).
//!
//! Checked at the boundary, all or nothing: a body that parses is a list of
//! valid [`Message`]s, and any fault names the field, or the index of the
//! bad element of a batch. A field other than those three is a fault too,
//! so a misspelt `channel` never sends a message to everyone.
//!
//! A `message` that is a string is sent as it is; any other JSON value is
//! sent as its JSON text with the whitespace between tokens removed, and
//! nothing else changed: numbers keep their digits, objects their key
//! order, strings their escapes. (The text is read as a raw value and
//! compacted here, rather than parsed into a `serde_json::Value` and printed
//! again, which would need serde_json features that change every other
//! user of serde_json in the program.)

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::core::channel::Channel;
use crate::core::hub::{Hub, Message};
use crate::core::sse::Event;
use crate::error::Error;

/// Most messages in one batch body.
pub const MAX_BATCH_MESSAGES: usize = 1000;

/// A parsed publish body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishBody {
    /// A JSON object: one message.
    One(Message),
    /// A JSON array of objects: a batch, in order.
    Batch(Vec<Message>),
}

impl PublishBody {
    /// Reads a publish body (any `Content-Type`; UTF-8, a leading byte
    /// order mark ignored).
    ///
    /// # Errors
    ///
    /// The first thing wrong with the body, as an [`Error`] whose text tells
    /// the publisher what to fix; in a batch, [`Error::InBatch`] with the
    /// index of the bad element.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::PublishBody;
    ///
    /// let body = br#"{"message": {"temp": 21.50, "unit": "C"}, "event": "reading"}"#;
    /// let PublishBody::One(message) = PublishBody::parse(body)? else { unreachable!() };
    /// assert_eq!(message.event.data(), r#"{"temp":21.50,"unit":"C"}"#);
    ///
    /// let misspelt = PublishBody::parse(br#"{"message": "hi", "chanel": "user:42"}"#);
    /// assert_eq!(misspelt.unwrap_err().to_string(), "unknown field \"chanel\": the fields are message, event and channel");
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn parse(body: &[u8]) -> Result<PublishBody, Error> {
        let text = std::str::from_utf8(body).map_err(|_| Error::BodyNotUtf8)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| Error::BodyNotJson(e.to_string()))?;
        match raw.get().as_bytes().first() {
            Some(b'{') => Ok(PublishBody::One(message(raw)?)),
            Some(b'[') => {
                let elements: Vec<&RawValue> = serde_json::from_str(raw.get())
                    .map_err(|e| Error::BodyNotJson(e.to_string()))?;
                if elements.len() > MAX_BATCH_MESSAGES {
                    return Err(Error::TooManyMessages {
                        limit: MAX_BATCH_MESSAGES,
                    });
                }
                let batch = elements
                    .into_iter()
                    .enumerate()
                    .map(|(index, raw)| {
                        message(raw).map_err(|error| Error::InBatch {
                            index,
                            error: Box::new(error),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(PublishBody::Batch(batch))
            }
            _ => Err(Error::BodyNotAnObject),
        }
    }

    /// Publishes the body's messages through `hub`, as one step, and
    /// returns what `POST /broadcast` answers: `{"id":"<id>","clients":<n>}`
    /// for one message, `{"ids":[...],"clients":<n>}` for a batch.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] if the hub has stopped; then nothing was
    /// published.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Hub, HubConfig, PublishBody};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let body = PublishBody::parse(br#"[{"message": "a"}, {"message": "b"}]"#)?;
    /// let reply = body.publish(&hub)?;
    /// assert!(reply.starts_with(r#"{"ids":["#) && reply.ends_with(r#"],"clients":0}"#));
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn publish(&self, hub: &Hub) -> Result<String, Error> {
        Ok(match self {
            PublishBody::One(message) => hub
                .publish(&message.event, message.channel.as_ref())?
                .to_json(),
            PublishBody::Batch(batch) => hub.publish_batch(batch)?.to_json(),
        })
    }

    /// The messages, one or many, in order.
    pub fn messages(&self) -> &[Message] {
        match self {
            PublishBody::One(message) => std::slice::from_ref(message),
            PublishBody::Batch(batch) => batch,
        }
    }
}

/// One message from a JSON object.
fn message(raw: &RawValue) -> Result<Message, Error> {
    if !raw.get().starts_with('{') {
        return Err(Error::BodyNotAnObject);
    }
    let fields: Fields =
        serde_json::from_str(raw.get()).map_err(|e| Error::BodyNotJson(e.to_string()))?;
    let fields = match fields {
        Fields::Once(fields) => fields,
        Fields::Twice(name) => return Err(Error::DuplicateField(name)),
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "message" | "event" | "channel"))
    {
        return Err(Error::UnknownField(unknown.clone()));
    }
    let data = match fields.get("message") {
        None => return Err(Error::MissingMessage),
        Some(raw) => match string(raw) {
            Some(text) => text?,
            None => compact(raw.get())?,
        },
    };
    let event = match fields.get("event").filter(|raw| !is_null(raw)) {
        None => Event::new(data),
        Some(raw) => match string(raw) {
            Some(name) => Event::new(data).with_name(&name?)?,
            None => return Err(Error::EventNotAString),
        },
    };
    let channel = match fields.get("channel").filter(|raw| !is_null(raw)) {
        None => None,
        Some(raw) => match string(raw) {
            Some(name) => Some(Channel::new(&name?)?),
            None => return Err(Error::ChannelNotAString),
        },
    };
    Ok(Message { event, channel })
}

/// A JSON object's fields, each name once: a name given twice (after
/// unescaping, so `"chan\u006eel"` is `channel`) is refused rather than
/// letting the last one win, since a proxy or a log may have read the first
/// (`{"channel":"a","channel":null}` would otherwise go to everyone).
enum Fields<'a> {
    /// Every name once.
    Once(BTreeMap<String, &'a RawValue>),
    /// This name came twice.
    Twice(String),
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = BTreeMap::new();
                let mut twice = None;
                // Read to the end either way: the rest must still be JSON.
                while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
                    match fields.entry(name) {
                        Entry::Occupied(seen) => {
                            twice.get_or_insert_with(|| seen.key().clone());
                        }
                        Entry::Vacant(new) => {
                            new.insert(value);
                        }
                    }
                }
                Ok(twice.map_or(Fields::Once(fields), Fields::Twice))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// The text of a JSON string, or `None` if the value is not a string.
fn string(raw: &RawValue) -> Option<Result<String, Error>> {
    raw.get().starts_with('"').then(|| {
        serde_json::from_str::<String>(raw.get()).map_err(|e| Error::BodyNotJson(e.to_string()))
    })
}

/// Deepest nesting of arrays and objects accepted in a message, as deep as
/// serde_json goes when it parses a value.
const MAX_DEPTH: usize = 128;

/// Valid JSON text without the whitespace between its tokens. Multi-byte
/// characters never contain the ASCII bytes looked at here, so working on
/// bytes keeps the text UTF-8.
///
/// # Errors
///
/// [`Error::BodyNotJson`] past [`MAX_DEPTH`] levels of nesting.
fn compact(json: &str) -> Result<String, Error> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut depth = 0usize;
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            match b {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_DEPTH {
                return Err(Error::BodyNotJson(format!(
                    "nested deeper than {MAX_DEPTH} levels"
                )));
            }
            out.push(b);
        }
    }
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Message {
        match PublishBody::parse(body.as_bytes()).unwrap() {
            PublishBody::One(message) => message,
            PublishBody::Batch(_) => panic!("a batch"),
        }
    }

    fn data_of(body: &str) -> String {
        one(body).event.data().to_owned()
    }

    #[test]
    fn strings_go_as_they_are_and_other_values_as_compact_json() {
        assert_eq!(data_of(r#"{"message": "a\nb"}"#), "a\nb");
        assert_eq!(data_of(r#"{"message": {"x": [1, 2]}}"#), r#"{"x":[1,2]}"#);
        assert_eq!(data_of(r#"{"message": null}"#), "null");
        assert_eq!(data_of(r#"{"message": true}"#), "true");
        assert_eq!(data_of(r#"{"message": ""}"#), "");
        assert_eq!(
            data_of("{\"message\": [\"a b\", \" \\\" \", {\"k\" :\t\"v\\\\\"}]}"),
            "[\"a b\",\" \\\" \",{\"k\":\"v\\\\\"}]"
        );
    }

    #[test]
    fn keys_keep_their_order() {
        assert_eq!(
            data_of(r#"{"message": {"z": 1, "a": {"y": 2, "b": 3}}}"#),
            r#"{"z":1,"a":{"y":2,"b":3}}"#
        );
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(
            data_of(r#"{"message": 12345678901234567890123}"#),
            "12345678901234567890123"
        );
        assert_eq!(data_of(r#"{"message": 0.1}"#), "0.1");
        assert_eq!(data_of(r#"{"message": [1.50, 2e10]}"#), "[1.50,2e10]");
    }

    #[test]
    fn event_and_channel_are_optional_and_checked() {
        let message = one(r#"{"message":"m","event":"e","channel":"c"}"#);
        assert_eq!(message.event.name().unwrap().as_str(), "e");
        assert_eq!(message.channel.unwrap().as_str(), "c");
        let message = one(r#"{"message":"m","event":null,"channel":null}"#);
        assert!(message.event.name().is_none() && message.channel.is_none());
    }

    #[test]
    fn a_batch_is_every_element_in_order() {
        let body = br#"[{"message":"a"},{"message":2,"channel":"c"}]"#;
        let PublishBody::Batch(batch) = PublishBody::parse(body).unwrap() else {
            panic!("not a batch")
        };
        let datas: Vec<&str> = batch.iter().map(|m| m.event.data()).collect();
        assert_eq!(datas, ["a", "2"]);
        assert_eq!(batch[1].channel.as_ref().unwrap().as_str(), "c");
        assert_eq!(
            PublishBody::parse(b"[]").unwrap(),
            PublishBody::Batch(Vec::new())
        );
    }

    #[test]
    fn a_bad_element_names_its_index() {
        let error = PublishBody::parse(br#"[{"message":"a"},{"mesage":"b"}]"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "batch element 1: unknown field \"mesage\": the fields are message, event and channel"
        );
        let error = PublishBody::parse(br#"[{"message":"a"}, 5]"#).unwrap_err();
        assert!(
            error.to_string().starts_with("batch element 1: "),
            "{error}"
        );
    }

    #[test]
    fn a_batch_has_a_limit() {
        let body = format!("[{}]", vec![r#"{"message":1}"#; 1001].join(","));
        assert!(matches!(
            PublishBody::parse(body.as_bytes()),
            Err(Error::TooManyMessages { limit: 1000 })
        ));
    }

    #[test]
    fn a_field_given_twice_is_refused_whatever_its_spelling() {
        for body in [
            r#"{"channel":"a","message":"m","channel":null}"#,
            r#"{"message":"m","chan\u006eel":"a","channel":"a"}"#,
            r#"{"message":"a","message":"a"}"#,
        ] {
            let error = PublishBody::parse(body.as_bytes()).err();
            assert!(
                matches!(error, Some(Error::DuplicateField(_))),
                "{body}: {error:?}"
            );
        }
        // Inside a message's JSON value, a repeated key is the message's
        // own business.
        assert!(PublishBody::parse(br#"{"message":{"a":1,"a":2}}"#).is_ok());
    }

    #[test]
    fn every_bad_body_says_what_is_wrong() {
        let cases: [(&[u8], &str); 13] = [
            (b"\xff\xfe", "UTF-8"),
            (b"", "not valid JSON"),
            (b"{", "not valid JSON"),
            (b"[1]", "batch element 0: body must be a JSON object"),
            (b"\"hi\"", "must be a JSON object"),
            (br#"{"msg":"x"}"#, "unknown field \"msg\""),
            (br#"{"event":"x"}"#, "missing field \"message\""),
            (
                br#"{"message":"x","chanel":"c"}"#,
                "unknown field \"chanel\"",
            ),
            (
                br#"{"message":"x","event":5}"#,
                "\"event\" must be a string",
            ),
            (br#"{"message":"x","event":"gap"}"#, "reserved"),
            (br#"{"message":"x","event":"a\nb"}"#, "CR, LF or NUL"),
            (br#"{"message":"x","channel":"a b"}"#, "channel name"),
            (
                br#"{"message":"x","channel":[]}"#,
                "\"channel\" must be a string",
            ),
        ];
        for (body, expected) in cases {
            let error = PublishBody::parse(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{body:?}: {error}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!(
            "{{\"message\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(
            PublishBody::parse(deep.as_bytes()),
            Err(Error::BodyNotJson(_))
        ));
    }

    #[test]
    fn a_bom_is_tolerated() {
        assert_eq!(data_of("\u{feff}{\"message\":\"x\"}"), "x");
    }
}

/// Property tests for the publish body: no input makes `parse` panic, and
/// every JSON object is accepted or refused exactly as the SPEC says, with
/// an accepted one always making a valid event.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::testkit::{as_received, dispatch, fuzz, tricky_text};

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            tricky_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((keys(), inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    fn keys() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("message".to_owned()),
            Just("event".to_owned()),
            Just("channel".to_owned()),
            tricky_text(),
        ]
    }

    /// A name for `event` or `channel`: valid for one or both, invalid, or
    /// not a string at all.
    fn name_field() -> impl Strategy<Value = Option<Value>> {
        prop::option::of(prop_oneof![
            3 => "[a-z][a-z0-9:._/-]{0,10}".prop_map(Value::String),
            1 => Just(Value::String("gap".to_owned())),
            1 => Just(Value::String(String::new())),
            1 => "[a-z]{60,70}".prop_map(Value::String),
            1 => tricky_text().prop_map(Value::String),
            1 => json_value(),
        ])
    }

    /// Publish bodies: mostly objects with the three fields in any state,
    /// sometimes any JSON value at all.
    fn bodies() -> impl Strategy<Value = Value> {
        let object = (
            prop::option::of(json_value()),
            name_field(),
            name_field(),
            prop::collection::vec((tricky_text(), json_value()), 0..3),
        )
            .prop_map(|(message, event, channel, extra)| {
                let mut fields = Map::new();
                for (key, value) in extra {
                    fields.insert(key, value);
                }
                for (key, value) in [("message", message), ("event", event), ("channel", channel)] {
                    match value {
                        Some(value) => fields.insert(key.to_owned(), value),
                        None => fields.remove(key),
                    };
                }
                Value::Object(fields)
            });
        prop_oneof![9 => object, 1 => json_value()]
    }

    /// The outcome the SPEC asks for, written out independently of `parse`:
    /// `Ok((data, event name, channel))` or the error's kind.
    fn expected(body: &Value) -> Result<(String, Option<String>, Option<String>), &'static str> {
        let Value::Object(fields) = body else {
            return Err("not an object");
        };
        if fields
            .keys()
            .any(|k| !matches!(k.as_str(), "message" | "event" | "channel"))
        {
            return Err("unknown field");
        }
        let data = match fields.get("message") {
            None => return Err("missing message"),
            Some(Value::String(text)) => text.clone(),
            Some(other) => serde_json::to_string(other).unwrap(),
        };
        let name_ok = |n: &str| {
            (1..=64).contains(&n.len())
                && !n.contains(['\r', '\n', '\0'])
                && n != "connection"
                && n != "gap"
        };
        let event = match fields.get("event") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) if name_ok(name) => Some(name.clone()),
            Some(Value::String(_)) => return Err("bad event name"),
            Some(_) => return Err("event not a string"),
        };
        let channel_ok = |n: &str| {
            (1..=64).contains(&n.len())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
        };
        let channel = match fields.get("channel") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) if channel_ok(name) => Some(name.clone()),
            Some(Value::String(_)) => return Err("bad channel name"),
            Some(_) => return Err("channel not a string"),
        };
        Ok((data, event, channel))
    }

    fn kind(error: &Error) -> &'static str {
        match error {
            Error::BodyNotAnObject => "not an object",
            Error::MissingMessage => "missing message",
            Error::InvalidEventName(_) => "bad event name",
            Error::EventNotAString => "event not a string",
            Error::InvalidChannel(_) => "bad channel name",
            Error::ChannelNotAString => "channel not a string",
            Error::BodyNotJson(_) => "not JSON",
            Error::BodyNotUtf8 => "not UTF-8",
            Error::UnknownField(_) => "unknown field",
            Error::InBatch { error, .. } => kind(error),
            Error::TooManyMessages { .. } => "too many messages",
            _ => "another error",
        }
    }

    fn want_data(
        want: &Result<(String, Option<String>, Option<String>), &'static str>,
    ) -> Result<String, &'static str> {
        match want {
            Ok((data, _, _)) => Ok(data.clone()),
            // A value that is not an object, alone or in a batch.
            Err(kind) => Err(kind),
        }
    }

    /// The single message of a body that must hold one.
    fn parse(body: &[u8]) -> Result<(Event, Option<Channel>), Error> {
        match PublishBody::parse(body) {
            Ok(PublishBody::One(message)) => Ok((message.event, message.channel)),
            Ok(PublishBody::Batch(_))
            | Err(Error::InBatch { .. } | Error::TooManyMessages { .. }) => {
                Err(Error::BodyNotAnObject)
            }
            Err(e) => Err(e),
        }
    }

    fn a_body_is_judged_as_documented(body: Value) -> Result<(), TestCaseError> {
        let text = serde_json::to_string(&body).unwrap();
        let got = parse(text.as_bytes())
            .map_err(|e| kind(&e))
            .map(|(event, channel)| {
                (
                    event.data().to_owned(),
                    event.name().map(|n| n.as_str().to_owned()),
                    channel.map(|c| c.as_str().to_owned()),
                )
            });
        // The same body as the only element of a batch.
        let in_batch = PublishBody::parse(format!("[{text}]").as_bytes())
            .map_err(|e| match e {
                Error::InBatch { index: 0, error } => kind(&error),
                other => kind(&other),
            })
            .map(|body| body.messages()[0].event.data().to_owned());
        prop_assert_eq!(in_batch, want_data(&expected(&body)));
        let want = expected(&body);
        prop_assert_eq!(&got, &want, "body {}", text);

        // Padding around the JSON, and a byte order mark, change nothing.
        let padded = format!("\u{feff} \n\t{text}\r\n ");
        let again = parse(padded.as_bytes())
            .map_err(|e| kind(&e))
            .map(|(e, _)| e.data().to_owned());
        prop_assert_eq!(again, want.clone().map(|(data, _, _)| data));

        // Cut short anywhere, it is refused.
        for cut in [0, text.len() / 2, text.len() - 1] {
            if text.is_char_boundary(cut) {
                prop_assert!(
                    parse(&text.as_bytes()[..cut]).is_err(),
                    "{:?}",
                    &text[..cut]
                );
            }
        }

        // An accepted body is one valid event on the wire.
        if let Ok((data, name, _)) = want {
            let (event, _) = parse(text.as_bytes()).unwrap();
            let on_the_wire = dispatch(&event.frame(None));
            prop_assert_eq!(on_the_wire.len(), 1);
            prop_assert_eq!(&on_the_wire[0].data, &as_received(&data));
            prop_assert_eq!(
                &on_the_wire[0].event_type,
                &name.unwrap_or_else(|| "message".to_owned())
            );
        }
        Ok(())
    }

    /// Bytes of any kind, and JSON texts with a byte changed, removed or
    /// inserted: `parse` answers, it never panics.
    fn raw_bodies() -> impl Strategy<Value = Vec<u8>> {
        let mutated = (bodies(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8).prop_map(
            |(body, at, byte, how)| {
                let mut bytes = serde_json::to_vec(&body).unwrap();
                let at = at.index(bytes.len() + 1);
                match how {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
                bytes
            },
        );
        prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated,]
    }

    fn raw_bytes_never_panic(bytes: Vec<u8>) -> Result<(), TestCaseError> {
        match parse(&bytes) {
            Ok((event, channel)) => {
                // Accepted: then it was a valid object and the event is sound.
                prop_assert!(std::str::from_utf8(&bytes).is_ok());
                prop_assert_eq!(dispatch(&event.frame(None)).len(), 1);
                if let Some(channel) = channel {
                    prop_assert!(Channel::new(channel.as_str()).is_ok());
                }
            }
            Err(e) => prop_assert_ne!(kind(&e), "another error", "{}", e),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn every_body_is_accepted_or_refused_as_documented(body in bodies()) {
            a_body_is_judged_as_documented(body)?;
        }

        #[test]
        fn no_bytes_make_parse_panic(bytes in raw_bodies()) {
            raw_bytes_never_panic(bytes)?;
        }
    }

    #[test]
    #[ignore = "fuzz pass, about 12 s: CI runs it with --include-ignored"]
    fn fuzz_pass() {
        fuzz(
            "broadcast: JSON bodies",
            bodies(),
            a_body_is_judged_as_documented,
        );
        fuzz("broadcast: raw bytes", raw_bodies(), raw_bytes_never_panic);
    }
}
