//! SPEC "HTTP framing (RFC 9112)", one test a rule, over raw TCP against
//! the real binary.
//!
//! Each smuggling attempt hides a publish (`POST /broadcast`) where a
//! parser that framed the request differently would find one. A real
//! subscriber is open meanwhile: after the attempt, a marker is published,
//! and the subscriber's next event must be that marker, not the smuggled
//! message. The replies on the attacking connection are counted: a
//! refused request gets exactly one, says `Connection: close`, and the
//! connection is closed after it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{Hub, Subscriber};

/// The smuggled message; no subscriber may ever see it.
const SMUGGLED: &str = "smuggled";

/// A publish of [`SMUGGLED`], as a complete request.
fn hidden_publish() -> String {
    let body = format!("{{\"message\":\"{SMUGGLED}\"}}");
    format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One reply as read off the attacking connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
}

impl Raw {
    fn closes(&self) -> bool {
        self.head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("connection: close"))
    }
}

/// Sends `bytes` on a new connection (a write the server cut short is not
/// an error), then reads until the server closes it: every reply sent, in
/// order. Panics if the connection stays open (the read timeout is only a
/// guard against a hang).
fn attack(hub: &Hub, bytes: &[u8]) -> Vec<Raw> {
    let mut stream = TcpStream::connect(hub.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = stream.write_all(bytes);
    let all = read_to_close(&mut stream);
    parse_replies(&all)
}

fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!(
                "the connection stayed open ({e}) after {:?}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
}

/// Splits what a server sent into replies (each framed by its
/// `Content-Length`).
fn parse_replies(mut bytes: &[u8]) -> Vec<Raw> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("a reply head: {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        bytes = &bytes[(end + 4 + length).min(bytes.len())..];
        replies.push(Raw { status, head });
    }
    replies
}

/// A subscriber to everything, ready.
fn watcher(hub: &Hub) -> Subscriber {
    hub.subscribe_ready("/events").0
}

/// The subscriber got nothing smuggled: the next event is a marker
/// published now.
fn assert_nothing_smuggled(hub: &Hub, watcher: &mut Subscriber) {
    hub.publish_text("marker");
    let next = watcher.next_event();
    assert_eq!(next.data, "marker", "a smuggled message was published");
}

/// `bytes` get exactly one reply, of `status`, with `Connection: close`,
/// the connection is closed, and nothing hidden in it is published.
fn assert_refused_once(hub: &Hub, bytes: &[u8], status: u16) {
    let mut watcher = watcher(hub);
    let replies = attack(hub, bytes);
    let what = String::from_utf8_lossy(bytes);
    assert_eq!(replies.len(), 1, "{what:?} got {replies:?}");
    assert_eq!(replies[0].status, status, "{what:?} got {replies:?}");
    assert!(
        replies[0].closes(),
        "{what:?}: no Connection: close in {replies:?}"
    );
    assert_nothing_smuggled(hub, &mut watcher);
}

#[test]
fn a_request_hidden_after_an_oversized_chunked_body_is_never_read() {
    let hub = Hub::start(&["--max-body", "100"]);
    // The hub reads at most 101 bytes of the body before it refuses it:
    // the hidden publish starts right there, where a connection that went
    // on reading would look for the next request.
    let hidden = hidden_publish();
    let data = format!("{}{hidden}", "a".repeat(101));
    let attempt = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{data}\r\n0\r\n\r\n{hidden}",
        data.len()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 413);
}

#[test]
fn a_request_hidden_after_an_oversized_declared_body_is_never_read() {
    let hub = Hub::start(&["--max-body", "100"]);
    let hidden = hidden_publish();
    let attempt = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{hidden}",
        hidden.len() + 100
    );
    assert_refused_once(&hub, attempt.as_bytes(), 413);
}

#[test]
fn a_request_hidden_in_a_body_refused_before_it_is_read_is_never_read() {
    let hub = Hub::start(&["--publish-token", "secret"]);
    let hidden = hidden_publish();
    let attempt = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    let mut watcher = watcher(&hub);
    let replies = attack(&hub, attempt.as_bytes());
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].status, 401);
    assert!(replies[0].closes(), "{replies:?}");
    hub.request(
        "POST",
        "/broadcast",
        &[("Authorization", "Bearer secret")],
        br#"{"message":"marker"}"#,
    );
    assert_eq!(watcher.next_event().data, "marker");
}

