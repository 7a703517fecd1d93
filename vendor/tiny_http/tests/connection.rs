//! The fork's connection loop over real sockets: head timeouts, no request
//! read after a body that was not read to its end, and shedding of the
//! connections that have waited longest for a head. Timeouts here are
//! short so that the tests are quick; they only bound waits, nothing is
//! asserted about how long anything took.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sse_hub_tiny_http::{ConnectionOptions, HeadOptions, Request, Response, Server};

/// How long a test waits for anything before it fails as hung.
const GUARD: Duration = Duration::from_secs(10);

/// What a handler does with a request's body.
#[derive(Clone, Copy)]
enum Body {
    /// Reads it to its end, then answers 200.
    Read,
    /// Answers 413 without reading it (nor calling `stop_reading`).
    Refuse,
}

struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _server: Server,
}

impl TestServer {
    fn start(idle: Duration, heads: HeadOptions, body: Body) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let options = ConnectionOptions {
            read_timeout: Some(idle),
            ..ConnectionOptions::default()
        };
        let server = Server::from_listener_with_heads(
            listener,
            options,
            heads,
            None,
            Arc::new(move |mut request: Request| {
                record.lock().unwrap().push(request.url().to_owned());
                let status = match body {
                    Body::Refuse if request.body_length() != Some(0) => 413,
                    _ => {
                        let mut content = Vec::new();
                        match request.as_reader().read_to_end(&mut content) {
                            Ok(_) => 200,
                            Err(_) => 400,
                        }
                    }
                };
                let _ = request.respond(Response::from_string("done").with_status_code(status));
            }),
            Box::new(|| {}),
        )
        .expect("server");
        TestServer {
            addr,
            seen,
            _server: server,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(GUARD)).expect("timeout");
        stream
    }

    /// Sends `bytes` on a new connection and reads everything until the
    /// server closes it.
    fn exchange(&self, bytes: &[u8]) -> String {
        let mut stream = self.connect();
        let _ = stream.write_all(bytes);
        read_to_close(&mut stream)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Everything the server sends until it closes the connection (or the
/// guard runs out, which fails the test).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {}", e),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn replies(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

fn quick(body: Body) -> TestServer {
    TestServer::start(Duration::from_secs(5), HeadOptions::default(), body)
}

#[test]
fn a_head_dripped_past_the_head_timeout_gets_408_and_the_connection_closes() {
    let heads = HeadOptions {
        timeout: Duration::from_millis(600),
        ..HeadOptions::default()
    };
    let server = TestServer::start(Duration::from_secs(5), heads, Body::Read);
    let mut stream = server.connect();
    let writer = stream.try_clone().expect("clone");
    let drip = thread::spawn(move || {
        let mut writer = writer;
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let reply = read_to_close(&mut stream);
    assert!(reply.starts_with("HTTP/1.1 408"), "{:?}", reply);
    assert!(reply.contains("Connection: close"), "{:?}", reply);
    assert_eq!(replies(&reply), 1);
    assert!(server.seen().is_empty());
    let _ = drip.join();
}

#[test]
fn a_head_stalled_past_the_idle_timeout_gets_408() {
    let server = TestServer::start(
        Duration::from_millis(300),
        HeadOptions::default(),
        Body::Read,
    );
    let reply = server.exchange(b"GET / HTTP/1.1\r\nHost: a\r\n");
    assert!(reply.starts_with("HTTP/1.1 408"), "{:?}", reply);
}

#[test]
fn an_idle_connection_is_closed_without_a_reply() {
    let server = TestServer::start(
        Duration::from_millis(300),
        HeadOptions::default(),
        Body::Read,
    );
    assert_eq!(server.exchange(b""), "");
}

#[test]
fn a_request_hidden_in_a_refused_body_is_never_read() {
    let server = quick(Body::Refuse);
    let hidden = "GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /refused HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    let reply = server.exchange(request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 413"), "{:?}", reply);
    assert!(reply.contains("Connection: close"), "{:?}", reply);
    assert_eq!(replies(&reply), 1, "{:?}", reply);
    assert_eq!(server.seen(), ["/refused"]);
}

#[test]
fn a_request_hidden_in_a_refused_chunked_body_is_never_read() {
    let server = quick(Body::Refuse);
    let hidden = "GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /refused HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n{hidden}",
        hidden.len()
    );
    let reply = server.exchange(request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 413"), "{:?}", reply);
    assert_eq!(replies(&reply), 1, "{:?}", reply);
    assert_eq!(server.seen(), ["/refused"]);
}

#[test]
fn a_request_after_a_bad_chunk_is_never_read() {
    let server = quick(Body::Read);
    let hidden = "GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{hidden}"
    );
    let reply = server.exchange(request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 400"), "{:?}", reply);
    assert!(reply.contains("Connection: close"), "{:?}", reply);
    assert_eq!(replies(&reply), 1, "{:?}", reply);
    assert_eq!(server.seen(), ["/bad"]);
}

#[test]
fn bodies_read_to_their_end_keep_the_connection_for_the_next_request() {
    let server = quick(Body::Read);
    let request = "POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
                   POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n\
                   GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let reply = server.exchange(request.as_bytes());
    assert_eq!(replies(&reply), 3, "{:?}", reply);
    assert!(!reply.contains("HTTP/1.1 400"), "{:?}", reply);
    assert_eq!(server.seen(), ["/one", "/two", "/three"]);
}

#[test]
fn refused_heads_get_their_status_and_http_0_9_gets_nothing() {
    let server = quick(Body::Read);
    for (head, status) in [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: b\nContent-Length: 3\r\n\r\n",
            "400",
        ),
        ("GET / HTTP/1.1\r\n\r\n", "400"),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"),
    ] {
        let reply = server.exchange(head.as_bytes());
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{:?}: {:?}",
            head,
            reply
        );
        assert!(
            reply.contains("Connection: close"),
            "{:?}: {:?}",
            head,
            reply
        );
    }
    assert_eq!(server.exchange(b"GET /\r\n"), "");
    assert!(server.seen().is_empty());
}

#[test]
fn past_the_bound_the_connection_that_waited_longest_for_a_head_is_shed() {
    let heads = HeadOptions {
        max_waiting: Some(2),
        ..HeadOptions::default()
    };
    let server = TestServer::start(Duration::from_secs(5), heads, Body::Read);
    let mut oldest = server.connect();
    // A request answered on the oldest shows it is being waited on.
    oldest
        .write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    let mut buf = [0; 1024];
    assert!(oldest.read(&mut buf).expect("a reply") > 0);
    let mut others: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut stream = server.connect();
        stream.write_all(b"GET / HT").expect("send");
        others.push(stream);
        thread::sleep(Duration::from_millis(100));
    }
    // The oldest was shed, with no reply; the two newer still wait.
    assert_eq!(read_to_close(&mut oldest), "");
    for stream in &mut others {
        stream
            .write_all(b"TP/1.1\r\nHost: a\r\n\r\n")
            .expect("send");
        let mut buf = [0; 1024];
        let n = stream.read(&mut buf).expect("a reply");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
}
