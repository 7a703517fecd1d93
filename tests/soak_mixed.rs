//! Mixed soak: subscribers on two channels and on the global stream come
//! and go while a publisher runs steadily, and leave the way real clients
//! do: a clean close, a reset, or a stall (they stop reading for a while,
//! then drop the connection). Each resumes with `Last-Event-ID`. At the end
//! the hub holds no more threads or file descriptors than after the
//! warm-up, its resident memory grew by at most 10%, and every
//! subscriber got, across all its resumes, one unbroken run of the messages
//! it was due: nothing lost, doubled or out of order.
//!
//! The short form of `bench/soak.sh` (which runs this load at full size for
//! an hour). Ignored by a plain `cargo test`; `.ci/run` runs everything
//! ignored, this for `SOAK_SECONDS` (180 by default), a third of it
//! warm-up:
//!
//! ```sh
//! SOAK_SECONDS=600 cargo test --release --test soak_mixed -- --include-ignored --nocapture
//! ```

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::{GUARD, Hub};
use serde_json::json;
use socket2::SockRef;

/// Subscribers per lane: channel `a`, channel `b`, and the global stream.
const PER_LANE: usize = 8;
/// The lanes the publisher goes round: two channels, then everyone.
const LANES: [Option<&str>; 3] = [Some("a"), Some("b"), None];
/// At most this many messages are read on one connection.
const MOST_PER_VISIT: u64 = 60;
/// A stalling subscriber stops reading for 1 s up to this long.
const LONGEST_STALL_MS: u64 = 3000;
/// The publisher's pace: about 60 messages a second.
const PUBLISH_EVERY: Duration = Duration::from_millis(16);
/// Quiet before each measurement: longer than the 5 s after which idle
/// threads of tiny_http's pool exit.
const SETTLE: Duration = Duration::from_secs(7);
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How much resident memory may grow between the two measurements. Under
/// this load the hub's memory is the history, the threads alive and what
/// the allocator keeps per thread, none of which grows with time; but the
/// allocator's arenas take about ten minutes to settle (bench/SOAK_RESULTS.md),
/// so a short run allows for that.
const RSS_TOLERANCE_PERCENT: u64 = 10;

const RUN: u8 = 0;
const PAUSE: u8 = 1;
const STOP: u8 = 2;

struct Control {
    churn: AtomicU8,
    parked: AtomicUsize,
    publish: AtomicU8,
    publisher_idle: AtomicU8,
    /// Every message published, in order: its ID and its lane.
    published: Mutex<Vec<(String, usize)>>,
    visits: AtomicUsize,
    /// Visits that ended with a clean close, a reset, a stall.
    leaves: [AtomicUsize; 3],
}

