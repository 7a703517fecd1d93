//! Mixed churn: subscribers that come and go the way a day of real users
//! does, while one publisher runs at a steady rate, for a fixed time.
//!
//! Each subscriber belongs to one of the channels `c0`, `c1`, ... or to the
//! global stream (no channel). It reads for a random time, then leaves in
//! one of three ways, a third each: it closes cleanly (shuts down its side
//! and reads to the end), it aborts with a reset (`SO_LINGER` 0), or it
//! stops reading for a while and then drops the connection. After a short
//! random pause it comes back with `Last-Event-ID` set to the ID of the last
//! event it saw whole, as a browser would.
//!
//! The publisher stamps message `seq` with `<seq> <send ns>` and sends it
//! round robin to `c0`, `c1`, ..., then to everyone: a channel's subscriber
//! is due the messages of its channel and the global ones, a global
//! subscriber the global ones. Each subscriber checks, across all its
//! connections, that what it gets is exactly the run it is due: a message
//! skipped is lost, one seen again is duplicated, a skipped one arriving
//! late is reordered. A `gap` event is counted apart and starts a new run.
//!
//! Every `--sample-every` seconds the server's RSS, threads, descriptors and
//! `/stats` counters are written (stderr, and a JSON line to `--samples`).
//! The end reports the RSS change over the second half of the run.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};

use crate::publish::{self, Connection};
use crate::stream::{GAP, Progress, Stamp, StreamParser};

/// Source addresses used, from 127.0.0.2 on (as in `subscribe`).
const SOURCE_ADDRESSES: u32 = 200;
/// A handshake with no response head after this long is abandoned.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A clean close waits this long for the server's end of the stream.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Missing messages remembered per subscriber, to tell a late one
/// (reordered) from a second copy (duplicated).
const MAX_MISSING: usize = 10_000;

/// What a churn run does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub pids: Vec<u32>,
    pub channels: u8,
    pub per_channel: usize,
    pub global: usize,
    pub rate: f64,
    pub size: usize,
    pub duration: Duration,
    pub read_min: Duration,
    pub read_max: Duration,
    pub stall: Duration,
    pub pause_max: Duration,
    pub sample_every: Duration,
    pub samples: Option<String>,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requesting(usize),
    Head,
    Open,
    /// Our side is shut down; reading to the server's end.
    Closing,
    /// Not reading.
    Stalled,
    /// Between connections.
    Away,
}

/// How an open stream ends on our side.
#[derive(Clone, Copy, Debug)]
enum Leave {
    Clean,
    Reset,
    Stall,
}

struct Slot {
    channel: Option<u8>,
    stream: Option<TcpStream>,
    phase: Phase,
    /// When the current phase ends.
    until: Instant,
    parser: StreamParser,
    request: Vec<u8>,
    last_id: Option<String>,
    /// The next message due; `None` before the first one (or after a gap).
    due: Option<u64>,
    missing: BTreeSet<u64>,
}

/// What the subscribers saw, over all their connections.
#[derive(Default, Debug)]
struct Counts {
    received: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    /// Messages a subscriber was not due (another channel's).
    misdelivered: u64,
    gaps: u64,
    connects: u64,
    resumes: u64,
    refused: u64,
    failed: u64,
    clean: u64,
    reset: u64,
    stalled: u64,
    ended_by_server: u64,
}

/// xorshift64*: enough to vary the visits, and repeatable.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(if span == 0 {
            0
        } else {
            self.next() % (span + 1)
        })
    }
}

/// Whether a subscriber of `channel` is due message `seq`, out of `lanes`
/// (the channels, then the global stream).
fn due(channel: Option<u8>, seq: u64, lanes: u64) -> bool {
    let lane = seq % lanes;
    lane == lanes - 1 || channel.is_some_and(|c| u64::from(c) == lane)
}

fn next_due(channel: Option<u8>, after: u64, lanes: u64) -> u64 {
    (after + 1..)
        .find(|&s| due(channel, s, lanes))
        .unwrap_or(u64::MAX)
}

struct Run {
    plan: Plan,
    lanes: u64,
    poll: Poll,
    slots: Vec<Slot>,
    random: Random,
    buf: Vec<u8>,
    stamps: Vec<Stamp>,
    counts: Counts,
}

