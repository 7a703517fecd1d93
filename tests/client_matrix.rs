//! The client matrix: third-party SSE clients against the real binary,
//! through a TCP proxy that the test cuts ([`common::proxy`]).
//!
//! Each client is a small script that connects to the proxy, reconnects by
//! itself (or through the library's documented loop) and prints every event
//! it dispatches as one JSON line: `tests/clients/node/` (the `eventsource`
//! package, `@microsoft/fetch-event-source`, Chromium's own EventSource
//! through `playwright-core`) and `tests/clients/python/` (`sseclient-py`,
//! `httpx-sse`). The same scenario runs for each, and checks that the
//! client
//! - reconnects by itself after every cut;
//! - resumes exactly after a cut: what was published while it was away
//!   arrives once, in order;
//! - is still exact after a quiet reconnect (a cut with nothing published)
//!   followed by a cut with messages published meanwhile;
//! - honours `retry`: the value it exposes on the `connection` event, where
//!   it exposes one, and in behaviour: told to wait 60 s, it does not come
//!   back within [`QUIET_WINDOW`], longer than any tested library's own
//!   default (only a client that ignores `retry` can fail that, however slow
//!   the machine);
//! - gets `gap` after a restart of the hub behind the same proxy address,
//!   and keeps its place through a cut right after it;
//! - receives no event that was not published, heartbeats running (1 s)
//!   through idle stretches.
//!
//! A failed check does not stop the scenario: the test fails at the end with
//! every failed check, the events the client printed and the requests it
//! sent. Only a client that does not reconnect at all stops it.
//!
//! Ignored by a plain `cargo test`: it needs Node 20, Chromium and Python
//! packages. `.ci/run` installs them; by hand:
//!
//! ```sh
//! (cd tests/clients/node && npm ci)
//! apt-get install chromium
//! python3 -m venv target/venv
//! target/venv/bin/pip install -r tests/clients/python/requirements.txt
//! cargo test --test client_matrix -- --include-ignored
//! ```
//!
//! `SSE_HUB_TEST_VENV` names another virtualenv, `CHROMIUM_PATH` another
//! Chromium.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::Hub;
use common::clients::{CLIENT_GUARD, Client, Library, Received, Runtime};
use common::proxy::{Admission, Proxy};
use serde_json::{Value, json};

/// The `retry:` of the first two hubs: short, so reconnects are quick.
const RETRY_MS: u64 = 300;
/// The `retry:` of the last hub, after the second restart: far longer than
/// the test runs.
const LONG_RETRY_MS: u64 = 60_000;
/// How long a client told to wait [`LONG_RETRY_MS`] must stay away: longer
/// than the default reconnect delay of every client here (the `eventsource`
/// package and Chromium 3 s, fetch-event-source 1 s, the Python loops 3 s).
const QUIET_WINDOW: Duration = Duration::from_secs(5);
#[test]
#[ignore = "needs Node packages in tests/clients/node: run .ci/run"]
fn eventsource_package() {
    run(&Library {
        name: "eventsource (npm)",
        runtime: Runtime::Node {
            package: "eventsource",
        },
        script: "eventsource.mjs",
        exposes_retry: false,
    });
}

#[test]
#[ignore = "needs Node packages in tests/clients/node: run .ci/run"]
fn fetch_event_source() {
    run(&Library {
        name: "@microsoft/fetch-event-source",
        runtime: Runtime::Node {
            package: "@microsoft/fetch-event-source",
        },
        script: "fetch-event-source.mjs",
        exposes_retry: true,
    });
}

#[test]
#[ignore = "needs Chromium and Node packages in tests/clients/node: run .ci/run"]
fn chromium_eventsource() {
    run(&Library {
        name: "Chromium EventSource",
        runtime: Runtime::Node {
            package: "playwright-core",
        },
        script: "chromium.mjs",
        exposes_retry: false,
    });
}

#[test]
#[ignore = "needs the virtualenv target/venv: run .ci/run"]
fn sseclient_py() {
    run(&Library {
        name: "sseclient-py",
        runtime: Runtime::Python,
        script: "sseclient_py.py",
        exposes_retry: true,
    });
}

