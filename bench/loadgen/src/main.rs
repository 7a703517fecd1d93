//! `loadgen`: a load generator for SSE broadcasters (sse-hub, and the peers
//! in `bench/peers/`), on loopback only.
//!
//! Three modes:
//! - `fanout`: open N event streams, publish M stamped messages at a rate
//!   (or as fast as replies come), one per request or `--batch` per request
//!   as a JSON array, and measure what arrived: loss, duplicates, order,
//!   latency, fan-out completion, deliveries per second, the publishers'
//!   round trips and rate, and the server's CPU time.
//! - `publish`: no subscribers; `POST` as fast as replies come over K
//!   keep-alive connections for a while; POSTs per second and server CPU
//!   per POST.
//! - `idle`: open N streams, hold them, and measure the server's memory,
//!   threads and kernel stacks per stream and the time it took to open them
//!   all.
//! - `handshake`: `--connections` fresh connections, one after the other
//!   on each of `--workers` threads: connect, (with `--tls-ca`) the TLS
//!   handshake, `GET /healthz` with `Connection: close`, the reply;
//!   connections per second, their time, and the server's CPU time each.
//! - `churn`: subscribers on channels and on the global stream that read
//!   for a while, leave (cleanly, with a reset, or by stalling) and resume
//!   with `Last-Event-ID`, under a steady publisher, for `--duration`; the
//!   server's memory, threads, descriptors and `/stats` every
//!   `--sample-every`, and loss, duplicates and order across resumes
//!   (`bench/soak.sh`).
//!
//! With `--tls-ca FILE`, every mode but `churn` speaks HTTPS, trusting the
//! CA in that file (`tls.rs`).
//!
//! The report goes to stderr for people and as one JSON line to stdout for
//! `bench/run.sh`. Every run is bounded by `--timeout`.

mod churn;
mod handshake;
mod measure;
mod publish;
mod stream;
mod subscribe;
mod tls;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use measure::{Histogram, Usage};
use publish::BodyFormat;
use subscribe::{Subscribers, Tracker};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Fanout,
    Publish,
    Idle,
    Churn,
    Handshake,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Body {
    /// `{"message":"<text>"}`
    Json,
    /// the text as it is
    Raw,
}

