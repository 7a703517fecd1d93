//! An application that embeds sse-hub: it serves the hub's event stream
//! from its own listener, publishes in process, and checks that its
//! subscriber gets the event. With the `server` feature it also checks that
//! these are the very bytes sse-hub's own `GET /events` sends. It checks that
//! depending on sse-hub changed nothing in its own serde_json.
//! Exits non-zero, saying why, if anything is off.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use serde::Deserialize;
use sse_hub::{Event, EventStream, Hub, HubConfig, StreamRequest};

fn main() {
    serde_json_is_untouched();
    let hub = Hub::start(HubConfig::default()).expect("a hub starts without a socket");

    // The application's own server: one connection, one stream.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("an address");
    let server_hub = hub.clone();
    thread::spawn(move || {
        let (socket, _) = listener.accept().expect("a connection");
        let mut reader = BufReader::new(&socket);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear(); // the request's head; this server needs none of it
        }
        let wanted = StreamRequest::from_query("channel=news", None)
            .and_then(|wanted| wanted.cors_origin("*"))
            .expect("a valid request");
        let stream = EventStream::open(&server_hub, wanted).expect("room for a subscriber");
        stream.run(&socket);
    });
    let embedded = read_stream(addr, &hub);

    assert!(
        embedded.contains("event: greeting\ndata: hello\ndata: world\n\n"),
        "the embedded stream lacks the event: {embedded:?}"
    );
    compare_with_the_server(&embedded);
    println!("ok: an in-process publish reached an embedded stream");
}

/// sse-hub's own server sends the same bytes as the embedded stream.
#[cfg(feature = "server")]
fn compare_with_the_server(embedded: &str) {
    use sse_hub::{Config, Server};
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        ..Config::default()
    })
    .expect("the server binds");
    let server_addr = server.local_addr();
    let server_hub = server.hub();
    let stopper = server.stopper();
    let running = thread::spawn(move || server.run());
    let served = read_stream(server_addr, &server_hub);
    stopper.stop();
    running
        .join()
        .expect("the server thread")
        .expect("a clean stop");
    assert_eq!(
        normalize(embedded),
        normalize(&served),
        "the embedded stream differs from GET /events"
    );
    println!("ok: the embedded stream is byte for byte what GET /events sends");
}

/// Without the server there is nothing to compare with.
#[cfg(not(feature = "server"))]
fn compare_with_the_server(_embedded: &str) {}

/// Subscribes to `addr` over HTTP, publishes one message through `hub` once
/// the stream has opened, and returns the bytes received up to it.
fn read_stream(addr: std::net::SocketAddr, hub: &Hub) -> String {
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a timeout");
    client
        .write_all(b"GET /events?channel=news HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send the request");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let mut published = false;
    loop {
        let n = client.read(&mut buf).expect("the stream goes on");
        assert!(n > 0, "the stream ended early");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if !published && text.contains("event: connection") && text.ends_with("\r\n") {
            let news = sse_hub::Channel::new("news").expect("a valid name");
            let event = Event::new("hello\nworld")
                .with_name("greeting")
                .expect("a valid name");
            hub.publish(&event, Some(&news)).expect("the hub runs");
            published = true;
        }
        if text.contains("data: world\n\n\r\n") {
            return text;
        }
    }
}

/// The stream with what differs between two hubs (client and message IDs)
/// replaced.
#[cfg(feature = "server")]
fn normalize(stream: &str) -> String {
    stream
        .lines()
        .map(|line| {
            if line.starts_with("id: ") {
                "id: <id>".to_owned()
            } else if line.starts_with("data: {\"client\":") {
                let channels = line
                    .split_once(",\"channels\"")
                    .map_or("", |(_, rest)| rest);
                format!("data: {{\"client\":\"<client>\",\"channels\"{channels}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Depending on sse-hub must not turn on serde_json features that change
/// the rest of the program (`arbitrary_precision` breaks untagged enums and
/// flattened fields; `preserve_order` changes the order of a `Value`'s keys).
fn serde_json_is_untouched() {
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Reading {
        Number(f64),
        Text(String),
    }
    #[derive(Deserialize, Debug)]
    struct Envelope {
        kind: String,
        #[serde(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
    }
    let reading: Reading = serde_json::from_str("21.5").expect("an untagged number");
    assert_eq!(reading, Reading::Number(21.5));
    let envelope: Envelope =
        serde_json::from_str(r#"{"kind":"x","value":1.5,"b":1,"a":2}"#).expect("a flattened map");
    assert_eq!(envelope.kind, "x");
    assert_eq!(envelope.rest["value"], serde_json::json!(1.5));
    let value: serde_json::Value = serde_json::from_str(r#"{"z":1,"a":2}"#).expect("JSON");
    assert_eq!(
        value.to_string(),
        r#"{"a":2,"z":1}"#,
        "keys in the default order"
    );
}
