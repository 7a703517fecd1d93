//! What `--compress` costs and saves: the release `sse-hub` binary with
//! and without it, the same subscribers (each sends `Accept-Encoding:
//! gzip`, as browsers do) and the same JSON messages of about 1 KiB.
//! Measures bytes on the wire per delivery (what the subscribers' sockets
//! read after the response head: chunk framing and all), the server's CPU
//! time per delivery (`/proc/<pid>/stat`, the publishes' own cost
//! included), and its memory per idle stream (`VmRSS` with the streams
//! open, less `VmRSS` before they opened, over their number), then again
//! once messages have gone through every stream.
//!
//! ```sh
//! cargo bench --bench compress                      # 1,000 subscribers, 300 messages at 50/s
//! cargo bench --bench compress -- 1000 300 50       # the same, spelled out
//! ```
//!
//! Messages are published one at a time at a steady rate, so each stream
//! mostly writes one message per batch: one sync flush per message, the
//! dearest case for gzip (bursts batch several messages per flush). The
//! subscribers decode every stream and count the messages, so a lost or
//! held-back message shows as a timeout, not as a better figure. They run
//! in this process, on the same machine: their decoding takes CPU from the
//! server, though not CPU time charged to it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzDecoder;
use serde_json::{Value, json};

/// How long any one wait may take before the run fails.
const GUARD: Duration = Duration::from_secs(60);