/// Load generator for SSE broadcasters, loopback only.
#[derive(Parser, Debug)]
#[command(name = "loadgen", max_term_width = 100)]
struct Args {
    /// What to measure
    #[arg(long, value_enum, default_value_t = Mode::Fanout)]
    mode: Mode,
    /// The server's address (loopback)
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Name of the server in the report
    #[arg(long, default_value = "server")]
    label: String,
    /// Server process IDs to read memory, threads and CPU from (comma
    /// separated: nginx's master and workers)
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Event streams to open
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Messages to publish (fanout)
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Messages per second over all publishers; 0 = as fast as replies come
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Message size in bytes (the text, stamp included)
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Keep-alive publishing connections, one thread each
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Messages per POST; more than 1 sends them as one JSON array (a batch
    /// publish; JSON bodies only)
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Most messages published but not yet received by every stream; a
    /// publisher waits before going past it (0 = no limit). Measures the
    /// rate a server sustains, where a publisher that is never held back
    /// would only measure how the server sheds load.
    #[arg(long, default_value_t = 0)]
    window: u64,
    /// Path to subscribe on
    #[arg(long, default_value = "/events")]
    sub_path: String,
    /// Path to publish to
    #[arg(long, default_value = "/broadcast")]
    pub_path: String,
    /// Publish body format
    #[arg(long, value_enum, default_value_t = Body::Json)]
    body: Body,
    /// Give every POST its own Idempotency-Key header
    #[arg(long)]
    idempotency_keys: bool,
    /// Stream handshakes in flight at once
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// A stream whose response head has not arrived after this long (s) is
    /// closed and opened again, up to --attempts tries
    #[arg(long, default_value_t = 2.0)]
    head_timeout: f64,
    /// Tries per stream
    #[arg(long, default_value_t = 4)]
    attempts: u32,
    /// Pause between the last stream opening and the first publish, in ms
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,
    /// After publishing, stop waiting once nothing arrived for this long (s)
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// publish: how long to publish (s); idle: how long to hold (s)
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Hard limit on the whole run (s)
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// churn: channels (`c0`, `c1`, ...); `--subscribers` are spread over them
    #[arg(long, default_value_t = 3)]
    channels: u8,
    /// churn: subscribers to the global stream (no channel)
    #[arg(long, default_value_t = 50)]
    global: usize,
    /// churn: shortest read on one connection (s)
    #[arg(long, default_value_t = 2.0)]
    read_min: f64,
    /// churn: longest read on one connection (s)
    #[arg(long, default_value_t = 40.0)]
    read_max: f64,
    /// churn: how long a stalling subscriber stops reading before it closes (s)
    #[arg(long, default_value_t = 15.0)]
    stall: f64,
    /// churn: longest pause before resuming (s)
    #[arg(long, default_value_t = 2.0)]
    pause_max: f64,
    /// churn: seconds between two samples of the server's figures
    #[arg(long, default_value_t = 30.0)]
    sample_every: f64,
    /// churn: also write each sample as a JSON line to this file
    #[arg(long)]
    samples: Option<String>,
    /// churn: seed of the random visits
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HTTPS: trust the CA certificate(s) in this PEM file; the server's
    /// certificate must name the --addr IP
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// With --tls-ca: let the client resume TLS sessions (by default every
    /// handshake is a full one)
    #[arg(long)]
    tls_resumption: bool,
    /// handshake: fresh connections in all
    #[arg(long, default_value_t = 2000)]
    connections: u64,
    /// handshake: threads opening connections one after the other
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// KEY=VALUE copied into the JSON line's "tags" (for bench/run.sh)
    #[arg(long, value_parser = tag)]
    tag: Vec<(String, String)>,
}

fn tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        eprintln!("loadgen: {} is not a loopback address", args.addr);
        return ExitCode::from(2);
    }
    if args.publishers == 0 {
        eprintln!("loadgen: --publishers must be at least 1");
        return ExitCode::from(2);
    }
    if args.batch == 0 || (args.batch > 1 && args.body == Body::Raw) {
        eprintln!("loadgen: --batch must be at least 1, and more than 1 needs --body json");
        return ExitCode::from(2);
    }
    if args.tls_ca.is_some() && args.mode == Mode::Churn {
        eprintln!("loadgen: churn does not speak TLS");
        return ExitCode::from(2);
    }
    let tls = match &args.tls_ca {
        None => None,
        Some(ca) => match tls::Client::new(ca, args.addr, args.tls_resumption) {
            Ok(client) => Some(client),
            Err(e) => {
                eprintln!("loadgen: --tls-ca: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let args = Run { args, tls };
    measure::raise_open_files();
    let result = match args.mode {
        Mode::Fanout => fanout(&args),
        Mode::Publish => publish_only(&args),
        Mode::Idle => idle(&args),
        Mode::Churn => churn_mode(&args),
        Mode::Handshake => handshake::run(&args),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The arguments, and the TLS client they ask for.
struct Run {
    args: Args,
    tls: Option<tls::Client>,
}

impl std::ops::Deref for Run {
    type Target = Args;

    fn deref(&self) -> &Args {
        &self.args
    }
}

type Outcome = Result<Value, Box<dyn std::error::Error>>;

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// Adds the fields of the object `fields` to the object `report`.
fn add(report: &mut Value, fields: Value) {
    if let (Some(report), Value::Object(fields)) = (report.as_object_mut(), fields) {
        report.extend(fields);
    }
}

/// How opening the event streams went.
fn streams_json(args: &Run, subs: &Subscribers, connect_s: f64) -> Value {
    json!({
        "subscribers": args.subscribers,
        "connected": subs.opened,
        "failed": subs.failed,
        "retried": subs.retried,
        "closed_early": subs.closed,
        "connect_s": round(connect_s, 3),
    })
}

fn common(args: &Run) -> Value {
    let tags: serde_json::Map<String, Value> = args
        .tag
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    json!({
        "label": args.label,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "tags": tags,
        "argv": std::env::args().collect::<Vec<_>>(),
        "load1_start": measure::load_average(),
        "tls": args.tls_ca.is_some(),
        "tls_resumption": args.tls_ca.is_some() && args.tls_resumption,
    })
}

fn usage_json(before: &Usage, after: &Usage) -> Value {
    json!({
        "rss_kib_before": before.rss_kib,
        "rss_kib_after": after.rss_kib,
        "pss_kib_before": before.pss_kib,
        "pss_kib_after": after.pss_kib,
        "threads_before": before.threads,
        "threads_after": after.threads,
        "cpu_s": round(after.cpu_s - before.cpu_s, 3),
        "readable": before.complete && after.complete,
    })
}

fn subscribe_target(args: &Run) -> subscribe::Target {
    subscribe::Target {
        addr: args.addr,
        path: args.sub_path.clone(),
        tls: args.tls.clone(),
    }
}

fn publish_target(args: &Run) -> publish::Target {
    publish::Target {
        addr: args.addr,
        path: args.pub_path.clone(),
        format: match args.body {
            Body::Json => BodyFormat::Json,
            Body::Raw => BodyFormat::Raw,
        },
        idempotency_keys: args.idempotency_keys,
        tls: args.tls.clone(),
    }
}

/// Opens the streams; returns them and the seconds it took.
fn open_streams(
    args: &Run,
    tracker: Tracker,
    origin: Instant,
    deadline: Instant,
) -> Result<(Subscribers, f64), Box<dyn std::error::Error>> {
    let mut subs = Subscribers::new(
        subscribe_target(args),
        args.subscribers,
        subscribe::Handshakes {
            concurrency: args.concurrency,
            head_timeout: Duration::from_secs_f64(args.head_timeout),
            attempts: args.attempts,
        },
        tracker,
        origin,
    )?;
    let start_ns = origin.elapsed().as_nanos() as u64;
    subs.connect_all(deadline)?;
    let connect_s = subs.last_open_ns.saturating_sub(start_ns) as f64 / 1e9;
    eprintln!(
        "[{}] streams: {} open, {} failed, in {:.3} s; {} handshakes retried after {} s without a response",
        args.label, subs.opened, subs.failed, connect_s, subs.retried, args.head_timeout
    );
    for failure in &subs.failures {
        eprintln!("  e.g. {failure}");
    }
    Ok((subs, connect_s))
}

fn fanout(args: &Run) -> Outcome {
    let origin = Instant::now();
    let deadline = origin + Duration::from_secs_f64(args.timeout);
    let mut report = common(args);
    let before = measure::usage(&args.pid);
    let tracker = Tracker::new(args.subscribers, args.messages, args.publishers as u64);
    let (mut subs, connect_s) = open_streams(args, tracker, origin, deadline)?;
    let settle_until = Instant::now() + Duration::from_millis(args.settle_ms);
    while Instant::now() < settle_until {
        subs.pump(Duration::from_millis(5))?;
    }
    let receivers = subs.open_now();
    subs.tracker.expect_streams(receivers);
    let idle = measure::usage(&args.pid);
    let own_before = measure::own_cpu();

    let stop = Arc::new(AtomicBool::new(false));
    let plan = publish::Plan {
        messages: args.messages,
        rate: args.rate,
        size: args.size,
        batch: args.batch,
        publishers: args.publishers,
        until: deadline,
        window: (args.window > 0).then(|| (args.window, subs.tracker.delivered_prefix())),
    };
    let publishing = {
        let (target, stop) = (publish_target(args), Arc::clone(&stop));
        thread::spawn(move || publish::run(&target, plan, origin, &stop))
    };
    let drain = Duration::from_secs_f64(args.drain);
    let mut timed_out = false;
    let published = loop {
        subs.pump(Duration::from_millis(10))?;
        if Instant::now() >= deadline {
            timed_out = true;
            stop.store(true, Ordering::Relaxed);
        }
        if publishing.is_finished() {
            break publishing.join().expect("the publishing thread panicked");
        }
    };
    let expected = published.ok * receivers as u64;
    // Wait for the rest until nothing has arrived for `drain`, counting
    // from the end of publishing.
    let mut last_count = subs.tracker.received;
    let mut last_progress = Instant::now();
    while subs.tracker.received < expected
        && last_progress.elapsed() < drain
        && Instant::now() < deadline
    {
        subs.pump(Duration::from_millis(10))?;
        if subs.tracker.received != last_count {
            last_count = subs.tracker.received;
            last_progress = Instant::now();
        }
    }
    timed_out |= Instant::now() >= deadline;
    let after = measure::usage(&args.pid);
    let own = measure::own_cpu() - own_before;

    let tracker = &subs.tracker;
    let lost = expected.saturating_sub(tracker.received);
    let (fan_out, complete) = tracker.fan_out(receivers as u32);
    let deliver_span = tracker.last_ns.saturating_sub(published.first_send_ns) as f64 / 1e9;
    let deliveries_per_s = if deliver_span > 0.0 {
        tracker.received as f64 / deliver_span
    } else {
        0.0
    };
    let publish_span = published
        .last_send_ns
        .saturating_sub(published.first_send_ns) as f64
        / 1e9;
    // Messages sent from the first request to the last, the last one's
    // own not counted: they left at the end of the span.
    let publish_rate = if publish_span > 0.0 {
        published.ok.saturating_sub(published.last_batch) as f64 / publish_span
    } else {
        0.0
    };
    let server_cpu = after.cpu_s - idle.cpu_s;
    let cpu_per_million = if tracker.received > 0 {
        server_cpu / tracker.received as f64 * 1e6
    } else {
        0.0
    };

    eprintln!(
        "[{}] published {} ok in {} requests, {} requests failed, {:.1} msg/s (round trip p50 {:.3} ms, p99 {:.3} ms)",
        args.label,
        published.ok,
        published.requests_ok,
        published.errors,
        publish_rate,
        ms(published.round_trip.quantile(0.5)),
        ms(published.round_trip.quantile(0.99)),
    );
    for e in &published.error_samples {
        eprintln!("  e.g. {e}");
    }
    eprintln!(
        "[{}] deliveries: expected {expected}, received {}, lost {lost}, duplicated {}, out of order {}, streams closed early {}",
        args.label, tracker.received, tracker.duplicated, tracker.out_of_order, subs.closed
    );
    eprintln!(
        "[{}] latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; fan-out complete for {complete} messages, p50 {:.3} ms, p99 {:.3} ms",
        args.label,
        ms(tracker.latency.quantile(0.5)),
        ms(tracker.latency.quantile(0.99)),
        ms(tracker.latency.max()),
        ms(fan_out.quantile(0.5)),
        ms(fan_out.quantile(0.99)),
    );
    eprintln!(
        "[{}] {:.0} deliveries/s; server CPU {:.2} s ({:.2} s per million deliveries), RSS {} KiB, {} threads; loadgen CPU {:.2} s{}",
        args.label,
        deliveries_per_s,
        server_cpu,
        cpu_per_million,
        after.rss_kib,
        after.threads,
        own.as_secs_f64(),
        if timed_out { "; TIMED OUT" } else { "" }
    );

    add(&mut report, streams_json(args, &subs, connect_s));
    let fields = json!({
        "receivers": receivers,
        "messages": args.messages,
        "rate": args.rate,
        "size": args.size,
        "publishers": args.publishers,
        "batch": args.batch,
        "window": args.window,
        "published_ok": published.ok,
        "requests_ok": published.requests_ok,
        "publish_errors": published.errors,
        "publish_error_samples": published.error_samples,
        "publish_rate": round(publish_rate, 1),
        "publish_rtt_ms": quantiles(&published.round_trip),
        "expected": expected,
        "received": tracker.received,
        "lost": lost,
        "duplicated": tracker.duplicated,
        "dup_check": tracker.checks_duplicates(),
        "out_of_order": tracker.out_of_order,
        "foreign": tracker.foreign,
        "latency_ms": quantiles(&tracker.latency),
        "fanout_ms": {"p50": ms(fan_out.quantile(0.5)), "p99": ms(fan_out.quantile(0.99)), "complete": complete},
        "deliveries_per_s": round(deliveries_per_s, 0),
        "server": usage_json(&idle, &after),
        "server_rss_kib_connected": idle.rss_kib,
        "server_rss_kib_start": before.rss_kib,
        "server_cpu_s_per_million": round(cpu_per_million, 3),
        "loadgen_cpu_s": round(own.as_secs_f64(), 3),
        "timed_out": timed_out,
        "load1_end": measure::load_average(),
    });
    add(&mut report, fields);
    Ok(report)
}

fn churn_mode(args: &Run) -> Outcome {
    if args.channels == 0 || args.rate <= 0.0 {
        return Err("churn needs --channels and --rate above 0".into());
    }
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let plan = churn::Plan {
        addr: args.addr,
        pids: args.pid.clone(),
        channels: args.channels,
        per_channel: args.subscribers / usize::from(args.channels),
        global: args.global,
        rate: args.rate,
        size: args.size,
        duration: secs(args.duration.min(args.timeout)),
        read_min: secs(args.read_min),
        read_max: secs(args.read_max.max(args.read_min)),
        stall: secs(args.stall),
        pause_max: secs(args.pause_max),
        sample_every: secs(args.sample_every.max(1.0)),
        samples: args.samples.clone(),
        seed: args.seed,
    };
    let mut report = common(args);
    add(&mut report, churn::run(plan)?);
    Ok(report)
}

fn quantiles(histogram: &Histogram) -> Value {
    json!({
        "p50": ms(histogram.quantile(0.5)),
        "p90": ms(histogram.quantile(0.9)),
        "p99": ms(histogram.quantile(0.99)),
        "max": ms(histogram.max()),
    })
}

fn publish_only(args: &Run) -> Outcome {
    let origin = Instant::now();
    let mut report = common(args);
    let before = measure::usage(&args.pid);
    let own_before = measure::own_cpu();
    let duration = Duration::from_secs_f64(args.duration.min(args.timeout));
    let plan = publish::Plan {
        messages: u64::MAX,
        rate: args.rate,
        size: args.size,
        batch: args.batch,
        publishers: args.publishers,
        until: Instant::now() + duration,
        // No streams to wait for when only publishing.
        window: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let published = publish::run(&publish_target(args), plan, origin, &stop);
    let elapsed = started.elapsed().as_secs_f64();
    let after = measure::usage(&args.pid);
    let own = measure::own_cpu() - own_before;
    let per_s = published.requests_ok as f64 / elapsed;
    let server_cpu = after.cpu_s - before.cpu_s;
    let cpu_per_post = if published.requests_ok > 0 {
        server_cpu / published.requests_ok as f64 * 1e6
    } else {
        0.0
    };
    eprintln!(
        "[{}] {} POSTs ok ({} messages), {} failed in {elapsed:.2} s over {} connections: {per_s:.0} POST/s; round trip p50 {:.3} ms, p99 {:.3} ms; server CPU {server_cpu:.2} s ({cpu_per_post:.1} us per POST), loadgen CPU {:.2} s",
        args.label,
        published.requests_ok,
        published.ok,
        published.errors,
        args.publishers,
        ms(published.round_trip.quantile(0.5)),
        ms(published.round_trip.quantile(0.99)),
        own.as_secs_f64()
    );
    for e in &published.error_samples {
        eprintln!("  e.g. {e}");
    }
    let fields = json!({
        "publishers": args.publishers,
        "size": args.size,
        "batch": args.batch,
        "window": args.window,
        "seconds": round(elapsed, 3),
        "published_ok": published.ok,
        "requests_ok": published.requests_ok,
        "publish_errors": published.errors,
        "publish_error_samples": published.error_samples,
        "posts_per_s": round(per_s, 0),
        "messages_per_s": round(published.ok as f64 / elapsed, 0),
        "publish_rtt_ms": quantiles(&published.round_trip),
        "server": usage_json(&before, &after),
        "server_cpu_us_per_post": round(cpu_per_post, 2),
        "loadgen_cpu_s": round(own.as_secs_f64(), 3),
        "load1_end": measure::load_average(),
    });
    add(&mut report, fields);
    Ok(report)
}

fn idle(args: &Run) -> Outcome {
    let origin = Instant::now();
    let deadline = origin + Duration::from_secs_f64(args.timeout);
    let mut report = common(args);
    let before = measure::usage(&args.pid);
    let stacks_before = measure::kernel_stack_kib();
    let tracker = Tracker::new(args.subscribers, 0, 1);
    let (mut subs, connect_s) = open_streams(args, tracker, origin, deadline)?;
    let hold_until = (Instant::now() + Duration::from_secs_f64(args.duration)).min(deadline);
    while Instant::now() < hold_until {
        subs.pump(Duration::from_millis(20))?;
    }
    let after = measure::usage(&args.pid);
    let stacks_after = measure::kernel_stack_kib();
    let open = subs.open_now();
    let per = |a: u64, b: u64| {
        if open > 0 {
            round((a as f64 - b as f64) / open as f64, 2)
        } else {
            0.0
        }
    };
    let rss_per = per(after.rss_kib, before.rss_kib);
    let pss_per = per(after.pss_kib, before.pss_kib);
    let threads_per = per(after.threads, before.threads);
    // Each thread's kernel stack lies outside RSS: counted from the
    // server's own threads, and machine-wide as a cross-check (which other
    // processes' threads disturb).
    let stack_per = per(
        after.threads * measure::KERNEL_STACK_KIB,
        before.threads * measure::KERNEL_STACK_KIB,
    );
    let machine_stack_per = per(stacks_after, stacks_before);
    eprintln!(
        "[{}] {open} streams held: RSS {} -> {} KiB ({rss_per} KiB per stream, PSS {pss_per}), threads {} -> {} ({threads_per} per stream); kernel stacks outside RSS {stack_per} KiB per stream (threads x {} KiB; machine-wide {machine_stack_per})",
        args.label,
        before.rss_kib,
        after.rss_kib,
        before.threads,
        after.threads,
        measure::KERNEL_STACK_KIB
    );
    add(&mut report, streams_json(args, &subs, connect_s));
    let fields = json!({
        "open": open,
        "server": usage_json(&before, &after),
        "rss_kib_per_client": rss_per,
        "pss_kib_per_client": pss_per,
        "threads_per_client": threads_per,
        "thread_kernel_stack_kib_per_client": stack_per,
        "kernel_stack_kib_per_client": machine_stack_per,
        "load1_end": measure::load_average(),
    });
    add(&mut report, fields);
    Ok(report)
}
