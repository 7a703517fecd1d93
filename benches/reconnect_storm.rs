//! A reconnect storm: many subscribers resume at once against a full
//! history, while a ticker keeps publishing to subscribers that stayed
//! connected. Measures how long the hub is held up (the ticker's publish
//! latency, which is a round trip through the hub thread) and how long live
//! delivery to the connected subscribers stalls.
//!
//! ```sh
//! cargo bench --bench reconnect_storm -- 1000
//! ```
//!
//! Arguments: storm size (default 1000), history (default 1024), message
//! size in bytes (default 256). The storm's clients resume from the first ID
//! published, which the ticker has pushed out of history by then, so each
//! is owed a `gap` event and the whole history; they do not read, the
//! kernel's socket buffers take their replay.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sse_hub::{Config, Event, Hub, HubConfig, Server};

const WITNESSES: usize = 20;
const TICK: Duration = Duration::from_millis(1);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench`; the numbers are ours.
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse::<usize>());
    let storm = args.next().transpose()?.unwrap_or(1000);
    let history = args.next().transpose()?.unwrap_or(1024);
    let size = args.next().transpose()?.unwrap_or(256);

    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse()?,
        hub: HubConfig {
            heartbeat: None,
            history,
            max_clients: storm + WITNESSES + 100,
            ..HubConfig::default()
        },
        ..Config::default()
    })?;
    let addr = server.local_addr();
    let hub = server.hub();
    let stopper = server.stopper();
    let running = thread::spawn(move || server.run());

    let padding = "x".repeat(size.saturating_sub(40));
    let first = hub.publish(&Event::new(format!("0 0 {padding}")), None)?.id;
    for i in 1..history {
        hub.publish(&Event::new(format!("{i} 0 {padding}")), None)?;
    }

    let latencies: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    for _ in 0..WITNESSES {
        let latencies = Arc::clone(&latencies);
        witness(addr, latencies)?;
    }
    wait_for_clients(&hub, WITNESSES)?;

    let ticking = Arc::new(AtomicBool::new(true));
    let ticks: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let ticker = {
        let (hub, ticking, ticks, padding) = (
            hub.clone(),
            Arc::clone(&ticking),
            Arc::clone(&ticks),
            padding.clone(),
        );
        thread::spawn(move || tick(&hub, &ticking, &ticks, &padding))
    };

    thread::sleep(Duration::from_secs(1));
    let storm_start = now();
    let opened = Instant::now();
    let clients: Vec<TcpStream> = (0..storm)
        .map(|i| resume(addr, i, &first.to_string()))
        .collect::<Result<_, _>>()?;
    let sent = opened.elapsed();
    wait_for_clients(&hub, WITNESSES + storm)?;
    let registered = opened.elapsed();
    // The replay is written after registration; keep measuring while it is.
    thread::sleep(Duration::from_secs(3));
    let storm_end = now();
    thread::sleep(Duration::from_secs(1));
    ticking.store(false, Ordering::Relaxed);
    ticker.join().map_err(|_| "ticker panicked")?;

    let ticks = ticks.lock().map_err(|_| "poisoned")?.clone();
    let latencies = latencies.lock().map_err(|_| "poisoned")?.clone();
    // The samples (when, ms) taken in [from, to).
    let between = |samples: &[(f64, f64)], from: f64, to: f64| -> Vec<f64> {
        samples
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|&(_, ms)| ms)
            .collect()
    };
    let before = |samples: &[(f64, f64)]| between(samples, f64::MIN, storm_start);
    let during = |samples: &[(f64, f64)]| between(samples, storm_start, storm_end);

    println!(
        "storm: {storm} subscribers resuming from before all {history} retained messages of {size} B"
    );
    println!(
        "  requests sent in {:.0} ms, all registered after {:.0} ms; replay owed: {:.0} MB",
        sent.as_secs_f64() * 1e3,
        registered.as_secs_f64() * 1e3,
        (storm * history * (size + 30)) as f64 / 1e6
    );
    report("hub round trip (publish latency), before", &before(&ticks));
    println!(
        "  'during' is from the first request until 3 s after the last registration, replay writing included"
    );
    report("hub round trip (publish latency), during", &during(&ticks));
    report(
        "live delivery to connected subscribers, before",
        &before(&latencies),
    );
    report(
        "live delivery to connected subscribers, during",
        &during(&latencies),
    );

    drop(clients);
    stopper.stop();
    running.join().map_err(|_| "server thread panicked")??;
    Ok(())
}

/// Publishes a stamped message every tick; records (when, publish latency).
fn tick(hub: &Hub, ticking: &AtomicBool, ticks: &Mutex<Vec<(f64, f64)>>, padding: &str) {
    let mut seq = 0u64;
    while ticking.load(Ordering::Relaxed) {
        let sent = now();
        let event = Event::new(format!("t{seq} {sent} {padding}"));
        if hub.publish(&event, None).is_err() {
            return;
        }
        if let Ok(mut ticks) = ticks.lock() {
            ticks.push((sent, (now() - sent) * 1e3));
        }
        seq += 1;
        thread::sleep(TICK);
    }
}

/// A subscriber that stays connected and records (when sent, latency in ms)
/// for each ticker message.
fn witness(addr: SocketAddr, latencies: Arc<Mutex<Vec<(f64, f64)>>>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")?;
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let Some(data) = line.strip_prefix("data: t") else {
                continue;
            };
            let mut fields = data.split(' ');
            let sent: Option<f64> = fields.nth(1).and_then(|s| s.parse().ok());
            if let (Some(sent), Ok(mut latencies)) = (sent, latencies.lock()) {
                latencies.push((sent, (now() - sent) * 1e3));
            }
        }
    });
    Ok(())
}

/// Opens a stream that resumes after `last_id`, from loopback address
/// 127.0.0.(2 + i % 200) so that many streams do not exhaust one address's
/// ports.
fn resume(addr: SocketAddr, i: usize, last_id: &str) -> std::io::Result<TcpStream> {
    let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&addr.into())?;
    let mut stream: TcpStream = socket.into();
    let request = format!("GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {last_id}\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    Ok(stream)
}

/// Waits until `clients` subscribers are registered; fails after a minute
/// (for one, when the system's limits lowered `--max-clients` below that).
fn wait_for_clients(hub: &Hub, clients: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = hub.stats().map_err(|e| e.to_string())?.clients;
        if open >= clients {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {open} of {clients} subscribers registered after 60 s"
            ));
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn report(what: &str, samples: &[f64]) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "  {what}: {} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Seconds since the Unix epoch, as a float.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
