//! `POST /broadcast`: what arrives is exactly what was published, IDs grow,
//! and every bad request is refused with its status and publishes nothing.

mod common;

use common::{Hub, Subscriber, id_order};
use serde_json::json;

fn ready(hub: &Hub) -> Subscriber {
    hub.subscribe_ready("/events").0
}

#[test]
fn text_round_trips_exactly() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    let cases = [
        "plain",
        "",
        "two\nlines",
        "trailing break\n",
        "\nleading break",
        "\n",
        "   spaces kept   ",
        ":looks like a comment",
        "data: looks like a field",
        "unicode: héllo — 你好 🎉",
        "tab\tand \u{7f} control",
        "NUL \0 inside",
    ];
    for text in cases {
        hub.publish(json!({ "message": text }));
        let event = client.next_event();
        assert_eq!(event.event, "message");
        assert_eq!(event.data, text, "published {text:?}");
    }
}

#[test]
fn every_kind_of_line_break_arrives_as_lf() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    for (sent, received) in [
        ("a\r\nb", "a\nb"),
        ("a\rb", "a\nb"),
        ("a\r\n\r\nb", "a\n\nb"),
        ("x\revent: evil\rid: 666", "x\nevent: evil\nid: 666"),
        ("end\r", "end\n"),
    ] {
        let (id, _) = hub.publish(json!({ "message": sent }));
        let event = client.next_event();
        assert_eq!(event.data, received);
        assert_eq!(event.event, "message", "a CR must not inject a field");
        assert_eq!(event.id.as_deref(), Some(id.as_str()));
    }
}

#[test]
fn json_values_arrive_as_compact_json_text() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    for (message, text) in [
        (
            json!({"a": [1, 2, {"b": null}]}),
            r#"{"a":[1,2,{"b":null}]}"#,
        ),
        (json!([1, "two"]), r#"[1,"two"]"#),
        (json!(null), "null"),
        (json!(false), "false"),
        (json!(-12.5), "-12.5"),
        (json!({"s": "line\nbreak"}), r#"{"s":"line\nbreak"}"#),
    ] {
        hub.publish(json!({ "message": message }));
        assert_eq!(client.next_event().data, text);
    }
}

#[test]
fn big_numbers_keep_their_digits() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    let reply = hub.post(r#"{"message": {"n": 123456789012345678901234567890}}"#);
    assert_eq!(reply.status, 200);
    assert_eq!(
        client.next_event().data,
        r#"{"n":123456789012345678901234567890}"#
    );
}

#[test]
fn named_events_carry_their_name() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    hub.publish(json!({ "message": "t", "event": "temperature" }));
    let event = client.next_event();
    assert_eq!(event.event, "temperature");
    assert_eq!(event.data, "t");
}

#[test]
fn ids_have_the_documented_form_and_strictly_increase() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    let mut last: Option<(u64, u64)> = None;
    for i in 0..300 {
        let (id, clients) = hub.publish(json!({ "message": i.to_string() }));
        assert_eq!(clients, 1);
        let parsed = id_order(&id);
        assert!(last.is_none_or(|l| parsed > l), "{id} after {last:?}");
        last = Some(parsed);
        assert_eq!(client.next_event().id(), id);
    }
}

#[test]
fn ids_keep_growing_across_a_restart() {
    let mut hub = Hub::start(&[]);
    let (before, _) = hub.publish(json!({ "message": "x" }));
    hub.terminate();
    let hub = Hub::start(&[]);
    let (after, _) = hub.publish(json!({ "message": "y" }));
    assert!(id_order(&after) > id_order(&before), "{after} <= {before}");
}

#[test]
fn any_content_type_is_accepted_if_the_body_is_json() {
    let hub = Hub::start(&[]);
    let body = br#"{"message":"typed"}"#;
    for content_type in [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
    ] {
        let reply = hub.request(
            "POST",
            "/broadcast",
            &[("Content-Type", content_type)],
            body,
        );
        assert_eq!(reply.status, 200, "{content_type}");
    }
}

#[test]
fn the_reply_counts_only_recipients() {
    let hub = Hub::start(&[]);
    let _everyone = ready(&hub);
    let (_news, _) = hub.subscribe_ready("/events?channel=news");
    assert_eq!(hub.publish(json!({ "message": "all" })).1, 2);
    assert_eq!(
        hub.publish(json!({ "message": "n", "channel": "news" })).1,
        1
    );
    assert_eq!(
        hub.publish(json!({ "message": "s", "channel": "sport" })).1,
        0
    );
}

