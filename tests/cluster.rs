//! Cluster mode over a real `redis-server`: several `sse-hub` processes on
//! one Redis stream give every message one ID and one order, resume on any
//! node, and live through a Redis crash, a node restart and a partition.
//!
//! Each test starts its own `redis-server` (`common/redis.rs`) on a free
//! port. The tests that need it are ignored by a plain `cargo test`, whose
//! promise is that nothing else needs installing; `.ci/run` installs
//! Debian's `redis-server` and runs them with `--include-ignored`:
//!
//! ```sh
//! apt-get install -y redis-server && cargo test --test cluster -- --include-ignored
//! ```

mod common;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{Admission, Proxy};
use common::redis::Redis;
use common::{GUARD, Hub, Item, SseEvent, Subscriber, free_port, id_order};
use serde_json::json;

/// A hub on `redis` with extra `args`.
fn node(redis: &Redis, args: &[&str]) -> Hub {
    let url = redis.url();
    let mut all = vec!["--redis", url.as_str()];
    all.extend_from_slice(args);
    Hub::start(&all)
}

/// The same hub again, on the same address, after it was stopped.
fn restart(hub: &mut Hub, redis_url: &str, args: &[&str]) -> Hub {
    assert!(hub.terminate().success(), "the node exits cleanly");
    let mut all = vec!["--redis", redis_url];
    all.extend_from_slice(args);
    Hub::start_with_env(&hub.addr.to_string(), &all, &[])
}

/// Opens a stream with `Last-Event-ID` (if given) and reads its
/// `connection` event.
fn resume(hub: &Hub, path: &str, last_event_id: Option<&str>) -> (Subscriber, SseEvent) {
    let headers: Vec<(&str, &str)> = last_event_id
        .map(|id| ("Last-Event-ID", id))
        .into_iter()
        .collect();
    let mut client = hub.subscribe_with(path, &headers);
    assert_eq!(client.status, 200, "{}", client.error_body);
    let hello = client.next_event();
    assert_eq!(hello.event, "connection");
    (client, hello)
}