#[test]
#[ignore = "a soak of SOAK_SECONDS (180 by default): .ci/run runs it"]
fn subscribers_that_close_reset_or_stall_leave_nothing_behind_and_lose_nothing() {
    let total = soak_seconds();
    let warm_up = Duration::from_secs(total / 3);
    let main = Duration::from_secs(total) - warm_up;
    let hub = Hub::start(&["--heartbeat", "1", "--history", "4096", "--queue", "256"]);
    let control = Control {
        churn: AtomicU8::new(RUN),
        parked: AtomicUsize::new(0),
        publish: AtomicU8::new(RUN),
        publisher_idle: AtomicU8::new(0),
        published: Mutex::new(Vec::new()),
        visits: AtomicUsize::new(0),
        leaves: Default::default(),
    };
    let churners = LANES.len() * PER_LANE;

    thread::scope(|scope| {
        let _end_on_panic = KillOnPanic(hub.pid());
        let publisher = scope.spawn(|| publish(&hub, &control));
        let subscribers: Vec<_> = (0..churners)
            .map(|i| {
                let (hub, control) = (&hub, &control);
                let lane = i % LANES.len();
                scope.spawn(move || churn(hub, control, lane, 0x9e37_79b9_7f4a_7c15 ^ i as u64))
            })
            .collect();

        thread::sleep(warm_up);
        let start = quiesce(&hub, &control, churners);
        eprintln!("after the warm-up of {warm_up:?}: {start:?}");
        control.publish.store(RUN, SeqCst);
        control.churn.store(RUN, SeqCst);

        let running = Instant::now();
        while running.elapsed() < main {
            thread::sleep(REPORT_EVERY.min(main.saturating_sub(running.elapsed())));
            eprintln!("{:>6.0?} under load: {:?}", running.elapsed(), usage(&hub));
        }
        let end = quiesce(&hub, &control, churners);
        eprintln!("after {main:?} more: {end:?}");
        control.churn.store(STOP, SeqCst);
        control.publish.store(STOP, SeqCst);
        publisher.join().expect("the publisher");
        let published = control.published.lock().unwrap().clone();
        let leaves: Vec<usize> = control.leaves.iter().map(|n| n.load(SeqCst)).collect();
        eprintln!(
            "{} messages published; {} visits by {churners} subscribers: {} closed, {} reset, {} stalled",
            published.len(),
            control.visits.load(SeqCst),
            leaves[0],
            leaves[1],
            leaves[2]
        );
        assert!(
            end.threads <= start.threads && end.fds <= start.fds,
            "threads or descriptors were left behind: {start:?} after the warm-up, {end:?} at the end"
        );
        assert!(
            end.rss_kib * 100 <= start.rss_kib * (100 + RSS_TOLERANCE_PERCENT),
            "resident memory grew by more than {RSS_TOLERANCE_PERCENT}%: \
             {start:?} after the warm-up, {end:?} at the end"
        );
        for (i, subscriber) in subscribers.into_iter().enumerate() {
            let received = subscriber.join().expect("a subscriber");
            check_unbroken(i, i % LANES.len(), &received, &published);
        }
    });
}

/// Kills a process if the thread that holds this unwinds.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            let pid = i32::try_from(self.0).expect("pid fits");
            // SAFETY: kill(2) on our own child, not yet reaped (the Hub that
            // reaps it outlives this guard), so the pid is still its own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn soak_seconds() -> u64 {
    std::env::var("SOAK_SECONDS").map_or(180, |s| {
        let seconds: u64 = s
            .parse()
            .unwrap_or_else(|_| panic!("SOAK_SECONDS={s:?} is not a number of seconds"));
        assert!(seconds >= 30, "SOAK_SECONDS={seconds}: at least 30");
        seconds
    })
}

