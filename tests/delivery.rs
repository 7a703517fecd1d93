//! Fan-out at scale, and what happens to clients that die or fall behind.

mod common;

use std::io::{BufReader, Write};
use std::thread;

use common::{Hub, Reply, SseEvent, Subscriber, id_order};
use serde_json::json;

#[test]
fn a_hundred_clients_get_two_hundred_messages_each_in_order_once() {
    const CLIENTS: usize = 100;
    const MESSAGES: usize = 200;
    let hub = Hub::start(&[]);
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (mut client, _) = hub.subscribe_ready("/events");
            thread::spawn(move || {
                client
                    .events(MESSAGES)
                    .into_iter()
                    .map(|e| (e.id().to_owned(), e.data))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    hub.wait_for_clients(CLIENTS as u64);

    let published: Vec<(String, String)> = (0..MESSAGES)
        .map(|i| {
            let data = format!("message {i}");
            let (id, clients) = hub.publish(json!({ "message": data }));
            assert_eq!(clients, CLIENTS as u64);
            (id, data)
        })
        .collect();

    for reader in readers {
        assert_eq!(reader.join().unwrap(), published);
    }
    let stats = hub.wait_for_stats("all delivered", |s| {
        s["delivered"] == (CLIENTS * MESSAGES) as u64
    });
    assert_eq!(stats["published"], MESSAGES as u64);
    assert_eq!(stats["dropped_slow"], 0);
}

#[test]
fn a_client_that_hangs_up_vanishes_from_the_stats_at_once() {
    // No publish, and no heartbeat within the test's time: the hang-up
    // itself is seen.
    let hub = Hub::start(&["--heartbeat", "600"]);
    let (client, _) = hub.subscribe_ready("/events?channel=room");
    let (_stays, _) = hub.subscribe_ready("/events");
    hub.wait_for_clients(2);
    client.close();
    let stats = hub.wait_for_stats("the gone client removed", |s| s["clients"] == 1);
    assert_eq!(stats["channels"], json!({}));
    assert_eq!(stats["write_errors"], 0, "no write was needed to notice");
    assert_eq!(hub.publish(json!({"message": "to whoever is left"})).1, 1);
    // The log comes through a pipe, after the stats that the socket showed.
    hub.wait_for_log("disconnected: the client hung up");
}

#[test]
fn many_subscribers_on_many_channels_get_only_their_share() {
    let hub = Hub::start(&[]);
    let channels = ["a", "b", "c"];
    let clients: Vec<(Vec<&str>, Subscriber)> = vec![
        (vec!["a"], hub.subscribe_ready("/events?channel=a").0),
        (
            vec!["b", "c"],
            hub.subscribe_ready("/events?channel=b&channel=c").0,
        ),
        (vec![], hub.subscribe_ready("/events").0),
    ];
    let mut sent = Vec::new();
    for round in 0..10 {
        for channel in channels {
            let data = format!("{channel}{round}");
            hub.publish(json!({ "message": data, "channel": channel }));
            sent.push((Some(channel), data));
        }
        let data = format!("all{round}");
        hub.publish(json!({ "message": data }));
        sent.push((None, data));
    }
    for (joined, mut client) in clients {
        let expected: Vec<String> = sent
            .iter()
            .filter(|(channel, _)| channel.is_none_or(|c| joined.contains(&c)))
            .map(|(_, data)| data.clone())
            .collect();
        let got: Vec<String> = client
            .events(expected.len())
            .into_iter()
            .map(|e| e.data)
            .collect();
        assert_eq!(got, expected, "client of {joined:?}");
    }
}

#[test]
fn a_burst_of_pipelined_publishes_arrives_whole_and_in_order() {
    const MESSAGES: usize = 2000;
    let hub = Hub::start(&["--queue", "4096"]);
    let (mut client, _) = hub.subscribe_ready("/events");
    let mut requests = Vec::new();
    for i in 0..MESSAGES {
        let body = format!(r#"{{"message":"{i}"}}"#);
        let head = format!(
            "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        requests.extend_from_slice(head.as_bytes());
        requests.extend_from_slice(body.as_bytes());
    }
    let mut publisher = hub.connect();
    // Read the replies as they come, or the server would wait on us.
    let mut replies = BufReader::new(publisher.try_clone().unwrap());
    let replies = thread::spawn(move || {
        (0..MESSAGES)
            .map(|i| {
                let reply = Reply::read_from(&mut replies)
                    .unwrap_or_else(|| panic!("no reply to publish {i}"));
                assert_eq!(reply.status, 200, "publish {i}: {}", reply.text());
                reply.json()["id"].as_str().expect("an id").to_owned()
            })
            .collect::<Vec<_>>()
    });
    publisher.write_all(&requests).unwrap();

    let events = client.events(MESSAGES);
    let data: Vec<String> = events.iter().map(|e| e.data.clone()).collect();
    let expected: Vec<String> = (0..MESSAGES).map(|i| i.to_string()).collect();
    assert_eq!(data, expected);
    // Answered in request order, with the IDs the events carry.
    let ids: Vec<&str> = events.iter().map(SseEvent::id).collect();
    assert_eq!(replies.join().expect("the reply reader"), ids);
    let order: Vec<(u64, u64)> = ids.iter().map(|id| id_order(id)).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "IDs strictly increase"
    );
}
