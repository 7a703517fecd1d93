//! Soak: subscribers connect, close and resume with `Last-Event-ID` while a
//! publisher runs steadily. At the end the hub holds no more threads, file
//! descriptors or memory than after the warm-up (within 10%), every
//! subscriber that stayed got every message in order, and every one that
//! came and went got, across its resumes, one unbroken run of them.
//!
//! Ignored by a plain `cargo test`; `.ci/run` runs it (with everything
//! ignored) for `SOAK_SECONDS`, 180 by default, a third of it warm-up (under this load the
//! hub's resident memory grows for a minute or two, then levels off). The
//! longer form, for a change to the writer, the hub or the pools (an hour,
//! with the optimised binary, the figures printed):
//!
//! ```sh
//! SOAK_SECONDS=3600 cargo test --release --test soak -- --include-ignored --nocapture
//! ```
//!
//! Timeouts here only guard against hangs; the one fixed wait is the settle
//! before each measurement, longer than the idle timeout after which the
//! request pools shrink.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::{GUARD, Hub, Item, Subscriber};
use serde_json::json;
use socket2::SockRef;

/// Subscribers that stay connected for the whole run.
const STAYERS: usize = 4;
/// Subscribers that connect, read a little, close and resume, over and over.
const CHURNERS: usize = 16;
/// At most this many messages are read on one connection of a churner.
const MOST_PER_VISIT: u64 = 40;
/// The publisher's pace: about 50 messages a second.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// Quiet before each measurement: longer than the 5 s after which idle
/// threads of tiny_http's pool and of the hub's request workers exit.
const SETTLE: Duration = Duration::from_secs(7);
/// How often the figures are printed while the load runs.
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How much the hub may have grown between the two measurements.
const TOLERANCE_PERCENT: u64 = 10;

const RUN: u8 = 0;
const PAUSE: u8 = 1;
const STOP: u8 = 2;

/// What the main thread tells the others.
struct Control {
    /// For the churners: RUN, PAUSE (park between visits) or STOP.
    churn: AtomicU8,
    /// Churners parked now.
    parked: AtomicUsize,
    /// For the publisher: RUN, PAUSE or STOP (publish the last message and
    /// end).
    publish: AtomicU8,
    /// Whether the publisher is idle in a pause.
    publisher_idle: AtomicU8,
    /// Every ID published, in order.
    published: Mutex<Vec<String>>,
    /// Visits made by churners (connect, read, close).
    visits: AtomicUsize,
}