/// Parks the subscribers between visits, pauses the publisher, waits until
/// no stream is left and the pools are idle, and measures.
fn quiesce(hub: &Hub, control: &Control, churners: usize) -> Usage {
    control.churn.store(PAUSE, SeqCst);
    wait_until("every subscriber to park", || {
        control.parked.load(SeqCst) == churners
    });
    control.publish.store(PAUSE, SeqCst);
    wait_until("the publisher to pause", || {
        control.publisher_idle.load(SeqCst) == 1
    });
    hub.wait_for_clients(0);
    thread::sleep(SETTLE);
    usage(hub)
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let start = Instant::now();
    // A stalled visit finishes first: its stall, then its close.
    let bound = GUARD + Duration::from_millis(LONGEST_STALL_MS);
    while !ok() {
        assert!(start.elapsed() < bound, "no {what} within {bound:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes round robin over the lanes at a steady pace while told to.
fn publish(hub: &Hub, control: &Control) {
    let mut n = 0usize;
    loop {
        match control.publish.load(SeqCst) {
            RUN => {
                control.publisher_idle.store(0, SeqCst);
                let lane = n % LANES.len();
                let body = match LANES[lane] {
                    Some(channel) => json!({ "message": format!("soak {n}"), "channel": channel }),
                    None => json!({ "message": format!("soak {n}") }),
                };
                let (id, _) = hub.publish(body);
                control.published.lock().unwrap().push((id, lane));
                n += 1;
                thread::sleep(PUBLISH_EVERY);
            }
            PAUSE => {
                control.publisher_idle.store(1, SeqCst);
                thread::sleep(Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// Whether a subscriber of `lane` is due a message of `message_lane`.
fn due(lane: usize, message_lane: usize) -> bool {
    message_lane == lane || LANES[message_lane].is_none()
}

/// Visits over and over: connect (resuming from the last ID seen), read a
/// few messages, leave (close, reset or stall), pause a little. Returns
/// every ID received, in order.
fn churn(hub: &Hub, control: &Control, lane: usize, seed: u64) -> Vec<String> {
    let mut random = seed | 1;
    let mut next = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let path = match LANES[lane] {
        Some(channel) => format!("/events?channel={channel}"),
        None => "/events".to_owned(),
    };
    let mut last: Option<String> = None;
    let mut received = Vec::new();
    loop {
        match control.churn.load(SeqCst) {
            RUN => {}
            PAUSE => {
                control.parked.fetch_add(1, SeqCst);
                while control.churn.load(SeqCst) == PAUSE {
                    thread::sleep(Duration::from_millis(10));
                }
                control.parked.fetch_sub(1, SeqCst);
                continue;
            }
            _ => return received,
        }
        let headers: Vec<(&str, &str)> = last
            .as_deref()
            .map(|id| ("Last-Event-ID", id))
            .into_iter()
            .collect();
        let mut subscriber = hub.subscribe_with(&path, &headers);
        assert_eq!(subscriber.status, 200, "{}", subscriber.error_body);
        let hello = subscriber.next_event();
        assert_eq!(hello.event, "connection", "{hello:?}");
        for _ in 0..1 + next() % MOST_PER_VISIT {
            let event = subscriber.next_event();
            // History covers every absence: a gap here is a lost message.
            assert_eq!(event.event, "message", "a subscriber got {event:?}");
            let id = event.id().to_owned();
            received.push(id.clone());
            last = Some(id);
        }
        let leave = (next() % 3) as usize;
        match leave {
            0 => subscriber.close(),
            1 => {
                let _ = SockRef::from(subscriber.socket()).set_linger(Some(Duration::ZERO));
                drop(subscriber);
            }
            _ => {
                // Stop reading; what arrives meanwhile is never read, and
                // comes again on the resume.
                thread::sleep(Duration::from_millis(
                    1000 + next() % (LONGEST_STALL_MS - 1000),
                ));
                drop(subscriber);
            }
        }
        control.leaves[leave].fetch_add(1, SeqCst);
        control.visits.fetch_add(1, SeqCst);
        thread::sleep(Duration::from_millis(next() % 200));
    }
}

/// Checks that what subscriber `i` of `lane` received over all its visits
/// is one unbroken run of the messages published to it.
fn check_unbroken(i: usize, lane: usize, received: &[String], published: &[(String, usize)]) {
    let Some(first) = received.first() else {
        return;
    };
    let own: Vec<&String> = published
        .iter()
        .filter(|(_, message_lane)| due(lane, *message_lane))
        .map(|(id, _)| id)
        .collect();
    let start = own
        .iter()
        .position(|id| *id == first)
        .unwrap_or_else(|| panic!("subscriber {i} got {first}, which was not published to it"));
    let expected = &own[start..(start + received.len()).min(own.len())];
    if let Some(at) = received.iter().zip(expected).position(|(r, e)| r != *e) {
        panic!(
            "subscriber {i}: message {at} of its run is {}, expected {}",
            received[at], expected[at]
        );
    }
    assert_eq!(
        expected.len(),
        received.len(),
        "subscriber {i} got more than was published to it"
    );
}

#[derive(Clone, Copy, Debug)]
struct Usage {
    threads: u64,
    fds: u64,
    rss_kib: u64,
}

/// Threads and resident memory from `/proc/<pid>/status`, descriptors from
/// `/proc/<pid>/fd`.
fn usage(hub: &Hub) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{}/status", hub.pid()))
        .expect("read the hub's /proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{}/fd", hub.pid()))
        .expect("list the hub's descriptors")
        .count();
    Usage {
        threads: field("Threads:"),
        fds: fds as u64,
        rss_kib: field("VmRSS:"),
    }
}