#[test]
#[ignore = "needs the virtualenv target/venv: run .ci/run"]
fn httpx_sse() {
    run(&Library {
        name: "httpx-sse",
        runtime: Runtime::Python,
        script: "httpx_sse_client.py",
        exposes_retry: true,
    });
}

/// The scenario, the same for every client.
fn run(library: &Library) {
    let retry = RETRY_MS.to_string();
    let mut hub = Hub::start(&["--retry", &retry, "--heartbeat", "1"]);
    let proxy = Proxy::start(hub.addr);
    let mut client = Client::spawn(library, &proxy.url("/events"));
    let mut verdict = Verdict::default();
    let mut published = Published::default();

    // A first stream, and live messages on it.
    client.wait_for_connections(1);
    if library.exposes_retry {
        let retry = client.connection(1).retry;
        verdict.check(
            retry == Some(RETRY_MS),
            format!(
                "honours retry: the `connection` event carries retry {RETRY_MS} \
                 (SPEC, GET /events 1.: `retry:` inside the connection event); it had {retry:?}"
            ),
        );
    }
    published.publish(&hub, "live", 3);
    client.wait_for_data(&published.last().data);

    // Idle, so that heartbeats come by themselves.
    wait_for_heartbeats(&proxy, 2);

    // A cut, and messages published while the client cannot be there.
    proxy.admit(Admission::Hold);
    proxy.cut();
    published.publish(&hub, "cut", 3);
    proxy.admit(Admission::Forward);
    client.wait_for_connections(2);
    published.publish(&hub, "cut", 1);
    client.wait_for_data(&published.last().data);

    // A quiet reconnect: a cut with nothing published meanwhile. Nothing
    // but the stream's opening arrives on the new stream before the next
    // cut, which is what loses a client that takes its last event ID from
    // every event, unless the opening carries the resume point.
    proxy.cut();
    client.wait_for_connections(3);
    wait_for_heartbeats(&proxy, 2);
    proxy.admit(Admission::Hold);
    proxy.cut();
    published.publish(&hub, "after-quiet", 3);
    proxy.admit(Admission::Forward);
    client.wait_for_connections(4);
    published.publish(&hub, "after-quiet", 1);
    client.wait_for_data(&published.last().data);

    // A restart: a new hub, no history, behind the same proxy address. The
    // client resumes from the last ID it had and is told of the gap.
    let before_restart = published.last().id.clone();
    hub = restart(hub, &proxy, RETRY_MS);
    client.wait_for_connections(5);
    client.wait_for("a `gap` event on the first stream to the new hub", |c| {
        c.events[c.connection_index(5)..]
            .iter()
            .any(|e| e.kind == "gap")
    });

    // A cut right after the gap, messages published meanwhile: the gap's
    // `id:` is all that keeps the client's place.
    proxy.admit(Admission::Hold);
    proxy.cut();
    published.publish(&hub, "after-gap", 3);
    proxy.admit(Admission::Forward);
    client.wait_for_connections(6);
    published.publish(&hub, "after-gap", 1);
    client.wait_for_data(&published.last().data);

    // Another restart, to a hub that says `retry: 60000`.
    let before_second_restart = published.last().id.clone();
    hub = restart(hub, &proxy, LONG_RETRY_MS);
    client.wait_for_connections(7);
    published.publish(&hub, "restart", 2);
    client.wait_for_data(&published.last().data);
    if library.exposes_retry {
        let retry = client.connection(7).retry;
        verdict.check(
            retry == Some(LONG_RETRY_MS),
            format!(
                "honours retry: the restarted hub's `connection` event carries retry \
                 {LONG_RETRY_MS} (SPEC, GET /events 1.); it had {retry:?}"
            ),
        );
    }
    // Before the first restart, history covered every cut: no gap. On the
    // first stream to a restarted hub, a gap for the last ID the client
    // had, with nothing retained. After the cut behind it, the client
    // resumes from the same ID (the gap's), which is again older than that
    // hub: the gap again, and then what the hub kept.
    let oldest_after_gap = published
        .of("after-gap")
        .next()
        .expect("after-gap")
        .id
        .clone();
    let covered = "no `gap` while history covers the cut";
    let restarted = "sees `gap` after a hub restart (SPEC, GET /events 2.: an ID from \
                     before this hub process started gets the gap)";
    let after_gap = "resumes from the gap's ID after a cut right after it (SPEC, GET \
                     /events 2.: `gap` carries the resume-point `id:`)";
    let expected_gaps = [
        (1, None, covered),
        (2, None, covered),
        (3, None, covered),
        (4, None, covered),
        (5, Some((before_restart.as_str(), None)), restarted),
        (
            6,
            Some((before_restart.as_str(), Some(oldest_after_gap.as_str()))),
            after_gap,
        ),
        (7, Some((before_second_restart.as_str(), None)), restarted),
    ];
    for (stream, expected, why) in expected_gaps {
        check_gap(&client, &mut verdict, stream, expected, why);
    }
    let events_before_long_retry = client.events.len();

    // Told to wait 60 s, the client stays away after a cut.
    let requests = event_requests(&proxy).len();
    let notes = client.notes;
    proxy.cut();
    client.wait_for("a note that the stream failed or ended", |c| {
        c.notes > notes
    });
    let cut_at = Instant::now();
    while cut_at.elapsed() < QUIET_WINDOW && event_requests(&proxy).len() == requests {
        thread::sleep(Duration::from_millis(20));
    }
    verdict.check(
        event_requests(&proxy).len() == requests,
        format!(
            "honours retry: told `retry: {LONG_RETRY_MS}`, it came back after {:?} \
             (SPEC, GET /events 1.: `retry:` inside the connection event)",
            cut_at.elapsed()
        ),
    );

    // What the client got, over the whole run.
    client.drain();
    check_exactly(&client, &published, &mut verdict);
    let opened = client.events[..events_before_long_retry]
        .iter()
        .filter(|e| e.kind == "connection")
        .count();
    verdict.check(
        opened == 7,
        format!("one `connection` event per stream: 7 streams, {opened} connection events"),
    );
    verdict.finish(library, &client, &proxy);
}

