//! The guard rails around the hub, over real sockets: the publisher's token,
//! CORS, `/healthz`, `/metrics`, the subscriber cap and the body size limit.
//! Every refused request must publish nothing.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Hub, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-T0ken";

/// `POST /broadcast` with an `Authorization` header (none if `auth` is
/// `None`).
fn post_with(hub: &Hub, auth: Option<&str>, body: &str) -> Reply {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    hub.request("POST", "/broadcast", &headers, body.as_bytes())
}

#[test]
fn publishing_needs_the_right_bearer_token() {
    let hub = Hub::start(&["--publish-token", TOKEN]);
    let (mut subscriber, _) = hub.subscribe_ready("/events");

    let wrong_token = format!("Bearer {TOKEN}x");
    let lowercase_token = format!("Bearer {}", TOKEN.to_lowercase());
    let basic = format!("Basic {TOKEN}");
    let no_space = format!("Bearer{TOKEN}");
    let refused = [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer wrong"),
        Some(wrong_token.as_str()),
        Some(&TOKEN[..TOKEN.len() - 1]),
        Some(lowercase_token.as_str()),
        Some(basic.as_str()),
        Some(no_space.as_str()),
        Some(TOKEN),
    ];
    for auth in refused {
        let reply = post_with(&hub, auth, r#"{"message":"must not arrive"}"#);
        reply.assert_error(401, "", &format!("Authorization {auth:?}"));
        assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"), "{auth:?}");
    }
    assert_eq!(hub.stats()["published"], 0, "a 401 published something");

    // The scheme is case-insensitive; the token is not.
    for (n, scheme) in ["Bearer", "bearer", "BEARER", "bEaReR"].iter().enumerate() {
        let auth = format!("{scheme} {TOKEN}");
        let body = json!({ "message": format!("ok {n}") }).to_string();
        let reply = post_with(&hub, Some(&auth), &body);
        assert_eq!(reply.status, 200, "{auth}: {}", reply.text());
    }
    // The first event after `connection` is the first authorized message:
    // nothing refused reached the subscriber.
    let data: Vec<String> = subscriber.events(4).into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["ok 0", "ok 1", "ok 2", "ok 3"]);
    assert_eq!(hub.stats()["published"], 4);
}

#[test]
fn the_token_can_come_from_the_environment() {
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &[],
        &[("SSE_HUB_PUBLISH_TOKEN", "from-the-env")],
    );
    let refused = post_with(&hub, None, r#"{"message":"x"}"#);
    refused.assert_error(401, "", "no token");
    let accepted = post_with(&hub, Some("Bearer from-the-env"), r#"{"message":"x"}"#);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert!(
        !hub.log().contains("from-the-env"),
        "the token was logged:\n{}",
        hub.log()
    );
}

#[test]
fn an_unauthenticated_oversized_request_gets_401_not_413() {
    let hub = Hub::start(&["--publish-token", TOKEN, "--max-body", "100"]);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");

    // Declared too large: answered from the head alone, body never sent.
    let declared = |auth: &str| {
        let head =
            format!("POST /broadcast HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1000000\r\n\r\n");
        hub.exchange(head.as_bytes())
            .expect("a reply to a declared oversized body")
    };
    declared("").assert_error(401, "", "declared, no token");
    declared("Authorization: Bearer nope\r\n").assert_error(401, "", "declared, wrong token");
    declared(&auth).assert_error(413, "", "declared, right token");

    // Chunked, the size known only by reading.
    let chunked = |auth: &str| {
        let mut raw = format!(
            "POST /broadcast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"
        );
        for _ in 0..10 {
            raw.push_str(&format!("32\r\n{}\r\n", "x".repeat(50)));
        }
        raw.push_str("0\r\n\r\n");
        hub.exchange(raw.as_bytes())
            .expect("a reply to a chunked oversized body")
    };
    chunked("").assert_error(401, "", "chunked, no token");
    chunked(&auth).assert_error(413, "", "chunked, right token");

    assert_eq!(hub.stats()["published"], 0);
}

