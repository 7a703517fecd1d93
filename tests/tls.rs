//! HTTPS on the hub itself (`--tls-cert`, `--tls-key`; SPEC "HTTPS"), with
//! a test CA and certificates made in the test (rcgen) and a rustls client
//! that trusts only that CA: streams, publishes, resume, hang-up detection
//! and gzip over TLS; ALPN; a plain request on the TLS port; SIGHUP
//! reloading the pair while a stream stays open; and the start-up errors.

#![cfg(feature = "tls")]
// rustls deprecates its ring provider (no post-quantum key exchange); the
// hub uses it too, and says why in src/server/tls.rs.
#![allow(deprecated)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::tls::TestCa;
use common::{GUARD, Hub, run_to_exit};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `hub` as `localhost`, handshake done.
fn connect(hub: &Hub, client: &Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(hub.addr).unwrap();
    tcp.set_read_timeout(Some(GUARD)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut tls = rustls::StreamOwned::new(session, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("the TLS handshake");
    }
    tls
}

/// The certificate the server presented.
fn served_certificate(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().expect("a certificate")[0].clone()
}

/// One request with `Connection: close` over TLS; the status and body.
fn request(
    hub: &Hub,
    client: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut tls = connect(hub, client);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(head.as_bytes()).unwrap();
    let mut reply = Vec::new();
    // A server that closes without close_notify would be an error here;
    // the hub sends it.
    tls.read_to_end(&mut reply).expect("a complete reply");
    let reply = String::from_utf8(reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn stats(hub: &Hub, client: &Arc<rustls::ClientConfig>) -> Value {
    let (status, body) = request(hub, client, "GET", "/stats", "");
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

fn publish(hub: &Hub, client: &Arc<rustls::ClientConfig>, message: &str) -> String {
    let body = serde_json::json!({ "message": message }).to_string();
    let (status, reply) = request(hub, client, "POST", "/broadcast", &body);
    assert_eq!(status, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    reply["id"].as_str().unwrap().to_owned()
}

/// An event stream over TLS, read as HTTP/1.1 chunks.
struct TlsStream {
    reader: BufReader<Tls>,
    /// Body bytes not yet split into events.
    pending: String,
    pub head: String,
}

/// One event: its ID, name and data.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    event: String,
    data: String,
}

impl TlsStream {
    fn open(hub: &Hub, client: &Arc<rustls::ClientConfig>, path: &str, extra: &str) -> TlsStream {
        let mut tls = connect(hub, client);
        let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
        tls.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(tls);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("the reply's head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        TlsStream {
            reader,
            pending: String::new(),
            head,
        }
    }

    /// The next chunk's bytes.
    fn chunk(&mut self) -> Vec<u8> {
        let mut size = String::new();
        self.reader.read_line(&mut size).expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        assert!(size > 0, "the stream ended");
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).expect("a chunk");
        chunk.truncate(size);
        chunk
    }

    fn next_event(&mut self) -> Event {
        loop {
            if let Some((block, rest)) = self.pending.split_once("\n\n") {
                let block = block.to_owned();
                self.pending = rest.to_owned();
                let mut event = Event {
                    id: None,
                    event: "message".to_owned(),
                    data: String::new(),
                };
                let mut data = Vec::new();
                for line in block.lines() {
                    match line.split_once(": ") {
                        Some(("id", id)) => event.id = Some(id.to_owned()),
                        Some(("event", name)) => event.event = name.to_owned(),
                        Some(("data", text)) => data.push(text),
                        _ => {}
                    }
                }
                if data.is_empty() && event.id.is_none() {
                    continue; // `retry:` or a comment
                }
                event.data = data.join("\n");
                return event;
            }
            let chunk = self.chunk();
            self.pending.push_str(&String::from_utf8(chunk).unwrap());
        }
    }
}

/// Polls `/stats` over TLS until `check` holds; panics after [`GUARD`].
fn wait_for(
    hub: &Hub,
    client: &Arc<rustls::ClientConfig>,
    what: &str,
    check: impl Fn(&Value) -> bool,
) {
    let start = Instant::now();
    loop {
        let stats = stats(hub, client);
        if check(&stats) {
            return;
        }
        assert!(start.elapsed() < GUARD, "never {what}: {stats}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn tls_hub(ca: &TestCa, extra: &[&str]) -> (Hub, Vec<u8>) {
    let (cert, key, der) = ca.issue("server", "first");
    let mut args = vec![
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Hub::start(&args), der)
}

#[test]
fn streams_publishes_and_resume_work_over_https() {
    let ca = TestCa::new("basics");
    let (hub, _) = tls_hub(&ca, &[]);
    let client = ca.client();
    assert!(hub.log().contains("listening on https://"), "{}", hub.log());

    let tls = connect(&hub, &client);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);

    let (status, body) = request(&hub, &client, "GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (200, "ok"));

    let mut stream = TlsStream::open(&hub, &client, "/events", "");
    assert!(stream.head.contains("Content-Type: text/event-stream"));
    assert_eq!(stream.next_event().event, "connection");
    let first = publish(&hub, &client, "one");
    let second = publish(&hub, &client, "two\nlines");
    let event = stream.next_event();
    assert_eq!(
        (event.id.as_deref(), event.data.as_str()),
        (Some(first.as_str()), "one")
    );
    let event = stream.next_event();
    assert_eq!(event.data, "two\nlines");
    assert_eq!(event.id.as_deref(), Some(second.as_str()));

    // Resume after the first: exactly the second is replayed.
    let mut resumed = TlsStream::open(
        &hub,
        &client,
        "/events",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    assert_eq!(resumed.next_event().event, "connection");
    let replayed = resumed.next_event();
    assert_eq!(replayed.id.as_deref(), Some(second.as_str()));
    let third = publish(&hub, &client, "three");
    assert_eq!(resumed.next_event().id.as_deref(), Some(third.as_str()));
    assert_eq!(stream.next_event().id.as_deref(), Some(third.as_str()));
}

/// A subscriber that hangs up is seen at once, as over plain HTTP: the
/// hang-up watcher watches the socket under the TLS session.
#[test]
fn a_tls_subscriber_that_leaves_is_removed_at_once() {
    let ca = TestCa::new("hangup");
    // Heartbeats far apart: only the watcher can notice.
    let (hub, _) = tls_hub(&ca, &["--heartbeat", "3600"]);
    let client = ca.client();
    let mut stream = TlsStream::open(&hub, &client, "/events", "");
    assert_eq!(stream.next_event().event, "connection");
    wait_for(&hub, &client, "one client", |s| s["clients"] == 1);
    drop(stream);
    wait_for(&hub, &client, "no client", |s| s["clients"] == 0);
}

#[test]
fn gzip_streams_work_over_https() {
    let ca = TestCa::new("gzip");
    let (hub, _) = tls_hub(&ca, &["--compress"]);
    let client = ca.client();
    let mut stream = TlsStream::open(&hub, &client, "/events", "Accept-Encoding: gzip\r\n");
    assert!(
        stream.head.contains("Content-Encoding: gzip"),
        "{}",
        stream.head
    );
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut text = String::new();
    let mut published = false;
    while !text.contains("data: compressed over tls\n\n") {
        decoder.write_all(&stream.chunk()).unwrap();
        decoder.flush().unwrap();
        text = String::from_utf8_lossy(decoder.get_ref()).into_owned();
        if !published && text.contains("event: connection") {
            publish(&hub, &client, "compressed over tls");
            published = true;
        }
    }
}

/// A plain-HTTP request on the TLS port is never served.
#[test]
fn plain_http_on_the_tls_port_never_gets_a_200() {
    let ca = TestCa::new("plain");
    let (hub, _) = tls_hub(&ca, &[]);
    for raw in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"message\":\"x\"}",
    ] {
        let mut tcp = TcpStream::connect(hub.addr).unwrap();
        tcp.set_read_timeout(Some(GUARD)).unwrap();
        tcp.write_all(raw).unwrap();
        let mut reply = Vec::new();
        let _ = tcp.read_to_end(&mut reply);
        assert!(
            !reply.starts_with(b"HTTP/1.1 2"),
            "{:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    let client = ca.client();
    assert_eq!(stats(&hub, &client)["published"], 0);
}

/// SIGHUP reads the pair again: new connections get the new certificate,
/// an open stream goes on; a pair that does not load is logged and the old
/// one kept.
#[test]
fn sighup_reloads_the_certificate_and_keeps_open_streams() {
    let ca = TestCa::new("reload");
    let (hub, first) = tls_hub(&ca, &[]);
    let client = ca.client();
    assert_eq!(
        served_certificate(&connect(&hub, &client)).as_ref(),
        &first[..]
    );
    let mut stream = TlsStream::open(&hub, &client, "/events", "");
    assert_eq!(stream.next_event().event, "connection");

    let hup = || {
        let pid = i32::try_from(hub.pid()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };
    // A renewal: the same file names, a new pair.
    let (_, _, second) = ca.issue("server", "second");
    hup();
    let start = Instant::now();
    while served_certificate(&connect(&hub, &client)).as_ref() != &second[..] {
        assert!(
            start.elapsed() < GUARD,
            "the new certificate was never served"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // The log comes through a pipe, after what the socket showed.
    hub.wait_for_log("TLS certificate reloaded");
    let id = publish(&hub, &client, "after the renewal");
    assert_eq!(stream.next_event().id.as_deref(), Some(id.as_str()));

    // A half-written renewal (a key that is not the certificate's): logged,
    // and the pair that works stays.
    let (cert, _, _) = ca.issue("server", "third");
    let (_, other_key, _) = ca.issue("other", "other");
    std::fs::copy(other_key, ca.dir.join("server.key")).unwrap();
    assert!(cert.exists());
    hup();
    let start = Instant::now();
    while !hub.log().contains("not reloaded") {
        assert!(start.elapsed() < GUARD, "no error logged: {}", hub.log());
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        served_certificate(&connect(&hub, &client)).as_ref(),
        &second[..]
    );
    let id = publish(&hub, &client, "still served");
    assert_eq!(stream.next_event().id.as_deref(), Some(id.as_str()));
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start_with_a_clear_error() {
    let ca = TestCa::new("errors");
    let (cert, key, _) = ca.issue("server", "good");
    let (_, other_key, _) = ca.issue("other", "other");
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let other_key = other_key.display().to_string();
    let missing = ca.dir.join("missing.pem").display().to_string();
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--tls-cert", &cert], "--tls-key"),
        (vec!["--tls-key", &key], "--tls-cert"),
        (
            vec!["--tls-cert", &cert, "--tls-key", &other_key],
            "is not the key of the certificate",
        ),
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            "--tls-cert",
        ),
        (
            vec!["--tls-cert", &key, "--tls-key", &key],
            "holds no PEM certificate",
        ),
    ];
    for (args, says) in cases {
        let mut args = args;
        args.extend(["--listen", "127.0.0.1:0"]);
        let output = run_to_exit(&args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("listening on"), "{args:?}: {stderr}");
    }
}
