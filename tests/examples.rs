//! Every example runs: started, one message round trip, stopped. They are
//! what a new user copies first, so they must work as written. (`cargo
//! test` builds the examples; `cargo test --test examples` alone builds
//! only those that are missing: run `cargo build --examples` after changing
//! one.)
//!
//! The two that serve streams from an application's own server,
//! `embed_rouille` and `std_only`, must behave like sse-hub's own server:
//! a subscriber gets what is published, a resume replays exactly what it
//! missed, a subscriber that leaves is gone from `/stats` within 2 seconds
//! with the default heartbeat, and one that stops reading is dropped and
//! its thread ends within the write timeout.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{GUARD, Hub, Subscriber, example_path};
use serde_json::json;
use socket2::SockRef;

/// `HubConfig::write_timeout`'s default, which both examples keep.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

fn a_subscriber_receives_a_publish(example: &str) {
    let hub = Hub::start_example(example, &["127.0.0.1:0"], &[]);
    let (mut client, _) = hub.subscribe_ready("/events?channel=news");
    let (id, clients) = hub.publish(json!({"message": "hello", "channel": "news"}));
    assert_eq!(clients, 1);
    let event = client.next_event();
    assert_eq!((event.data.as_str(), event.id()), ("hello", id.as_str()));
    assert_eq!(hub.stats()["channels"]["news"], 1);
}

fn a_resume_replays_exactly_what_was_missed(example: &str) {
    let hub = Hub::start_example(example, &["127.0.0.1:0"], &[]);
    let (seen, _) = hub.publish(json!({"message": "seen"}));
    hub.publish(json!({"message": "missed 1"}));
    hub.publish(json!({"message": "missed 2"}));
    let mut client = hub.subscribe_with("/events", &[("Last-Event-ID", &seen)]);
    assert_eq!(client.status, 200);
    assert_eq!(client.next_event().event, "connection");
    let replayed: Vec<String> = client.events(2).into_iter().map(|e| e.data).collect();
    assert_eq!(replayed, ["missed 1", "missed 2"]);
    // Nothing else was replayed: the next event is the next publish.
    hub.publish(json!({"message": "live"}));
    assert_eq!(client.next_event().data, "live");
}

fn a_subscriber_that_leaves_is_gone_within_two_seconds(example: &str) {
    let hub = Hub::start_example(example, &["127.0.0.1:0"], &[]);
    let (client, _) = hub.subscribe_ready("/events");
    hub.wait_for_clients(1);
    client.close();
    // The heartbeat is the default 15 s, and nothing is published: only
    // the hang-up watcher can see it go.
    hub.wait_for_stats_within("clients == 0", Duration::from_secs(2), |s| {
        s["clients"] == 0
    });
}

fn a_subscriber_that_stops_reading_is_dropped_and_its_thread_ends(example: &str) {
    let hub = Hub::start_example(example, &["127.0.0.1:0"], &[]);
    // A first stream starts the hub's watcher thread; then the process is
    // at rest.
    hub.subscribe_ready("/events").0.close();
    hub.wait_for_clients(0);
    let baseline = threads_at_rest(hub.pid());

    let stalled = Subscriber::open(
        hub.connect(),
        &hub.addr.to_string(),
        "/events",
        &[],
        "HTTP/1.1",
    );
    SockRef::from(stalled.socket())
        .set_recv_buffer_size(4096)
        .unwrap();
    hub.wait_for_clients(1);
    // It reads nothing more. Publish until the hub drops it.
    let big = "x".repeat(60_000);
    let start = Instant::now();
    while hub.stats()["dropped_slow"] == 0 {
        assert!(start.elapsed() < GUARD, "never dropped: {}", hub.stats());
        hub.publish(json!({ "message": big }));
    }
    let dropped = Instant::now();
    hub.wait_for_clients(0);
    // Its thread was blocked in a write to a full socket: the write timeout
    // ends it.
    loop {
        let threads = threads(hub.pid());
        if threads <= baseline {
            break;
        }
        assert!(
            dropped.elapsed() < WRITE_TIMEOUT + Duration::from_secs(3),
            "{threads} threads, {baseline} before the stalled subscriber"
        );
        thread::sleep(Duration::from_millis(50));
    }
    drop(stalled);
}

/// The threads of process `pid` now.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the example runs")
        .count()
}

/// The fewest threads `pid` has over a short while: the threads that
/// answered the last requests may take a moment to end.
fn threads_at_rest(pid: u32) -> usize {
    (0..10)
        .map(|_| {
            thread::sleep(Duration::from_millis(30));
            threads(pid)
        })
        .min()
        .unwrap_or(0)
}

#[test]
fn embed_rouille_delivers_a_publish() {
    a_subscriber_receives_a_publish("embed_rouille");
}

#[test]
fn embed_rouille_replays_exactly_on_resume() {
    a_resume_replays_exactly_what_was_missed("embed_rouille");
}

#[test]
fn embed_rouille_forgets_a_subscriber_that_leaves_within_two_seconds() {
    a_subscriber_that_leaves_is_gone_within_two_seconds("embed_rouille");
}

#[test]
fn embed_rouille_drops_a_subscriber_that_stops_reading_and_frees_its_thread() {
    a_subscriber_that_stops_reading_is_dropped_and_its_thread_ends("embed_rouille");
}

#[test]
fn std_only_delivers_a_publish() {
    a_subscriber_receives_a_publish("std_only");
}

#[test]
fn std_only_replays_exactly_on_resume() {
    a_resume_replays_exactly_what_was_missed("std_only");
}

#[test]
fn std_only_forgets_a_subscriber_that_leaves_within_two_seconds() {
    a_subscriber_that_leaves_is_gone_within_two_seconds("std_only");
}

#[test]
fn std_only_drops_a_subscriber_that_stops_reading_and_frees_its_thread() {
    a_subscriber_that_stops_reading_is_dropped_and_its_thread_ends("std_only");
}

#[test]
fn std_only_and_embed_rouille_refuse_a_bad_publish_with_its_status() {
    for example in ["std_only", "embed_rouille"] {
        let hub = Hub::start_example(example, &["127.0.0.1:0"], &[]);
        let misspelt = hub.post("{\"mesage\": 1}");
        assert_eq!(misspelt.status, 400, "{example}");
        assert!(
            misspelt.error().contains("unknown field"),
            "{example}: {}",
            misspelt.text()
        );
    }
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
    assert_eq!(hub.stats()["clients"], 1);

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
    assert_eq!(hub.stats()["clients"], 1);
    assert!(tick.data.ends_with(" UTC"), "{}", tick.data);
}

#[test]
fn sensor_logs_every_reading_in_process() {
    let output = Command::new(example_path("sensor"))
        .args(["127.0.0.1:0", "3"])
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
