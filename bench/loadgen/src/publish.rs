//! Publishers: a few threads, each with one keep-alive HTTP/1.1 connection,
//! sending `POST`s one after the other (request, then wait for the reply).
//!
//! Each message is stamped `<seq> <send_ns> <padding>` just before its
//! request is written, so a subscriber's receive time minus the stamp is the
//! whole publish-to-delivery latency. Publisher `t` of `k` sends the
//! sequence numbers `t, t + k, t + 2k, ...`: the server keeps the order of
//! one connection's requests, so a subscriber can check order per publisher.
//! With a batch of `n`, one request carries the publisher's next `n`
//! messages as a JSON array (sse-hub's batch publish), each with its own
//! sequence number and the request's send time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::measure::Histogram;
use crate::stream::{Head, parse_head};
use crate::tls::{Client, Wire};

/// How a message becomes a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `{"message":"<text>"}` (sse-hub, the Node peer).
    Json,
    /// The text itself (nchan).
    Raw,
}

/// Where and how to publish.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub format: BodyFormat,
    /// Send each POST with its own `Idempotency-Key` (the first message's
    /// sequence number), as a careful publisher would.
    pub idempotency_keys: bool,
    /// HTTPS, with this client; plain HTTP without.
    pub tls: Option<crate::tls::Client>,
}

/// What to publish.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Messages in all; `u64::MAX` publishes until `until`.
    pub messages: u64,
    /// Messages per second over all publishers; 0 = as fast as replies come.
    pub rate: f64,
    /// Length of the message text, stamp included.
    pub size: usize,
    /// Messages per request; more than one makes the body a JSON array.
    pub batch: usize,
    pub publishers: usize,
    /// Nothing is sent after this instant.
    pub until: Instant,
    /// At most this many messages ahead of the count of messages every
    /// stream has received (the shared counter).
    pub window: Option<(u64, Arc<AtomicU64>)>,
}

/// What the publishers did.
#[derive(Clone, Default)]
pub struct Report {
    /// Messages in requests answered with a 2xx status.
    pub ok: u64,
    /// Requests answered with a 2xx status.
    pub requests_ok: u64,
    /// Failed requests (connection errors, non-2xx replies).
    pub errors: u64,
    /// The first few errors, for the human-readable report.
    pub error_samples: Vec<String>,
    /// Send time of the first and last request, since the clock's origin.
    pub first_send_ns: u64,
    pub last_send_ns: u64,
    /// Messages in the last request sent (the one at `last_send_ns`).
    pub last_batch: u64,
    /// Request-to-reply time.
    pub round_trip: Histogram,
}

/// How long a publisher waits for a reply before it gives up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the publishers to the end of the plan (or until `stop`), and
/// returns what they did. `origin` is the clock stamps count from.
pub fn run(target: &Target, plan: Plan, origin: Instant, stop: &Arc<AtomicBool>) -> Report {
    let start_ns = origin.elapsed().as_nanos() as u64;
    let threads: Vec<_> = (0..plan.publishers)
        .map(|index| {
            let target = target.clone();
            let stop = Arc::clone(stop);
            thread::Builder::new()
                .name(format!("publisher-{index}"))
                .spawn({
                    let plan = plan.clone();
                    move || publisher(&target, plan, index as u64, origin, start_ns, &stop)
                })
                .expect("cannot start a publisher thread")
        })
        .collect();
    let mut total = Report {
        first_send_ns: u64::MAX,
        ..Report::default()
    };
    for thread in threads {
        let one = thread.join().expect("a publisher thread panicked");
        total.ok += one.ok;
        total.requests_ok += one.requests_ok;
        total.errors += one.errors;
        total
            .error_samples
            .extend(one.error_samples.into_iter().take(3));
        total.first_send_ns = total.first_send_ns.min(one.first_send_ns);
        if one.last_send_ns >= total.last_send_ns {
            total.last_send_ns = one.last_send_ns;
            total.last_batch = one.last_batch;
        }
        total.round_trip.merge(&one.round_trip);
    }
    if total.first_send_ns == u64::MAX {
        total.first_send_ns = start_ns;
    }
    total
}

