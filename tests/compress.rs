//! `--compress`: gzip event streams for clients that ask, over real
//! sockets, decoded as they arrive by a gzip decoder that is not the
//! server's zlib (flate2's default backend).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{Hub, Subscriber};
use flate2::write::GzDecoder;
use serde_json::{Value, json};

const GZIP: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br");

/// Request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// A JSON message of about 1 KiB, different for each `n`.
fn order(n: u64) -> Value {
    const NAMES: [&str; 5] = ["kettle", "teapot", "mug", "saucer", "spoon"];
    let lines: Vec<Value> = (0..8)
        .map(|i| {
            let name = NAMES[usize::try_from((n + i) % 5).unwrap()];
            json!({
                "sku": format!("SKU-{:05}", (n * 7919 + i * 104_729) % 100_000),
                "name": name,
                "quantity": (n + i) % 9 + 1,
                "price": format!("{}.{:02}", (n * 31 + i * 17) % 200, (n + i * 7) % 100),
            })
        })
        .collect();
    json!({ "order": n, "customer": format!("customer-{}", n % 97), "lines": lines })
}

fn subscribe_gzip(hub: &Hub) -> Subscriber {
    let client = hub.subscribe_with("/events", &[GZIP]);
    assert_eq!(client.status, 200);
    client
}

#[test]
fn each_event_decodes_before_the_next_is_published() {
    let hub = Hub::start(&["--compress"]);
    let mut client = subscribe_gzip(&hub);
    assert_eq!(client.header("Content-Encoding"), Some("gzip"));
    assert_eq!(client.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(client.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(client.next_event().event, "connection");

    // Nothing else is published until the event decodes: an event held
    // back in the compressor would hang here (and fail at the guard).
    for n in 0..20 {
        let message = order(n);
        let (id, _) = hub.publish(json!({ "message": message }));
        let event = client.next_event();
        assert_eq!(event.id(), id);
        assert_eq!(event.json(), message);
    }
}

#[test]
fn gzip_is_sent_only_when_offered_and_asked_for() {
    let with = Hub::start(&["--compress"]);
    let without = Hub::start(&[]);
    let cases: [(bool, &str, Headers, bool); 11] = [
        // Every Accept-Encoding field counts, as one list (RFC 9110 5.3).
        (
            true,
            "HTTP/1.1",
            &[("Accept-Encoding", "br"), ("Accept-Encoding", "gzip")],
            true,
        ),
        (
            true,
            "HTTP/1.1",
            &[("Accept-Encoding", "gzip"), ("Accept-Encoding", "gzip;q=0")],
            false,
        ),
        (true, "HTTP/1.1", &[GZIP], true),
        (true, "HTTP/1.1", &[("Accept-Encoding", "*")], true),
        (
            true,
            "HTTP/1.1",
            &[("accept-encoding", "br;q=1, GZip;q=0.5")],
            true,
        ),
        (true, "HTTP/1.1", &[], false),
        (true, "HTTP/1.1", &[("Accept-Encoding", "gzip;q=0")], false),
        (true, "HTTP/1.1", &[("Accept-Encoding", "identity")], false),
        (
            true,
            "HTTP/1.1",
            &[("Accept-Encoding", "*, gzip;q=0")],
            false,
        ),
        (true, "HTTP/1.0", &[GZIP], false),
        (false, "HTTP/1.1", &[GZIP], false),
    ];
    for (compress, version, headers, gzip) in cases {
        let what = format!("{version} {headers:?}, --compress {compress}");
        let hub = if compress { &with } else { &without };
        let mut client = Subscriber::open(
            hub.connect(),
            &hub.addr.to_string(),
            "/events",
            headers,
            version,
        );
        assert_eq!(client.status, 200, "{what}");
        let encoding = client.header("Content-Encoding");
        assert_eq!(encoding, gzip.then_some("gzip"), "{what}");
        // Whenever the hub compresses some streams, every stream's answer
        // depends on Accept-Encoding, and a cache must know it.
        let vary = compress.then_some("Accept-Encoding");
        assert_eq!(client.header("Vary"), vary, "{what}");
        assert_eq!(client.next_event().event, "connection", "{what}");
        let text = format!("for {what}");
        let published = hub.publish_text(&text);
        let event = client.next_event();
        assert_eq!(
            (event.id(), event.data.as_str()),
            (published.as_str(), text.as_str())
        );
        client.close();
    }
}

#[test]
fn the_environment_turns_it_on_too() {
    let hub = Hub::start_with_env("127.0.0.1:0", &[], &[("SSE_HUB_COMPRESS", "true")]);
    let client = subscribe_gzip(&hub);
    assert_eq!(client.header("Content-Encoding"), Some("gzip"));
}

#[test]
fn gzip_shrinks_json_messages() {
    let hub = Hub::start(&["--compress"]);
    let mut plain = hub.subscribe("/events");
    let mut gzip = subscribe_gzip(&hub);
    for client in [&mut plain, &mut gzip] {
        client.next_event();
    }
    for n in 0..30 {
        hub.publish(json!({ "message": order(n) }));
        for client in [&mut plain, &mut gzip] {
            client.next_event();
        }
    }
    assert!(
        gzip.wire_bytes * 2 < plain.wire_bytes,
        "gzip {} bytes, plain {} bytes",
        gzip.wire_bytes,
        plain.wire_bytes
    );
}

/// One chunk of a chunked body: its data, or `None` for the last chunk.
fn read_chunk(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).expect("a chunk-size line");
    let size = usize::from_str_radix(size.trim_end(), 16).expect("a chunk size");
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).expect("a whole chunk");
    assert_eq!(&data[size..], b"\r\n", "a chunk ends with CRLF");
    data.truncate(size);
    (size > 0).then_some(data)
}