#[test]
#[ignore = "a soak of SOAK_SECONDS (180 by default): .ci/run runs it"]
fn churning_subscribers_leave_nothing_behind_and_lose_nothing() {
    let total = soak_seconds();
    let warm_up = Duration::from_secs(total / 3);
    let main = Duration::from_secs(total) - warm_up;
    let hub = Hub::start(&["--heartbeat", "1"]);
    let control = Control {
        churn: AtomicU8::new(RUN),
        parked: AtomicUsize::new(0),
        publish: AtomicU8::new(RUN),
        publisher_idle: AtomicU8::new(0),
        published: Mutex::new(Vec::new()),
        visits: AtomicUsize::new(0),
    };

    thread::scope(|scope| {
        // A failure anywhere must not leave the other threads reading
        // streams that heartbeats keep alive: it ends the hub, and them.
        let _end_on_panic = KillOnPanic(hub.pid());
        let stayers: Vec<_> = (0..STAYERS)
            .map(|_| {
                let (subscriber, _) = hub.subscribe_ready("/events");
                scope.spawn(move || stay(subscriber))
            })
            .collect();
        hub.wait_for_clients(STAYERS as u64);
        let publisher = scope.spawn(|| publish(&hub, &control));
        let churners: Vec<_> = (0..CHURNERS)
            .map(|i| {
                let (hub, control) = (&hub, &control);
                scope.spawn(move || churn(hub, control, 0x9e37_79b9_7f4a_7c15 ^ i as u64))
            })
            .collect();

        thread::sleep(warm_up);
        let start = quiesce(&hub, &control);
        eprintln!("after the warm-up of {warm_up:?}: {start:?}");
        control.publish.store(RUN, SeqCst);
        control.churn.store(RUN, SeqCst);

        // Figures under load, for the record (`--nocapture` shows them).
        let running = Instant::now();
        while running.elapsed() < main {
            thread::sleep(REPORT_EVERY.min(main.saturating_sub(running.elapsed())));
            eprintln!("{:>6.0?} under load: {:?}", running.elapsed(), usage(&hub));
        }
        let mut end = quiesce(&hub, &control);
        let since = Instant::now();
        while !end.within(&start) && since.elapsed() < GUARD {
            thread::sleep(Duration::from_millis(500));
            end = usage(&hub);
        }
        eprintln!("after {main:?} more: {end:?}");
        let visits = control.visits.load(SeqCst);

        control.churn.store(STOP, SeqCst);
        control.publish.store(STOP, SeqCst);
        publisher.join().expect("the publisher");
        let published = control.published.lock().unwrap().clone();
        eprintln!(
            "{} messages published, {visits} visits by {CHURNERS} churners",
            published.len()
        );
        assert!(
            end.within(&start),
            "the hub grew by more than {TOLERANCE_PERCENT}% over the soak: \
             {start:?} after the warm-up, {end:?} at the end"
        );

        for (i, stayer) in stayers.into_iter().enumerate() {
            let received = stayer.join().expect("a stayer");
            assert!(
                received == published,
                "stayer {i}: {} of {} messages, first difference at {:?}",
                received.len(),
                published.len(),
                received.iter().zip(&published).position(|(r, p)| r != p)
            );
        }
        for (i, churner) in churners.into_iter().enumerate() {
            let received = churner.join().expect("a churner");
            check_unbroken(i, &received, &published);
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

/// `SOAK_SECONDS`, or 180.
fn soak_seconds() -> u64 {
    std::env::var("SOAK_SECONDS").map_or(180, |s| {
        let seconds: u64 = s
            .parse()
            .unwrap_or_else(|_| panic!("SOAK_SECONDS={s:?} is not a number of seconds"));
        assert!(seconds >= 12, "SOAK_SECONDS={seconds}: at least 12");
        seconds
    })
}

/// Parks the churners between visits, pauses the publisher, waits until
/// only the stayers are registered and the pools are idle, and measures.
fn quiesce(hub: &Hub, control: &Control) -> Usage {
    control.churn.store(PAUSE, SeqCst);
    // A churner finishes its visit first, which needs the publisher.
    wait_until("every churner to park", || {
        control.parked.load(SeqCst) == CHURNERS
    });
    control.publish.store(PAUSE, SeqCst);
    wait_until("the publisher to pause", || {
        control.publisher_idle.load(SeqCst) == 1
    });
    hub.wait_for_clients(STAYERS as u64);
    thread::sleep(SETTLE);
    usage(hub)
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < GUARD, "no {what} within {GUARD:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes at a steady pace while told to; on STOP, publishes "the end"
/// and returns.
fn publish(hub: &Hub, control: &Control) {
    let mut n = 0u64;
    loop {
        match control.publish.load(SeqCst) {
            RUN => {
                control.publisher_idle.store(0, SeqCst);
                n += 1;
                let (id, _) = hub.publish(json!({ "message": format!("soak {n}") }));
                control.published.lock().unwrap().push(id);
                thread::sleep(PUBLISH_EVERY);
            }
            PAUSE => {
                control.publisher_idle.store(1, SeqCst);
                thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let id = hub.publish_text("the end");
                control.published.lock().unwrap().push(id);
                return;
            }
        }
    }
}

/// Reads one stream to the message "the end"; returns the IDs received.
fn stay(mut subscriber: Subscriber) -> Vec<String> {
    let mut received = Vec::new();
    // Heartbeats every second keep the read timeout away through pauses.
    while let Some(item) = subscriber.next_item() {
        let Item::Event(event) = item else { continue };
        assert_eq!(event.event, "message", "a stayer got {event:?}");
        received.push(event.id().to_owned());
        if event.data == "the end" {
            return received;
        }
    }
    panic!("a stayer's stream ended after {} messages", received.len());
}

/// Visits over and over: connect (resuming from the last ID seen), read a
/// few messages, close (now and then with a reset), pause a little. Returns
/// every ID received, in order.
fn churn(hub: &Hub, control: &Control, seed: u64) -> Vec<String> {
    let mut random = seed | 1;
    let mut next = move || {
        // xorshift64: enough to vary the visits, and repeatable.
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
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
        let mut subscriber = hub.subscribe_with("/events", &headers);
        assert_eq!(subscriber.status, 200, "{}", subscriber.error_body);
        let hello = subscriber.next_event();
        assert_eq!(hello.event, "connection", "{hello:?}");
        for _ in 0..next() % MOST_PER_VISIT {
            let event = subscriber.next_event();
            // History covers every absence: a gap here is a lost message.
            assert_eq!(event.event, "message", "a churner got {event:?}");
            let id = event.id().to_owned();
            received.push(id.clone());
            last = Some(id);
        }
        if next() % 3 == 0 {
            // Close with a reset rather than a FIN.
            let _ = SockRef::from(subscriber.socket()).set_linger(Some(Duration::ZERO));
            drop(subscriber);
        } else {
            subscriber.close();
        }
        control.visits.fetch_add(1, SeqCst);
        thread::sleep(Duration::from_millis(next() % 100));
    }
}

/// Checks that what churner `i` received over all its visits is one
/// unbroken run of the published IDs: every resume went on exactly where
/// the last visit stopped.
fn check_unbroken(i: usize, received: &[String], published: &[String]) {
    let Some(first) = received.first() else {
        return;
    };
    let start = published
        .iter()
        .position(|id| id == first)
        .unwrap_or_else(|| panic!("churner {i} got {first}, which was never published"));
    let expected = &published[start..(start + received.len()).min(published.len())];
    if let Some(at) = received.iter().zip(expected).position(|(r, e)| r != e) {
        panic!(
            "churner {i}: message {at} of its run is {}, expected {}",
            received[at], expected[at]
        );
    }
    assert_eq!(
        expected.len(),
        received.len(),
        "churner {i} got more than was published"
    );
}

/// What the hub process holds.
#[derive(Clone, Copy, Debug)]
struct Usage {
    threads: u64,
    fds: u64,
    rss_kib: u64,
}

impl Usage {
    /// Whether no figure grew past the tolerance over `start`.
    fn within(&self, start: &Usage) -> bool {
        let ok = |now: u64, then: u64| now * 100 <= then * (100 + TOLERANCE_PERCENT);
        ok(self.threads, start.threads)
            && ok(self.fds, start.fds)
            && ok(self.rss_kib, start.rss_kib)
    }
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
