//! The axum peer in BENCHMARKS.md: a Server-Sent Events broadcaster written
//! the way a Rust developer would write one with axum, and not tuned. One
//! `tokio::sync::broadcast` channel carries every published message; each
//! event stream is a receiver of it, filtered by channel and turned into
//! axum `Event`s. It speaks sse-hub's routes, so `bench/loadgen` drives both
//! the same way:
//!
//!   GET  /events?channel=NAME  text/event-stream, a `connection` event first
//!   POST /broadcast            {"message": ..., "event": "...", "channel": "..."}
//!                              -> {"id": "<ms>-<seq>", "clients": n}, or an
//!                              array of them -> {"ids": [...], "clients": n}
//!   GET  /healthz, GET /stats  "ok"; {"clients": n, "lagged": n}
//!
//! A stream that falls more than `--capacity` messages behind skips the
//! oldest (the channel's `Lagged`; `/stats` counts them). `Last-Event-ID` is
//! ignored, and `clients` in a reply counts every open stream.
//!
//! Usage: axum-peer [--listen 127.0.0.1:3000] [--capacity 1024]
//! Logs `listening on http://IP:PORT` on stderr once it is bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

const MAX_BATCH: usize = 1000;
const MAX_CHANNELS: usize = 32;

#[derive(Clone, Debug)]
struct Message {
    id: String,
    event: Option<String>,
    channel: Option<String>,
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    message: Value,
    event: Option<String>,
    channel: Option<String>,
}

/// IDs `<ms>-<seq>`: Unix milliseconds and a counter within the millisecond.
struct IdClock {
    ms: u64,
    seq: u64,
}

impl IdClock {
    fn next(&mut self) -> String {
        let now = unix_ms();
        if now > self.ms {
            (self.ms, self.seq) = (now, 0);
        } else {
            self.seq += 1;
        }
        self.last()
    }

    fn last(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }
}

struct AppState {
    tx: broadcast::Sender<Message>,
    /// Held while sending too, so the channel's order is the IDs' order.
    ids: Mutex<IdClock>,
    next_client: AtomicU64,
    lagged: AtomicU64,
}

type Shared = Arc<AppState>;
type Rejection = (StatusCode, Json<Value>);

fn bad_request(why: String) -> Rejection {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": why })))
}

fn unix_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_millis() as u64
}

fn valid_channel(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

async fn events(
    State(state): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Rejection> {
    let mut channels: Vec<String> = query
        .into_iter()
        .filter(|(key, _)| key == "channel")
        .map(|(_, value)| value)
        .collect();
    channels.sort();
    channels.dedup();
    if channels.len() > MAX_CHANNELS || !channels.iter().all(|c| valid_channel(c)) {
        return Err(bad_request("bad or too many channels".into()));
    }
    let client = state.next_client.fetch_add(1, Ordering::Relaxed);
    let (rx, resume) = {
        let ids = state.ids.lock().unwrap();
        (state.tx.subscribe(), ids.last())
    };
    let hello = Event::default()
        .event("connection")
        .id(resume)
        .retry(Duration::from_millis(3000))
        .json_data(json!({ "client": client.to_string(), "channels": channels }))
        .expect("a JSON value serializes");
    let live = BroadcastStream::new(rx).filter_map(move |received| match received {
        Ok(message) => {
            let wanted = match &message.channel {
                Some(channel) => channels.contains(channel),
                None => true,
            };
            wanted.then(|| Ok(to_event(message)))
        }
        Err(BroadcastStreamRecvError::Lagged(skipped)) => {
            state.lagged.fetch_add(skipped, Ordering::Relaxed);
            None
        }
    });
    let stream = tokio_stream::once(Ok(hello)).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn to_event(message: Message) -> Event {
    let event = Event::default().id(message.id).data(message.data);
    match message.event {
        Some(name) => event.event(name),
        None => event,
    }
}

async fn broadcast(State(state): State<Shared>, body: Bytes) -> Result<Response, Rejection> {
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("body is not JSON: {e}")))?;
    let Value::Array(items) = body else {
        let (mut ids, clients) = state.publish(vec![parse(body).map_err(bad_request)?]);
        return Ok(Json(json!({ "id": ids.pop(), "clients": clients })).into_response());
    };
    if items.len() > MAX_BATCH {
        return Err(bad_request(format!("more than {MAX_BATCH} messages")));
    }
    let batch = items
        .into_iter()
        .enumerate()
        .map(|(at, item)| parse(item).map_err(|why| bad_request(format!("element {at}: {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let (ids, clients) = state.publish(batch);
    Ok(Json(json!({ "ids": ids, "clients": clients })).into_response())
}

fn parse(item: Value) -> Result<Publish, String> {
    let publish: Publish = serde_json::from_value(item).map_err(|e| e.to_string())?;
    if let Some(name) = &publish.event {
        let reserved = name == "connection" || name == "gap";
        if !(1..=64).contains(&name.len()) || name.contains(['\r', '\n', '\0']) || reserved {
            return Err(format!("bad event name {name:?}"));
        }
    }
    if let Some(channel) = &publish.channel {
        if !valid_channel(channel) {
            return Err(format!("bad channel {channel:?}"));
        }
    }
    Ok(publish)
}

impl AppState {
    /// Sends the batch in order; returns its IDs and the most receivers
    /// any message of it had.
    fn publish(&self, batch: Vec<Publish>) -> (Vec<String>, usize) {
        let mut clock = self.ids.lock().unwrap();
        let mut clients = 0;
        let ids = batch
            .into_iter()
            .map(|publish| {
                let id = clock.next();
                let data = match publish.message {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                let message = Message {
                    id: id.clone(),
                    event: publish.event,
                    channel: publish.channel,
                    data,
                };
                // An error means no receiver: published to nobody.
                clients = clients.max(self.tx.send(message).unwrap_or(0));
                id
            })
            .collect();
        (ids, clients)
    }
}

async fn stats(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "clients": state.tx.receiver_count(),
        "lagged": state.lagged.load(Ordering::Relaxed),
    }))
}

async fn shutdown() {
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().unwrap();
    let mut capacity = 1024;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => listen = value.parse().expect("--listen takes IP:PORT"),
            ("--capacity", Some(value)) => capacity = value.parse().expect("--capacity takes N"),
            _ => {
                eprintln!("usage: axum-peer [--listen IP:PORT] [--capacity N]");
                std::process::exit(2);
            }
        }
    }
    let (tx, _) = broadcast::channel(capacity);
    let state = Arc::new(AppState {
        tx,
        ids: Mutex::new(IdClock {
            ms: unix_ms(),
            seq: 0,
        }),
        next_client: AtomicU64::new(1),
        lagged: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/events", get(events))
        .route("/broadcast", post(broadcast))
        .route("/healthz", get(|| async { "ok" }))
        .route("/stats", get(stats))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("cannot bind");
    eprintln!("listening on http://{}", listener.local_addr().unwrap());
    tokio::select! {
        served = axum::serve(listener, app) => served.expect("the server failed"),
        () = shutdown() => {}
    }
}
