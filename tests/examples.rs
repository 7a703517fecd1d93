//! Every example runs: started, one message round trip, stopped. They are
//! what a new user copies first, so they must work as written. (`cargo
//! test` builds the examples; `cargo test --test examples` alone does not:
//! run `cargo build --examples` first.)

mod common;

use std::process::Command;

use common::{Hub, example_path};
use serde_json::json;

#[test]
fn std_only_serves_a_stream_and_a_publish() {
    let hub = Hub::start_example("std_only", &["127.0.0.1:0"], &[]);
    let (mut client, _) = hub.subscribe_ready("/events?channel=news");
    let (id, clients) = hub.publish(json!({"message": "hello", "channel": "news"}));
    assert_eq!(clients, 1);
    let event = client.next_event();
    assert_eq!((event.data.as_str(), event.id()), ("hello", id.as_str()));
    let misspelt = hub.post("{\"mesage\": 1}");
    assert_eq!(misspelt.status, 400);
    assert!(
        misspelt.error().contains("unknown field"),
        "{}",
        misspelt.text()
    );
}

#[test]
fn embed_tiny_http_adds_the_hub_to_an_application() {
    let hub = Hub::start_example(
        "embed_tiny_http",
        &["127.0.0.1:0"],
        &[("PUBLISH_TOKEN", "secret")],
    );
    let (mut client, _) = hub.subscribe_ready("/events");
    assert_eq!(client.header("Access-Control-Allow-Origin"), Some("*"));

    // The application's own route publishes too.
    assert_eq!(hub.get("/").status, 200);
    assert_eq!(client.next_event().data, "someone visited /");

    let body = br#"{"message": "from a publisher"}"#;
    let refused = hub.request("POST", "/broadcast", &[], body);
    assert_eq!(refused.status, 401);
    let reply = hub.request(
        "POST",
        "/broadcast",
        &[("Authorization", "Bearer secret")],
        body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let event = client.next_event();
    assert_eq!(event.data, "from a publisher");
    assert_eq!(event.id(), reply.json()["id"].as_str().unwrap());
}

#[test]
fn ticker_ticks() {
    let hub = Hub::start_example("ticker", &["127.0.0.1:0", "1"], &[]);
    let (mut client, _) = hub.subscribe_ready("/events");
    let tick = client.next_event();
    assert_eq!(tick.event, "tick");
    assert!(tick.data.ends_with(" UTC"), "{}", tick.data);
}

#[test]
fn sensor_logs_every_reading_in_process() {
    let output = Command::new(example_path("sensor"))
        .arg("3")
        .output()
        .expect("the sensor example runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (n, line) in lines.iter().enumerate() {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        common::id_order(parts[0]);
        assert_eq!(parts[1], "reading");
        let celsius = 20.0 + n as f64 * 0.25;
        assert_eq!(parts[2], format!("{{\"celsius\":{celsius:.2}}}"));
    }
}