/// Checks that each step's messages arrived once, in order, with their IDs,
/// and that nothing else did (no empty `message` from a block without data
/// or from a heartbeat's empty line).
fn check_exactly(client: &Client, published: &Published, verdict: &mut Verdict) {
    let steps = [
        ("live", "live messages"),
        ("cut", "resumes exactly after a cut"),
        (
            "after-quiet",
            "resumes exactly after a quiet reconnect and another cut \
             (SPEC, GET /events 1.: the resume-point `id:` on the connection event)",
        ),
        (
            "after-gap",
            "resumes exactly after a cut that came right after `gap` \
             (SPEC, GET /events 2.: `gap` carries the resume-point `id:`)",
        ),
        ("restart", "live messages after the restart"),
    ];
    for (tag, what) in steps {
        let expected: Vec<&str> = published.of(tag).map(|p| p.data.as_str()).collect();
        let received: Vec<&str> = client
            .events
            .iter()
            .filter(|e| {
                e.kind == "message" && published.find(&e.data).is_some_and(|p| p.tag == tag)
            })
            .map(|e| e.data.as_str())
            .collect();
        verdict.check(
            received == expected,
            format!("{what}: expected {expected:?}, received {received:?}"),
        );
    }

    let wrong_ids: Vec<String> = client
        .events
        .iter()
        .filter_map(|e| {
            let p = published.find(&e.data)?;
            (e.id.as_deref() != Some(p.id.as_str()))
                .then(|| format!("{} has id {:?}, published as {}", p.data, e.id, p.id))
        })
        .collect();
    verdict.check(
        wrong_ids.is_empty(),
        format!("every message carries its published ID: {wrong_ids:?}"),
    );

    let unpublished: Vec<String> = client
        .events
        .iter()
        .filter(|e| !matches!(e.kind.as_str(), "connection" | "gap"))
        .filter(|e| published.find(&e.data).is_none())
        .map(Received::describe)
        .collect();
    verdict.check(
        unpublished.is_empty(),
        format!(
            "receives no event that was not published (SPEC, GET /events: `retry:` inside \
             the connection event, the heartbeat a bare comment line with no empty line \
             after it): {} such events: {unpublished:?}",
            unpublished.len()
        ),
    );
}

