//! The README's nginx recipe, with a real nginx and a real client: while
//! the hub behind it restarts, the `eventsource` npm client gets nginx's
//! fallback stream (`200`, `retry:`) instead of a `502`, so it keeps
//! reconnecting by itself, and when the hub is back it resumes there (a
//! `gap`, since the hub's history was lost with it) and gets what is
//! published next.
//!
//! Through the same nginx, every smuggling attempt of
//! `tests/http_framing.rs` (a publish hidden in a body, or behind a framing
//! that nginx and a lax hub could read differently), with the recipe as it
//! is and with `proxy_request_buffering off`, under which a publish was once
//! smuggled: a subscriber through nginx and one on the hub itself get
//! nothing smuggled, the attacking connection gets one reply to the
//! attempt, and `/stats` counts only the legitimate publishes.
//!
//! The configuration is the README's own, read from its "Behind a reverse
//! proxy" section, with the hub's address put in: what the README says is
//! what is tested.
//!
//! Ignored by a plain `cargo test`: it needs nginx and Node packages.
//! `.ci/run` installs them; by hand:
//!
//! ```sh
//! apt-get install -y nginx
//! (cd tests/clients/node && npm ci)
//! cargo test --test nginx -- --include-ignored
//! ```

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::clients::{Client, Library, Runtime};
use common::{GUARD, Hub, Subscriber, free_port};

/// The hub's `retry:`, and the fallback's: short, so the test is quick.
const RETRY_MS: &str = "300";

#[test]
#[ignore = "needs nginx and Node packages in tests/clients/node: run .ci/run"]
fn browsers_keep_reconnecting_through_nginx_while_the_hub_restarts() {
    let hub_port = free_port();
    let listen = format!("127.0.0.1:{hub_port}");
    let args = ["--retry", RETRY_MS];
    let mut hub = Hub::start_with_env(&listen, &args, &[]);
    let nginx = Nginx::start(hub_port);
    let mut client = Client::spawn(
        &Library {
            name: "eventsource (npm) through nginx",
            runtime: Runtime::Node {
                package: "eventsource",
            },
            script: "eventsource.mjs",
            exposes_retry: false,
        },
        &nginx.url("/events"),
    );
    client.wait_for_connections(1);
    hub.publish_text("before the restart");
    client.wait_for_data("before the restart");

    // The hub goes away: nginx answers for it, and the client keeps
    // coming back, each time to nginx's fallback.
    assert_eq!(hub.terminate().code(), Some(0));
    nginx.wait_for_fallbacks(2);

    // Back on the same port, with an empty history: the client resumes
    // there by itself and is told what it may have missed.
    let hub = Hub::start_with_env(&listen, &args, &[]);
    client.wait_for_connections(2);
    client.wait_for("`gap` after the restart", |c| {
        c.events.iter().any(|e| e.kind == "gap")
    });
    hub.publish_text("after the restart");
    client.wait_for_data("after the restart");
    let messages: Vec<&str> = client
        .events
        .iter()
        .filter(|e| e.kind == "message")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(
        messages,
        ["before the restart", "after the restart"],
        "the fallback must not show up as a message\n{}",
        client.transcript()
    );
}

#[test]
#[ignore = "needs nginx: run .ci/run"]
fn nothing_smuggled_through_the_nginx_recipe_reaches_a_subscriber() {
    nothing_smuggled_through(&readme_recipe());
}

#[test]
#[ignore = "needs nginx: run .ci/run"]
fn nothing_smuggled_through_nginx_without_request_buffering_reaches_a_subscriber() {
    let recipe = readme_recipe();
    // The setting under which the issue saw a publish smuggled: nginx
    // streams the body to the hub as it comes.
    let unbuffered = recipe.replacen(
        "location / {\n",
        "location / {\n    proxy_request_buffering off;\n",
        1,
    );
    assert_ne!(unbuffered, recipe, "no `location /` in the recipe");
    nothing_smuggled_through(&unbuffered);
}