#[test]
fn a_request_after_a_chunk_size_that_is_not_hex_is_never_read() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}",
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn a_request_after_a_chunk_size_that_does_not_fit_is_never_read() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1{}\r\nab\r\n0\r\n\r\n{}",
        "0".repeat(16),
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn a_bare_lf_in_the_head_is_refused() {
    let hub = Hub::start(&[]);
    let hidden = hidden_publish();
    // A parser that ends lines at a bare LF sees a Content-Length covering
    // the hidden publish; one that does not sees none and then the publish.
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\nContent-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn a_cr_not_followed_by_lf_in_the_head_is_refused() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\rContent-Length: 10\r\n\r\n{}",
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn a_nul_in_the_head_is_refused() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n{}",
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn a_folded_header_line_is_refused() {
    let hub = Hub::start(&[]);
    let hidden = hidden_publish();
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Content-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn whitespace_between_a_field_name_and_its_colon_is_refused() {
    let hub = Hub::start(&[]);
    let hidden = hidden_publish();
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : {}\r\n\r\n{hidden}",
        hidden.len()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn an_empty_field_name_is_refused() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n{}",
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn a_transfer_encoding_other_than_one_chunked_over_all_fields_is_refused() {
    let hub = Hub::start(&[]);
    let hidden = hidden_publish();
    for encoding in [
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: xchunked",
    ] {
        // Read as chunked, the body ends at `0`; read any other way, the
        // hidden publish is a request of its own.
        let attempt = format!(
            "POST /broadcast HTTP/1.1\r\nHost: x\r\n{encoding}\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
            hidden.len()
        );
        assert_refused_once(&hub, attempt.as_bytes(), 400);
    }
}

#[test]
fn transfer_encoding_with_content_length_is_refused() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn more_than_one_content_length_or_one_not_of_plain_digits_is_refused() {
    let hub = Hub::start(&[]);
    let hidden = hidden_publish();
    for lengths in [
        "Content-Length: 0\r\nContent-Length: 0".to_owned(),
        format!("Content-Length: 0\r\nContent-Length: {}", hidden.len()),
        format!("Content-Length: {0}, {0}", hidden.len()),
        "Content-Length: +0".to_owned(),
        "Content-Length: 0x0".to_owned(),
    ] {
        let attempt = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{lengths}\r\n\r\n{hidden}");
        assert_refused_once(&hub, attempt.as_bytes(), 400);
    }
}

#[test]
fn a_chunked_body_may_end_with_trailer_fields() {
    let hub = Hub::start(&[]);
    let mut watcher = watcher(&hub);
    let body = r#"{"message":"with trailer"}"#;
    let request = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x};ext=1\r\n{body}\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        body.len()
    );
    let replies = attack(&hub, request.as_bytes());
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].status, 200, "{replies:?}");
    assert_eq!(watcher.next_event().data, "with trailer");
}

#[test]
fn an_http_1_1_request_without_host_is_refused() {
    let hub = Hub::start(&[]);
    let attempt = format!("GET /healthz HTTP/1.1\r\n\r\n{}", hidden_publish());
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn an_http_1_1_request_with_two_hosts_is_refused() {
    let hub = Hub::start(&[]);
    let attempt = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n{}",
        hidden_publish()
    );
    assert_refused_once(&hub, attempt.as_bytes(), 400);
}

#[test]
fn an_absolute_form_target_is_served_as_its_path() {
    let hub = Hub::start(&[]);
    let replies = attack(
        &hub,
        format!(
            "GET http://{}/healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            hub.addr, hub.addr
        )
        .as_bytes(),
    );
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].status, 200, "{replies:?}");
    let mut stream = Subscriber::open(
        hub.connect(),
        &hub.addr.to_string(),
        &format!("http://{}/events?channel=abs", hub.addr),
        &[],
        "HTTP/1.1",
    );
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next_event().event, "connection");
}

#[test]
fn empty_lines_before_the_request_line_are_skipped() {
    let hub = Hub::start(&[]);
    let replies = attack(
        &hub,
        b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].status, 200, "{replies:?}");
}