#[test]
fn bad_publishes_are_refused_and_publish_nothing() {
    let hub = Hub::start(&["--max-body", "1000"]);
    let mut client = ready(&hub);
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(2000));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"".to_vec(), 400, "not valid JSON"),
        (b"not json".to_vec(), 400, "not valid JSON"),
        (b"{\"message\":".to_vec(), 400, "not valid JSON"),
        (b"{\"message\":\"\\ud800\"}".to_vec(), 400, "not valid JSON"),
        (b"{\"message\": \"\xff\"}".to_vec(), 400, "UTF-8"),
        (
            b"[1]".to_vec(),
            400,
            "batch element 0: body must be a JSON object",
        ),
        (
            br#"[{"message":"fine"},{"message":"m","event":"gap"}]"#.to_vec(),
            400,
            "batch element 1: event name is reserved",
        ),
        (b"\"message\"".to_vec(), 400, "JSON object"),
        (b"null".to_vec(), 400, "JSON object"),
        (b"{}".to_vec(), 400, "missing field \"message\""),
        (b"{\"msg\":\"x\"}".to_vec(), 400, "unknown field \"msg\""),
        (
            br#"{"message":"for user 42 only","chanel":"user:42"}"#.to_vec(),
            400,
            "unknown field \"chanel\"",
        ),
        (
            br#"{"message":"m","event":"a\nb"}"#.to_vec(),
            400,
            "CR, LF or NUL",
        ),
        (br#"{"message":"m","event":""}"#.to_vec(), 400, "event name"),
        (
            br#"{"message":"m","event":"connection"}"#.to_vec(),
            400,
            "reserved",
        ),
        (
            br#"{"message":"m","event":7}"#.to_vec(),
            400,
            "must be a string",
        ),
        (
            br#"{"message":"m","channel":"no spaces"}"#.to_vec(),
            400,
            "channel name",
        ),
        (
            br#"{"message":"m","channel":{}}"#.to_vec(),
            400,
            "\"channel\" must be a string",
        ),
        // A field given twice: the last must not silently win (this one
        // would otherwise go to everyone).
        (
            br#"{"message":"m","channel":"a","channel":null}"#.to_vec(),
            400,
            "field \"channel\" is given twice",
        ),
        (
            br#"{"message":"m","chan\u006eel":"a","channel":"b"}"#.to_vec(),
            400,
            "field \"channel\" is given twice",
        ),
        (
            br#"[{"message":"ok"},{"message":"a","message":"b"}]"#.to_vec(),
            400,
            "batch element 1: field \"message\" is given twice",
        ),
        (big.into_bytes(), 413, "larger than the limit of 1000 bytes"),
    ];
    for (body, status, reason) in cases {
        let reply = hub.request("POST", "/broadcast", &[], &body);
        reply.assert_error(status, reason, &String::from_utf8_lossy(&body));
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let reply = hub.request(method, "/broadcast", &[], b"{\"message\":\"x\"}");
        reply.assert_error(405, method, method);
        assert_eq!(reply.header("Allow"), Some("POST, OPTIONS"), "{method}");
    }
    assert_eq!(hub.stats()["published"], 0);
    assert_eq!(hub.stats()["history"], 0);
    // The first thing the subscriber sees is the one good message after all
    // of the above.
    hub.publish_text("the only one");
    assert_eq!(client.next_event().data, "the only one");
}

#[test]
fn a_batch_is_published_in_order_as_one_step() {
    let hub = Hub::start(&[]);
    let mut everyone = ready(&hub);
    let (mut news, _) = hub.subscribe_ready("/events?channel=news");
    let (_nobody, _) = hub.subscribe_ready("/events?channel=quiet");
    let reply = hub.post(
        &json!([
            {"message": "one"},
            {"message": {"two": 2}, "event": "reading", "channel": "news"},
            {"message": "three", "channel": "news"},
        ])
        .to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let ids: Vec<&str> = body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("an id"))
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(common::id_order(ids[0]) < common::id_order(ids[1]));
    assert!(common::id_order(ids[1]) < common::id_order(ids[2]));
    // All three subscribers got the first; the batch counts each once.
    assert_eq!(body["clients"], 3);

    let got = news.events(3);
    let seen: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|e| (e.event.as_str(), e.data.as_str(), e.id()))
        .collect();
    assert_eq!(
        seen,
        [
            ("message", "one", ids[0]),
            ("reading", "{\"two\":2}", ids[1]),
            ("message", "three", ids[2]),
        ]
    );
    assert_eq!(everyone.next_event().data, "one");
    hub.publish_text("after");
    assert_eq!(
        everyone.next_event().data,
        "after",
        "the channel's went elsewhere"
    );
    assert_eq!(hub.stats()["published"], 4);
}

#[test]
fn an_empty_batch_publishes_nothing() {
    let hub = Hub::start(&[]);
    let reply = hub.post("[]");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"ids": [], "clients": 0}));
    assert_eq!(hub.stats()["published"], 0);
}