/// The smuggled message; no subscriber may ever see it.
const SMUGGLED: &str = "smuggled";

/// Sent after every attempt on the same connection: if nginx keeps the
/// connection after its reply to the attempt, this gets the second and last
/// reply, and nginx closes the connection after it.
const SENTINEL: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// The smuggling attempts of `tests/http_framing.rs`, as sent to nginx.
///
/// Each hides a publish of [`SMUGGLED`] where nginx reads body bytes, or
/// after a request that nginx refuses (and then closes the connection), so
/// that only a hub which framed a forwarded request differently from nginx
/// could run it. None puts it after the end of a request as nginx frames
/// it: there it is a request of the attacker's own, which nginx forwards
/// as such, and that is no smuggling.
fn attempts() -> Vec<Attempt> {
    let hidden = hidden_publish();
    let n = hidden.len();
    let post = "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    // Over the hub's --max-body 100, under nginx's 64k: nginx forwards it,
    // and the hub refuses it. The hidden publish starts where a hub that
    // read 101 bytes of the body would stop. The padding after it takes the
    // body past nginx's client_body_buffer_size (16k): without request
    // buffering, nginx cannot hold it whole, so it streams it to the hub
    // chunked, as it comes (a body held whole goes with a Content-Length).
    // That is how the issue got a publish through.
    let oversized = format!("{}{hidden}{}", "a".repeat(101), "\r\n".repeat(15_000));
    vec![
        Attempt {
            what: "a publish hidden in an oversized chunked body",
            bytes: format!(
                "{post}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{oversized}\r\n0\r\n\r\n",
                oversized.len()
            ),
            replies: REFUSED_BODY,
            publishes: None,
        },
        Attempt {
            what: "a publish hidden in an oversized declared body",
            bytes: format!(
                "{post}Content-Length: {}\r\n\r\n{oversized}",
                oversized.len()
            ),
            replies: REFUSED_BODY,
            publishes: None,
        },
        Attempt {
            what: "a request after a chunk size that is not hex",
            bytes: format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\n{hidden}"),
            replies: &[400],
            publishes: None,
        },
        Attempt {
            what: "a request after a chunk size that does not fit",
            bytes: format!(
                "{post}Transfer-Encoding: chunked\r\n\r\n1{}\r\nab\r\n0\r\n\r\n{hidden}",
                "0".repeat(16)
            ),
            replies: &[400],
            publishes: None,
        },
        Attempt {
            what: "Transfer-Encoding: chunked, then Transfer-Encoding: identity",
            bytes: format!(
                "{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{n:x}\r\n{hidden}\r\n0\r\n\r\n"
            ),
            replies: &[400, 501],
            publishes: None,
        },
        Attempt {
            what: "Transfer-Encoding: chunked, identity",
            bytes: format!(
                "{post}Transfer-Encoding: chunked, identity\r\n\r\n{n:x}\r\n{hidden}\r\n0\r\n\r\n"
            ),
            replies: &[400, 501],
            publishes: None,
        },
        Attempt {
            what: "Transfer-Encoding with Content-Length",
            bytes: format!(
                "{post}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
                n + 5
            ),
            replies: &[400],
            publishes: None,
        },
        Attempt {
            what: "two Content-Length fields",
            bytes: format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: {n}\r\n\r\n{hidden}"
            ),
            replies: &[400],
            publishes: None,
        },
        Attempt {
            what: "a Content-Length list",
            bytes: format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {n}, {n}\r\n\r\n{hidden}"
            ),
            replies: &[400],
            publishes: None,
        },
        Attempt {
            what: "a bare LF hiding a Content-Length",
            bytes: format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\nContent-Length: {n}\r\n\r\n{hidden}"
            ),
            replies: &[200, 400],
            publishes: None,
        },
        Attempt {
            what: "a folded header line",
            bytes: format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Content-Length: {n}\r\n\r\n{hidden}"
            ),
            replies: &[400],
            publishes: None,
        },
        Attempt {
            what: "a chunked publish with trailer fields",
            bytes: {
                let body = r#"{"message":"with trailer"}"#;
                format!(
                    "{post}Transfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{body}\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
                    body.len()
                )
            },
            replies: &[200],
            publishes: Some("with trailer"),
        },
    ]
}

