//! Channels, history and `Last-Event-ID` resume: nothing lost or doubled,
//! and a `gap` whenever the hub cannot prove that.

mod common;

use std::sync::Arc;
use std::thread;

use common::{Hub, SseEvent, Subscriber};
use serde_json::json;

/// Publishes `n` messages `m0..`, on `channel` if given; returns their IDs.
fn publish_n(hub: &Hub, n: usize, channel: Option<&str>) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut body = json!({ "message": format!("m{i}") });
            if let Some(channel) = channel {
                body["channel"] = json!(channel);
            }
            hub.publish(body).0
        })
        .collect()
}

/// Opens a stream and returns it after its `connection` event.
fn resume(hub: &Hub, path: &str, last_event_id: Option<&str>) -> Subscriber {
    let headers: Vec<(&str, &str)> = last_event_id
        .map(|id| ("Last-Event-ID", id))
        .into_iter()
        .collect();
    let mut client = hub.subscribe_with(path, &headers);
    assert_eq!(client.status, 200);
    assert_eq!(client.next_event().event, "connection");
    client
}

fn data(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn a_channel_message_reaches_only_its_members_and_a_global_one_everyone() {
    let hub = Hub::start(&[]);
    let (mut news, _) = hub.subscribe_ready("/events?channel=news");
    let (mut both, _) = hub.subscribe_ready("/events?channel=news&channel=sport");
    let (mut nothing, _) = hub.subscribe_ready("/events");

    hub.publish(json!({"message": "n", "channel": "news"}));
    hub.publish(json!({"message": "s", "channel": "sport"}));
    hub.publish(json!({"message": "g"}));

    assert_eq!(data(&news.events(2)), ["n", "g"]);
    assert_eq!(data(&both.events(3)), ["n", "s", "g"]);
    assert_eq!(data(&nothing.events(1)), ["g"]);
}

#[test]
fn stats_count_members_per_channel_and_forget_empty_channels() {
    let hub = Hub::start(&["--heartbeat", "1"]);
    let (a, _) = hub.subscribe_ready("/events?channel=a&channel=b");
    let (_b, _) = hub.subscribe_ready("/events?channel=b");
    assert_eq!(hub.stats()["channels"], json!({"a": 1, "b": 2}));
    a.close();
    hub.wait_for_stats("channel a gone", |s| s["channels"] == json!({"b": 1}));
}

#[test]
fn the_header_replays_what_was_missed_in_order_with_original_ids() {
    let hub = Hub::start(&[]);
    let ids = publish_n(&hub, 5, None);
    let mut client = resume(&hub, "/events", Some(&ids[1]));
    let replayed = client.events(3);
    assert_eq!(data(&replayed), ["m2", "m3", "m4"]);
    let replayed_ids: Vec<&str> = replayed.iter().map(SseEvent::id).collect();
    assert_eq!(replayed_ids, &ids[2..]);

    let live = hub.publish_text("live");
    let event = client.next_event();
    assert_eq!((event.data.as_str(), event.id()), ("live", live.as_str()));
}

#[test]
fn replay_follows_the_channels_of_the_resuming_client() {
    let hub = Hub::start(&[]);
    let first = hub.publish_text("before");
    hub.publish(json!({"message": "a1", "channel": "a"}));
    hub.publish(json!({"message": "b1", "channel": "b"}));
    hub.publish(json!({"message": "g1"}));
    hub.publish(json!({"message": "a2", "channel": "a"}));
    let mut client = resume(&hub, "/events?channel=a", Some(&first));
    assert_eq!(data(&client.events(3)), ["a1", "g1", "a2"]);
}

#[test]
fn the_query_parameter_resumes_and_the_header_wins_over_it() {
    let hub = Hub::start(&[]);
    let ids = publish_n(&hub, 4, None);

    let mut by_query = resume(&hub, &format!("/events?lastEventId={}", ids[2]), None);
    assert_eq!(data(&by_query.events(1)), ["m3"]);

    let path = format!("/events?lastEventId={}", ids[0]);
    let mut both = resume(&hub, &path, Some(&ids[2]));
    assert_eq!(data(&both.events(1)), ["m3"], "the header wins");

    // An empty header counts as absent: the query applies.
    let mut empty_header = resume(&hub, &path, Some(""));
    assert_eq!(data(&empty_header.events(3)), ["m1", "m2", "m3"]);
}

#[test]
fn a_replay_longer_than_the_queue_arrives_whole() {
    let hub = Hub::start(&["--queue", "4", "--history", "200"]);
    let first = hub.publish_text("first");
    let ids = publish_n(&hub, 150, None);
    let mut client = resume(&hub, "/events", Some(&first));
    let replayed = client.events(150);
    assert_eq!(replayed.iter().map(SseEvent::id).collect::<Vec<_>>(), ids);
    assert_eq!(hub.stats()["dropped_slow"], 0);
    hub.publish_text("and then live");
    assert_eq!(client.next_event().data, "and then live");
}

#[test]
fn an_id_older_than_history_gets_a_gap_then_what_is_left() {
    let hub = Hub::start(&["--history", "3"]);
    let ids = publish_n(&hub, 6, None);
    let mut client = resume(&hub, "/events", Some(&ids[0]));
    let gap = client.next_event();
    assert_eq!(gap.event, "gap");
    assert_eq!(
        gap.id.as_deref(),
        Some(ids[0].as_str()),
        "gap carries the resume point"
    );
    assert_eq!(gap.json(), json!({"requested": ids[0], "oldest": ids[3]}));
    assert_eq!(data(&client.events(3)), ["m3", "m4", "m5"]);
}

#[test]
fn an_id_just_before_the_oldest_retained_gets_no_gap() {
    let hub = Hub::start(&["--history", "3"]);
    let ids = publish_n(&hub, 6, None);
    let mut client = resume(&hub, "/events", Some(&ids[2]));
    let first = client.next_event();
    assert_eq!(
        (first.event.as_str(), first.data.as_str()),
        ("message", "m3")
    );
}

#[test]
fn a_malformed_id_gets_200_a_gap_and_no_replay() {
    let hub = Hub::start(&[]);
    publish_n(&hub, 3, None);
    for bad in ["garbage", "12", "1-2-3", "-1-1", "99999999999999999999-0"] {
        let mut client = resume(&hub, "/events", Some(bad));
        let gap = client.next_event();
        assert_eq!(gap.event, "gap", "{bad}");
        assert_eq!(gap.json()["requested"], json!(bad));
        hub.publish_text("after");
        assert_eq!(
            client.next_event().data,
            "after",
            "nothing replayed for {bad}"
        );
    }
}

#[test]
fn an_id_newer_than_everything_replays_nothing_and_no_gap() {
    let hub = Hub::start(&[]);
    publish_n(&hub, 3, None);
    let mut client = resume(&hub, "/events", Some("99999999999999-0"));
    hub.publish_text("live");
    assert_eq!(client.next_event().data, "live");
}

#[test]
fn an_id_from_before_this_process_gets_a_gap_with_no_oldest() {
    let hub = Hub::start(&[]);
    let mut client = resume(&hub, "/events", Some("1-0"));
    let gap = client.next_event();
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.json(), json!({"requested": "1-0", "oldest": null}));
}