fn data(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

fn wait_for_redis(hub: &Hub, state: &str) {
    hub.wait_for_stats(&format!("redis {state}"), |s| s["redis"] == state);
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_publish_on_one_node_reaches_every_node_with_one_id() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (mut on_a, _) = a.subscribe_ready("/events");
    let (mut on_b, _) = b.subscribe_ready("/events?channel=news");

    let (id, clients) = a.publish(json!({"message": "to all", "event": "note"}));
    assert_eq!(clients, 1, "clients counts this node's recipients only");
    let (news, clients) = a.publish(json!({"message": "news", "channel": "news"}));
    assert_eq!(clients, 0, "the news subscriber is on the other node");

    let seen_on_a = on_a.next_event();
    assert_eq!(
        (seen_on_a.id(), seen_on_a.event.as_str()),
        (id.as_str(), "note")
    );
    let seen_on_b = on_b.events(2);
    assert_eq!(data(&seen_on_b), ["to all", "news"]);
    assert_eq!(seen_on_b[0].id(), id, "one ID on every node");
    assert_eq!(seen_on_b[1].id(), news);
    assert_eq!(a.stats()["redis"], "up");
    assert!(a.get("/metrics").text().contains("\nsse_hub_redis_up 1\n"));

    // A batch is one step: adjacent IDs, in order, on every node.
    let reply = b.post(r#"[{"message": "b1"}, {"message": "b2"}]"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let ids = reply.json()["ids"].clone();
    let batch = on_a.events(2);
    assert_eq!(data(&batch), ["b1", "b2"]);
    assert_eq!(json!([batch[0].id(), batch[1].id()]), ids);
    assert_eq!(data(&on_b.events(2)), ["b1", "b2"]);

    // Another program can publish with a plain XADD.
    let key = "sse-hub";
    let xadd = redis.command(&["XADD", key, "*", "message", "from cron"]);
    assert_eq!(on_a.next_event().id(), xadd);
    assert_eq!(on_b.next_event().data, "from cron");
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn every_node_delivers_one_order_without_loss_or_duplicate() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (mut on_a, _) = a.subscribe_ready("/events");
    let (mut on_b, _) = b.subscribe_ready("/events");

    const EACH: usize = 500;
    thread::scope(|scope| {
        for (name, hub) in [("a", &a), ("b", &b)] {
            scope.spawn(move || {
                for i in 0..EACH {
                    hub.publish(json!({ "message": format!("{name}{i}") }));
                }
            });
        }
    });

    let seen_a: Vec<(String, String)> = on_a
        .events(2 * EACH)
        .into_iter()
        .map(|e| (e.id().to_owned(), e.data))
        .collect();
    let seen_b: Vec<(String, String)> = on_b
        .events(2 * EACH)
        .into_iter()
        .map(|e| (e.id().to_owned(), e.data))
        .collect();
    assert!(
        seen_a == seen_b,
        "both nodes deliver the same messages in the same order"
    );
    let distinct: HashSet<&str> = seen_a.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(distinct.len(), 2 * EACH, "no loss, no duplicate");
    assert!(
        seen_a
            .windows(2)
            .all(|w| id_order(&w[0].0) < id_order(&w[1].0)),
        "IDs grow"
    );
    // Each publisher's own messages keep their order.
    for name in ["a", "b"] {
        let own: Vec<usize> = seen_a
            .iter()
            .filter_map(|(_, d)| d.strip_prefix(name)?.parse().ok())
            .collect();
        assert_eq!(own, (0..EACH).collect::<Vec<_>>());
    }
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn an_id_from_one_node_resumes_exactly_on_another_from_memory_or_from_redis() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    // B keeps only two messages in memory: the rest of a replay comes from
    // the stream (XRANGE).
    let mut b = node(&redis, &["--history", "2"]);
    let (mut on_a, _) = a.subscribe_ready("/events");
    let ids: Vec<String> = (0..5).map(|i| a.publish_text(&format!("m{i}"))).collect();
    let seen = on_a.events(2);
    let last = seen[1].id();

    let from_b = |b: &Hub| {
        let (mut client, hello) = resume(b, "/events", Some(last));
        assert_eq!(hello.id(), last, "the resume point is the ID sent");
        let replay = client.events(3);
        assert_eq!(
            data(&replay),
            ["m2", "m3", "m4"],
            "no gap event, nothing missing"
        );
        let replayed: Vec<&str> = replay.iter().map(SseEvent::id).collect();
        assert_eq!(replayed, &ids[2..]);
        client
    };
    drop(from_b(&b));
    // A node with its memory whole replays from memory.
    let (mut on_a_again, _) = resume(&a, "/events", Some(last));
    assert_eq!(data(&on_a_again.events(3)), ["m2", "m3", "m4"]);

    // Restarted, B has only what it reads back from Redis.
    let url = redis.url();
    let b = restart(&mut b, &url, &["--history", "2"]);
    let mut client = from_b(&b);
    let live = a.publish_text("live");
    assert_eq!(client.next_event().id(), live);
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_resume_from_before_what_the_stream_still_holds_gets_a_gap() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let ids: Vec<String> = (0..5).map(|i| a.publish_text(&format!("m{i}"))).collect();
    // Exactly the last two stay: m0..m2 are gone from the stream.
    redis.command(&["XTRIM", "sse-hub", "MAXLEN", "2"]);
    let b = node(&redis, &["--history", "1"]);

    let (mut client, hello) = resume(&b, "/events", Some(&ids[0]));
    let gap = client.next_event();
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.json(), json!({"requested": ids[0], "oldest": ids[3]}));
    assert_eq!((gap.id(), hello.id()), (ids[0].as_str(), ids[0].as_str()));
    assert_eq!(data(&client.events(2)), ["m3", "m4"]);

    // From the oldest message the stream holds on, nothing is missing.
    let (mut exact, _) = resume(&b, "/events", Some(&ids[3]));
    let replay = exact.next_event();
    assert_eq!(
        (replay.event.as_str(), replay.data.as_str()),
        ("message", "m4")
    );
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_node_cut_off_longer_than_the_stream_lasts_sends_its_clients_to_a_gap() {
    let redis = Redis::start();
    // No heartbeats: a stream that wrongly stayed open fails the read
    // below at the guard timeout instead of keeping it going.
    let Partition {
        a,
        b,
        mut on_b,
        before,
        proxy,
    } = Partition::set_up(&redis, &["--heartbeat", "0"]);

    Partition::cut(&proxy, &b);
    let ids: Vec<String> = (0..5).map(|i| a.publish_text(&format!("m{i}"))).collect();
    redis.command(&["XTRIM", "sse-hub", "MAXLEN", "2"]);
    Partition::heal(&proxy, &b);

    // Its stream cannot be made whole: it ends, and the resume says so.
    assert!(on_b.read_to_end().is_empty(), "nothing half-delivered");
    assert!(on_b.ended_cleanly());
    let (mut back, _) = resume(&b, "/events", Some(&before));
    let gap = back.next_event();
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.json(), json!({"requested": before, "oldest": ids[3]}));
    assert_eq!(data(&back.events(2)), ["m3", "m4"]);
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_restarted_node_resumes_its_subscribers_without_a_gap() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let mut b = node(&redis, &[]);
    let (mut on_b, _) = b.subscribe_ready("/events?channel=news");
    for i in 0..3 {
        a.publish(json!({"message": format!("before{i}"), "channel": "news"}));
    }
    let last = on_b.events(3)[2].id().to_owned();

    // B goes down; messages go on through A meanwhile.
    let url = redis.url();
    assert!(b.terminate().success());
    assert!(on_b.read_to_end().is_empty(), "the stream ends cleanly");
    let mut missed = Vec::new();
    for i in 0..4 {
        missed.push(
            a.publish(json!({"message": format!("during{i}"), "channel": "news"}))
                .0,
        );
        a.publish(json!({"message": "elsewhere", "channel": "sport"}));
    }
    let b = Hub::start_with_env(&b.addr.to_string(), &["--redis", &url], &[]);

    let (mut back, hello) = resume(&b, "/events?channel=news", Some(&last));
    assert_eq!(hello.id(), last);
    let replay = back.events(4);
    assert_eq!(data(&replay), ["during0", "during1", "during2", "during3"]);
    assert_eq!(replay.iter().map(SseEvent::id).collect::<Vec<_>>(), missed);
    let (id, _) = a.publish(json!({"message": "after", "channel": "news"}));
    assert_eq!(back.next_event().id(), id);
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn while_redis_is_down_publishes_get_503_and_streams_stay_open() {
    let mut redis = Redis::start();
    let a = node(&redis, &["--heartbeat", "1"]);
    let (mut client, _) = a.subscribe_ready("/events");
    let first = a.publish_text("before");
    assert_eq!(client.next_event().id(), first);

    redis.kill();
    wait_for_redis(&a, "down");
    let reply = a.post(r#"{"message": "lost"}"#);
    reply.assert_error(503, "Redis", "a publish while Redis is down");
    assert!(
        reply.header("Retry-After").is_some(),
        "503 says when to retry"
    );
    assert!(a.get("/metrics").text().contains("\nsse_hub_redis_up 0\n"));
    assert_eq!(a.post(r#"[{"message": "x"}]"#).status, 503, "batches too");
    // The stream stays open: heartbeats, no event, no end.
    let mut heartbeats = 0;
    while heartbeats < 2 {
        match client.next_item() {
            Some(Item::Comment(text)) => {
                assert_eq!(text, "heartbeat");
                heartbeats += 1;
            }
            other => panic!("only heartbeats while Redis is down, got {other:?}"),
        }
    }
    assert_eq!(
        a.log().matches("out of reach").count(),
        1,
        "logged once:\n{}",
        a.log()
    );

    redis.restart();
    wait_for_redis(&a, "up");
    let after = a.publish_text("after");
    assert_eq!(
        client.next_event().id(),
        after,
        "nothing published while down"
    );
    assert!(id_order(&after) > id_order(&first));
    assert_eq!(a.log().matches("connected;").count(), 2, "{}", a.log());
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_node_that_cannot_reach_redis_at_start_starts_down_and_keeps_trying() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let a = Hub::start(&["--redis", &url]);
    assert_eq!(a.stats()["redis"], "down");
    let (mut client, _) = a.subscribe_ready("/events");
    a.post(r#"{"message": "x"}"#)
        .assert_error(503, "Redis", "publish before Redis");

    // The same port, now with a Redis on it.
    let redis = Redis::start_on(port);
    wait_for_redis(&a, "up");
    let id = a.publish_text("now");
    assert_eq!(client.next_event().id(), id);
    drop(redis);
}

#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_node_cut_from_redis_delivers_what_it_missed_in_order_once_back() {
    let redis = Redis::start();
    let Partition {
        a,
        b,
        mut on_b,
        proxy,
        ..
    } = Partition::set_up(&redis, &[]);

    Partition::cut(&proxy, &b);
    let ids: Vec<String> = (0..20).map(|i| a.publish_text(&format!("p{i}"))).collect();
    assert_eq!(b.post(r#"{"message": "x"}"#).status, 503);

    Partition::heal(&proxy, &b);
    let caught_up = on_b.events(20);
    assert_eq!(caught_up.iter().map(SseEvent::id).collect::<Vec<_>>(), ids);
    let live = a.publish_text("live");
    assert_eq!(on_b.next_event().id(), live);
}

#[test]
#[ignore = "needs redis-server and npm packages in tests/node: run .ci/run"]
fn the_eventsource_package_resumes_exactly_across_nodes() {
    let redis = Redis::start();
    let args = ["--retry", "100"];
    let (a, b) = (node(&redis, &args), node(&redis, &args));
    let nodes = format!("{},{}", a.addr, b.addr);
    let output = common::run_node_script("cluster.mjs", &[("SSE_HUB_NODES", &nodes)], 3 * GUARD);
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "node tests/node/cluster.mjs failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Needs no Redis: the URL is checked before anything starts.
#[test]
fn a_malformed_redis_url_stops_the_start_with_a_clear_error() {
    for url in [
        "localhost:6379",
        "http://example.com",
        "redis://127.0.0.1:notaport/0",
    ] {
        let output = common::run_to_exit(&["--listen", "127.0.0.1:0", "--redis", url], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url}: exits non-zero");
        assert!(
            stderr.contains("invalid value for --redis (SSE_HUB_REDIS)")
                && stderr.contains("redis://[:password@]host:port/db"),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{url}: never serves");
    }
}

/// Two nodes on one Redis, B reaching it through a proxy that can cut it
/// off, a subscriber on B, and one message that reached it.
struct Partition {
    a: Hub,
    b: Hub,
    on_b: Subscriber,
    /// The ID of the message published before any cut.
    before: String,
    proxy: Proxy,
}

impl Partition {
    fn set_up(redis: &Redis, b_args: &[&str]) -> Partition {
        let a = node(redis, &[]);
        let proxy = Proxy::start(redis.addr());
        let url = format!("redis://{}/0", proxy.addr);
        let mut args = vec!["--redis", &url];
        args.extend_from_slice(b_args);
        let b = Hub::start(&args);
        let (mut on_b, _) = b.subscribe_ready("/events");
        let before = a.publish_text("before");
        assert_eq!(on_b.next_event().id(), before);
        Partition {
            a,
            b,
            on_b,
            before,
            proxy,
        }
    }

    /// B's connections to Redis drop and new ones are refused.
    fn cut(proxy: &Proxy, b: &Hub) {
        proxy.admit(Admission::Refuse);
        proxy.cut();
        wait_for_redis(b, "down");
    }

    fn heal(proxy: &Proxy, b: &Hub) {
        proxy.admit(Admission::Forward);
        wait_for_redis(b, "up");
    }
}

/// `--history-ttl` in a cluster: a node that must read the replay from
/// Redis skips expired entries as its memory does, and the resume from
/// before them gets a gap (SPEC "Message lifetime").
#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn messages_older_than_history_ttl_are_not_replayed_from_redis_either() {
    let redis = Redis::start();
    let a = node(&redis, &["--history-ttl", "1"]);
    let old: Vec<String> = (0..3).map(|i| a.publish_text(&format!("old{i}"))).collect();
    // Older than a second by their IDs' time, then two young ones.
    thread::sleep(Duration::from_millis(1100));
    let young: Vec<String> = (0..2)
        .map(|i| a.publish_text(&format!("young{i}")))
        .collect();
    // B starts now and keeps one message in memory: the rest of a replay
    // comes from the stream.
    let b = node(&redis, &["--history", "1", "--history-ttl", "1"]);
    for hub in [&a, &b] {
        let (mut client, _) = resume(hub, "/events", Some(&old[0]));
        let gap = client.next_event();
        assert_eq!(gap.event, "gap");
        let replay = client.events(2);
        assert_eq!(data(&replay), ["young0", "young1"]);
        assert_eq!(replay[0].id(), young[0]);
    }
}

/// An `Idempotency-Key` holds across the nodes of a cluster: a retry that
/// reaches another node publishes nothing and gets the first reply.
#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn a_retry_on_another_node_with_the_same_idempotency_key_publishes_once() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let (mut on_b, _) = b.subscribe_ready("/events");
    let send = |hub: &Hub, key: &str, message: &str| {
        let body = json!({ "message": message }).to_string();
        hub.request(
            "POST",
            "/broadcast",
            &[("Idempotency-Key", key)],
            body.as_bytes(),
        )
    };
    let first = send(&a, "retry-1", "once");
    assert_eq!(first.status, 200, "{}", first.text());
    let retry = send(&b, "retry-1", "once");
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(retry.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(retry.json()["id"], first.json()["id"]);
    let other = send(&b, "retry-2", "twice");
    assert_eq!(other.status, 200);
    assert_eq!(data(&on_b.events(2)), ["once", "twice"]);
    // Nothing else went into the stream.
    let length = redis.command(&["XLEN", "sse-hub"]);
    assert_eq!(length, ":2", "an integer reply of 2");
}

/// Presence across nodes: joins travel like any message, `/presence` on
/// any node lists the clients of every node, and a node that dies without
/// a word has its clients drop out of the list within the 15 s its word
/// lasts (README "Presence").
#[test]
#[ignore = "needs redis-server: .ci/run installs it"]
fn presence_spans_the_nodes_and_a_dead_nodes_clients_drop_out() {
    let redis = Redis::start();
    let a = node(&redis, &["--presence", "room:*"]);
    let b = node(&redis, &["--presence", "room:*"]);
    let (mut on_a, a_client) = a.subscribe_ready("/events?channel=room:1");
    assert_eq!(on_a.next_event().event, "presence", "its own join");
    let (_on_b, b_client) = b.subscribe_ready("/events?channel=room:1");
    let join = on_a.next_event();
    assert_eq!(join.event, "presence");
    assert_eq!(
        join.json()["client"],
        b_client.as_str(),
        "a join on B reaches A"
    );

    let listed = |hub: &Hub| {
        let list = hub.get("/presence?channel=room:1").json();
        let mut clients: Vec<String> = list["clients"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c["client"].as_str().expect("an ID").to_owned())
            .collect();
        clients.sort();
        clients
    };
    let mut both = vec![a_client.clone(), b_client.clone()];
    both.sort();
    assert_eq!(listed(&a), both);
    assert_eq!(listed(&b), both);

    // B dies (SIGKILL): no leave is published, and its client drops out
    // of A's list once B's word for it lapses.
    drop(b);
    let start = Instant::now();
    while listed(&a) != [a_client.clone()] {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "a dead node's client is still listed"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