/// What nginx answers for a body the hub refuses before reading it all:
/// the hub's 413, or a 502 when the hub has closed the connection (as it
/// must, not reading the rest as a request) while nginx was still sending
/// that body, and nginx's write failed before it read the 413. Which one
/// comes is a race; either way there is one reply and nothing smuggled.
const REFUSED_BODY: &[u16] = &[413, 502];

/// One attempt on the front door.
struct Attempt {
    what: &'static str,
    bytes: String,
    /// The status nginx may give it (its own refusal, or the hub's reply).
    replies: &'static [u16],
    /// The message it legitimately publishes, if it is a valid publish.
    publishes: Option<&'static str>,
}

/// A publish of [`SMUGGLED`], as a complete request.
fn hidden_publish() -> String {
    let body = format!("{{\"message\":\"{SMUGGLED}\"}}");
    format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Every smuggling attempt through nginx running `locations`, in front of a
/// hub with `--max-body 100`, each watched by a subscriber through nginx
/// and one on the hub itself.
fn nothing_smuggled_through(locations: &str) {
    let hub_port = free_port();
    let hub = Hub::start_with_env(
        &format!("127.0.0.1:{hub_port}"),
        &["--max-body", "100"],
        &[],
    );
    let nginx = Nginx::start_with(hub_port, locations);
    let mut via_nginx =
        Subscriber::open(nginx.connect(), &nginx.host(), "/events", &[], "HTTP/1.1");
    assert_eq!(via_nginx.status, 200, "{}", via_nginx.error_body);
    assert_eq!(via_nginx.next_event().event, "connection");
    let (mut direct, _) = hub.subscribe_ready("/events");
    let mut published = 0;
    for attempt in attempts() {
        let what = attempt.what;
        let replies = nginx.replies_to(format!("{}{SENTINEL}", attempt.bytes).as_bytes());
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        eprintln!("{what}: replies {statuses:?}");
        let Some((first, rest)) = replies.split_first() else {
            panic!("{what}: no reply at all");
        };
        assert!(
            attempt.replies.contains(&first.status),
            "{what}: {first:?}, not one of {:?}; nginx's log:\n{}",
            attempt.replies,
            nginx.error_log()
        );
        // The only other reply there may be is the sentinel's.
        assert!(
            rest.is_empty() || (rest.len() == 1 && rest[0].status == 200 && rest[0].body == "ok"),
            "{what}: more replies than the attempt and the sentinel: {replies:?}"
        );
        let mut expected = Vec::new();
        if let Some(message) = attempt.publishes {
            expected.push(message.to_owned());
            published += 1;
        }
        // A marker published normally: the subscribers are live, and
        // nothing came before it but what was published legitimately.
        let marker = format!("marker after {what}");
        let reply = nginx.publish(&marker);
        assert_eq!(reply.status, 200, "{what}: the marker's publish: {reply:?}");
        published += 1;
        expected.push(marker);
        for (name, subscriber) in [("through nginx", &mut via_nginx), ("direct", &mut direct)] {
            let got: Vec<String> = subscriber
                .events(expected.len())
                .into_iter()
                .map(|e| e.data)
                .collect();
            assert_eq!(
                got, expected,
                "{what}: the subscriber {name} got something else"
            );
        }
    }
    let stats = hub.stats();
    assert_eq!(
        stats["published"], published,
        "only the legitimate publishes are counted: {stats}"
    );
}

/// A reply as read off the attacking connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: String,
}

