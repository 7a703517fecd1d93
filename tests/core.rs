//! The hub without any socket, through the public API only: what an
//! application that embeds it relies on. No server is started here.

use std::time::Duration;

use sse_hub::{
    Channel, Closed, Error, Event, EventId, EventStream, Framing, Hub, HubConfig, Message, Stats,
    StreamRequest, Subscription,
};

/// A guard against a hang, never a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

fn hub(config: HubConfig) -> Hub {
    Hub::start(config).expect("a hub starts")
}

fn channel(name: &str) -> Channel {
    Channel::new(name).expect("a valid name")
}

/// The data of every event in the next frame.
fn next_data(subscription: &mut Subscription) -> Vec<String> {
    let frame = subscription
        .recv_timeout(GUARD)
        .expect("a frame within the guard");
    frame.dispatch().into_iter().map(|e| e.data).collect()
}

fn stats(hub: &Hub) -> Stats {
    hub.stats().expect("the hub runs")
}

#[test]
fn a_channel_message_reaches_its_members_and_a_global_one_everyone() {
    let hub = hub(HubConfig::default());
    let mut everyone = hub.subscribe(&[], None).unwrap();
    let mut news = hub.subscribe(&[channel("news")], None).unwrap();

    let global = hub.publish(&Event::new("g"), None).unwrap();
    let only_news = hub
        .publish(&Event::new("n"), Some(&channel("news")))
        .unwrap();
    assert_eq!((global.clients, only_news.clients), (2, 1));
    assert!(only_news.id > global.id);

    assert_eq!(next_data(&mut everyone), ["g"]);
    assert!(everyone.try_recv().is_none(), "not a member of news");
    assert_eq!(next_data(&mut news), ["g"]);
    assert_eq!(next_data(&mut news), ["n"]);
}

#[test]
fn every_recipient_gets_the_same_shared_bytes() {
    let hub = hub(HubConfig::default());
    let mut a = hub.subscribe(&[], None).unwrap();
    let mut b = hub.subscribe(&[], None).unwrap();
    hub.publish(&Event::new("x"), None).unwrap();
    let (fa, fb) = (a.recv().unwrap(), b.recv().unwrap());
    assert!(std::ptr::eq(fa.as_ptr(), fb.as_ptr()), "one frame, shared");
}

#[test]
fn a_batch_is_in_order_with_consecutive_ids_and_counts_each_client_once() {
    let hub = hub(HubConfig::default());
    let mut everyone = hub.subscribe(&[], None).unwrap();
    let mut news = hub.subscribe(&[channel("news")], None).unwrap();
    let batch = [
        Message {
            event: Event::new("1"),
            channel: None,
        },
        Message {
            event: Event::new("2"),
            channel: Some(channel("news")),
        },
        Message {
            event: Event::new("3"),
            channel: None,
        },
    ];
    let published = hub.publish_batch(&batch).unwrap();
    assert_eq!(published.clients, 2);
    assert!(published.ids.windows(2).all(|w| w[0] < w[1]));

    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(next_data(&mut news));
    }
    assert_eq!(got, ["1", "2", "3"]);
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(next_data(&mut everyone));
    }
    assert_eq!(got, ["1", "3"]);
    assert_eq!(stats(&hub).published, 3);
}

#[test]
fn resuming_replays_what_was_missed_then_live_messages() {
    let hub = hub(HubConfig::default());
    let first = hub.publish(&Event::new("1"), None).unwrap();
    hub.publish(&Event::new("2"), None).unwrap();
    hub.publish(&Event::new("n"), Some(&channel("news")))
        .unwrap();
    let mut resumed = hub.subscribe(&[], Some(first.id)).unwrap();
    let replayed: Vec<String> = resumed
        .replay()
        .iter()
        .flat_map(|f| f.dispatch())
        .map(|e| e.data)
        .collect();
    assert_eq!(replayed, ["2"], "only what its channels would have had");
    assert!(!resumed.gap());
    hub.publish(&Event::new("3"), None).unwrap();
    assert_eq!(next_data(&mut resumed), ["3"]);
}

#[test]
fn a_gap_when_history_no_longer_reaches_back() {
    let hub = hub(HubConfig {
        history: 2,
        ..HubConfig::default()
    });
    let first = hub.publish(&Event::new("1"), None).unwrap();
    for n in 2..=4 {
        hub.publish(&Event::new(n.to_string()), None).unwrap();
    }
    let resumed = hub.subscribe(&[], Some(first.id)).unwrap();
    assert!(resumed.gap(), "message 2 was dropped from history");
    assert_eq!(resumed.replay().len(), 2);
    // An ID from before this hub started: a gap too.
    let ancient = hub.subscribe(&[], Some(EventId::new(1, 0))).unwrap();
    assert!(ancient.gap());
    assert_eq!(stats(&hub).history, 2);
}