/// The start of every message's `data:` line, which the subscribers count.
/// (serde_json writes an object's keys sorted.)
const MARK: &[u8] = b"data: {\"customer\":";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench`; the numbers are ours.
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse::<u64>());
    let subscribers = args.next().transpose()?.unwrap_or(1000);
    let messages = args.next().transpose()?.unwrap_or(300);
    let rate = args.next().transpose()?.unwrap_or(50);
    raise_open_files();

    let size = order(0).to_string().len();
    println!(
        "{subscribers} subscribers, {messages} JSON messages of about {size} bytes, {rate}/s, \
         one publisher"
    );
    println!();
    println!(
        "| server | wire bytes per delivery | server CPU per delivery (us): user + system \
         | RSS per idle stream (KiB) | RSS per stream after the messages (KiB) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for compress in [false, true] {
        let run = measure(compress, subscribers, messages, rate)?;
        let deliveries = (subscribers * messages) as f64;
        let us = |cpu: Duration| cpu.as_secs_f64() * 1e6 / deliveries;
        println!(
            "| sse-hub{} | {:.0} | {:.1}: {:.1} + {:.1} | {:.1} | {:.1} |",
            if compress { " --compress" } else { "" },
            run.wire_bytes as f64 / deliveries,
            us(run.user + run.system),
            us(run.user),
            us(run.system),
            run.rss_idle_kib as f64 / subscribers as f64,
            run.rss_after_kib as f64 / subscribers as f64,
        );
    }
    Ok(())
}

/// What one run measured: over the publishing, and memory growth since
/// the server started.
struct Run {
    wire_bytes: u64,
    user: Duration,
    system: Duration,
    rss_idle_kib: u64,
    rss_after_kib: u64,
}

/// Counters the subscriber threads share.
#[derive(Default)]
struct Tally {
    open: AtomicU64,
    wire_bytes: AtomicU64,
    messages: AtomicU64,
    gzip: AtomicU64,
}

fn measure(
    compress: bool,
    subscribers: u64,
    messages: u64,
    rate: u64,
) -> Result<Run, Box<dyn std::error::Error>> {
    let mut server = Server::start(compress, subscribers)?;
    let rss_start = server.rss_kib()?;
    let tally = Arc::new(Tally::default());
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let tally = Arc::clone(&tally);
            let addr = server.addr;
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || subscribe(addr, &tally))
        })
        .collect::<Result<_, _>>()?;
    wait_until("every stream open", || {
        tally.open.load(Ordering::Relaxed) == subscribers
    })?;
    thread::sleep(Duration::from_secs(1));
    let rss_idle = server.rss_kib()?;
    let gzip = tally.gzip.load(Ordering::Relaxed);
    assert_eq!(gzip, if compress { subscribers } else { 0 }, "gzip streams");

    let wire_before = tally.wire_bytes.load(Ordering::Relaxed);
    let cpu_before = server.cpu()?;
    let mut publisher = Publisher::connect(server.addr)?;
    let start = Instant::now();
    for n in 0..messages {
        let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        publisher.publish(&json!({ "message": order(n) }))?;
    }
    wait_until("every message to every subscriber", || {
        tally.messages.load(Ordering::Relaxed) == subscribers * messages
    })?;
    let (user, system) = server.cpu()?;
    let (user, system) = (user - cpu_before.0, system - cpu_before.1);
    let wire_bytes = tally.wire_bytes.load(Ordering::Relaxed) - wire_before;
    let rss_after = server.rss_kib()?;

    server.stop()?;
    for reader in readers {
        reader
            .join()
            .map_err(|_| "a subscriber thread panicked")??;
    }
    Ok(Run {
        wire_bytes,
        user,
        system,
        rss_idle_kib: rss_idle.saturating_sub(rss_start),
        rss_after_kib: rss_after.saturating_sub(rss_start),
    })
}

/// A JSON message of about 1 KiB, different for each `n`: an order with a
/// few lines, the kind of object an application broadcasts.
fn order(n: u64) -> Value {
    const NAMES: [&str; 6] = ["kettle", "teapot", "mug", "saucer", "spoon", "tray"];
    const STATUS: [&str; 4] = ["placed", "paid", "packed", "shipped"];
    let lines: Vec<Value> = (0..11)
        .map(|i| {
            let k = n
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(i * 1_442_695_040_888_963_407);
            json!({
                "sku": format!("SKU-{:05}", k % 100_000),
                "name": NAMES[usize::try_from((k >> 20) % 6).unwrap_or(0)],
                "quantity": (k >> 30) % 9 + 1,
                "unit_price": format!("{}.{:02}", (k >> 36) % 200, (k >> 44) % 100),
                "warehouse": format!("wh-{}", (k >> 50) % 12),
            })
        })
        .collect();
    json!({
        "order": n,
        "customer": format!("customer-{}", n.wrapping_mul(2_654_435_761) % 100_000),
        "status": STATUS[usize::try_from(n % 4).unwrap_or(0)],
        "lines": lines,
    })
}

/// One subscriber: reads its stream to the end, decoding it if gzip, and
/// counts the wire bytes and the messages.
fn subscribe(addr: SocketAddr, tally: &Tally) -> io::Result<()> {
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(GUARD))?;
    (&socket).write_all(
        b"GET /events HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\
          Accept-Encoding: gzip, deflate, br\r\n\r\n",
    )?;
    let mut reader = BufReader::with_capacity(64 * 1024, socket);
    let mut gzip = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.starts_with("HTTP/") && !line.contains(" 200 ") {
            return Err(io::Error::other(format!("subscribe: {line}")));
        }
        gzip |= line.eq_ignore_ascii_case("content-encoding: gzip\r\n");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    tally.open.fetch_add(1, Ordering::Relaxed);
    tally.gzip.fetch_add(u64::from(gzip), Ordering::Relaxed);
    let counter = Counter {
        tally,
        line_start: Vec::with_capacity(MARK.len()),
        at_line_start: true,
    };
    let mut body: Box<dyn Write + '_> = if gzip {
        Box::new(GzDecoder::new(counter))
    } else {
        Box::new(counter)
    };
    let mut chunk = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size)? == 0 {
            return Ok(()); // closed
        }
        let len = usize::from_str_radix(size.trim_end(), 16).map_err(io::Error::other)?;
        chunk.resize(len + 2, 0);
        reader.read_exact(&mut chunk)?;
        tally
            .wire_bytes
            .fetch_add((size.len() + len + 2) as u64, Ordering::Relaxed);
        if len == 0 {
            return Ok(());
        }
        body.write_all(&chunk[..len])?;
        body.flush()?;
    }
}

/// Counts the lines that start with [`MARK`] in the decoded stream.
struct Counter<'a> {
    tally: &'a Tally,
    /// The first bytes of the current line, up to `MARK.len()`.
    line_start: Vec<u8>,
    at_line_start: bool,
}

impl Write for Counter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for &b in bytes {
            if b == b'\n' {
                self.line_start.clear();
                self.at_line_start = true;
            } else if self.at_line_start {
                self.line_start.push(b);
                if self.line_start.len() == MARK.len() {
                    if self.line_start == MARK {
                        self.tally.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    self.at_line_start = false;
                }
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One keep-alive connection that publishes and reads each reply.
struct Publisher {
    reader: BufReader<TcpStream>,
}

impl Publisher {
    fn connect(addr: SocketAddr) -> io::Result<Publisher> {
        let socket = TcpStream::connect(addr)?;
        socket.set_read_timeout(Some(GUARD))?;
        socket.set_nodelay(true)?;
        Ok(Publisher {
            reader: BufReader::new(socket),
        })
    }

    fn publish(&mut self, body: &Value) -> io::Result<()> {
        let body = body.to_string();
        let request = format!(
            "POST /broadcast HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_ref().write_all(request.as_bytes())?;
        let mut length = 0;
        let mut status = String::new();
        self.reader.read_line(&mut status)?;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(io::Error::other)?;
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut reply = vec![0; length];
        self.reader.read_exact(&mut reply)?;
        if !status.contains(" 200 ") {
            return Err(io::Error::other(format!(
                "publish: {status} {}",
                String::from_utf8_lossy(&reply)
            )));
        }
        Ok(())
    }
}

/// The release `sse-hub` binary, on a free port.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(compress: bool, subscribers: u64) -> Result<Server, Box<dyn std::error::Error>> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sse-hub"));
        command
            .args(["--listen", "127.0.0.1:0", "--max-clients"])
            .arg((subscribers + 100).to_string())
            // One info line per subscriber would measure the logger.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if compress {
            command.arg("--compress");
        }
        let mut child = command.spawn()?;
        let mut log = BufReader::new(child.stderr.take().ok_or("no stderr")?);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if log.read_line(&mut line)? == 0 {
                return Err("sse-hub exited before it listened".into());
            }
            if let Some((_, rest)) = line.split_once("listening on http://") {
                break rest.trim().parse()?;
            }
        };
        // Keep reading the log, so the server never blocks on a full pipe.
        thread::spawn(move || io::copy(&mut log, &mut io::sink()));
        Ok(Server { child, addr })
    }

    fn rss_kib(&self) -> io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| io::Error::other("no VmRSS"))
    }

    /// User and system CPU time so far.
    fn cpu(&self) -> io::Result<(Duration, Duration)> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // The fields after the command name, which is in parentheses.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        // SAFETY: sysconf reads a constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let per_second = u64::try_from(per_second).unwrap_or(100).max(1) as f64;
        let time = |field: &str| {
            let ticks = field.parse::<u64>().map_err(io::Error::other)?;
            Ok::<_, io::Error>(Duration::from_secs_f64(ticks as f64 / per_second))
        };
        Ok((time(fields[11])?, time(fields[12])?))
    }

    fn stop(&mut self) -> io::Result<()> {
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.child.wait().map(drop)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > GUARD {
            return Err(format!("waited {GUARD:?} in vain for {what}"));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Room for a thousand sockets and more.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
