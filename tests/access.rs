//! Private channels and scoped publishing with JSON Web Tokens, over real
//! sockets: which tokens the hub takes (HS256 with `--jwt-secret`, ES256
//! and EdDSA with `--jwt-public-key`, each key only with its own
//! algorithm), which it refuses and what it says, the three ways a
//! subscriber can send one, the publish scopes, the log, and the `token`
//! subcommand.

mod common;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Hub, Reply, Subscriber, run_to_exit};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

const SECRET: &str = "a test secret that is long enough for HS256";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs()
}

/// Claims that expire in an hour, with this `"sse-hub"` claim.
fn claims(grants: Value) -> Value {
    json!({ "exp": now() + 3600, "sse-hub": grants })
}

fn sign(algorithm: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).expect("sign a token")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

/// A hub that takes HS256 tokens signed with [`SECRET`] and keeps `user:*`
/// and `vip` private.
fn private_hub() -> Hub {
    Hub::start_with_env(
        "127.0.0.1:0",
        &["--private", "user:*", "--private", "vip"],
        &[("SSE_HUB_JWT_SECRET", SECRET)],
    )
}

/// A PEM file that lives as long as the value.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("sse-hub-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write a temporary file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens a stream that must be refused, and returns the refusal.
fn refused(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> Reply {
    let reply = hub.request("GET", path, headers, b"");
    assert_ne!(reply.status, 200, "GET {path} opened a stream");
    reply
}

/// Opens a stream that must be granted, and returns it with the channels
/// its `connection` event lists.
fn granted(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> (Subscriber, Vec<String>) {
    let mut stream = hub.subscribe_with(path, headers);
    assert_eq!(stream.status, 200, "GET {path}: {}", stream.error_body);
    let hello = stream.next_event();
    assert_eq!(hello.event, "connection");
    let channels = hello.json()["channels"]
        .as_array()
        .expect("a list of channels")
        .iter()
        .map(|c| c.as_str().expect("a channel name").to_owned())
        .collect();
    (stream, channels)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn a_private_channel_needs_a_token_that_covers_it_sent_any_of_three_ways() {
    let hub = private_hub();
    let token = hs256(&claims(json!({ "subscribe": ["user:42"] })));

    let none = refused(&hub, "/events?channel=user:42", &[]);
    none.assert_error(401, "no token: channel user:42 is private", "no token");
    assert_eq!(none.header("WWW-Authenticate"), Some("Bearer"));

    // The header, the query (an EventSource cannot set headers), the cookie.
    let auth = bearer(&token);
    let (_header, channels) = granted(&hub, "/events?channel=user:42", &[("Authorization", &auth)]);
    assert_eq!(channels, ["user:42"]);
    let (_query, channels) = granted(&hub, &format!("/events?channel=user:42&token={token}"), &[]);
    assert_eq!(channels, ["user:42"]);
    let cookie = format!("theme=dark; sse_hub_token={token}");
    let (mut by_cookie, channels) =
        granted(&hub, "/events?channel=user:42", &[("Cookie", &cookie)]);
    assert_eq!(channels, ["user:42"]);
    hub.wait_for_clients(3);

    // A valid token that does not cover the channel: 403, naming it.
    for path in [
        "/events?channel=user:43",
        "/events?channel=vip",
        "/events?channel=news&channel=user:42&channel=user:7",
    ] {
        let reply = refused(&hub, path, &[("Authorization", &auth)]);
        reply.assert_error(403, "the token does not allow subscribing to channel", path);
        assert_eq!(
            reply.header("WWW-Authenticate"),
            Some(r#"Bearer error="insufficient_scope""#),
            "{path}"
        );
    }
    let reply = refused(&hub, "/events?channel=user:7", &[("Authorization", &auth)]);
    assert!(
        reply.error().ends_with("channel user:7"),
        "{}",
        reply.error()
    );

    // Public channels beside a covered private one: all granted.
    let (_mixed, channels) = granted(
        &hub,
        "/events?channel=news&channel=user:42",
        &[("Authorization", &auth)],
    );
    assert_eq!(channels, ["news", "user:42"]);

    // The stream is a real one: messages for the channel arrive.
    let publisher = bearer(&hs256(&claims(json!({ "publish": ["*"] }))));
    let reply = hub.request(
        "POST",
        "/broadcast",
        &[("Authorization", &publisher)],
        br#"{"message": "for 42 only", "channel": "user:42"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["clients"], 4);
    assert_eq!(by_cookie.next_event().data, "for 42 only");
}

/// `/stats` and `/metrics` are open to anyone: they count private channels
/// but never name one (SPEC "Other routes").
#[test]
fn stats_and_metrics_never_name_a_private_channel() {
    let hub = private_hub();
    let token = hs256(&claims(json!({ "subscribe": ["user:*", "vip"] })));
    let auth = bearer(&token);
    let (_private, _) = granted(
        &hub,
        "/events?channel=user:42-secret-room&channel=vip&channel=news",
        &[("Authorization", &auth)],
    );
    let (_public, _) = granted(&hub, "/events?channel=news", &[]);
    hub.wait_for_clients(2);

    let stats = hub.stats();
    assert_eq!(stats["channels"], json!({ "news": 2 }), "{stats}");
    assert_eq!(stats["channels_total"], 3, "{stats}");
    let text = hub.get("/stats").text();
    assert!(!text.contains("secret") && !text.contains("vip"), "{text}");

    let metrics = hub.get("/metrics").text();
    assert!(
        metrics.contains("sse_hub_channel_clients{channel=\"news\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nsse_hub_channels 3\n"), "{metrics}");
    assert!(
        !metrics.contains("secret") && !metrics.contains("vip"),
        "{metrics}"
    );
}

#[test]
fn public_channels_and_the_global_stream_need_no_token() {
    let hub = private_hub();
    let (_global, channels) = granted(&hub, "/events", &[]);
    assert!(channels.is_empty());
    let (_public, channels) = granted(&hub, "/events?channel=news&channel=users", &[]);
    assert_eq!(channels, ["news", "users"]);
    // A token is not even read where none is needed: a bad one is no fault.
    let (_bad, channels) = granted(&hub, "/events?channel=news&token=not-a-token", &[]);
    assert_eq!(channels, ["news"]);
    hub.wait_for_clients(3);
}

#[test]
fn bad_tokens_get_401_saying_why() {
    let hub = private_hub();
    let good = hs256(&claims(json!({ "subscribe": ["user:*"] })));
    let other_grants = hs256(&claims(json!({ "subscribe": ["vip"] })));
    let [header, payload, signature] = parts(&good);
    let mut tampered_signature = signature.to_owned().into_bytes();
    let at = tampered_signature.len() / 2;
    tampered_signature[at] = if tampered_signature[at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered_signature = String::from_utf8(tampered_signature).expect("ASCII");
    // `{"alg":"none","typ":"JWT"}`, base64url.
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

    let cases = [
        (
            "expired",
            hs256(&json!({ "exp": now() - 3600, "sse-hub": { "subscribe": ["user:*"] } })),
            "bad token: it has expired",
        ),
        (
            "nbf in the future",
            hs256(&json!({
                "exp": now() + 7200,
                "nbf": now() + 3600,
                "sse-hub": { "subscribe": ["user:*"] }
            })),
            "bad token: it is not valid yet",
        ),
        (
            "no exp",
            hs256(&json!({ "sse-hub": { "subscribe": ["user:*"] } })),
            "bad token: it has no exp claim",
        ),
        (
            "an audience",
            hs256(&json!({
                "exp": now() + 3600,
                "aud": "another service",
                "sse-hub": { "subscribe": ["user:*"] }
            })),
            "bad token: it names an audience (aud)",
        ),
        (
            "alg none",
            format!("{alg_none}.{payload}."),
            "bad token: it is not a JSON Web Token signed with",
        ),
        (
            "alg none with the good signature",
            format!("{alg_none}.{payload}.{signature}"),
            "bad token: it is not a JSON Web Token signed with",
        ),
        (
            "a tampered signature",
            format!("{header}.{payload}.{tampered_signature}"),
            "bad token: its signature does not verify",
        ),
        (
            "another token's claims under this signature",
            format!("{header}.{}.{signature}", parts(&other_grants)[1]),
            "bad token: its signature does not verify",
        ),
        (
            "another secret",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another secret, also long enough for HS256"),
                &claims(json!({ "subscribe": ["user:*"] })),
            ),
            "bad token: its signature does not verify",
        ),
        (
            "another algorithm than the hub's key takes",
            sign(
                Algorithm::HS384,
                &EncodingKey::from_secret(SECRET.as_bytes()),
                &claims(json!({ "subscribe": ["user:*"] })),
            ),
            "bad token: it is signed with HS384, and the hub takes HS256",
        ),
        (
            "a bad pattern in the claim",
            hs256(&claims(json!({ "subscribe": ["user 42"] }))),
            "bad token: its claims are malformed",
        ),
        ("not a token", "hello".to_owned(), "bad token:"),
    ];
    for (what, token, says) in &cases {
        for (path, headers) in [
            (
                "/events?channel=user:42".to_owned(),
                vec![("Authorization", bearer(token))],
            ),
            (format!("/events?channel=user:42&token={token}"), vec![]),
        ] {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let reply = refused(&hub, &path, &headers);
            reply.assert_error(401, says, what);
            assert_eq!(
                reply.header("WWW-Authenticate"),
                Some(r#"Bearer error="invalid_token""#),
                "{what}"
            );
            assert!(
                !reply.text().contains(token.as_str()),
                "{what}: the reply echoes the token"
            );
        }
    }
    let (_stream, channels) = granted(
        &hub,
        "/events?channel=user:42",
        &[("Authorization", &bearer(&good))],
    );
    assert_eq!(channels, ["user:42"]);
    assert_eq!(hub.stats()["clients"], 1, "a refused stream was registered");
}

/// A token's three parts.
fn parts(token: &str) -> [&str; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    parts.try_into().expect("three parts")
}

#[test]
fn es256_tokens_verify_with_the_public_key_and_nothing_else_does() {
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let public_pem = key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI PEM");
    let file = TempFile::new("es256.pem", &public_pem);
    let hub = Hub::start(&["--jwt-public-key", file.path(), "--private", "user:*"]);
    let es256 = |claims: &Value| {
        sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(private_pem.as_bytes()).expect("an EC key"),
            claims,
        )
    };

    let good = es256(&claims(json!({ "subscribe": ["user:42"] })));
    let (_stream, channels) = granted(
        &hub,
        "/events?channel=user:42",
        &[("Authorization", &bearer(&good))],
    );
    assert_eq!(channels, ["user:42"]);
    refused(
        &hub,
        "/events?channel=user:43",
        &[("Authorization", &bearer(&good))],
    )
    .assert_error(403, "user:43", "ES256, another channel");

    // The classic confusion: HS256 "signed" with the public key's PEM as
    // the secret. A hub that let the header choose would check it with the
    // same bytes and take it.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(public_pem.as_bytes()),
        &claims(json!({ "subscribe": ["user:42"] })),
    );
    refused(
        &hub,
        "/events?channel=user:42",
        &[("Authorization", &bearer(&confused))],
    )
    .assert_error(
        401,
        "it is signed with HS256, and the hub takes ES256",
        "HS256 with the PEM",
    );

    let other_key = p256::SecretKey::random(&mut rand_core::OsRng)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("PKCS#8 PEM");
    let forged = sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(other_key.as_bytes()).expect("an EC key"),
        &claims(json!({ "subscribe": ["user:42"] })),
    );
    refused(
        &hub,
        "/events?channel=user:42",
        &[("Authorization", &bearer(&forged))],
    )
    .assert_error(401, "its signature does not verify", "another key pair");

    let expired = es256(&json!({ "exp": now() - 3600, "sse-hub": { "subscribe": ["user:42"] } }));
    refused(
        &hub,
        "/events?channel=user:42",
        &[("Authorization", &bearer(&expired))],
    )
    .assert_error(401, "it has expired", "ES256, expired");
}

#[test]
fn eddsa_tokens_verify_with_an_ed25519_public_key() {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI PEM");
    let file = TempFile::new("ed25519.pem", &public_pem);
    let hub = Hub::start(&["--jwt-public-key", file.path(), "--private", "user:*"]);

    let token = sign(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("an Ed25519 key"),
        &claims(json!({ "subscribe": ["user:*"], "publish": ["user:*"] })),
    );
    let auth = bearer(&token);
    let (mut stream, _) = granted(&hub, "/events?channel=user:1", &[("Authorization", &auth)]);
    let reply = hub.request(
        "POST",
        "/broadcast",
        &[("Authorization", &auth)],
        br#"{"message": "signed with Ed25519", "channel": "user:1"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(stream.next_event().data, "signed with Ed25519");
    let hs = hs256(&claims(json!({ "subscribe": ["user:*"] })));
    refused(
        &hub,
        "/events?channel=user:1",
        &[("Authorization", &bearer(&hs))],
    )
    .assert_error(401, "the hub takes EdDSA", "HS256 against an Ed25519 key");
}

#[test]
fn publishing_needs_a_token_whose_publish_list_covers_every_message() {
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &[],
        &[
            ("SSE_HUB_JWT_SECRET", SECRET),
            ("SSE_HUB_PUBLISH_TOKEN", "the-static-token"),
        ],
    );
    let (mut news, _) = granted(&hub, "/events?channel=news", &[]);
    let post = |token: Option<&str>, body: &str| {
        let auth = token.map(bearer);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        hub.request("POST", "/broadcast", &headers, body.as_bytes())
    };
    let news_only = hs256(&claims(json!({ "publish": ["news"], "subscribe": ["*"] })));
    let everything = hs256(&claims(json!({ "publish": ["*"] })));

    let reply = post(None, r#"{"message": "x", "channel": "news"}"#);
    reply.assert_error(401, "no token: publishing needs one", "no token");
    assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
    let expired = hs256(&json!({ "exp": now() - 3600, "sse-hub": { "publish": ["*"] } }));
    post(Some(&expired), r#"{"message": "x"}"#).assert_error(401, "it has expired", "expired");

    let reply = post(Some(&news_only), r#"{"message": "x", "channel": "sport"}"#);
    reply.assert_error(
        403,
        "does not allow publishing to channel sport",
        "another channel",
    );
    assert_eq!(
        reply.header("WWW-Authenticate"),
        Some(r#"Bearer error="insufficient_scope""#)
    );
    post(Some(&news_only), r#"{"message": "x"}"#).assert_error(
        403,
        r#"a message without a channel needs "*""#,
        "no channel without *",
    );
    // One uncovered message in a batch: nothing of it is published.
    post(
        Some(&news_only),
        r#"[{"message": "a", "channel": "news"}, {"message": "b", "channel": "sport"}]"#,
    )
    .assert_error(
        403,
        "batch element 1: the token does not allow publishing to channel sport",
        "batch",
    );
    assert_eq!(
        hub.stats()["published"],
        0,
        "a refused publish published something"
    );

    let reply = post(
        Some(&news_only),
        r#"{"message": "first", "channel": "news"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = post(Some(&everything), r#"{"message": "second"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The static --publish-token still goes anywhere.
    let reply = post(
        Some("the-static-token"),
        r#"{"message": "third", "channel": "sport"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got: Vec<String> = news.events(2).into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["first", "second"]);
    assert_eq!(hub.stats()["published"], 3);
}

#[test]
fn a_bad_publish_token_is_refused_before_the_body_is_read() {
    let hub = Hub::start_with_env("127.0.0.1:0", &[], &[("SSE_HUB_JWT_SECRET", SECRET)]);
    let expired = hs256(&json!({ "exp": now() - 3600, "sse-hub": { "publish": ["*"] } }));
    // Far more than --max-body, declared and never sent: a 413 or a wait
    // for the body would mean the body came first.
    let request = format!(
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {expired}\r\n\
         Content-Length: 100000000\r\n\r\n"
    );
    hub.exchange(request.as_bytes())
        .expect("a reply without the body")
        .assert_error(401, "it has expired", "an expired token and a huge body");
}

#[test]
fn a_token_never_appears_in_the_log() {
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &["--private", "user:*"],
        &[("SSE_HUB_JWT_SECRET", SECRET), ("RUST_LOG", "trace")],
    );
    let token = hs256(&claims(
        json!({ "subscribe": ["user:1"], "publish": ["*"] }),
    ));
    let auth = bearer(&token);
    let cookie = format!("sse_hub_token={token}");
    let (query_stream, _) = granted(&hub, &format!("/events?channel=user:1&token={token}"), &[]);
    let (header_stream, _) = granted(&hub, "/events?channel=user:1", &[("Authorization", &auth)]);
    let (cookie_stream, _) = granted(&hub, "/events?channel=user:1", &[("Cookie", &cookie)]);
    refused(&hub, &format!("/events?channel=user:2&token={token}"), &[]);
    refused(
        &hub,
        &format!("/events?channel=bad%20name&token={token}"),
        &[],
    );
    refused(&hub, &format!("/no/such/page?token={token}"), &[]);
    let reply = hub.request(
        "POST",
        "/broadcast",
        &[("Authorization", &auth)],
        br#"{"message": "x"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    for stream in [query_stream, header_stream, cookie_stream] {
        stream.close();
    }
    hub.wait_for_clients(0);

    let log = hub.log();
    assert!(log.contains("connected"), "the log says nothing: {log}");
    let signature = parts(&token)[2];
    assert!(!log.contains(signature), "a token is in the log:\n{log}");
}

#[test]
fn the_token_subcommand_prints_a_token_the_hub_takes() {
    let output = run_to_exit(
        &[
            "token",
            "--subscribe",
            "user:42",
            "--publish",
            "*",
            "--ttl",
            "1h",
        ],
        &[("SSE_HUB_JWT_SECRET", SECRET)],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();

    let data = jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &Validation::new(Algorithm::HS256),
    )
    .expect("a valid HS256 token");
    assert_eq!(
        data.claims["sse-hub"],
        json!({ "subscribe": ["user:42"], "publish": ["*"] })
    );
    let exp = data.claims["exp"].as_u64().expect("exp");
    assert!((now() + 3590..=now() + 3610).contains(&exp), "exp {exp}");

    let hub = private_hub();
    let auth = bearer(&token);
    let (mut stream, _) = granted(&hub, "/events?channel=user:42", &[("Authorization", &auth)]);
    let reply = hub.request(
        "POST",
        "/broadcast",
        &[("Authorization", &auth)],
        br#"{"message": "minted"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(stream.next_event().data, "minted");

    let unset = run_to_exit(&["token", "--subscribe", "user:42"], &[]);
    assert!(!unset.status.success());
    assert!(
        String::from_utf8_lossy(&unset.stderr).contains("SSE_HUB_JWT_SECRET is not set"),
        "{}",
        String::from_utf8_lossy(&unset.stderr)
    );
    assert!(unset.stdout.is_empty());
}

/// An environment variable and its value.
type Env<'a> = (&'a str, &'a str);

#[test]
fn access_settings_that_cannot_work_are_refused_naming_the_flag() {
    let private_key = p256::SecretKey::random(&mut rand_core::OsRng)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("PKCS#8 PEM");
    let private_file = TempFile::new("private.pem", &private_key);
    let garbage = TempFile::new(
        "garbage.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    let cases: [(&[&str], &[Env], &str); 6] = [
        (&["--private", "user:*"], &[], "--private"),
        (
            &["--private", "a*b"],
            &[("SSE_HUB_JWT_SECRET", SECRET)],
            "--private",
        ),
        (&[], &[("SSE_HUB_JWT_SECRET", "short")], "--jwt-secret"),
        (
            &["--jwt-public-key", "/no/such/key.pem"],
            &[],
            "--jwt-public-key",
        ),
        (
            &["--jwt-public-key", private_file.path()],
            &[],
            "private key",
        ),
        (
            &["--jwt-public-key", garbage.path()],
            &[],
            "--jwt-public-key",
        ),
    ];
    for (args, env, says) in cases {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let output = run_to_exit(&all, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} was accepted");
        assert!(stderr.contains(says), "{args:?} {env:?}: {stderr}");
    }

    // SSE_HUB_PRIVATE takes a comma-separated list.
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &[],
        &[
            ("SSE_HUB_JWT_SECRET", SECRET),
            ("SSE_HUB_PRIVATE", "user:*,vip"),
        ],
    );
    refused(&hub, "/events?channel=vip", &[]).assert_error(401, "vip", "vip");
    refused(&hub, "/events?channel=user:1", &[]).assert_error(401, "user:1", "user:1");
    granted(&hub, "/events?channel=news", &[]);
}