#[test]
fn with_no_history_a_resume_after_publishes_gets_a_gap() {
    let hub = Hub::start(&["--history", "0"]);
    let ids = publish_n(&hub, 2, None);
    let mut client = resume(&hub, "/events", Some(&ids[0]));
    let gap = client.next_event();
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.json()["oldest"], json!(null));
    assert_eq!(hub.stats()["history"], 0);
}

/// The seam between replay and live delivery, under load: one thread
/// publishes without pause while clients keep dropping their connection and
/// resuming from the last ID they saw. Each must see every message exactly
/// once, in order.
#[test]
fn resuming_while_publishing_loses_and_doubles_nothing() {
    const CLIENTS: usize = 6;
    const MESSAGES: usize = 600;
    let hub = Arc::new(Hub::start(&["--history", "1024"]));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let hub = Arc::clone(&hub);
            let (mut stream, _) = hub.subscribe_ready("/events");
            thread::spawn(move || {
                let mut seen: Vec<(String, String)> = Vec::new();
                let mut reconnects = 0;
                loop {
                    // Read a few events, then drop the connection and resume.
                    for _ in 0..(5 + c * 3) {
                        let event = stream.next_event();
                        assert_ne!(event.event, "gap", "client {c} got a gap");
                        let done = event.data == "end";
                        seen.push((event.id().to_owned(), event.data));
                        if done {
                            return (seen, reconnects);
                        }
                    }
                    stream.close();
                    let last = seen.last().map(|(id, _)| id.clone()).expect("events seen");
                    stream = resume(&hub, "/events", Some(&last));
                    reconnects += 1;
                }
            })
        })
        .collect();
    hub.wait_for_clients(CLIENTS as u64);

    let mut published = Vec::new();
    for i in 0..MESSAGES {
        let data = format!("p{i}");
        published.push((hub.publish(json!({ "message": data })).0, data));
    }
    published.push((hub.publish_text("end"), "end".to_owned()));

    for (c, client) in clients.into_iter().enumerate() {
        let (seen, reconnects) = client.join().expect("client thread");
        assert!(
            reconnects > 10,
            "client {c} resumed only {reconnects} times"
        );
        assert_eq!(seen.len(), published.len(), "client {c}");
        assert!(seen == published, "client {c} saw a different sequence");
    }
}

/// With `--history-ttl`, a message older than its lifetime is not replayed:
/// a resume from before it gets a `gap` and only the younger messages
/// (SPEC "Message lifetime").
#[test]
fn messages_older_than_history_ttl_are_not_replayed() {
    let hub = Hub::start(&["--history-ttl", "1"]);
    let old = publish_n(&hub, 3, None);
    // Let the three grow older than a second (the IDs carry their publish
    // time), then publish two more.
    thread::sleep(std::time::Duration::from_millis(1100));
    let young: Vec<String> = ["y0", "y1"].iter().map(|m| hub.publish_text(m)).collect();

    let mut client = resume(&hub, "/events", Some(&old[0]));
    let gap = client.next_event();
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.json(), json!({"requested": old[0], "oldest": young[0]}));
    let replayed = client.events(2);
    assert_eq!(data(&replayed), ["y0", "y1"]);

    // From the last expired one: nothing after it was lost, so no gap.
    let mut client = resume(&hub, "/events", Some(&old[2]));
    let first = client.next_event();
    assert_eq!(
        (first.event.as_str(), first.data.as_str()),
        ("message", "y0")
    );
    assert_eq!(hub.stats()["history"], 2);
}