fn publisher(
    target: &Target,
    plan: Plan,
    index: u64,
    origin: Instant,
    start_ns: u64,
    stop: &AtomicBool,
) -> Report {
    let mut report = Report {
        first_send_ns: u64::MAX,
        ..Report::default()
    };
    let step = plan.publishers as u64;
    let batch = plan.batch.max(1) as u64;
    let mut connection: Option<Connection> = None;
    let mut request = Vec::with_capacity((plan.size + 32) * batch as usize + 256);
    let mut messages = vec![String::with_capacity(plan.size + 32); batch as usize];
    let mut seq = index;
    while seq < plan.messages && !stop.load(Ordering::Relaxed) {
        let count = batch_len(plan.messages, seq, step, batch);
        if plan.rate > 0.0 {
            let due = start_ns + (seq as f64 * 1e9 / plan.rate) as u64;
            let now = origin.elapsed().as_nanos() as u64;
            if due > now {
                thread::sleep(Duration::from_nanos(due - now));
            }
        }
        if let Some((window, delivered)) = &plan.window
            && !wait_for_window(seq, *window, delivered, plan.until, stop)
        {
            note_error(&mut report, "the window did not move for 10 s".to_owned());
            break;
        }
        if Instant::now() >= plan.until {
            break;
        }
        let conn = match &mut connection {
            Some(conn) => conn,
            None => match Connection::open_with(target.addr, target.tls.as_ref()) {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    note_error(&mut report, format!("connect: {e}"));
                    thread::sleep(Duration::from_millis(50));
                    seq += step * count;
                    continue;
                }
            },
        };
        let sent_ns = origin.elapsed().as_nanos() as u64;
        let messages = &mut messages[..count as usize];
        for (k, message) in messages.iter_mut().enumerate() {
            stamp(message, seq + k as u64 * step, sent_ns, plan.size);
        }
        build_request(&mut request, target, messages);
        let outcome = conn
            .stream
            .write_all(&request)
            .and_then(|()| conn.read_reply());
        let done_ns = origin.elapsed().as_nanos() as u64;
        report.first_send_ns = report.first_send_ns.min(sent_ns);
        report.last_send_ns = sent_ns;
        report.last_batch = count;
        match outcome {
            Ok(reply) if (200..300).contains(&reply.status) => {
                report.ok += count;
                report.requests_ok += 1;
                report.round_trip.record(done_ns - sent_ns);
                if reply.close {
                    connection = None;
                }
            }
            Ok(reply) => {
                let body = String::from_utf8_lossy(&conn.body);
                let body: String = body.chars().take(160).collect();
                note_error(&mut report, format!("status {}: {body}", reply.status));
                if reply.close {
                    connection = None;
                }
            }
            Err(e) => {
                note_error(&mut report, format!("request: {e}"));
                connection = None;
            }
        }
        seq += step * count;
    }
    report
}

/// Waits until message `seq` is within `window` of the messages every
/// stream has received. False if that did not move for 10 s.
fn wait_for_window(
    seq: u64,
    window: u64,
    delivered: &AtomicU64,
    until: Instant,
    stop: &AtomicBool,
) -> bool {
    let mut seen = delivered.load(Ordering::Acquire);
    let mut moved = Instant::now();
    while seq >= seen + window && Instant::now() < until && !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_micros(100));
        let now = delivered.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            moved = Instant::now();
        } else if moved.elapsed() > REPLY_TIMEOUT {
            return false;
        }
    }
    true
}

/// How many messages the request starting at `seq` carries: `seq`,
/// `seq + step`, ... up to `batch` of them, all below `messages`.
fn batch_len(messages: u64, seq: u64, step: u64, batch: u64) -> u64 {
    batch.min((messages - seq).div_ceil(step))
}

fn note_error(report: &mut Report, what: String) {
    report.errors += 1;
    if report.error_samples.len() < 3 {
        report.error_samples.push(what);
    }
}

/// `<seq> <sent_ns> ` then `x` up to `size` bytes.
pub fn stamp(message: &mut String, seq: u64, sent_ns: u64, size: usize) {
    use std::fmt::Write as _;
    message.clear();
    let _ = write!(message, "{seq} {sent_ns} ");
    while message.len() < size {
        message.push('x');
    }
}