#[test]
fn an_http_0_9_request_line_is_closed_without_a_reply() {
    let hub = Hub::start(&[]);
    let mut watcher = watcher(&hub);
    let mut stream = hub.connect();
    let _ = stream.write_all(format!("GET /healthz\r\n{}", hidden_publish()).as_bytes());
    assert_eq!(read_to_close(&mut stream), b"");
    assert_nothing_smuggled(&hub, &mut watcher);
}

#[test]
fn a_version_other_than_http_1_0_and_1_1_gets_505() {
    let hub = Hub::start(&[]);
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9"] {
        let attempt = format!(
            "GET /healthz {version}\r\nHost: x\r\n\r\n{}",
            hidden_publish()
        );
        assert_refused_once(&hub, attempt.as_bytes(), 505);
    }
}

#[test]
fn a_head_line_of_exactly_8192_bytes_is_accepted() {
    let hub = Hub::start(&[]);
    // Without its CRLF, as the issue measured it.
    let name = "X-Long: ";
    let line = format!("{name}{}", "v".repeat(8192 - name.len()));
    assert_eq!(line.len(), 8192);
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{line}\r\nConnection: close\r\n\r\n");
    let replies = attack(&hub, request.as_bytes());
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].status, 200, "{replies:?}");
}

#[test]
fn a_head_not_complete_within_the_header_timeout_of_its_first_byte_gets_408_and_close() {
    // The hub's default --header-timeout is 10 s; the head drips one byte
    // every half second, and would take about 40 s.
    let hub = Hub::start(&[]);
    let mut stream = hub.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let writer = stream.try_clone().expect("clone");
    let start = Instant::now();
    let drip = thread::spawn(move || {
        let mut writer = writer;
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
            "s".repeat(60)
        );
        for byte in head.bytes() {
            if writer.write_all(&[byte]).is_err() || start.elapsed() > Duration::from_secs(40) {
                return;
            }
            thread::sleep(Duration::from_millis(500));
        }
    });
    let replies = parse_replies(&read_to_close(&mut stream));
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].status, 408, "{replies:?}");
    assert!(replies[0].closes(), "{replies:?}");
    let _ = drip.join();
}

/// Opens a connection without waiting for the handshake to finish (past
/// the backlog, a blocking connect would wait for SYN retries).
fn open_nonblocking(hub: &Hub) -> socket2::Socket {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_nonblocking(true).expect("non-blocking");
    let _ = socket.connect(&hub.addr.into());
    socket
}

/// `GET /healthz` on a fresh connection, within a few seconds.
fn healthz_answers(hub: &Hub) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&hub.addr, Duration::from_secs(3)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200")
}

#[test]
fn a_siege_of_slow_heads_never_keeps_a_new_client_from_being_served() {
    const LIMIT: u64 = 1200;
    const SIEGE: usize = 1250;
    let hub = Hub::start_with_fd_limit(&[], LIMIT);
    // Every siege connection starts a head and sends one more byte of it
    // every second; a connection the hub shed is opened again at once.
    let mut siege: Vec<socket2::Socket> = (0..SIEGE).map(|_| open_nonblocking(&hub)).collect();
    let start = Instant::now();
    let mut answered = 0;
    let mut asked = 0;
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(12) {
        for socket in &mut siege {
            let byte: &[u8] = if round == 0 {
                b"GET /healthz HTTP/1.1\r\nX"
            } else {
                b"x"
            };
            let still_connecting = |e: &std::io::Error| {
                e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOTCONN)
            };
            if matches!(socket.send(byte), Err(ref e) if !still_connecting(e)) {
                *socket = open_nonblocking(&hub);
            }
        }
        round += 1;
        if round > 2 {
            for _ in 0..4 {
                asked += 1;
                answered += usize::from(healthz_answers(&hub));
            }
        }
        thread::sleep(Duration::from_millis(500));
    }
    eprintln!("under the siege, {answered} of {asked} fresh GET /healthz were answered");
    assert!(asked >= 20, "only {asked} requests were tried");
    assert!(
        answered * 2 >= asked,
        "only {answered} of {asked} fresh GET /healthz were answered under the siege; log:\n{}",
        hub.log()
    );
}
