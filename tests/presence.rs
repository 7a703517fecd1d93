//! Presence (`--presence`, `GET /presence`; SPEC "Presence") on one hub,
//! over real sockets: join and leave events as ordinary messages, the list,
//! who a member is, and the rights a private channel's list needs.

mod common;

use common::{Hub, SseEvent, Subscriber};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &str = "a test secret that is long enough for HS256";

fn presence_event(subscriber: &mut Subscriber) -> (SseEvent, Value) {
    let event = subscriber.next_event();
    assert_eq!(event.event, "presence", "{event:?}");
    let data = event.json();
    (event, data)
}

#[test]
fn joins_and_leaves_are_presence_events_and_the_list_follows() {
    let hub = Hub::start(&["--presence", "room:*"]);
    let (mut ann, ann_id) = hub.subscribe_ready("/events?channel=room:1");
    // Ann sees her own join first: the join is published once she is in.
    let (own, data) = presence_event(&mut ann);
    assert_eq!(
        data,
        json!({"action": "join", "client": ann_id, "user": null})
    );
    assert!(
        own.id.is_some(),
        "a presence event has an ID like any message"
    );

    let (bob, bob_id) = hub.subscribe_ready("/events?channel=room:1&channel=news");
    let (_, data) = presence_event(&mut ann);
    assert_eq!(
        (data["action"].as_str(), data["client"].as_str()),
        (Some("join"), Some(bob_id.as_str()))
    );

    let list = hub.get("/presence?channel=room:1");
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    assert_eq!(list["channel"], "room:1");
    assert_eq!(list["count"], 2);
    let clients: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap())
        .collect();
    assert!(
        clients.contains(&ann_id.as_str()) && clients.contains(&bob_id.as_str()),
        "{list}"
    );

    // Bob hangs up: the hang-up watcher ends his stream, and the leave
    // follows at once (no heartbeat needed).
    drop(bob);
    let (leave_event, data) = presence_event(&mut ann);
    assert_eq!(
        data,
        json!({"action": "leave", "client": bob_id, "user": null})
    );
    assert_eq!(hub.get("/presence?channel=room:1").json()["count"], 1);

    // Ordinary messages: a resume from Ann's join replays Bob's join and
    // leave, with their IDs (and then the resumer's own join).
    let mut resumed = hub.subscribe_with(
        "/events?channel=room:1",
        &[("Last-Event-ID", own.id.as_deref().unwrap())],
    );
    assert_eq!(resumed.next_event().event, "connection");
    let replayed: Vec<SseEvent> = (0..2).map(|_| resumed.next_event()).collect();
    let actions: Vec<Value> = replayed
        .iter()
        .map(|e| e.json()["action"].clone())
        .collect();
    assert_eq!(actions, ["join", "leave"]);
    assert_eq!(replayed[1].id, leave_event.id);
}

#[test]
fn a_channel_without_presence_or_a_bad_request_is_refused() {
    let hub = Hub::start(&["--presence", "room:*"]);
    hub.get("/presence?channel=news")
        .assert_error(404, "has no presence", "news");
    hub.get("/presence")
        .assert_error(400, "channel=NAME", "no channel");
    hub.get("/presence?channel=a%20b")
        .assert_error(400, "channel name", "a bad name");
    let reply = hub.get("/presence?channel=room:empty");
    assert_eq!(
        reply.json(),
        json!({"channel": "room:empty", "count": 0, "clients": []})
    );
    // Publishers may not forge presence.
    let forged = hub.post(r#"{"message":"{}","event":"presence","channel":"room:1"}"#);
    forged.assert_error(400, "reserved", "a forged presence event");
}

/// A private channel's list needs the right to join it; the member's user
/// is the token's `sub`.
#[test]
fn a_private_channels_presence_needs_the_right_to_join_and_shows_the_user() {
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &["--presence", "team:*", "--private", "team:*"],
        &[("SSE_HUB_JWT_SECRET", SECRET)],
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = |sub: &str, rooms: &[&str]| {
        let claims = json!({ "exp": exp, "sub": sub, "sse-hub": { "subscribe": rooms } });
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let ann = format!("Bearer {}", token("ann", &["team:red"]));
    let mut stream = hub.subscribe_with("/events?channel=team:red", &[("Authorization", &ann)]);
    assert_eq!(stream.next_event().event, "connection");
    let (_, data) = presence_event(&mut stream);
    assert_eq!(data["user"], "ann");

    let list = hub.request(
        "GET",
        "/presence?channel=team:red",
        &[("Authorization", &ann)],
        b"",
    );
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["clients"][0]["user"], "ann");
    hub.get("/presence?channel=team:red")
        .assert_error(401, "private", "no token");
    let other = format!("Bearer {}", token("eve", &["team:blue"]));
    let reply = hub.request(
        "GET",
        "/presence?channel=team:red",
        &[("Authorization", &other)],
        b"",
    );
    assert_eq!(reply.status, 403);
}
