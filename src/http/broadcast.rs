//! `POST /broadcast`: check the publisher, read and check the body, publish
//! through the hub, reply with the new ID.
//!
//! Checks run cheapest first and before anything is published: method,
//! bearer token (before the body is read, so an unauthenticated client
//! cannot make the server read a large body), declared size, body size as
//! read, UTF-8, JSON, fields. Any failure answers `{"error": ...}` and
//! publishes nothing.

use std::io::{self, Read};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tiny_http::{Method, Request};

use crate::channel::Channel;
use crate::error::Error;
use crate::sse::Event;

use super::reaper::Deadline;
use super::{Context, header, method_not_allowed, reply, reply_error, to_json};

/// The body of a successful publish reply.
#[derive(Serialize)]
struct Reply {
    id: String,
    clients: usize,
}

/// Answers one publish request. `deadline`, if the body may take time to
/// arrive, is the guard the router armed for it.
pub(super) fn publish(ctx: &Arc<Context>, mut request: Request, deadline: Option<&Deadline>) {
    if *request.method() != Method::Post {
        return method_not_allowed(ctx, request, "POST, OPTIONS");
    }
    if !authorized(ctx.config.publish_token.as_deref(), &request) {
        let challenge: Vec<_> = header("WWW-Authenticate", "Bearer").into_iter().collect();
        return reply_error(ctx, request, 401, &Error::Unauthorized, &challenge);
    }
    let body = match read_body(&mut request, ctx.config.max_body, deadline) {
        Ok(body) => body,
        Err(e) => return reply_error(ctx, request, status_of(&e), &e, &[]),
    };
    let (event, channel) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(e) => return reply_error(ctx, request, 400, &e, &[]),
    };
    match ctx.hub.publish(&event, channel.as_ref()) {
        Ok(published) => {
            let body = Reply {
                id: published.id.to_string(),
                clients: published.clients,
            };
            reply(
                ctx,
                request,
                200,
                "application/json",
                to_json(&body).into_bytes(),
                &[],
            );
        }
        Err(e) => reply_error(ctx, request, 503, &e, &[]),
    }
}

fn status_of(error: &Error) -> u16 {
    match error {
        Error::BodyTooLarge { .. } => 413,
        Error::BodyTimedOut => 408,
        _ => 400,
    }
}

/// True if no token is configured, or the request carries
/// `Authorization: Bearer <token>` with the right one.
fn authorized(token: Option<&str>, request: &Request) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().split_once(' '));
    match given {
        Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("Bearer") => {
            constant_time_eq(credentials.trim().as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}

/// Compares every byte whatever the first difference, so the time taken does
/// not tell an attacker how much of a guess was right. (The length is not
/// secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Reads at most `limit` bytes of body.
fn read_body(
    request: &mut Request,
    limit: usize,
    deadline: Option<&Deadline>,
) -> Result<Vec<u8>, Error> {
    let declared = request.body_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::BodyTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    let read = request
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body);
    let timed_out = read.as_ref().is_err_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    });
    if timed_out || deadline.is_some_and(Deadline::expired) {
        return Err(Error::BodyTimedOut);
    }
    read.map_err(Error::BodyUnreadable)?;
    if body.len() > limit {
        return Err(Error::BodyTooLarge { limit });
    }
    if declared.is_some_and(|n| body.len() < n) {
        let short = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "it ended before its Content-Length",
        );
        return Err(Error::BodyUnreadable(short));
    }
    Ok(body)
}

/// Parses a publish body: a JSON object with `message` (a string, sent as it
/// is, or any other JSON value, sent as its compact JSON text) and optional
/// `event` and `channel` strings (`null` counts as absent). Other fields are
/// ignored.
///
/// # Errors
///
/// The first thing wrong with the body, as an [`Error`] whose text tells the
/// publisher what to fix.
pub(crate) fn parse(body: &[u8]) -> Result<(Event, Option<Channel>), Error> {
    let text = std::str::from_utf8(body).map_err(|_| Error::BodyNotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|e| Error::BodyNotJson(e.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(Error::BodyNotAnObject);
    };
    let data = match fields.remove("message").ok_or(Error::MissingMessage)? {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let event = match fields.remove("event") {
        None | Some(Value::Null) => Event::new(data),
        Some(Value::String(name)) => Event::new(data).with_name(&name)?,
        Some(_) => return Err(Error::EventNotAString),
    };
    let channel = match fields.remove("channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(Channel::new(&name)?),
        Some(_) => return Err(Error::ChannelNotAString),
    };
    Ok((event, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_of(body: &str) -> String {
        parse(body.as_bytes()).unwrap().0.data().to_owned()
    }

    #[test]
    fn strings_go_as_they_are_and_other_values_as_compact_json() {
        assert_eq!(data_of(r#"{"message": "a\nb"}"#), "a\nb");
        assert_eq!(data_of(r#"{"message": {"x": [1, 2]}}"#), r#"{"x":[1,2]}"#);
        assert_eq!(data_of(r#"{"message": null}"#), "null");
        assert_eq!(data_of(r#"{"message": true}"#), "true");
        assert_eq!(data_of(r#"{"message": ""}"#), "");
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
    }

    #[test]
    fn event_and_channel_are_optional_and_checked() {
        let (event, channel) = parse(br#"{"message":"m","event":"e","channel":"c"}"#).unwrap();
        assert_eq!(event.name().unwrap().as_str(), "e");
        assert_eq!(channel.unwrap().as_str(), "c");
        let (event, channel) = parse(br#"{"message":"m","event":null,"channel":null}"#).unwrap();
        assert!(event.name().is_none() && channel.is_none());
    }

    #[test]
    fn every_bad_body_says_what_is_wrong() {
        let cases: [(&[u8], &str); 11] = [
            (b"\xff\xfe", "UTF-8"),
            (b"", "not valid JSON"),
            (b"{", "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (b"\"hi\"", "must be a JSON object"),
            (br#"{"msg":"x"}"#, "missing field \"message\""),
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
            let error = parse(body).unwrap_err().to_string();
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
        assert!(matches!(parse(deep.as_bytes()), Err(Error::BodyNotJson(_))));
    }

    #[test]
    fn a_bom_is_tolerated() {
        assert_eq!(data_of("\u{feff}{\"message\":\"x\"}"), "x");
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
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
    use crate::sse::properties::{as_received, dispatch, fuzz, tricky_text};

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
            _ => "another error",
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
