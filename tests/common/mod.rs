//! The one shared test helper: start the real `sse-hub` binary on port 0,
//! talk HTTP to it over TCP, and read event streams with a small client that
//! parses them the way the WHATWG standard says a browser does (and, for a
//! `Content-Encoding: gzip` stream, decodes it as it arrives, with a gzip
//! decoder that is not the server's zlib).
//!
//! Timeouts here only guard against hangs: a helper that waits too long
//! panics with what it was waiting for.

#![allow(dead_code)] // each test binary uses a different part of this

pub mod clients;
pub mod proxy;
pub mod redis;
#[cfg(feature = "tls")]
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzDecoder;
use serde_json::Value;

/// How long any single wait may take before the test fails as hung.
pub const GUARD: Duration = Duration::from_secs(20);

/// Whether the helper keeps reading the process's log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Logs {
    Read,
    Unread,
}

/// A running `sse-hub` process.
pub struct Hub {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Hub {
    /// Starts the binary on a free port of 127.0.0.1 with extra `args`.
    pub fn start(args: &[&str]) -> Hub {
        Hub::start_with_env("127.0.0.1:0", args, &[])
    }

    /// Starts the binary listening on `listen`, with extra environment
    /// variables (such as `SSE_HUB_PUBLISH_TOKEN`) set for the process.
    pub fn start_with_env(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Hub {
        Hub::spawn(listen, args, env, Logs::Read)
    }

    /// Starts the binary on a free port and, once it has said where it
    /// listens, never reads its stderr again (a stalled log collector).
    pub fn start_with_unread_logs(args: &[&str]) -> Hub {
        Hub::spawn("127.0.0.1:0", args, &[], Logs::Unread)
    }

    /// Starts the binary on a free port with extra `args`, allowed at most
    /// `nofile` open descriptors (`RLIMIT_NOFILE`, soft and hard) from its
    /// first instruction on.
    pub fn start_with_fd_limit(args: &[&str], nofile: u64) -> Hub {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_sse-hub"));
        let limit = libc::rlimit {
            rlim_cur: nofile,
            rlim_max: nofile,
        };
        // SAFETY: setrlimit(2) is async-signal-safe, and the closure touches
        // nothing else between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        command.arg("--listen").arg("127.0.0.1:0").args(args);
        Hub::from_command(command, &[], Logs::Read)
    }

    fn spawn(listen: &str, args: &[&str], env: &[(&str, &str)], logs: Logs) -> Hub {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sse-hub"));
        command.arg("--listen").arg(listen).args(args);
        Hub::from_command(command, env, logs)
    }

    /// Starts one of the crate's examples (built by `cargo test`), which
    /// says where it listens the way the binary does.
    pub fn start_example(name: &str, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let mut command = Command::new(example_path(name));
        command.args(args);
        Hub::from_command(command, env, Logs::Read)
    }

    fn from_command(mut command: Command, env: &[(&str, &str)], logs: Logs) -> Hub {
        let mut child = command
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, addr) = crossbeam_channel::bounded(1);
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                let announced = line
                    .split_once("listening on http://")
                    .or_else(|| line.split_once("listening on https://"));
                if let Some((_, rest)) = announced {
                    let _ = found.send(rest.trim().parse::<SocketAddr>().ok());
                    if logs == Logs::Unread {
                        drop(log);
                        // Keep the pipe open, and never read it again.
                        loop {
                            thread::park();
                        }
                    }
                }
            }
        });
        let addr = match addr.recv_timeout(GUARD) {
            Ok(Some(addr)) => addr,
            _ => {
                let _ = child.kill();
                panic!(
                    "sse-hub did not report its address; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Hub { child, addr, log }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `text` (logs arrive through a pipe, after
    /// what the hub sent on a socket); panics after [`GUARD`].
    pub fn wait_for_log(&self, text: &str) {
        let start = Instant::now();
        while !self.log().contains(text) {
            assert!(
                start.elapsed() < GUARD,
                "the log never said {text:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.wait()
    }

    /// Waits for the process to exit (after a signal sent by the test).
    pub fn wait(&mut self) -> ExitStatus {
        wait_with_guard(&mut self.child)
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for sse-hub")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `POST /broadcast` with `body` as is.
    pub fn post(&self, body: &str) -> Reply {
        self.request("POST", "/broadcast", &[], body.as_bytes())
    }

    /// Publishes `body` (a JSON object) and expects 200; returns the reply's
    /// `id` and `clients`.
    pub fn publish(&self, body: Value) -> (String, u64) {
        let reply = self.post(&body.to_string());
        assert_eq!(reply.status, 200, "publish {body} failed: {}", reply.text());
        let json = reply.json();
        let id = json["id"].as_str().expect("reply has an id").to_owned();
        (id, json["clients"].as_u64().expect("reply has clients"))
    }

    /// Publishes `{"message": text}`; returns the ID.
    pub fn publish_text(&self, text: &str) -> String {
        self.publish(serde_json::json!({ "message": text })).0
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    /// One HTTP/1.1 request on a fresh connection, `Connection: close`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        let mut stream = self.connect();
        stream.write_all(&raw).expect("send request");
        // The reply to a HEAD has no body, whatever its headers say.
        Reply::read(&mut BufReader::new(stream), method != "HEAD").expect("a complete reply")
    }

    /// Sends raw bytes on a fresh connection and reads one reply, framed by
    /// its `Content-Length` (or chunked), without waiting for the connection
    /// to close. For hostile requests: a failed write (the server may answer
    /// and close before reading everything) is not an error, and `None` means
    /// the connection ended, or stayed silent for [`GUARD`], with no complete
    /// reply.
    pub fn exchange(&self, bytes: &[u8]) -> Option<Reply> {
        let stream = self.connect();
        let _ = (&stream).write_all(bytes);
        Reply::read_from(&mut BufReader::new(stream))
    }

    /// A TCP connection to the hub, with the guard timeout on reads.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to sse-hub");
        stream.set_read_timeout(Some(GUARD)).expect("set timeout");
        stream
    }

    /// `GET /stats` as JSON.
    pub fn stats(&self) -> Value {
        let reply = self.get("/stats");
        assert_eq!(reply.status, 200);
        reply.json()
    }

    /// Waits until `/stats` says `clients` streams are open.
    pub fn wait_for_clients(&self, clients: u64) {
        self.wait_for_stats(&format!("clients == {clients}"), |s| {
            s["clients"] == clients
        });
    }

    /// Waits until `/stats` satisfies `ok`.
    pub fn wait_for_stats(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_stats_within(what, GUARD, ok)
    }

    /// Waits until `/stats` satisfies `ok`, for at most `bound` (a bound the
    /// contract sets, where [`GUARD`] would be too lenient).
    pub fn wait_for_stats_within(
        &self,
        what: &str,
        bound: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let stats = self.stats();
            if ok(&stats) {
                return stats;
            }
            assert!(
                start.elapsed() < bound,
                "stats did not reach {what} within {bound:?}: {stats}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens `GET path` as an event stream and reads the response head.
    pub fn subscribe(&self, path: &str) -> Subscriber {
        self.subscribe_with(path, &[])
    }

    /// Like [`Hub::subscribe`], with extra request headers.
    pub fn subscribe_with(&self, path: &str, headers: &[(&str, &str)]) -> Subscriber {
        Subscriber::open(
            self.connect(),
            &self.addr.to_string(),
            path,
            headers,
            "HTTP/1.1",
        )
    }

    /// Subscribes and reads the `connection` event; returns the client with
    /// its client ID.
    pub fn subscribe_ready(&self, path: &str) -> (Subscriber, String) {
        let mut client = self.subscribe(path);
        assert_eq!(client.status, 200, "subscribe {path}");
        let hello = client.next_event();
        assert_eq!(hello.event, "connection");
        let id = hello.json()["client"]
            .as_str()
            .expect("client id")
            .to_owned();
        (client, id)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (for a server that must come back on
/// the same port, so cannot use port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Where `cargo test` put the example `name`, beside the binary; built
/// here if it is missing (`cargo test --test examples` alone does not build
/// examples). An example that is there but older than its source is not
/// rebuilt: run `cargo build --examples` after changing one.
pub fn example_path(name: &str) -> std::path::PathBuf {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sse-hub"));
    let path = binary.with_file_name("examples").join(name);
    if !path.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(built.success(), "cargo build --example {name}");
    }
    path
}

fn wait_with_guard(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for sse-hub") {
            return status;
        }
        assert!(start.elapsed() < GUARD, "sse-hub did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A complete HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads one reply from `reader`, framed by its `Content-Length` or
    /// chunked (or, with neither, by the end of the connection), leaving what
    /// follows (a pipelined reply) unread. `None` if the connection ends, fails or stays silent for its
    /// read timeout before a complete reply arrived.
    pub fn read_from(reader: &mut BufReader<TcpStream>) -> Option<Reply> {
        Reply::read(reader, true)
    }

    fn read(reader: &mut BufReader<TcpStream>, with_body: bool) -> Option<Reply> {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match reader.read_until(b'\n', &mut head) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        let (status, headers, chunked) = parse_head(&head)?;
        let body = if with_body {
            read_body(reader, &headers, chunked)?
        } else {
            Vec::new()
        };
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", self.text()))
    }

    /// Checks an error reply: `status`, a JSON `{"error": ...}` whose text
    /// is not empty and contains `says`, and the CORS header that every
    /// response carries. `what` names the request in a failure.
    pub fn assert_error(&self, status: u16, says: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        assert_eq!(
            self.header("Content-Type"),
            Some("application/json"),
            "{what}"
        );
        let error = self.error();
        assert!(
            !error.is_empty() && error.contains(says),
            "{what}: {error:?}, expected it to say {says:?}"
        );
        assert!(
            self.header("Access-Control-Allow-Origin").is_some(),
            "{what}: no CORS header"
        );
    }

    /// The `error` text of a JSON error reply.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .expect("an error field")
            .to_owned()
    }
}

/// A reply's body: chunked, `Content-Length` bytes, or (with neither) up
/// to the end of the connection.
fn read_body(
    reader: &mut BufReader<TcpStream>,
    headers: &Headers,
    chunked: bool,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                return Some(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    match header_in(headers, "Content-Length") {
        Some(length) => {
            body.resize(length.parse().ok()?, 0);
            reader.read_exact(&mut body).ok()?;
        }
        None => {
            reader.read_to_end(&mut body).ok()?;
        }
    }
    Some(body)
}

/// A response head (status line and headers, without the blank line after
/// them): its status, its headers, and whether its body is chunked. `None`
/// without a status line.
fn parse_head(head: &[u8]) -> Option<(u16, Headers, bool)> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.trim_end().split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = parse_headers(lines);
    let chunked =
        header_in(&headers, "Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    Some((status, headers, chunked))
}

/// A message ID, `<ms>-<seq>` (two decimal numbers; panics otherwise), as a
/// pair that orders like the IDs do.
pub fn id_order(id: &str) -> (u64, u64) {
    let parse = |n: &str| {
        assert!(
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
            "{id:?} is not <ms>-<seq>"
        );
        n.parse()
            .unwrap_or_else(|_| panic!("{id:?}: a part past u64"))
    };
    let (ms, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("{id:?} is not <ms>-<seq>"));
    (parse(ms), parse(seq))
}

/// Header names and values, in order.
type Headers = Vec<(String, String)>;

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Headers {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One dispatched event, as an `EventSource` would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The type (`message` when the stream gave none).
    pub event: String,
    pub data: String,
    /// The `id:` field of this very event, if it had one.
    pub id: Option<String>,
    /// The stream's last event ID when it was dispatched.
    pub last_event_id: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }

    /// The ID this event carries, or a panic.
    pub fn id(&self) -> &str {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("event has no id: {self:?}"))
    }
}

/// What the stream gave next: an event, or a comment line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Event(SseEvent),
    Comment(String),
}

/// An open event stream and a WHATWG-conformant parser for it.
pub struct Subscriber {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    /// Body bytes received but not yet split into lines.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no line break.
    scanned: usize,
    ended: bool,
    /// The body ended as it should: the last chunk (chunked), or the close
    /// (close-delimited).
    ended_cleanly: bool,
    /// The body of a non-200 reply.
    pub error_body: String,
    /// Body bytes as they came on the wire (compressed, if gzip), without
    /// the chunk framing.
    pub wire_bytes: usize,
    /// With `Content-Encoding: gzip`: the decoder the body goes through.
    gzip: Option<GzDecoder<Vec<u8>>>,
    // Parser state, named as in the standard.
    data: String,
    event_type: String,
    last_event_id: String,
    this_id: Option<String>,
    pub retry: Option<u64>,
}

impl Subscriber {
    /// Sends the request on `stream` and reads the response head.
    pub fn open(
        stream: TcpStream,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        version: &str,
    ) -> Subscriber {
        let mut request =
            format!("GET {path} {version}\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        (&stream)
            .write_all(request.as_bytes())
            .expect("send subscribe request");
        Subscriber::read_head(BufReader::new(stream))
    }

    /// Reads a response head from `reader` (when the request was sent by
    /// hand).
    pub fn read_head(mut reader: BufReader<TcpStream>) -> Subscriber {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let n = reader
                .read_until(b'\n', &mut head)
                .expect("read response head");
            assert!(
                n > 0,
                "connection closed before the response head: {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        let (status, headers, chunked) = parse_head(&head).expect("a status line");
        let mut subscriber = Subscriber {
            status,
            headers,
            reader,
            chunked,
            chunk_left: 0,
            pending: Vec::new(),
            scanned: 0,
            ended: false,
            ended_cleanly: false,
            error_body: String::new(),
            wire_bytes: 0,
            gzip: None,
            data: String::new(),
            event_type: String::new(),
            last_event_id: String::new(),
            this_id: None,
            retry: None,
        };
        if status == 200 && subscriber.header("Content-Encoding") == Some("gzip") {
            subscriber.gzip = Some(GzDecoder::new(Vec::new()));
        }
        if status != 200 {
            let length = subscriber
                .header("Content-Length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = subscriber.reader.read_exact(&mut body);
            subscriber.error_body = String::from_utf8_lossy(&body).into_owned();
        }
        subscriber
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// The next event; panics if the stream ends or no event comes within
    /// [`GUARD`] (heartbeats do not keep the wait going).
    pub fn next_event(&mut self) -> SseEvent {
        let deadline = Instant::now() + GUARD;
        loop {
            match self.next_item() {
                Some(Item::Event(event)) => return event,
                Some(Item::Comment(_)) => assert!(
                    Instant::now() < deadline,
                    "only comments arrived for {GUARD:?} while an event was expected"
                ),
                None => panic!("the stream ended while an event was expected"),
            }
        }
    }

    /// The next `n` events.
    pub fn events(&mut self, n: usize) -> Vec<SseEvent> {
        (0..n).map(|_| self.next_event()).collect()
    }

    /// The next event or comment; `None` when the stream has ended.
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            let line = self.next_line()?;
            if let Some(item) = self.process(&line) {
                return Some(item);
            }
        }
    }

    /// Reads until the stream ends; returns the events dispatched on the way.
    pub fn read_to_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(item) = self.next_item() {
            if let Item::Event(event) = item {
                events.push(event);
            }
        }
        events
    }

    /// True if the server ended the body as it should: with the last chunk
    /// of a chunked body, or by closing a close-delimited one (not by a
    /// close or reset in the middle of a chunked body).
    pub fn ended_cleanly(&self) -> bool {
        self.ended_cleanly
    }

    /// True if the body is gzip and everything received so far is a whole
    /// gzip member: its last block and a trailer whose CRC-32 and length
    /// match what was decoded. For after the stream ended.
    pub fn gzip_member_complete(&mut self) -> bool {
        self.gzip.as_mut().is_some_and(|d| d.try_finish().is_ok())
    }

    /// Closes the connection at once.
    pub fn close(self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
    }

    /// The socket, e.g. to stop reading from it without closing it.
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// The connection, once the stream has ended, to read what the server
    /// sends after it (replies to requests pipelined behind the stream).
    pub fn into_reader(self) -> BufReader<TcpStream> {
        assert!(self.ended, "the stream has not ended yet");
        assert!(self.pending.is_empty(), "stream bytes are still unread");
        self.reader
    }

    /// Handles one line per the standard; returns what it dispatched.
    fn process(&mut self, line: &str) -> Option<Item> {
        if line.is_empty() {
            let had_id = self.this_id.take();
            let event_type = std::mem::take(&mut self.event_type);
            if self.data.is_empty() {
                return None;
            }
            let mut data = std::mem::take(&mut self.data);
            data.pop(); // the last LF
            return Some(Item::Event(SseEvent {
                event: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type
                },
                data,
                id: had_id,
                last_event_id: self.last_event_id.clone(),
            }));
        }
        if let Some(comment) = line.strip_prefix(':') {
            return Some(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.last_event_id = value.to_owned();
                self.this_id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        None
    }

    /// The next line of the body, split at CRLF, LF or CR; `None` at the end
    /// of the body (a last unterminated line is dropped, as by a browser).
    fn next_line(&mut self) -> Option<String> {
        loop {
            let found = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .map(|at| self.scanned + at);
            let Some(at) = found else {
                self.scanned = self.pending.len();
                if self.ended || !self.fill() {
                    return None;
                }
                continue;
            };
            // A CR at the very end may be the first half of a CRLF.
            if self.pending[at] == b'\r' && at + 1 == self.pending.len() && !self.ended {
                self.scanned = at;
                self.fill();
                continue;
            }
            let crlf = self.pending[at] == b'\r' && self.pending.get(at + 1) == Some(&b'\n');
            let line = String::from_utf8_lossy(&self.pending[..at]).into_owned();
            self.pending.drain(..at + if crlf { 2 } else { 1 });
            self.scanned = 0;
            return Some(line);
        }
    }

    /// Reads more body bytes into `pending`. Returns false at the end.
    fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        if !self.chunked {
            let mut buf = [0u8; 65536];
            let n = self.read_some(&mut buf);
            if n == 0 {
                self.ended = true;
                self.ended_cleanly = true;
                return false;
            }
            self.receive(&buf[..n]);
            return true;
        }
        if self.chunk_left == 0 {
            let mut size_line = String::new();
            if self.read_line(&mut size_line) == 0 {
                self.ended = true;
                return false;
            }
            let size = usize::from_str_radix(size_line.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
            if size == 0 {
                let mut trailer = String::new();
                self.read_line(&mut trailer);
                self.ended = true;
                self.ended_cleanly = true;
                return false;
            }
            self.chunk_left = size;
        }
        let mut buf = vec![0u8; self.chunk_left.min(65536)];
        let n = self.read_some(&mut buf);
        if n == 0 {
            self.ended = true;
            return false;
        }
        self.receive(&buf[..n]);
        self.chunk_left -= n;
        if self.chunk_left == 0 {
            let mut crlf = [0u8; 2];
            self.reader
                .read_exact(&mut crlf)
                .expect("chunk ends with CRLF");
            assert_eq!(&crlf, b"\r\n", "chunk ends with CRLF");
        }
        true
    }

    /// Takes body bytes into `pending`, decoding them first if gzip: all
    /// that the bytes so far can give, as a browser would show it.
    fn receive(&mut self, bytes: &[u8]) {
        self.wire_bytes += bytes.len();
        let Some(decoder) = &mut self.gzip else {
            self.pending.extend_from_slice(bytes);
            return;
        };
        decoder
            .write_all(bytes)
            .and_then(|()| decoder.flush())
            .unwrap_or_else(|e| panic!("the gzip body does not decode: {e}"));
        self.pending.append(decoder.get_mut());
    }

    fn read_some(&mut self, buf: &mut [u8]) -> usize {
        bytes_read(self.reader.read(buf))
    }

    fn read_line(&mut self, line: &mut String) -> usize {
        bytes_read(self.reader.read_line(line))
    }
}

/// Bytes read, 0 when the server ended the connection (closed or reset);
/// panics when the guard timeout passes first.
fn bytes_read(read: std::io::Result<usize>) -> usize {
    match read {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("nothing arrived on the stream within {GUARD:?}")
        }
        Err(_) => 0,
    }
}

/// Runs the binary with `args` and extra environment variables until it
/// exits by itself (a refused option, `--help`, a subcommand), and returns
/// what it printed; panics if it is still running after [`GUARD`].
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sse-hub"));
    command.args(args).envs(env.iter().copied());
    run_with_guard(command, GUARD)
}

/// Runs `script` in `tests/node` with Node and extra environment variables
/// (it checks what it tests and exits non-zero with a message if a check
/// fails), and returns what it printed; panics if `npm ci` was not run
/// there, or if the script runs past `guard`.
pub fn run_node_script(
    script: &str,
    env: &[(&str, &str)],
    guard: Duration,
) -> std::process::Output {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/eventsource").is_dir(),
        "{} has no node_modules/eventsource: run `npm ci` there first (.ci/run does)",
        dir.display()
    );
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(&dir)
        .env("SSE_HUB_BIN", env!("CARGO_BIN_EXE_sse-hub"))
        .envs(env.iter().copied());
    run_with_guard(command, guard)
}

/// Runs `command` to its end, reading its output as it comes (a pipe left
/// full would stall it), and returns that output; kills it and panics if
/// it runs past `guard`.
fn run_with_guard(mut command: Command, guard: Duration) -> std::process::Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr is piped")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran past {guard:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}
