//! The auth callback (`--auth-url`, SPEC "Auth callback") against a real
//! backend that the test starts: a small HTTP server that decides by the
//! subscriber's session cookie, and records what it was asked.

#![cfg(feature = "auth")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::Hub;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "a test secret that is long enough for HS256";

/// One request the backend got: its header lines, lower-cased names.
type Asked = Vec<(String, String)>;

/// The application's backend: `session=alice` may join `room:*` and is
/// "alice"; `session=bob` is allowed with an empty answer; `session=slow`
/// answers after 3 s; `session=broken` gets 500; `session=garbage` gets a
/// body that is not the answer; other cookies get 403, no cookie 401.
struct Backend {
    url: String,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/auth", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&asked);
        thread::spawn(move || {
            for connection in listener.incoming() {
                let Ok(connection) = connection else { continue };
                let record = Arc::clone(&record);
                thread::spawn(move || answer(connection, &record));
            }
        });
        Backend { url, asked }
    }

    fn calls(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

fn answer(connection: TcpStream, record: &Mutex<Vec<Asked>>) {
    let mut reader = BufReader::new(connection.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut field = String::new();
            if reader.read_line(&mut field).unwrap_or(0) == 0 {
                return;
            }
            if field.trim_end().is_empty() {
                break;
            }
            if let Some((name, value)) = field.trim_end().split_once(": ") {
                headers.push((name.to_ascii_lowercase(), value.to_owned()));
            }
        }
        let cookie = headers
            .iter()
            .find(|(n, _)| n == "cookie")
            .map(|(_, v)| v.clone());
        record.lock().unwrap().push(headers);
        let (status, body) = match cookie.as_deref() {
            Some("session=alice") => (200, r#"{"subscribe":["room:*"],"user":"alice"}"#),
            Some("session=bob") => (204, ""),
            Some("session=slow") => {
                thread::sleep(Duration::from_secs(3));
                (200, "")
            }
            Some("session=broken") => (500, "oops"),
            Some("session=garbage") => (200, "<html>welcome</html>"),
            Some(_) => (403, "no"),
            None => (401, "who?"),
        };
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if (&connection).write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn hub_asking(url: &str, extra: &[&str]) -> Hub {
    let mut args = vec![
        "--auth-url",
        url,
        "--private",
        "room:*",
        "--private",
        "user:*",
    ];
    args.extend_from_slice(extra);
    Hub::start(&args)
}

/// A GET /events with these headers; the status and body of a refusal, or
/// 200.
fn subscribe(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut stream = hub.subscribe_with(path, headers);
    if stream.status == 200 {
        assert_eq!(stream.next_event().event, "connection");
        return (200, String::new(), None);
    }
    (
        stream.status,
        stream.error_body.clone(),
        stream.header("Retry-After").map(str::to_owned),
    )
}

#[test]
fn the_application_decides_by_its_session_cookie() {
    let backend = Backend::start();
    let hub = hub_asking(&backend.url, &[]);

    let (status, _, _) = subscribe(
        &hub,
        "/events?channel=room:1&channel=news",
        &[("Cookie", "session=alice")],
    );
    assert_eq!(status, 200);
    let calls = backend.calls();
    assert_eq!(calls.len(), 1);
    let asked = &calls[0];
    let field = |name: &str| {
        asked
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        field("x-sse-hub-channels"),
        Some("room:1"),
        "only the private ones"
    );
    assert_eq!(field("cookie"), Some("session=alice"));
    hub.wait_for_log("as \"alice\"");

    // Allowed room:*, not user:*: a cookie that covers one pattern cannot
    // join another.
    let (status, body, _) = subscribe(
        &hub,
        "/events?channel=room:1&channel=user:42",
        &[("Cookie", "session=alice")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("user:42"), "{body}");

    // An empty 2xx covers what was asked.
    assert_eq!(
        subscribe(&hub, "/events?channel=user:7", &[("Cookie", "session=bob")]).0,
        200
    );

    // The backend's no is the subscriber's no.
    let (status, body, _) = subscribe(
        &hub,
        "/events?channel=room:1",
        &[("Cookie", "session=mallory")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, body, _) = subscribe(&hub, "/events?channel=room:1", &[]);
    assert_eq!(status, 401, "{body}");

    // The Authorization header goes along too (an application's own
    // scheme, not a JWT the hub could read).
    let before = backend.calls().len();
    let _ = subscribe(
        &hub,
        "/events?channel=room:2",
        &[("Authorization", "Session abc")],
    );
    let calls = backend.calls();
    assert_eq!(calls.len(), before + 1);
    assert!(calls[before].contains(&("authorization".to_owned(), "Session abc".to_owned())));
}

#[test]
fn public_channels_never_call_the_backend() {
    let backend = Backend::start();
    let hub = hub_asking(&backend.url, &[]);
    assert_eq!(subscribe(&hub, "/events", &[]).0, 200);
    assert_eq!(
        subscribe(
            &hub,
            "/events?channel=news&channel=rooms",
            &[("Cookie", "session=x")]
        )
        .0,
        200
    );
    assert!(backend.calls().is_empty());
}

#[test]
fn a_valid_token_that_covers_the_channels_skips_the_call() {
    let backend = Backend::start();
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &["--auth-url", &backend.url, "--private", "room:*"],
        &[("SSE_HUB_JWT_SECRET", SECRET)],
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({ "exp": exp, "sub": "carol", "sse-hub": { "subscribe": ["room:1"] } });
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let auth = format!("Bearer {token}");
    assert_eq!(
        subscribe(&hub, "/events?channel=room:1", &[("Authorization", &auth)]).0,
        200
    );
    assert!(backend.calls().is_empty(), "a covering token needs no call");
    hub.wait_for_log("as \"carol\""); // the token's sub is the user
    // The same token for a room it does not cover: the backend decides.
    assert_eq!(
        subscribe(
            &hub,
            "/events?channel=room:2",
            &[("Authorization", &auth), ("Cookie", "session=alice")]
        )
        .0,
        200
    );
    assert_eq!(backend.calls().len(), 1);
}

/// A backend that is slow, fails, answers nonsense or is gone: 503 with
/// `Retry-After`, and no stream (it fails closed).
#[test]
fn a_backend_that_cannot_answer_fails_closed_with_503() {
    let backend = Backend::start();
    let hub = hub_asking(&backend.url, &[]);
    for cookie in ["session=slow", "session=broken", "session=garbage"] {
        let (status, body, retry) =
            subscribe(&hub, "/events?channel=room:1", &[("Cookie", cookie)]);
        assert_eq!(status, 503, "{cookie}: {body}");
        assert!(retry.is_some(), "{cookie}: no Retry-After");
        assert!(body.contains("auth backend"), "{cookie}: {body}");
    }
    // No backend at all: a port nothing listens on.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/auth", gone.local_addr().unwrap());
    drop(gone);
    let hub = hub_asking(&url, &[]);
    let (status, body, retry) = subscribe(
        &hub,
        "/events?channel=room:1",
        &[("Cookie", "session=alice")],
    );
    assert_eq!((status, retry.is_some()), (503, true), "{body}");
    assert_eq!(hub.stats()["clients"], 0);
}

#[test]
fn auth_settings_that_cannot_work_are_refused() {
    for (args, says) in [
        (
            vec!["--auth-url", "http://127.0.0.1:9/auth"],
            "needs --private",
        ),
        (
            vec!["--auth-url", "ftp://x/auth", "--private", "a"],
            "http:// or https://",
        ),
        (
            vec!["--auth-url", "not a url", "--private", "a"],
            "--auth-url",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--listen", "127.0.0.1:0"]);
        let output = common::run_to_exit(&all, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