/// Checks the `gap` events at the start of stream number `stream` (from
/// 1: its events up to its first published message): none if `expected` is
/// `None`, else exactly one, for the requested ID and the oldest retained
/// one given; `why` names the check.
fn check_gap(
    client: &Client,
    verdict: &mut Verdict,
    stream: usize,
    expected: Option<(&str, Option<&str>)>,
    why: &str,
) {
    let from = client.connection_index(stream);
    let found: Vec<Value> = client.events[from + 1..]
        .iter()
        .take_while(|e| e.kind != "connection" && (e.kind != "message" || e.data.is_empty()))
        .filter(|e| e.kind == "gap")
        .map(|e| serde_json::from_str(&e.data).unwrap_or(Value::Null))
        .collect();
    let expected: Vec<Value> = expected
        .map(|(requested, oldest)| json!({"requested": requested, "oldest": oldest}))
        .into_iter()
        .collect();
    verdict.check(
        found == expected,
        format!("{why}: on stream {stream} expected {expected:?}, got {found:?}"),
    );
}

/// Stops `hub` and starts a new one with `retry_ms` behind `proxy`, with
/// the network down meanwhile: the client's reconnects wait, and go to the
/// new hub.
fn restart(mut hub: Hub, proxy: &Proxy, retry_ms: u64) -> Hub {
    proxy.admit(Admission::Hold);
    hub.terminate();
    let retry = retry_ms.to_string();
    let hub = Hub::start(&["--retry", &retry, "--heartbeat", "1"]);
    proxy.set_upstream(hub.addr);
    proxy.cut();
    proxy.admit(Admission::Forward);
    hub
}

/// The `GET /events` requests that went through the proxy.
fn event_requests(proxy: &Proxy) -> Vec<String> {
    proxy
        .request_heads()
        .into_iter()
        .filter(|head| head.starts_with("GET /events"))
        .collect()
}

/// Waits until `n` more heartbeats have gone through the proxy.
fn wait_for_heartbeats(proxy: &Proxy, n: usize) {
    let before = proxy.count_received(": heartbeat");
    let start = Instant::now();
    while proxy.count_received(": heartbeat") < before + n {
        assert!(
            start.elapsed() < CLIENT_GUARD,
            "no {n} heartbeats went through the proxy within {CLIENT_GUARD:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Messages published in the scenario, each with a step tag; every payload
/// is `<tag>-<n>`, unique within the run.
#[derive(Default)]
struct Published(Vec<Publication>);

struct Publication {
    tag: &'static str,
    data: String,
    id: String,
}

impl Published {
    /// Publishes `n` more messages of step `tag`.
    fn publish(&mut self, hub: &Hub, tag: &'static str, n: usize) {
        for _ in 0..n {
            let data = format!("{tag}-{}", self.of(tag).count() + 1);
            let id = hub.publish_text(&data);
            self.0.push(Publication { tag, data, id });
        }
    }

    fn of(&self, tag: &str) -> impl Iterator<Item = &Publication> {
        self.0.iter().filter(move |p| p.tag == tag)
    }

    fn find(&self, data: &str) -> Option<&Publication> {
        self.0.iter().find(|p| p.data == data)
    }

    fn last(&self) -> &Publication {
        self.0.last().expect("something was published")
    }
}

/// The checks that failed, reported together at the end.
#[derive(Default)]
struct Verdict {
    failures: Vec<String>,
}

impl Verdict {
    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            self.failures.push(what);
        }
    }

    /// Passes, or fails with every failed check and what the client saw.
    fn finish(self, library: &Library, client: &Client, proxy: &Proxy) {
        if self.failures.is_empty() {
            return;
        }
        let mut report = format!(
            "{}: {} check(s) failed:\n",
            library.name,
            self.failures.len()
        );
        for failure in &self.failures {
            report.push_str(&format!("  - {failure}\n"));
        }
        report.push_str(&client.transcript());
        report.push_str("requests through the proxy:\n");
        for head in event_requests(proxy) {
            let resume = head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("last-event-id:"))
                .unwrap_or("(no Last-Event-ID)");
            let line = head.lines().next().unwrap_or_default();
            report.push_str(&format!("  {line}  {resume}\n"));
        }
        panic!("{report}");
    }
}