/// Splits what a server sent into replies, each framed by its
/// `Content-Length` or chunked.
fn parse_replies(mut bytes: &[u8]) -> Vec<Raw> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("a reply head: {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        bytes = &bytes[end + 4..];
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head:?}"));
        let field = |wanted: &str| {
            head.lines().skip(1).find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case(wanted)
                    .then(|| value.trim().to_ascii_lowercase())
            })
        };
        let mut body = Vec::new();
        if field("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let line_end = bytes
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("a chunk size line");
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&bytes[..line_end]).trim(), 16)
                        .expect("a hex chunk size");
                bytes = &bytes[line_end + 2..];
                if size == 0 {
                    let trailer_end = bytes
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .expect("the end of the chunked body");
                    bytes = &bytes[trailer_end + 2..];
                    break;
                }
                body.extend_from_slice(&bytes[..size]);
                bytes = &bytes[size + 2..];
            }
        } else {
            let length: usize = field("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let length = length.min(bytes.len());
            body.extend_from_slice(&bytes[..length]);
            bytes = &bytes[length..];
        }
        replies.push(Raw {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    replies
}

/// An nginx in the foreground, in a folder of its own.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// nginx with the README's recipe, in front of the hub on `hub_port`.
    fn start(hub_port: u16) -> Nginx {
        Nginx::start_with(hub_port, &readme_recipe())
    }

    /// nginx with these `location` blocks (the README's, with the hub's
    /// address `127.0.0.1:3000`), in front of the hub on `hub_port`.
    fn start_with(hub_port: u16, locations: &str) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no nginx: apt-get install -y nginx (.ci/run does)"));
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sse-hub-nginx-{}-{port}", std::process::id()));
        fs::create_dir_all(dir.join("logs")).expect("a folder for nginx");
        let locations = locations.replace("127.0.0.1:3000", &format!("127.0.0.1:{hub_port}"));
        let conf = format!(
            "daemon off;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/logs/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             access_log {dir}/logs/access.log;\n\
             client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi;\n\
             scgi_temp_path {dir}/scgi;\n\
             server {{\n listen 127.0.0.1:{port};\n{locations}\n}}\n}}\n",
            dir = dir.display()
        );
        fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < GUARD, "nginx did not start listening");
            thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, dir, port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection to nginx, with the guard timeout on reads.
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to nginx");
        stream.set_read_timeout(Some(GUARD)).expect("set timeout");
        stream
    }

    /// Sends `bytes` on a new connection (a write cut short is not an
    /// error), then reads until nginx closes it: every reply sent, in
    /// order. Panics if the connection stays open (the read timeout is
    /// only a guard against a hang).
    fn replies_to(&self, bytes: &[u8]) -> Vec<Raw> {
        let mut stream = self.connect();
        let _ = stream.write_all(bytes);
        let mut all = Vec::new();
        let mut buf = [0; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "the connection stayed open ({e}) after {:?}",
                    String::from_utf8_lossy(&all)
                ),
            }
        }
        parse_replies(&all)
    }

    /// Publishes `{"message": text}` through nginx, the way curl would.
    fn publish(&self, text: &str) -> Raw {
        let body = serde_json::json!({ "message": text }).to_string();
        let request = format!(
            "POST /broadcast HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host(),
            body.len()
        );
        let mut replies = self.replies_to(request.as_bytes());
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.remove(0)
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until nginx has answered `n` stream requests while the hub was
    /// down: the ones its error log records as refused upstream.
    fn wait_for_fallbacks(&self, n: usize) {
        let started = Instant::now();
        loop {
            let log = fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default();
            let refused = log.matches("Connection refused").count();
            if refused >= n {
                return;
            }
            assert!(
                started.elapsed() < GUARD,
                "the client came back {refused} times while the hub was down, not {n}:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `location` blocks of the README's nginx recipe (the first `nginx`
/// block of "Behind a reverse proxy").
fn readme_recipe() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split_once("### Behind a reverse proxy")
        .expect("the README's reverse proxy section")
        .1;
    let block = section
        .split_once("```nginx\n")
        .expect("an nginx block in that section")
        .1;
    block
        .split_once("```")
        .expect("the end of the nginx block")
        .0
        .to_owned()
}