#[test]
fn heartbeats_and_the_end_of_the_stream_are_whole_gzip_chunks() {
    let mut hub = Hub::start(&["--compress", "--heartbeat", "1"]);
    let socket = hub.connect();
    (&socket)
        .write_all(b"GET /events HTTP/1.1\r\nHost: hub\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(socket);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "no head: {head}");
    }
    assert!(head.contains("\r\nContent-Encoding: gzip\r\n"), "{head}");

    // Each chunk decodes, on its own, to exactly what it carries.
    let mut decoder = GzDecoder::new(Vec::new());
    let mut decode = |chunk: &[u8]| {
        decoder.write_all(chunk).unwrap();
        decoder.flush().unwrap();
        String::from_utf8(std::mem::take(decoder.get_mut())).unwrap()
    };
    let opening = decode(&read_chunk(&mut reader).expect("the opening"));
    assert!(opening.contains("\nevent: connection\n"), "{opening:?}");
    assert!(opening.ends_with("\n\n"), "{opening:?}");
    // The bare comment line, nothing after it.
    for _ in 0..2 {
        let chunk = read_chunk(&mut reader).expect("a heartbeat");
        assert_eq!(decode(&chunk), ": heartbeat\n");
    }

    // Shutdown: the end of the gzip member (no more text), then the last
    // chunk, then nothing.
    assert!(hub.terminate().success());
    while let Some(chunk) = read_chunk(&mut reader) {
        let text = decode(&chunk);
        assert!(text.is_empty() || text == ": heartbeat\n", "{text:?}");
    }
    decoder
        .try_finish()
        .expect("a whole gzip member, CRC and length right");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes after the last chunk: {rest:?}");
}

#[test]
fn the_last_message_before_shutdown_arrives_in_a_whole_member() {
    let mut hub = Hub::start(&["--compress"]);
    let mut client = subscribe_gzip(&hub);
    client.next_event();
    hub.publish_text("last words");
    assert!(hub.terminate().success());
    let rest = client.read_to_end();
    assert_eq!(rest.last().map(|e| e.data.as_str()), Some("last words"));
    assert!(client.ended_cleanly(), "the body ended with the last chunk");
    assert!(client.gzip_member_complete(), "the gzip member was ended");
}
