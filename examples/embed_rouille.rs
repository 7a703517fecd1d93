//! A rouille application that adds the hub's routes to its own: `GET
//! /events` streams, `POST /broadcast` publishes (the body as sse-hub's
//! server takes it), `GET /stats` shows the hub.
//!
//! An event stream cannot be a rouille response *body*: rouille reads a
//! body from a `Read` and writes it through tiny_http's chunked encoder,
//! which buffers 8 KiB, so a subscriber would see nothing until the buffer
//! filled, and a subscriber that left would never be noticed. Instead the
//! response is an `Upgrade`: rouille writes the head (with the stream's
//! own header fields) and hands over the connection, and the stream writes
//! its body there, event by event, until it ends. The body is
//! close-delimited: rouille sends neither `Content-Length` nor chunking
//! with an upgrade, and the connection closes when the stream ends. (Its
//! head also says `Connection: upgrade` and an empty `Upgrade:`, which
//! clients ignore on a `200`.)
//!
//! ```sh
//! cargo run --example embed_rouille -- 127.0.0.1:3000
//! curl -N http://127.0.0.1:3000/events
//! curl -d '{"message": "hello"}' http://127.0.0.1:3000/broadcast
//! curl http://127.0.0.1:3000/stats
//! ```

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rouille::{ReadWrite, Request, Response, ResponseBody, Upgrade};
use sse_hub::{
    Error, EventStream, Framing, Hub, HubConfig, PublishBody, StreamRequest, find_connection,
};

const MAX_BODY: u64 = 64 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:3000".into());
    let hub = Hub::start(HubConfig::default())?;
    // Known once the server is bound (the address may say port 0).
    let port = Arc::new(OnceLock::new());
    let server = rouille::Server::new(addr, {
        let port = Arc::clone(&port);
        move |request| route(&hub, port.get().copied().unwrap_or(0), request)
    })?;
    let _ = port.set(server.server_addr().port());
    eprintln!("listening on http://{}", server.server_addr());
    // rouille gives every request a thread of its own; a stream keeps it.
    server.run();
    Ok(())
}

fn route(hub: &Hub, port: u16, request: &Request) -> Response {
    match (request.method(), request.url().as_str()) {
        ("GET", "/events") => subscribe(hub, port, request),
        ("GET", "/stats") => match hub.stats() {
            Ok(stats) => Response::json(&stats),
            Err(e) => error(&e),
        },
        ("POST", "/broadcast") => publish(hub, request),
        _ => Response::json(&serde_json::json!({"error": "not found"})).with_status_code(404),
    }
}

fn subscribe(hub: &Hub, port: u16, request: &Request) -> Response {
    let wanted =
        StreamRequest::from_query(request.raw_query_string(), request.header("Last-Event-ID"))
            .and_then(|wanted| wanted.cors_origin("*"))
            // rouille writes the head; the stream writes only the body.
            .map(|wanted| wanted.framing(Framing::BodyOnly));
    let stream = match wanted.and_then(|wanted| EventStream::open(hub, wanted)) {
        Ok(stream) => stream,
        Err(e) => return error(&e),
    };
    Response {
        status_code: 200,
        // Content type, caching, proxy buffering, CORS, content encoding.
        headers: stream
            .response_headers()
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect(),
        data: ResponseBody::empty(),
        upgrade: Some(Box::new(Stream {
            stream: Some(stream),
            port,
            peer: *request.remote_addr(),
        })),
    }
}

/// The stream, waiting for rouille to hand over the connection.
struct Stream {
    stream: Option<EventStream>,
    port: u16,
    peer: SocketAddr,
}

impl Upgrade for Stream {
    /// Runs on the request's thread, after the head, for the whole stream.
    fn build(&mut self, connection: Box<dyn ReadWrite + Send>) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // rouille hands over a boxed reader-writer, with no way to reach
        // the socket under it; but the socket is one of this process's
        // descriptors, named by the connection's two addresses. With it the
        // stream gets the hub's write timeout and the hang-up watcher, as
        // in sse-hub's own server.
        match find_connection(self.port, self.peer) {
            Ok(socket) => drop(stream.run_through(connection, &socket)),
            Err(e) => {
                // Only off Linux: a hang-up is then seen at a failed write,
                // and no write timeout bounds a stalled reader.
                eprintln!("stream to {} runs unwatched: {e}", self.peer);
                drop(stream.run(connection));
            }
        }
    }
}

fn publish(hub: &Hub, request: &Request) -> Response {
    let Some(body) = request.data() else {
        return Response::empty_400();
    };
    let mut bytes = Vec::new();
    if body.take(MAX_BODY + 1).read_to_end(&mut bytes).is_err() || bytes.len() as u64 > MAX_BODY {
        return Response::json(&serde_json::json!({"error": "body too large"}))
            .with_status_code(413);
    }
    match PublishBody::parse(&bytes).and_then(|body| body.publish(hub)) {
        Ok(reply) => Response::from_data("application/json", reply),
        Err(e) => error(&e),
    }
}

/// The error's own status, with `Retry-After` where one applies.
fn error(error: &Error) -> Response {
    let response = Response::from_data("application/json", error.to_json())
        .with_status_code(error.status())
        .with_additional_header("Access-Control-Allow-Origin", "*");
    match error.retry_after() {
        Some(secs) => response.with_additional_header("Retry-After", secs.to_string()),
        None => response,
    }
}