/// Runs the plan; returns the report.
pub fn run(plan: Plan) -> Result<Value, Box<dyn std::error::Error>> {
    let origin = Instant::now();
    let lanes = u64::from(plan.channels) + 1;
    let mut slots = Vec::new();
    for c in 0..plan.channels {
        for _ in 0..plan.per_channel {
            slots.push(slot(Some(c)));
        }
    }
    for _ in 0..plan.global {
        slots.push(slot(None));
    }
    let mut run = Run {
        random: Random(plan.seed | 1),
        plan,
        lanes,
        poll: Poll::new()?,
        slots,
        buf: vec![0; 256 * 1024],
        stamps: Vec::with_capacity(1024),
        counts: Counts::default(),
    };
    // The first connections are spread over a second.
    for at in 0..run.slots.len() {
        let delay = run.random.between(Duration::ZERO, Duration::from_secs(1));
        run.slots[at].until = origin + delay;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (plan, stop, published) = (run.plan.clone(), Arc::clone(&stop), Arc::clone(&published));
        thread::spawn(move || publish_steadily(&plan, lanes, origin, &stop, &published))
    };

    let mut samples = Vec::new();
    let mut samples_file = match &run.plan.samples {
        Some(path) => Some(fs::File::create(path)?),
        None => None,
    };
    let mut sample = |run: &Run, phase: &str, samples: &mut Vec<Value>| {
        let s = take_sample(run, origin, phase, published.load(Ordering::Relaxed));
        eprintln!("{}", sample_line(&s));
        if let Some(file) = &mut samples_file {
            let _ = writeln!(file, "{s}");
        }
        samples.push(s);
    };
    sample(&run, "start", &mut samples);
    let end = origin + run.plan.duration;
    let mut next_sample = origin + run.plan.sample_every;
    let mut next_tick = Instant::now();
    let mut events = Events::with_capacity(4096);
    while Instant::now() < end {
        match run.poll.poll(&mut events, Some(Duration::from_millis(10))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        let tokens: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        for at in tokens {
            run.serve(at);
        }
        let now = Instant::now();
        if now >= next_tick {
            run.tick(now);
            next_tick = now + Duration::from_millis(20);
        }
        if now >= next_sample {
            sample(&run, "load", &mut samples);
            next_sample += run.plan.sample_every;
        }
        if publisher.is_finished() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let publishing = publisher.join().expect("the publisher panicked");
    sample(&run, "load", &mut samples);
    // Everyone leaves; the server should return to where it started.
    for at in 0..run.slots.len() {
        run.drop_stream(at);
        run.slots[at].phase = Phase::Away;
    }
    thread::sleep(Duration::from_secs(3));
    sample(&run, "after", &mut samples);

    let half = run.plan.duration.as_secs_f64() / 2.0;
    let second_half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s["phase"] == "load" && s["t_s"].as_f64().unwrap_or(0.0) >= half)
        .filter_map(|s| Some((s["t_s"].as_f64()?, s["rss_kib"].as_f64()?)))
        .collect();
    let (change, fitted) = slope(&second_half);
    let c = &run.counts;
    eprintln!(
        "published {} ({} errors); {} deliveries over {} connects ({} resumes): lost {}, duplicated {}, reordered {}, misdelivered {}, gap events {}; leaves: {} clean, {} reset, {} stalled, {} ended by the server; {} refused, {} failed",
        published.load(Ordering::Relaxed),
        publishing.errors,
        c.received,
        c.connects,
        c.resumes,
        c.lost,
        c.duplicated,
        c.reordered,
        c.misdelivered,
        c.gaps,
        c.clean,
        c.reset,
        c.stalled,
        c.ended_by_server,
        c.refused,
        c.failed
    );
    eprintln!(
        "RSS over the second half ({} samples): {change:+.2}% first to last, {fitted:+.2}% by a least-squares line",
        second_half.len()
    );
    Ok(json!({
        "mode": "churn",
        "seconds": round2(origin.elapsed().as_secs_f64()),
        "published": published.load(Ordering::Relaxed),
        "publish_errors": publishing.errors,
        "publish_error_samples": publishing.samples,
        "received": c.received,
        "lost": c.lost,
        "duplicated": c.duplicated,
        "reordered": c.reordered,
        "misdelivered": c.misdelivered,
        "gaps": c.gaps,
        "connects": c.connects,
        "resumes": c.resumes,
        "refused": c.refused,
        "failed": c.failed,
        "leaves": {"clean": c.clean, "reset": c.reset, "stalled": c.stalled, "by_server": c.ended_by_server},
        "rss_second_half_change_pct": round2(change),
        "rss_second_half_fitted_pct": round2(fitted),
        "samples": samples,
    }))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The change over `points` (time, value) in percent of the first value:
/// first to last, and along a least-squares line.
fn slope(points: &[(f64, f64)]) -> (f64, f64) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return (0.0, 0.0);
    };
    if points.len() < 2 || first.1 == 0.0 {
        return (0.0, 0.0);
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    let per_s = if var > 0.0 { cov / var } else { 0.0 };
    let line_at = |t: f64| mean_v + per_s * (t - mean_t);
    (
        (last.1 - first.1) / first.1 * 100.0,
        (line_at(last.0) - line_at(first.0)) / line_at(first.0) * 100.0,
    )
}

fn slot(channel: Option<u8>) -> Slot {
    Slot {
        channel,
        stream: None,
        phase: Phase::Away,
        until: Instant::now(),
        parser: StreamParser::events(),
        request: Vec::new(),
        last_id: None,
        due: None,
        missing: BTreeSet::new(),
    }
}

impl Run {
    /// Moves slots whose phase has run out to their next phase.
    fn tick(&mut self, now: Instant) {
        for at in 0..self.slots.len() {
            if now < self.slots[at].until {
                continue;
            }
            match self.slots[at].phase {
                Phase::Away => self.connect(at),
                Phase::Connecting | Phase::Requesting(_) | Phase::Head => {
                    self.counts.failed += 1;
                    self.away(at);
                }
                Phase::Open => self.leave(at),
                Phase::Closing | Phase::Stalled => self.away(at),
            }
        }
    }

    fn leave(&mut self, at: usize) {
        let how = match self.random.next() % 3 {
            0 => Leave::Clean,
            1 => Leave::Reset,
            _ => Leave::Stall,
        };
        let slot = &mut self.slots[at];
        let Some(stream) = &mut slot.stream else {
            return;
        };
        match how {
            Leave::Clean => {
                self.counts.clean += 1;
                let _ = stream.shutdown(Shutdown::Write);
                slot.phase = Phase::Closing;
                slot.until = Instant::now() + CLOSE_WAIT;
            }
            Leave::Reset => {
                self.counts.reset += 1;
                let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
                self.away(at);
            }
            Leave::Stall => {
                self.counts.stalled += 1;
                let _ = self.poll.registry().deregister(stream);
                slot.phase = Phase::Stalled;
                slot.until = Instant::now() + self.plan.stall;
            }
        }
    }

    /// Closes the stream (if any) and waits a little before coming back.
    fn away(&mut self, at: usize) {
        self.drop_stream(at);
        let pause = self.random.between(Duration::ZERO, self.plan.pause_max);
        let slot = &mut self.slots[at];
        slot.phase = Phase::Away;
        slot.until = Instant::now() + pause;
    }

    fn drop_stream(&mut self, at: usize) {
        if let Some(mut stream) = self.slots[at].stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
    }

    fn connect(&mut self, at: usize) {
        let slot = &mut self.slots[at];
        let mut request = format!(
            "GET /events{} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            slot.channel
                .map_or(String::new(), |c| format!("?channel=c{c}")),
            self.plan.addr
        );
        if let Some(id) = &slot.last_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
            self.counts.resumes += 1;
        }
        request.push_str("\r\n");
        slot.request = request.into_bytes();
        slot.parser = StreamParser::events();
        self.counts.connects += 1;
        match open_socket(self.plan.addr, at) {
            Ok(mut stream) => {
                let registered = self.poll.registry().register(
                    &mut stream,
                    Token(at),
                    Interest::READABLE | Interest::WRITABLE,
                );
                if registered.is_err() {
                    self.counts.failed += 1;
                    return self.away(at);
                }
                slot.stream = Some(stream);
                slot.phase = Phase::Connecting;
                slot.until = Instant::now() + HEAD_TIMEOUT;
            }
            Err(_) => {
                self.counts.failed += 1;
                self.away(at);
            }
        }
    }

    fn serve(&mut self, at: usize) {
        let slot = &mut self.slots[at];
        let Some(stream) = &mut slot.stream else {
            return;
        };
        if slot.phase == Phase::Connecting {
            match stream.take_error() {
                Ok(Some(_)) | Err(_) => {
                    self.counts.failed += 1;
                    return self.away(at);
                }
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => slot.phase = Phase::Requesting(0),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.counts.failed += 1;
                    return self.away(at);
                }
            }
        }
        if let Phase::Requesting(mut written) = slot.phase {
            while written < slot.request.len() {
                match stream.write(&slot.request[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        slot.phase = Phase::Requesting(written);
                        return;
                    }
                    Err(_) => {
                        self.counts.failed += 1;
                        return self.away(at);
                    }
                }
            }
            slot.phase = Phase::Head;
        }
        if matches!(slot.phase, Phase::Head | Phase::Open | Phase::Closing) {
            self.read(at);
        }
    }

    fn read(&mut self, at: usize) {
        loop {
            let slot = &mut self.slots[at];
            let Some(stream) = &mut slot.stream else {
                return;
            };
            let n = match stream.read(&mut self.buf) {
                Ok(0) => return self.ended(at),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.ended(at),
            };
            self.stamps.clear();
            let progress = slot.parser.feed(&self.buf[..n], &mut self.stamps);
            if let Some(id) = slot.parser.last_id() {
                if slot.last_id.as_deref().map(str::as_bytes) != Some(id) {
                    slot.last_id = Some(String::from_utf8_lossy(id).into_owned());
                }
            }
            if slot.phase == Phase::Head {
                match slot.parser.status() {
                    Some(200) => {
                        slot.phase = Phase::Open;
                        let read_for = self.random.between(self.plan.read_min, self.plan.read_max);
                        slot.until = Instant::now() + read_for;
                    }
                    Some(_) => {
                        self.counts.refused += 1;
                        return self.away(at);
                    }
                    None => {}
                }
            }
            for i in 0..self.stamps.len() {
                let stamp = self.stamps[i];
                self.check(at, stamp.seq);
            }
            match progress {
                Progress::Ended | Progress::Broken => return self.ended(at),
                Progress::Head | Progress::Body => {}
            }
        }
    }

    /// The server ended the stream (or it broke).
    fn ended(&mut self, at: usize) {
        match self.slots[at].phase {
            Phase::Closing => {}
            Phase::Open => self.counts.ended_by_server += 1,
            _ => self.counts.failed += 1,
        }
        self.away(at);
    }

    /// Checks message `seq` against the run subscriber `at` is due.
    fn check(&mut self, at: usize, seq: u64) {
        let lanes = self.lanes;
        let counts = &mut self.counts;
        let slot = &mut self.slots[at];
        if seq == GAP {
            counts.gaps += 1;
            slot.due = None;
            slot.missing.clear();
            return;
        }
        counts.received += 1;
        if !due(slot.channel, seq, lanes) {
            counts.misdelivered += 1;
            return;
        }
        match slot.due {
            None => slot.due = Some(next_due(slot.channel, seq, lanes)),
            Some(due_now) if seq == due_now => slot.due = Some(next_due(slot.channel, seq, lanes)),
            Some(due_now) if seq > due_now => {
                let mut s = due_now;
                while s < seq {
                    counts.lost += 1;
                    if slot.missing.len() < MAX_MISSING {
                        slot.missing.insert(s);
                    }
                    s = next_due(slot.channel, s, lanes);
                }
                slot.due = Some(next_due(slot.channel, seq, lanes));
            }
            Some(_) => {
                if slot.missing.remove(&seq) {
                    counts.lost -= 1;
                    counts.reordered += 1;
                } else {
                    counts.duplicated += 1;
                }
            }
        }
    }
}