/// A publish with the given raw head fields (each `Name: value\r\n`), on a
/// connection of its own; the reply's status.
fn publish_with_head(hub: &Hub, fields: &str) -> u16 {
    let body = r#"{"message":"from a page"}"#;
    let raw = format!(
        "POST /broadcast HTTP/1.1\r\n{fields}Content-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    hub.exchange(raw.as_bytes()).expect("a reply").status
}

/// With no token configured, a browser page on another site cannot publish
/// through its visitor's browser (SPEC "POST /broadcast", cross-site
/// publishing); the hub's own pages, a trusted `--cors-origin` and clients
/// that send no `Origin` (curl, servers) can.
#[test]
fn a_page_on_another_site_cannot_publish_to_a_hub_without_tokens() {
    let hub = Hub::start(&[]);
    let mut subscriber = ready(&hub);
    let port = hub.addr.port();
    let own = format!("Host: localhost:{port}\r\n");
    let refused = [
        format!("{own}Origin: https://evil.example\r\n"),
        format!("{own}Origin: null\r\n"),
        format!("{own}Origin: http://localhost:{}\r\n", port + 1),
        format!("{own}Origin: https://localhost:{port}\r\n"),
        format!("{own}Origin: http://localhost.evil.example:{port}\r\n"),
        format!("{own}Origin: http://localhost:{port}/path\r\n"),
        format!("{own}Origin: http://localhost:{port}\r\nX-Forwarded-Proto: https\r\n"),
    ];
    for fields in &refused {
        assert_eq!(publish_with_head(&hub, fields), 403, "{fields:?}");
    }
    let reply = hub.request(
        "POST",
        "/broadcast",
        &[("Origin", "https://evil.example")],
        br#"{"message":"x"}"#,
    );
    reply.assert_error(403, "cross-site publish refused", "an evil origin");
    assert_eq!(hub.stats()["published"], 0, "a refused publish went out");

    let allowed = [
        own.clone(),
        format!("{own}Origin: http://localhost:{port}\r\n"),
        format!("{own}Origin: HTTP://LOCALHOST:{port}\r\n"),
        format!("{own}Origin: https://localhost:{port}\r\nX-Forwarded-Proto: https\r\n"),
        "Host: hub.example\r\nOrigin: https://hub.example\r\nX-Forwarded-Proto: https\r\n"
            .to_owned(),
        "Host: hub.example:80\r\nOrigin: http://hub.example\r\n".to_owned(),
    ];
    for fields in &allowed {
        assert_eq!(publish_with_head(&hub, fields), 200, "{fields:?}");
        assert_eq!(subscriber.next_event().data, "from a page", "{fields:?}");
    }
    assert_eq!(hub.stats()["published"], allowed.len());
}

/// A trusted `--cors-origin` may publish without a token; a token makes
/// the origin irrelevant, since a page elsewhere cannot read it.
#[test]
fn a_trusted_origin_or_a_token_may_publish_cross_site() {
    let hub = Hub::start(&["--cors-origin", "https://app.example"]);
    let own = format!("Host: {}\r\n", hub.addr);
    let trusted = format!("{own}Origin: https://app.example\r\n");
    assert_eq!(publish_with_head(&hub, &trusted), 200);
    let other = format!("{own}Origin: https://other.example\r\n");
    assert_eq!(publish_with_head(&hub, &other), 403);

    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &[],
        &[("SSE_HUB_PUBLISH_TOKEN", "secret-token")],
    );
    let own = format!("Host: {}\r\n", hub.addr);
    let with_token =
        format!("{own}Origin: https://other.example\r\nAuthorization: Bearer secret-token\r\n");
    assert_eq!(publish_with_head(&hub, &with_token), 200);
    let without = format!("{own}Origin: https://other.example\r\n");
    assert_eq!(publish_with_head(&hub, &without), 401);
}

/// `Idempotency-Key`: a retry with the same key publishes nothing and gets
/// the first reply again, marked `Idempotent-Replayed: true`; another key
/// publishes; a refused publish does not use up its key.
#[test]
fn a_retry_with_the_same_idempotency_key_publishes_once() {
    let hub = Hub::start(&[]);
    let mut client = ready(&hub);
    let send = |key: &str, body: &str| {
        hub.request(
            "POST",
            "/broadcast",
            &[("Idempotency-Key", key)],
            body.as_bytes(),
        )
    };
    let first = send("order-42", r#"{"message":"charged"}"#);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let retry = send("order-42", r#"{"message":"charged"}"#);
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(retry.text(), first.text(), "the first reply, as it was");
    let other = send("order-43", r#"{"message":"another"}"#);
    assert_eq!(other.status, 200);
    assert_ne!(other.json()["id"], first.json()["id"]);

    // A publish that was refused leaves its key free for the retry.
    assert_eq!(
        send("batch-1", r#"{"message":"x","chanel":"typo"}"#).status,
        400
    );
    let fixed = send("batch-1", r#"[{"message":"b1"},{"message":"b2"}]"#);
    assert_eq!(fixed.status, 200);
    assert_eq!(fixed.header("Idempotent-Replayed"), None);
    assert_eq!(send("batch-1", "[]").text(), fixed.text());

    let got: Vec<String> = client.events(4).into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["charged", "another", "b1", "b2"]);
    assert_eq!(hub.stats()["published"], 4);

    // Keys are 1 to 128 visible ASCII characters, given once.
    for bad in ["", "has space", &"k".repeat(129)] {
        let reply = send(bad, r#"{"message":"never"}"#);
        reply.assert_error(400, "Idempotency-Key must be", bad);
    }
    let twice = hub.request(
        "POST",
        "/broadcast",
        &[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
        br#"{"message":"never"}"#,
    );
    twice.assert_error(400, "given twice", "two keys");
    assert_eq!(hub.stats()["published"], 4);
}
