//! HTTPS with clients that are not ours (issue 19, "How it is proven"): a
//! test CA and a server certificate made in the test (rcgen), the hub
//! started with `--tls-cert`/`--tls-key`, and
//! - the `eventsource` npm package (`tests/clients/node/eventsource.mjs`),
//!   trusting the CA through `NODE_EXTRA_CA_CERTS`;
//! - Python's `ssl` module: httpx-sse with an `ssl.SSLContext` that loads the
//!   CA (`tests/clients/python/httpx_sse_tls.py`), and sseclient-py over
//!   `requests` with `verify=` the CA file (`sseclient_py_tls.py`);
//! - curl with `--cacert`, and `--compressed` against `--compress`.
//!
//! Each one subscribes, receives a publish, and after a cut (through a TCP
//! proxy, under the TLS session) resumes with `Last-Event-ID`: what was
//! published while it was away arrives once, in order, and then live
//! messages. Without the CA, each one is refused: the certificate is
//! checked, not ignored.
//!
//! The Node and Python tests are ignored by a plain `cargo test`, like
//! `tests/client_matrix.rs`; `.ci/run` installs what they need. By hand:
//!
//! ```sh
//! (cd tests/clients/node && npm ci)
//! python3 -m venv target/venv
//! target/venv/bin/pip install -r tests/clients/python/requirements.txt
//! cargo test --test tls_clients -- --include-ignored
//! ```

#![cfg(feature = "tls")]
// rustls deprecates its ring provider (no post-quantum key exchange); the
// hub uses it too, and says why in src/server/tls.rs.
#![allow(deprecated)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{Admission, Proxy};
use common::{GUARD, Hub};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustls::pki_types::ServerName;
use serde_json::Value;

/// The hub's `retry:`, short so that the clients come back quickly.
const RETRY_MS: &str = "300";

/// A CA made for one test (`common::tls`), its file, and the hub's pair it
/// signed.
struct TestCa {
    /// Removes the files when dropped.
    _ca: common::tls::TestCa,
    /// The CA certificate, PEM: what the clients trust.
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl TestCa {
    /// A CA, and a server certificate for `localhost` and 127.0.0.1.
    fn new(name: &str) -> TestCa {
        let ca = common::tls::TestCa::new(&format!("clients-{name}"));
        let (cert_file, key_file, _) = ca.issue("server", "sse-hub");
        TestCa {
            ca_file: ca.ca_file(),
            client: ca.client(),
            cert_file,
            key_file,
            _ca: ca,
        }
    }

    /// Starts the hub on HTTPS with this CA's pair and extra `args`.
    fn hub(&self, args: &[&str]) -> Hub {
        let cert = self.cert_file.display().to_string();
        let key = self.key_file.display().to_string();
        let mut all = vec!["--tls-cert", &cert, "--tls-key", &key, "--retry", RETRY_MS];
        all.extend_from_slice(args);
        let hub = Hub::start(&all);
        assert!(hub.log().contains("listening on https://"), "{}", hub.log());
        hub
    }

    fn ca(&self) -> String {
        self.ca_file.display().to_string()
    }

    /// One request over TLS with `Connection: close`; status and body.
    fn request(&self, hub: &Hub, method: &str, path: &str, body: &str) -> (u16, String) {
        let tcp = TcpStream::connect(hub.addr).unwrap();
        tcp.set_read_timeout(Some(GUARD)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let session = rustls::ClientConnection::new(Arc::clone(&self.client), name).unwrap();
        let mut tls = rustls::StreamOwned::new(session, tcp);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(head.as_bytes()).unwrap();
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).expect("a complete reply");
        let reply = String::from_utf8(reply).unwrap();
        let status = reply[9..12].parse().unwrap();
        let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_owned())
    }

    /// Publishes `message` over HTTPS; returns its ID.
    fn publish(&self, hub: &Hub, message: &str) -> String {
        let body = serde_json::json!({ "message": message }).to_string();
        let (status, reply) = self.request(hub, "POST", "/broadcast", &body);
        assert_eq!(status, 200, "{reply}");
        let reply: Value = serde_json::from_str(&reply).unwrap();
        reply["id"].as_str().unwrap().to_owned()
    }
}

/// `https://` and the proxy's address, then `path`.
fn https_url(proxy: &Proxy, path: &str) -> String {
    let plain = proxy.url(path);
    let rest = plain.strip_prefix("http://").expect("an http:// URL");
    format!("https://{rest}")
}

/// One event as a client printed it (or as curl's output parses).
#[derive(Clone, Debug)]
struct Event {
    kind: String,
    data: String,
    id: Option<String>,
}