#[test]
fn a_subscriber_that_falls_behind_is_dropped_alone() {
    let hub = hub(HubConfig {
        queue: 2,
        ..HubConfig::default()
    });
    let mut slow = hub.subscribe(&[], None).unwrap();
    let mut fast = hub.subscribe(&[], None).unwrap();
    for n in 0..3 {
        hub.publish(&Event::new(n.to_string()), None).unwrap();
        assert_eq!(next_data(&mut fast), [n.to_string()]);
    }
    let figures = stats(&hub);
    assert_eq!((figures.clients, figures.dropped_slow), (1, 1));
    // The slow one gets what was queued for it, then the end.
    assert_eq!(next_data(&mut slow), ["0"]);
    assert_eq!(next_data(&mut slow), ["1"]);
    assert!(slow.recv().is_none());
    assert_eq!(slow.closed(), Some(Closed::Slow));
}

#[test]
fn the_client_limit_holds_and_a_dropped_subscription_frees_its_place() {
    let hub = hub(HubConfig {
        max_clients: 1,
        ..HubConfig::default()
    });
    let first = hub.subscribe(&[], None).unwrap();
    assert!(matches!(hub.subscribe(&[], None), Err(Error::HubFull)));
    drop(first);
    let guard = std::time::Instant::now();
    loop {
        match hub.subscribe(&[], None) {
            Ok(_) => break,
            Err(Error::HubFull) => assert!(guard.elapsed() < GUARD, "the place was never freed"),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_stream_can_be_written_to_any_writer() {
    let hub = hub(HubConfig {
        retry: None,
        ..HubConfig::default()
    });
    let request = StreamRequest::from_query("channel=news", None)
        .unwrap()
        .framing(Framing::BodyOnly);
    let stream = EventStream::open(&hub, request).unwrap();
    let client = stream.client();
    hub.publish(&Event::new("hello").with_name("greeting").unwrap(), None)
        .unwrap();
    hub.stop();
    let mut body = Vec::new();
    stream.run(&mut body);
    let events = sse_hub::sse::Parser::new().feed(&body);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "connection");
    assert!(events[0].data.contains(&format!("\"client\":\"{client}\"")));
    assert_eq!(
        (events[1].event_type.as_str(), events[1].data.as_str()),
        ("greeting", "hello")
    );
}

#[test]
fn a_stopped_hub_refuses_everything_at_once() {
    let hub = hub(HubConfig::default());
    let mut subscription = hub.subscribe(&[], None).unwrap();
    hub.stop();
    // The subscription ends ...
    assert!(subscription.recv_timeout(GUARD).is_none());
    assert_eq!(subscription.closed(), Some(Closed::Shutdown));
    // ... and every call fails instead of waiting for a hub that is gone.
    assert!(matches!(
        hub.publish(&Event::new("x"), None),
        Err(Error::HubStopped)
    ));
    assert!(matches!(hub.stats(), Err(Error::HubStopped)));
    assert!(matches!(
        hub.subscribe(&[], None).map(drop),
        Err(Error::HubStopped)
    ));
}

#[test]
fn a_bad_setting_is_named() {
    let outcome = Hub::start(HubConfig {
        queue: 0,
        ..HubConfig::default()
    });
    assert!(matches!(
        outcome,
        Err(Error::InvalidConfig { field: "queue", .. })
    ));
}

/// The wake-up protocol under load: writers sleep whenever their queue is
/// empty (no heartbeat to wake them) and the hub wakes them after it has
/// answered each publish, a few at a time. A wake-up lost anywhere leaves a
/// writer asleep with messages queued, and the delivered count stops short.
#[test]
fn sleeping_writers_never_miss_a_wake_up() {
    const WRITERS: usize = 100;
    const MESSAGES: u64 = 2000;
    // Queues longer than the run: no writer can be dropped as slow.
    let hub = hub(HubConfig {
        heartbeat: None,
        queue: MESSAGES as usize + 1,
        ..HubConfig::default()
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let request = StreamRequest::new().framing(Framing::BodyOnly);
            let stream = EventStream::open(&hub, request).unwrap();
            std::thread::spawn(move || stream.run(std::io::sink()))
        })
        .collect();
    for n in 0..MESSAGES {
        hub.publish(&Event::new(n.to_string()), None).unwrap();
    }
    let expected = WRITERS as u64 * MESSAGES;
    let guard = std::time::Instant::now();
    while stats(&hub).delivered < expected {
        assert!(
            guard.elapsed() < GUARD,
            "a writer slept through its wake-up: {} of {expected} delivered",
            stats(&hub).delivered
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(stats(&hub).dropped_slow, 0);
    hub.stop();
    for writer in writers {
        assert!(matches!(
            writer.join().unwrap(),
            sse_hub::Ended::Closed(Closed::Shutdown)
        ));
    }
}
