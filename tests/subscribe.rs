//! `GET /events`: the response head, the framing, and how every stream opens.

mod common;

use std::io::{Read, Write};

use common::{Hub, Item, Subscriber};

#[test]
fn the_response_head_is_exactly_what_clients_and_proxies_need() {
    let hub = Hub::start(&["--cors-origin", "https://app.example"]);
    let client = hub.subscribe("/events");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(client.header("Cache-Control"), Some("no-cache"));
    assert_eq!(client.header("Connection"), Some("keep-alive"));
    assert_eq!(client.header("X-Accel-Buffering"), Some("no"));
    assert_eq!(client.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(
        client.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(client.header("Content-Length"), None);
}

#[test]
fn a_stream_opens_with_the_connection_event_carrying_retry_and_the_resume_point() {
    let hub = Hub::start(&["--retry", "1500"]);
    let newest = hub.publish_text("before");
    let mut client = hub.subscribe("/events?channel=a&channel=b&channel=a");
    let hello = client.next_event();
    assert_eq!(client.retry, Some(1500));
    assert_eq!(hello.event, "connection");
    assert_eq!(
        hello.id.as_deref(),
        Some(newest.as_str()),
        "the resume point is the newest message"
    );
    let data = hello.json();
    assert!(data["client"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(data["channels"], serde_json::json!(["a", "b"]));
}

#[test]
fn before_any_publish_the_resume_point_is_the_start_id() {
    let hub = Hub::start(&[]);
    let (mut client, _) = hub.subscribe_ready("/events");
    let mut again = hub.subscribe("/events");
    let hello = again.next_event();
    let (ms, seq) = common::id_order(hello.id());
    assert_eq!(seq, 0, "the start ID is <start ms>-0");
    let first = hub.publish_text("first");
    assert!(common::id_order(&first) > (ms, seq));
    assert_eq!(again.next_event().data, "first");
    assert_eq!(client.next_event().data, "first");
}

#[test]
fn client_ids_differ_across_restarts() {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let hub = Hub::start(&[]);
        ids.push(hub.subscribe_ready("/events").1);
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn retry_zero_sends_no_retry_field() {
    let hub = Hub::start(&["--retry", "0"]);
    let mut client = hub.subscribe("/events");
    client.next_event();
    assert_eq!(client.retry, None);
}

#[test]
fn the_body_is_chunked_and_the_opening_is_one_chunk() {
    let hub = Hub::start(&["--retry", "0"]);
    let raw = read_raw(&hub, |raw| raw.ends_with("}\n\n\r\n"));
    let (_head, body) = raw.split_once("\r\n\r\n").unwrap();
    let (size, rest) = body.split_once("\r\n").expect("a chunk-size line");
    let size = usize::from_str_radix(size, 16).expect("hex chunk size");
    assert_eq!(rest.len(), size + 2, "{body:?}");
    let (id_line, rest) = rest.split_once('\n').unwrap();
    assert!(id_line.starts_with("id: "), "{id_line:?}");
    assert!(rest.starts_with("event: connection\ndata: {"));
    assert!(rest.ends_with("}\n\n\r\n"));
}

#[test]
fn http_1_0_gets_a_close_delimited_body() {
    let hub = Hub::start(&[]);
    let mut client = Subscriber::open(hub.connect(), "x", "/events", &[], "HTTP/1.0");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("Connection"), Some("close"));
    assert_eq!(client.header("Transfer-Encoding"), None);
    assert_eq!(client.next_event().event, "connection");
    hub.publish_text("over 1.0");
    assert_eq!(client.next_event().data, "over 1.0");
}

#[test]
fn an_idle_stream_gets_heartbeat_comments() {
    let hub = Hub::start(&["--heartbeat", "1"]);
    let mut client = hub.subscribe("/events");
    client.next_event();
    assert_eq!(
        client.next_item(),
        Some(Item::Comment("heartbeat".to_owned()))
    );
    assert_eq!(
        client.next_item(),
        Some(Item::Comment("heartbeat".to_owned()))
    );
}

#[test]
fn a_heartbeat_is_the_comment_line_alone() {
    let hub = Hub::start(&["--heartbeat", "1", "--retry", "0"]);
    let raw = read_raw(&hub, |raw| raw.contains(": heartbeat"));
    // A chunk of its own, with no empty line after the comment: some
    // clients report an empty line that ends no data as an empty message.
    assert!(raw.ends_with("\r\nc\r\n: heartbeat\n\r\n"), "{raw:?}");
}

#[test]
fn bad_channel_requests_get_400_with_a_reason() {
    let hub = Hub::start(&[]);
    let too_many: String = (0..33).map(|i| format!("channel=c{i}&")).collect();
    for (query, expected) in [
        ("channel=", "1 to 64 bytes"),
        ("channel=a%20b", "may only contain"),
        (&*format!("channel={}", "x".repeat(65)), "1 to 64 bytes"),
        (&*too_many, "at most 32"),
    ] {
        let reply = hub.get(&format!("/events?{query}"));
        assert_eq!(reply.status, 400, "{query}");
        assert!(
            reply.error().contains(expected),
            "{query}: {}",
            reply.error()
        );
    }
    assert_eq!(hub.stats()["clients"], 0);
}

#[test]
fn thirty_two_channels_with_repeats_are_fine() {
    let hub = Hub::start(&[]);
    let mut query: String = (0..32).map(|i| format!("channel=c{i}&")).collect();
    query.push_str("channel=c0&channel=c31");
    let (_client, _) = hub.subscribe_ready(&format!("/events?{query}"));
    assert_eq!(hub.stats()["channels"].as_object().unwrap().len(), 32);
}

#[test]
fn channel_names_are_percent_decoded() {
    let hub = Hub::start(&[]);
    let mut client = hub.subscribe("/events?channel=user%3A42%2Finbox");
    let hello = client.next_event();
    assert_eq!(
        hello.json()["channels"],
        serde_json::json!(["user:42/inbox"])
    );
}

#[test]
fn only_get_subscribes() {
    let hub = Hub::start(&[]);
    let reply = hub.request("POST", "/events", &[], b"");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("GET, OPTIONS"));
}

/// Opens `GET /events` by hand and returns the raw bytes of the response,
/// head and framing included, once `enough` says so.
fn read_raw(hub: &Hub, enough: impl Fn(&str) -> bool) -> String {
    let mut stream = hub.connect();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !enough(&String::from_utf8_lossy(&raw)) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(raw).unwrap()
}