/// A client script of `tests/clients/` (one JSON line per event or note,
/// ending when its stdin closes; see `report.mjs` and `report.py`), started
/// with the environment it needs for TLS.
struct Script {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    events: Vec<Event>,
    notes: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    /// `node SCRIPT URL` in `tests/clients/node`, or the virtualenv's
    /// Python with `SCRIPT URL` in `tests/clients/python`.
    fn spawn(name: &'static str, script: &str, url: &str, env: &[(&str, &str)]) -> Script {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = if script.ends_with(".mjs") {
            let dir = root.join("tests/clients/node");
            assert!(
                dir.join("node_modules/eventsource").is_dir(),
                "{} has no node_modules/eventsource: run `npm ci` there first (.ci/run does)",
                dir.display()
            );
            let mut command = Command::new("node");
            command.current_dir(dir);
            command
        } else {
            let python = common::clients::venv().join("bin/python");
            assert!(
                python.is_file(),
                "no virtualenv at {} for the Python clients: create it with\n  \
                 python3 -m venv target/venv && \
                 target/venv/bin/pip install -r tests/clients/python/requirements.txt\n\
                 (.ci/run does), or name one in SSE_HUB_TEST_VENV",
                common::clients::venv().display()
            );
            let mut command = Command::new(python);
            command
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .arg("-u")
                .current_dir(root.join("tests/clients/python"));
            command
        };
        // Only what the test gives: no CA inherited from the environment.
        for variable in [
            "NODE_EXTRA_CA_CERTS",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
        ] {
            command.env_remove(variable);
        }
        let mut child = command
            .arg(script)
            .arg(url)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} client: {e}"));
        let (sender, lines) = crossbeam_channel::unbounded();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Script {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            events: Vec::new(),
            notes: Vec::new(),
            stderr,
        }
    }

    fn take(&mut self, line: &str) {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line}", self.name));
        match value["type"].as_str() {
            Some(kind) => self.events.push(Event {
                kind: kind.to_owned(),
                data: value["data"].as_str().unwrap_or_default().to_owned(),
                id: value["id"].as_str().map(str::to_owned),
            }),
            None => self
                .notes
                .push(value["note"].as_str().unwrap_or_default().to_owned()),
        }
    }

    /// Waits until `ok` holds for what the script printed; panics after
    /// [`GUARD`] (a hang) or if the script exits.
    fn wait_for(&mut self, what: &str, ok: impl Fn(&Script) -> bool) {
        let deadline = Instant::now() + GUARD;
        while let Ok(line) = self.lines.try_recv() {
            self.take(&line);
        }
        while !ok(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take(&line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no {what} within {GUARD:?}\n{}",
                        self.name,
                        self.transcript()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: the client exited while waiting for {what}\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
    }

    fn connections(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.kind == "connection")
            .count()
    }

    fn wait_for_connections(&mut self, n: usize) {
        self.wait_for(&format!("`connection` event number {n}"), |s| {
            s.connections() >= n
        });
    }

    fn wait_for_data(&mut self, data: &str) {
        self.wait_for(&format!("message {data:?}"), |s| {
            s.events.iter().any(|e| e.data == data)
        });
    }

    /// The `message` events so far: (ID, data).
    fn messages(&self) -> Vec<(Option<String>, String)> {
        self.events
            .iter()
            .filter(|e| e.kind == "message")
            .map(|e| (e.id.clone(), e.data.clone()))
            .collect()
    }

    fn transcript(&self) -> String {
        format!(
            "events: {:#?}\nnotes: {:#?}\nstderr: {}",
            self.events,
            self.notes,
            self.stderr.lock().unwrap()
        )
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scenario every library client runs, over HTTPS through `proxy`:
/// a live message; a cut, with two messages published while the client
/// cannot be there; then the client's own reconnect with `Last-Event-ID`,
/// and a live message after it. The messages must be exactly these four,
/// once each, in order, each with the ID its publish returned.
fn subscribe_publish_resume(ca: &TestCa, hub: &Hub, proxy: &Proxy, client: &mut Script) {
    client.wait_for_connections(1);
    let mut published = Vec::new();
    let live = ca.publish(hub, "live over tls");
    published.push((Some(live), "live over tls".to_owned()));
    client.wait_for_data("live over tls");

    proxy.admit(Admission::Hold);
    assert!(
        proxy.cut() >= 1,
        "the client's stream went through the proxy"
    );
    for text in ["away one", "away two"] {
        let id = ca.publish(hub, text);
        published.push((Some(id), text.to_owned()));
    }
    proxy.admit(Admission::Forward);
    client.wait_for_connections(2);
    let back = ca.publish(hub, "back over tls");
    published.push((Some(back), "back over tls".to_owned()));
    client.wait_for_data("back over tls");
    assert_eq!(
        client.messages(),
        published,
        "{}: not exactly what was published, once each, in order\n{}",
        client.name,
        client.transcript()
    );
}

#[test]
#[ignore = "needs Node packages in tests/clients/node: run .ci/run"]
fn eventsource_package_over_https_trusting_the_ca() {
    let ca = TestCa::new("eventsource");
    let hub = ca.hub(&[]);
    let proxy = Proxy::start(hub.addr);
    let url = https_url(&proxy, "/events");
    let mut client = Script::spawn(
        "eventsource (npm)",
        "eventsource.mjs",
        &url,
        &[("NODE_EXTRA_CA_CERTS", &ca.ca())],
    );
    subscribe_publish_resume(&ca, &hub, &proxy, &mut client);
    drop(client);

    // Without the CA, Node refuses the certificate and no stream opens.
    let mut untrusting = Script::spawn("eventsource (npm), no CA", "eventsource.mjs", &url, &[]);
    untrusting.wait_for("an error note", |s| {
        s.notes.iter().any(|n| n.starts_with("error"))
    });
    assert_eq!(untrusting.connections(), 0, "{}", untrusting.transcript());
}

#[test]
#[ignore = "needs the virtualenv target/venv: run .ci/run"]
fn httpx_sse_over_https_with_an_ssl_context() {
    let ca = TestCa::new("httpx");
    let hub = ca.hub(&[]);
    let proxy = Proxy::start(hub.addr);
    let url = https_url(&proxy, "/events");
    let mut client = Script::spawn(
        "httpx-sse",
        "httpx_sse_tls.py",
        &url,
        &[("SSE_HUB_TEST_CA", &ca.ca())],
    );
    subscribe_publish_resume(&ca, &hub, &proxy, &mut client);
    let opened: Vec<_> = client
        .notes
        .iter()
        .filter(|n| n.starts_with("open"))
        .collect();
    assert!(
        opened
            .iter()
            .all(|n| n.contains("TLSv1.3") && n.contains("alpn=http/1.1")),
        "{opened:?}"
    );
    drop(client);

    // A context with no CA loaded: the default trust store does not know
    // the test CA, so the handshake fails.
    let other = TestCa::new("httpx-other");
    let mut untrusting = Script::spawn(
        "httpx-sse, another CA",
        "httpx_sse_tls.py",
        &url,
        &[("SSE_HUB_TEST_CA", &other.ca())],
    );
    untrusting.wait_for("an error note", |s| {
        s.notes
            .iter()
            .any(|n| n.contains("CERTIFICATE_VERIFY_FAILED"))
    });
    assert_eq!(untrusting.connections(), 0, "{}", untrusting.transcript());
}

#[test]
#[ignore = "needs the virtualenv target/venv: run .ci/run"]
fn sseclient_py_over_https_with_verify() {
    let ca = TestCa::new("sseclient");
    let hub = ca.hub(&[]);
    let proxy = Proxy::start(hub.addr);
    let url = https_url(&proxy, "/events");
    let mut client = Script::spawn(
        "sseclient-py",
        "sseclient_py_tls.py",
        &url,
        &[("SSE_HUB_TEST_CA", &ca.ca())],
    );
    subscribe_publish_resume(&ca, &hub, &proxy, &mut client);
    drop(client);

    let other = TestCa::new("sseclient-other");
    let mut untrusting = Script::spawn(
        "sseclient-py, another CA",
        "sseclient_py_tls.py",
        &url,
        &[("SSE_HUB_TEST_CA", &other.ca())],
    );
    untrusting.wait_for("an error note", |s| {
        s.notes
            .iter()
            .any(|n| n.contains("CERTIFICATE_VERIFY_FAILED"))
    });
    assert_eq!(untrusting.connections(), 0, "{}", untrusting.transcript());
}

/// `curl -sN -i --cacert CA ...` reading an event stream: the response head
/// and the events, as curl printed them.
struct Curl {
    child: Child,
    lines: Receiver<String>,
    head: Vec<String>,
    events: Vec<Event>,
    /// The event being read.
    fields: Event,
}

impl Curl {
    fn open(ca: &TestCa, hub: &Hub, extra: &[&str]) -> Curl {
        let url = format!("https://127.0.0.1:{}/events", hub.addr.port());
        let mut child = Command::new("curl")
            .args(["-sSN", "-i", "--cacert", &ca.ca()])
            .args(extra)
            .arg(&url)
            .env_remove("CURL_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("curl (it is installed where .ci/run runs)");
        let (sender, lines) = crossbeam_channel::unbounded();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut curl = Curl {
            child,
            lines,
            head: Vec::new(),
            events: Vec::new(),
            fields: Curl::blank(),
        };
        loop {
            let line = curl.line("the response head");
            let line = line.trim_end_matches('\r').to_owned();
            if line.is_empty() {
                break;
            }
            curl.head.push(line);
        }
        assert!(curl.head[0].starts_with("HTTP/1.1 200"), "{:?}", curl.head);
        curl
    }

    fn blank() -> Event {
        Event {
            kind: "message".to_owned(),
            data: String::new(),
            id: None,
        }
    }

    fn line(&mut self, what: &str) -> String {
        match self.lines.recv_timeout(GUARD) {
            Ok(line) => line,
            Err(e) => panic!("curl: no {what} ({e}); events so far {:#?}", self.events),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Reads until the next event is dispatched (an empty line after data).
    fn next_event(&mut self) -> Event {
        loop {
            let line = self.line("event");
            if line.is_empty() {
                let event = std::mem::replace(&mut self.fields, Curl::blank());
                if !event.data.is_empty() || event.kind != "message" {
                    self.events.push(event.clone());
                    return event;
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.fields.kind = value.to_owned(),
                "id" => self.fields.id = Some(value.to_owned()),
                "data" if self.fields.data.is_empty() => self.fields.data = value.to_owned(),
                "data" => {
                    self.fields.data.push('\n');
                    self.fields.data.push_str(value);
                }
                _ => {} // retry:, comments
            }
        }
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl trusts the CA with `--cacert`, subscribes, receives, resumes with
/// `Last-Event-ID` exactly; without the CA it stops with its certificate
/// error (60); and `--compressed` gets a gzip stream from `--compress`.
#[test]
fn curl_over_https_with_cacert() {
    let ca = TestCa::new("curl");
    let hub = ca.hub(&["--compress"]);

    let mut live = Curl::open(&ca, &hub, &[]);
    assert_eq!(live.header("Content-Encoding"), None, "{:?}", live.head);
    assert_eq!(live.next_event().kind, "connection");
    let first = ca.publish(&hub, "one");
    let event = live.next_event();
    assert_eq!(
        (
            event.kind.as_str(),
            event.id.as_deref(),
            event.data.as_str()
        ),
        ("message", Some(first.as_str()), "one")
    );
    let second = ca.publish(&hub, "two\nlines");
    let third = ca.publish(&hub, "three");

    // A resume after the first: exactly the second and third, then live.
    let mut resumed = Curl::open(&ca, &hub, &["-H", &format!("Last-Event-ID: {first}")]);
    assert_eq!(resumed.next_event().kind, "connection");
    let fourth = ca.publish(&hub, "four");
    let mut got = Vec::new();
    while got.len() < 3 {
        let event = resumed.next_event();
        assert_eq!(event.kind, "message", "{event:?}");
        got.push((event.id.unwrap(), event.data));
    }
    let want = [
        (second.clone(), "two\nlines"),
        (third.clone(), "three"),
        (fourth.clone(), "four"),
    ];
    let want: Vec<(String, String)> = want
        .into_iter()
        .map(|(id, data)| (id, data.to_owned()))
        .collect();
    assert_eq!(got, want);
    // The first stream got the same, live.
    for (id, _) in &want {
        assert_eq!(live.next_event().id.as_deref(), Some(id.as_str()));
    }

    // Gzip: decoded by curl as it arrives.
    let mut gzip = Curl::open(&ca, &hub, &["--compressed"]);
    assert_eq!(
        gzip.header("Content-Encoding").as_deref(),
        Some("gzip"),
        "{:?}",
        gzip.head
    );
    assert_eq!(gzip.next_event().kind, "connection");
    let id = ca.publish(&hub, "compressed over tls");
    let event = gzip.next_event();
    assert_eq!(
        (event.id.as_deref(), event.data.as_str()),
        (Some(id.as_str()), "compressed over tls")
    );
    // A gzip resume, too.
    let mut gzip_resumed = Curl::open(
        &ca,
        &hub,
        &["--compressed", "-H", &format!("Last-Event-ID: {fourth}")],
    );
    assert_eq!(gzip_resumed.next_event().kind, "connection");
    let event = gzip_resumed.next_event();
    assert_eq!(event.id.as_deref(), Some(id.as_str()));

    // Without the CA: curl's "SSL certificate problem", exit 60, and
    // nothing from the hub.
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg(format!("https://127.0.0.1:{}/healthz", hub.addr.port()))
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .expect("curl");
    assert_eq!(output.status.code(), Some(60), "{output:?}");
    assert!(output.stdout.is_empty());
}