#[test]
fn bodies_over_max_body_get_413_and_the_limit_itself_is_fine() {
    let hub = Hub::start(&["--max-body", "64"]);
    let (mut subscriber, _) = hub.subscribe_ready("/events");

    // Exactly 64 bytes: accepted.
    let at_limit = format!(r#"{{"message":"{}"}}"#, "a".repeat(64 - 14));
    assert_eq!(at_limit.len(), 64);
    let reply = hub.post(&at_limit);
    assert_eq!(reply.status, 200, "{}", reply.text());

    // One byte more, read in full (small bodies are read before routing).
    let over = format!(r#"{{"message":"{}"}}"#, "b".repeat(65 - 14));
    hub.post(&over)
        .assert_error(413, "", "65 bytes declared and sent");

    // Declared far over the limit, with the body sent in full too.
    let big = format!(r#"{{"message":"{}"}}"#, "c".repeat(5000));
    hub.post(&big)
        .assert_error(413, "", "5 KB declared and sent");

    // Chunked, in small chunks that add up to more than the limit.
    let mut raw = String::from(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunked_body = format!(r#"{{"message":"{}"}}"#, "d".repeat(100));
    for piece in chunked_body.as_bytes().chunks(16) {
        raw.push_str(&format!("{:x}\r\n", piece.len()));
        raw.push_str(std::str::from_utf8(piece).unwrap());
        raw.push_str("\r\n");
    }
    raw.push_str("0\r\n\r\n");
    let reply = hub.exchange(raw.as_bytes()).expect("a reply");
    reply.assert_error(413, "", "chunked over the limit");

    // Only the message at the limit went out.
    assert_eq!(hub.stats()["published"], 1);
    hub.publish_text("end");
    let data: Vec<String> = subscriber.events(2).into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["a".repeat(50), "end".to_owned()]);
}

#[test]
fn every_response_carries_the_configured_origin() {
    let origin = "https://app.example";
    let hub = Hub::start(&["--cors-origin", origin, "--max-clients", "1"]);
    let mut replies: Vec<(String, Reply)> = Vec::new();
    for path in ["/", "/app.js", "/healthz", "/stats", "/metrics", "/nope"] {
        replies.push((format!("GET {path}"), hub.get(path)));
    }
    for (what, body) in [("publish", r#"{"message":"x"}"#), ("bad publish", "{")] {
        replies.push((what.to_owned(), hub.post(body)));
    }
    replies.push(("405".to_owned(), hub.request("DELETE", "/stats", &[], b"")));
    replies.push((
        "400 subscribe".to_owned(),
        hub.get("/events?channel=bad%20name"),
    ));
    replies.push((
        "413".to_owned(),
        hub.post(&format!(r#"{{"message":"{}"}}"#, "x".repeat(70_000))),
    ));
    for (what, reply) in &replies {
        assert_eq!(
            reply.header("Access-Control-Allow-Origin"),
            Some(origin),
            "{what} ({})",
            reply.status
        );
    }

    let stream = hub.subscribe("/events");
    assert_eq!(stream.header("Access-Control-Allow-Origin"), Some(origin));
    hub.wait_for_clients(1);
    let full = hub.subscribe("/events");
    assert_eq!(full.status, 503);
    assert_eq!(full.header("Access-Control-Allow-Origin"), Some(origin));
}

#[test]
fn a_preflight_on_any_route_gets_204_with_the_three_headers() {
    let origin = "https://app.example";
    let hub = Hub::start(&["--cors-origin", origin, "--publish-token", TOKEN]);
    for path in [
        "/events",
        "/events?channel=a",
        "/broadcast",
        "/healthz",
        "/stats",
        "/metrics",
        "/",
        "/no/such/page",
    ] {
        // A browser's preflight carries no credentials.
        let reply = hub.request(
            "OPTIONS",
            path,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        );
        assert_eq!(reply.status, 204, "OPTIONS {path}: {}", reply.text());
        assert!(reply.body.is_empty(), "OPTIONS {path} has a body");
        assert_eq!(
            reply.header("Access-Control-Allow-Origin"),
            Some(origin),
            "{path}"
        );
        assert_eq!(
            reply.header("Access-Control-Allow-Methods"),
            Some("GET, POST, OPTIONS"),
            "{path}"
        );
        assert_eq!(
            reply.header("Access-Control-Allow-Headers"),
            Some("Content-Type, Authorization, Last-Event-ID"),
            "{path}"
        );
    }
    assert_eq!(hub.stats()["published"], 0);
}

#[test]
fn healthz_says_ok() {
    let hub = Hub::start(&[]);
    let reply = hub.get("/healthz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    assert!(
        reply
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    let head = hub.request("HEAD", "/healthz", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = hub.request("POST", "/healthz", &[], b"");
    post.assert_error(405, "", "POST /healthz");
}

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text format 0.0.4, checking the rules every scraper
/// relies on: `# HELP` and `# TYPE` once per family and before its samples,
/// a known type, well-formed names, labels and values. Returns the samples
/// and the type of each family.
fn parse_prometheus(text: &str) -> (Vec<Sample>, HashMap<String, String>) {
    let mut help: HashMap<String, String> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    assert!(
        text.ends_with('\n'),
        "the exposition ends with a line break"
    );
    let name_ok = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        assert!(!line.is_empty(), "blank line in:\n{text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP has a text");
            assert!(!doc.trim().is_empty(), "{line}");
            assert!(
                help.insert(name.to_owned(), doc.to_owned()).is_none(),
                "second HELP: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                !samples.iter().any(|s: &Sample| s.name == name),
                "TYPE after samples: {line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels end with }");
                let labels = labels
                    .split(',')
                    .map(|pair| {
                        let (key, quoted) = pair.split_once('=').expect("label=value");
                        assert!(name_ok(key), "{line}");
                        let value = quoted
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        (key.to_owned(), value.to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(name_ok(name), "bad metric name: {line}");
        assert!(help.contains_key(name), "no HELP before {line}");
        assert!(types.contains_key(name), "no TYPE before {line}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    (samples, types)
}

#[test]
fn metrics_are_prometheus_text_with_the_figures_of_stats() {
    let hub = Hub::start(&[]);
    let (mut everyone, _) = hub.subscribe_ready("/events");
    let (mut news, _) = hub.subscribe_ready("/events?channel=news&channel=sport");
    hub.publish(json!({"message": "to all"}));
    hub.publish(json!({"message": "news", "channel": "news"}));
    hub.publish(json!({"message": "nobody", "channel": "weather"}));
    assert_eq!(everyone.next_event().data, "to all");
    assert_eq!(news.events(2)[1].data, "news");
    hub.post("{"); // refused: counted nowhere
    // Quiet now: 3 deliveries written (to all x2, news x1).
    hub.wait_for_stats("delivered == 3", |s| s["delivered"] == 3);

    let metrics = hub.get("/metrics");
    let stats = hub.stats();
    assert_eq!(metrics.status, 200);
    let content_type = metrics.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let text = metrics.text();
    let (samples, types) = parse_prometheus(&text);

    for (name, kind) in &types {
        assert!(name.starts_with("sse_hub_"), "{name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}: counters and only counters end in _total"
        );
    }
    let value = |name: &str| -> f64 {
        let found: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == name && s.labels.is_empty())
            .collect();
        assert_eq!(found.len(), 1, "one sample of {name} in:\n{text}");
        found[0].value
    };
    let stat = |field: &str| stats[field].as_f64().unwrap_or_else(|| panic!("{field}"));
    assert_eq!(value("sse_hub_clients"), stat("clients"));
    assert_eq!(value("sse_hub_published_total"), stat("published"));
    assert_eq!(value("sse_hub_delivered_total"), stat("delivered"));
    assert_eq!(value("sse_hub_dropped_slow_total"), stat("dropped_slow"));
    assert_eq!(value("sse_hub_write_errors_total"), stat("write_errors"));
    assert_eq!(value("sse_hub_history"), stat("history"));
    let uptime = value("sse_hub_uptime_seconds");
    assert!((uptime - stat("uptime_s")).abs() <= 1.0, "uptime {uptime}");

    let channels = stats["channels"].as_object().unwrap();
    assert_eq!(value("sse_hub_channels"), channels.len() as f64);
    let per_channel: BTreeMap<&str, f64> = samples
        .iter()
        .filter(|s| s.name == "sse_hub_channel_clients")
        .map(|s| (s.labels["channel"].as_str(), s.value))
        .collect();
    let expected: BTreeMap<&str, f64> = channels
        .iter()
        .map(|(name, n)| (name.as_str(), n.as_f64().unwrap()))
        .collect();
    assert_eq!(per_channel, expected);
    assert_eq!(stats["published"], 3);
    assert_eq!(stats["clients"], 2);
}

#[test]
fn past_max_clients_a_subscriber_gets_503_and_the_others_carry_on() {
    // A closed stream is noticed when a write to it fails: heartbeats every
    // second make that quick.
    let hub = Hub::start(&["--max-clients", "2", "--heartbeat", "1"]);
    let (mut first, _) = hub.subscribe_ready("/events");
    let (mut second, _) = hub.subscribe_ready("/events");

    for _ in 0..3 {
        let third = hub.subscribe("/events");
        assert_eq!(third.status, 503);
        let retry_after = third.header("Retry-After").expect("Retry-After");
        assert!(retry_after.parse::<u32>().is_ok(), "{retry_after}");
        let error: Value = serde_json::from_str(&third.error_body).expect("a JSON error");
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(hub.stats()["clients"], 2);

    // The two streams keep receiving.
    hub.publish_text("still here");
    assert_eq!(first.next_event().data, "still here");
    assert_eq!(second.next_event().data, "still here");

    // One leaves: there is room again.
    second.close();
    hub.wait_for_clients(1);
    let (mut newcomer, _) = hub.subscribe_ready("/events");
    hub.publish_text("welcome");
    assert_eq!(newcomer.next_event().data, "welcome");
    assert_eq!(first.next_event().data, "welcome");
}

/// Whatever channel names clients choose, `/stats` and `/metrics` stay
/// small: at most 100 channels, those with the most members, and a count of
/// them all.
#[test]
fn stats_and_metrics_list_at_most_the_100_largest_channels() {
    let hub = Hub::start(&[]);
    // 5 subscribers on 32 channels of their own each (the most one may
    // join), and 3 on one channel that must be listed.
    let mut streams = Vec::new();
    for subscriber in 0..5 {
        let query: Vec<String> = (0..32)
            .map(|n| format!("channel=c{subscriber}-{n:02}"))
            .collect();
        streams.push(
            hub.subscribe_ready(&format!("/events?{}", query.join("&")))
                .0,
        );
    }
    for _ in 0..3 {
        streams.push(hub.subscribe_ready("/events?channel=crowded").0);
    }
    hub.wait_for_clients(8);

    let stats = hub.stats();
    let listed = stats["channels"].as_object().expect("a channel map");
    assert_eq!(listed.len(), 100, "{stats}");
    assert_eq!(stats["channels_total"], 161);
    assert_eq!(listed["crowded"], 3);
    // Among equals, the first names in order are the ones listed.
    assert!(listed.contains_key("c0-00") && !listed.contains_key("c4-31"));

    let metrics = hub.get("/metrics").text();
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("sse_hub_channel_clients{"))
        .count();
    assert_eq!(series, 100);
    assert!(metrics.contains("\nsse_hub_channels 161\n"), "{metrics}");
    assert!(metrics.contains("sse_hub_channel_clients{channel=\"crowded\"} 3\n"));
}