/// One request for `messages`: a JSON object for one message, a JSON array
/// of objects for more (the stamps need no escaping); raw bodies take one.
fn build_request(out: &mut Vec<u8>, target: &Target, messages: &[String]) {
    out.clear();
    let (content_type, prefix, suffix): (&str, &str, &str) = match target.format {
        BodyFormat::Json => ("application/json", "{\"message\":\"", "\"}"),
        BodyFormat::Raw => ("text/plain", "", ""),
    };
    let array = messages.len() > 1;
    assert!(
        !array || target.format == BodyFormat::Json,
        "only JSON bodies carry a batch"
    );
    let each: usize = messages
        .iter()
        .map(|m| prefix.len() + m.len() + suffix.len())
        .sum();
    let length = if array {
        each + messages.len() + 1 // brackets and commas
    } else {
        each
    };
    let _ = write!(
        out,
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n",
        target.path, target.addr
    );
    if target.idempotency_keys {
        let seq = messages
            .first()
            .and_then(|m| m.split(' ').next())
            .unwrap_or_default();
        let _ = write!(out, "Idempotency-Key: k{seq}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if array {
        out.push(b'[');
    }
    for (at, message) in messages.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(message.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
    }
    if array {
        out.push(b']');
    }
}

pub struct Reply {
    pub status: u16,
    pub close: bool,
}

/// One keep-alive connection and the bytes read past the last reply.
pub struct Connection {
    pub stream: Wire,
    buf: Vec<u8>,
    /// The last reply's body.
    body: Vec<u8>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> io::Result<Connection> {
        Connection::open_with(addr, None)
    }

    /// A connection over plain TCP, or over TLS with `tls` (the handshake
    /// happens with the first request).
    pub fn open_with(addr: SocketAddr, tls: Option<&Client>) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Connection::over(stream, tls)
    }

    /// A connection on a socket already connected, with its timeouts set.
    pub fn over(stream: TcpStream, tls: Option<&Client>) -> io::Result<Connection> {
        Ok(Connection {
            stream: Wire::new(stream, tls)?,
            buf: Vec::with_capacity(4096),
            body: Vec::with_capacity(4096),
        })
    }

    /// The body of the last reply read.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Reads one whole reply (head and body, by length or chunks).
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let head_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill()?;
        };
        let Head {
            status,
            chunked,
            length,
            close,
        } = parse_head(&self.buf[..head_end]).ok_or_else(|| {
            let head = String::from_utf8_lossy(&self.buf[..head_end]);
            io::Error::other(format!("bad response head {head:?}"))
        })?;
        self.buf.drain(..head_end);
        self.body.clear();
        if chunked {
            loop {
                let line_end = self.until_crlf()?;
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(
                    size_text.split(';').next().unwrap_or_default().trim(),
                    16,
                )
                .map_err(|_| io::Error::other("bad chunk size"))?;
                self.buf.drain(..line_end + 2);
                if size == 0 {
                    let end = self.until_crlf()?; // trailers: assume none
                    self.buf.drain(..end + 2);
                    break;
                }
                while self.buf.len() < size + 2 {
                    self.fill()?;
                }
                self.body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
            }
        } else {
            while self.buf.len() < length {
                self.fill()?;
            }
            self.body.extend(self.buf.drain(..length));
        }
        Ok(Reply { status, close })
    }

    fn until_crlf(&mut self) -> io::Result<usize> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(at);
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_pad_to_the_size() {
        let mut message = String::new();
        stamp(&mut message, 12, 3456, 32);
        assert_eq!(message.len(), 32);
        assert!(message.starts_with("12 3456 x"));
        stamp(&mut message, 1, 2, 0);
        assert_eq!(message, "1 2 ");
    }

    #[test]
    fn batches_stop_at_the_plan_end() {
        // 10 messages, 2 publishers, batches of 4: publisher 1 sends
        // 1 3 5 7, then 9 alone.
        assert_eq!(batch_len(10, 1, 2, 4), 4);
        assert_eq!(batch_len(10, 9, 2, 4), 1);
        assert_eq!(batch_len(10, 8, 2, 4), 1);
        assert_eq!(batch_len(u64::MAX, 0, 4, 100), 100);
        assert_eq!(batch_len(7, 0, 1, 1), 1);
    }

    #[test]
    fn builds_both_body_formats() {
        let mut target = Target {
            addr: "127.0.0.1:9".parse().unwrap(),
            path: "/broadcast".into(),
            format: BodyFormat::Json,
            idempotency_keys: false,
            tls: None,
        };
        let mut out = Vec::new();
        build_request(&mut out, &target, &["1 2 x".into()]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.ends_with("\r\n\r\n{\"message\":\"1 2 x\"}"));
        assert!(text.contains("Content-Length: 19\r\n"));
        build_request(&mut out, &target, &["1 2 x".into(), "3 2 y".into()]);
        let text = String::from_utf8(out.clone()).unwrap();
        let body = "[{\"message\":\"1 2 x\"},{\"message\":\"3 2 y\"}]";
        assert!(text.ends_with(&format!("\r\n\r\n{body}")));
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
        target.idempotency_keys = true;
        build_request(&mut out, &target, &["41 2 x".into()]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("\r\nIdempotency-Key: k41\r\n\r\n{"), "{text}");
        target.idempotency_keys = false;
        target.format = BodyFormat::Raw;
        target.path = "/pub?id=bench".into();
        build_request(&mut out, &target, &["1 2 x".into()]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /pub?id=bench HTTP/1.1\r\n"));
        assert!(text.ends_with("\r\n\r\n1 2 x"));
    }
}
