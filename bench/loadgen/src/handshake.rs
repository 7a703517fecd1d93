//! `handshake` mode: what a fresh connection costs. Each of `--workers`
//! threads opens connections one after the other, `--connections` in all:
//! connect, the TLS handshake with `--tls-ca` (a full one unless
//! `--tls-resumption`), `GET /healthz` with `Connection: close`, and the
//! whole reply. The connection counts only if the reply is a 200.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::measure::{self, Histogram};
use crate::publish::Connection;
use crate::{Outcome, Run, add, common, ms, round, usage_json};

/// How long one connection may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What one worker did.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    /// TLS handshakes that resumed a session (rather than full ones).
    resumed: u64,
    samples: Vec<String>,
    /// Connect to the end of the reply.
    total: Histogram,
    /// Connect to the end of the TLS handshake (the TCP connect alone
    /// without TLS).
    handshake: Histogram,
}

pub fn run(args: &Run) -> Outcome {
    let mut report = common(args);
    let workers = args.workers.max(1);
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let before = measure::usage(&args.pid);
    let own_before = measure::own_cpu();
    let started = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (next, tls, addr, total) = (
                Arc::clone(&next),
                args.tls.clone(),
                args.addr,
                args.connections,
            );
            thread::spawn(move || {
                let mut tally = Tally::default();
                while next.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                    match one(addr, tls.as_ref()) {
                        Ok((handshake, whole, resumed)) => {
                            tally.ok += 1;
                            tally.resumed += u64::from(resumed);
                            tally.handshake.record(handshake);
                            tally.total.record(whole);
                        }
                        Err(e) => {
                            tally.failed += 1;
                            if tally.samples.len() < 3 {
                                tally.samples.push(e);
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for thread in threads {
        let one = thread.join().expect("a worker panicked");
        all.ok += one.ok;
        all.failed += one.failed;
        all.resumed += one.resumed;
        all.samples.extend(one.samples);
        all.total.merge(&one.total);
        all.handshake.merge(&one.handshake);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = measure::usage(&args.pid);
    let own = measure::own_cpu() - own_before;
    let per_s = all.ok as f64 / elapsed;
    let server_cpu = after.cpu_s - before.cpu_s;
    let cpu_us = if all.ok > 0 {
        server_cpu / all.ok as f64 * 1e6
    } else {
        0.0
    };
    eprintln!(
        "[{}] {} connections ok ({} resumed a TLS session), {} failed in {elapsed:.2} s on {workers} threads ({}): {per_s:.0}/s; handshake p50 {:.3} ms, p99 {:.3} ms; whole p50 {:.3} ms, p99 {:.3} ms; server CPU {server_cpu:.2} s ({cpu_us:.0} us each), loadgen CPU {:.2} s",
        args.label,
        all.ok,
        all.resumed,
        all.failed,
        match (&args.tls, args.tls_resumption) {
            (None, _) => "plain TCP",
            (Some(_), false) => "full TLS handshakes",
            (Some(_), true) => "TLS, resumption allowed",
        },
        ms(all.handshake.quantile(0.5)),
        ms(all.handshake.quantile(0.99)),
        ms(all.total.quantile(0.5)),
        ms(all.total.quantile(0.99)),
        own.as_secs_f64(),
    );
    for e in &all.samples {
        eprintln!("  e.g. {e}");
    }
    let q = |h: &Histogram| {
        json!({
            "p50": ms(h.quantile(0.5)),
            "p90": ms(h.quantile(0.9)),
            "p99": ms(h.quantile(0.99)),
            "max": ms(h.max()),
        })
    };
    add(
        &mut report,
        json!({
            "connections": args.connections,
            "workers": workers,
            "ok": all.ok,
            "failed": all.failed,
            "resumed": all.resumed,
            "error_samples": all.samples,
            "seconds": round(elapsed, 3),
            "connections_per_s": round(per_s, 0),
            "handshake_ms": q(&all.handshake),
            "connection_ms": q(&all.total),
            "server": usage_json(&before, &after),
            "server_cpu_us_per_connection": round(cpu_us, 1),
            "loadgen_cpu_s": round(own.as_secs_f64(), 3),
            "load1_end": measure::load_average(),
        }),
    );
    Ok(report)
}

/// One fresh connection; the nanoseconds to the end of the handshake and
/// to the end of the reply, and whether the TLS session was resumed.
fn one(
    addr: std::net::SocketAddr,
    tls: Option<&crate::tls::Client>,
) -> Result<(u64, u64, bool), String> {
    let start = Instant::now();
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = Connection::over(tcp, tls).map_err(|e| format!("TLS: {e}"))?;
    conn.stream
        .handshake()
        .map_err(|e| format!("handshake: {e}"))?;
    let handshake = start.elapsed().as_nanos() as u64;
    let resumed = conn.stream.resumed();
    write!(
        conn.stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .and_then(|()| conn.stream.flush())
    .map_err(|e| format!("request: {e}"))?;
    let reply = conn.read_reply().map_err(|e| format!("reply: {e}"))?;
    if reply.status != 200 {
        return Err(format!("status {}", reply.status));
    }
    Ok((handshake, start.elapsed().as_nanos() as u64, resumed))
}