/// A non-blocking socket connecting to `addr` from a loopback source
/// address of its own (by `index`).
fn open_socket(addr: SocketAddr, index: usize) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    let source = Ipv4Addr::from(first + index as u32 % SOURCE_ADDRESSES);
    socket.bind(&SocketAddrV4::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

struct Publishing {
    errors: u64,
    samples: Vec<String>,
}

/// Publishes message 0, 1, 2, ... at `plan.rate`, round robin over the
/// channels and then everyone, until told to stop. A failed publish is
/// tried again with the same number, so the numbers published have no
/// holes.
fn publish_steadily(
    plan: &Plan,
    lanes: u64,
    origin: Instant,
    stop: &AtomicBool,
    published: &AtomicU64,
) -> Publishing {
    let mut report = Publishing {
        errors: 0,
        samples: Vec::new(),
    };
    let note = |report: &mut Publishing, what: String| {
        report.errors += 1;
        if report.samples.len() < 3 {
            report.samples.push(what);
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut connection: Option<Connection> = None;
    let mut message = String::new();
    let mut request = Vec::new();
    let mut seq = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < plan.duration {
        let at = start + Duration::from_secs_f64(seq as f64 / plan.rate);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let conn = match &mut connection {
            Some(conn) => conn,
            None => match Connection::open(plan.addr) {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    note(&mut report, format!("connect: {e}"));
                    continue;
                }
            },
        };
        publish::stamp(
            &mut message,
            seq,
            origin.elapsed().as_nanos() as u64,
            plan.size,
        );
        let lane = seq % lanes;
        let channel = if lane == lanes - 1 {
            String::new()
        } else {
            format!(",\"channel\":\"c{lane}\"")
        };
        let body = format!("{{\"message\":\"{message}\"{channel}}}");
        request.clear();
        let _ = write!(
            request,
            "POST /broadcast HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            plan.addr,
            body.len()
        );
        let reply = conn
            .stream
            .write_all(&request)
            .and_then(|()| conn.read_reply());
        match reply {
            Ok(reply) if reply.status == 200 => {
                seq += 1;
                published.store(seq, Ordering::Relaxed);
                if reply.close {
                    connection = None;
                }
            }
            Ok(reply) => {
                note(&mut report, format!("status {}", reply.status));
                connection = None;
            }
            Err(e) => {
                note(&mut report, format!("publish: {e}"));
                connection = None;
            }
        }
    }
    report
}

/// The server's figures now: RSS and its parts, threads, descriptors and
/// the `/stats` counters.
fn take_sample(run: &Run, origin: Instant, phase: &str, published: u64) -> Value {
    let pid = run.plan.pids.first().copied().unwrap_or(0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let open = run
        .slots
        .iter()
        .filter(|s| matches!(s.phase, Phase::Open | Phase::Closing | Phase::Stalled))
        .count();
    json!({
        "t_s": round2(origin.elapsed().as_secs_f64()),
        "phase": phase,
        "rss_kib": kib(&status, "VmRSS:"),
        "rss_anon_kib": kib(&status, "RssAnon:"),
        "anonymous_kib": kib(&rollup, "Anonymous:"),
        "threads": kib(&status, "Threads:"),
        "fds": fds,
        "published": published,
        "streams_open": open,
        "received": run.counts.received,
        "stats": stats(run.plan.addr),
    })
}

fn kib(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `GET /stats`, without the per-channel counts; `null` if it fails.
fn stats(addr: SocketAddr) -> Value {
    let fetch = || -> io::Result<Value> {
        let mut conn = Connection::open(addr)?;
        write!(
            conn.stream,
            "GET /stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let _ = conn.read_reply()?;
        let mut value: Value = serde_json::from_slice(conn.body()).map_err(io::Error::other)?;
        if let Some(object) = value.as_object_mut() {
            object.remove("channels");
        }
        Ok(value)
    };
    fetch().unwrap_or(Value::Null)
}

fn sample_line(s: &Value) -> String {
    let stat = |name: &str| s["stats"][name].as_u64().unwrap_or(0);
    format!(
        "{:>7.1} s {:<5} RSS {:>6} KiB (anon {:>6}), {:>4} threads, {:>4} fds, {:>4} streams; published {}, clients {}, delivered {}, dropped_slow {}",
        s["t_s"].as_f64().unwrap_or(0.0),
        s["phase"].as_str().unwrap_or(""),
        s["rss_kib"],
        s["rss_anon_kib"],
        s["threads"],
        s["fds"],
        s["streams_open"],
        s["published"],
        stat("clients"),
        stat("delivered"),
        stat("dropped_slow"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_get_their_own_and_the_global_messages() {
        // Three channels: lanes 0, 1, 2, and 3 for everyone.
        assert!(due(Some(1), 5, 4));
        assert!(due(Some(1), 7, 4));
        assert!(!due(Some(1), 6, 4));
        assert!(due(None, 3, 4));
        assert!(!due(None, 4, 4));
        assert_eq!(next_due(Some(0), 0, 4), 3);
        assert_eq!(next_due(Some(0), 3, 4), 4);
        assert_eq!(next_due(None, 3, 4), 7);
    }

    #[test]
    fn the_slope_of_a_flat_line_is_zero() {
        let flat = [(0.0, 100.0), (30.0, 100.0), (60.0, 100.0)];
        assert_eq!(slope(&flat), (0.0, 0.0));
        let (change, fitted) = slope(&[(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)]);
        assert!((change - 2.0).abs() < 1e-9 && (fitted - 2.0).abs() < 1e-9);
    }
}
