//! An application with its own HTTP server, the published tiny_http, and
//! its own routes, that adds the hub's routes to them: `GET /events`
//! streams exactly what sse-hub's server would, `POST /broadcast`
//! publishes, with a bearer token, a body limit and the CORS header, and
//! `GET /stats` shows the hub. Its own code publishes too (every `/` visit
//! is announced).
//!
//! tiny_http hands over the connection as a writer with no socket in
//! reach, so the stream finds its socket by its two addresses
//! (`sse_hub::find_connection`) and runs with `run_through`: the socket
//! gets the write timeout and is watched for hang-ups, as in sse-hub's own
//! server.
//!
//! ```sh
//! PUBLISH_TOKEN=secret cargo run --example embed_tiny_http -- 127.0.0.1:3000
//! curl -N http://127.0.0.1:3000/events
//! curl -H 'Authorization: Bearer secret' -d '{"message": "hi"}' http://127.0.0.1:3000/broadcast
//! curl http://127.0.0.1:3000/
//! ```

use std::io::Read;
use std::thread;

use sse_hub::{
    Error, Event, EventStream, Framing, Hub, HubConfig, PublishBody, StreamRequest, find_connection,
};
use tiny_http::{Header, Method, Request, Response, Server};

const MAX_BODY: u64 = 64 * 1024;
const ORIGIN: &str = "*";

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:3000".into());
    let server = Server::http(addr)?;
    let hub = Hub::start(HubConfig::default())?;
    let token = std::env::var("PUBLISH_TOKEN").ok();
    let port = server.server_addr().to_ip().map_or(0, |addr| addr.port());
    eprintln!("listening on http://{}", server.server_addr());

    for request in server.incoming_requests() {
        let (hub, token) = (hub.clone(), token.clone());
        // A stream lasts as long as its client: every request gets a thread.
        thread::spawn(move || handle(&hub, token.as_deref(), port, request));
    }
    Ok(())
}

fn handle(hub: &Hub, token: Option<&str>, port: u16, mut request: Request) {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    match (request.method(), path) {
        // The application's own route.
        (Method::Get, "/") => {
            let _ = hub.publish(&Event::new("someone visited /"), None);
            let _ = request.respond(Response::from_string("Hello from the application.\n"));
        }
        (Method::Get, "/events") => {
            let last_event_id = header(&request, "Last-Event-ID");
            let stream = StreamRequest::from_query(query, last_event_id.as_deref())
                .and_then(|wanted| wanted.cors_origin(ORIGIN))
                .map(|wanted| match request.http_version().1 {
                    0 => wanted.framing(Framing::CloseDelimited),
                    _ => wanted,
                })
                .and_then(|wanted| EventStream::open(hub, wanted));
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => return error(request, &e),
            };
            let socket = request
                .remote_addr()
                .map(|peer| find_connection(port, *peer));
            // The stream writes its own head; tiny_http hands over the
            // connection.
            let out = request.into_writer();
            match socket {
                Some(Ok(socket)) => drop(stream.run_through(out, &socket)),
                // Not on Linux: unwatched, no write timeout (see `run`).
                _ => drop(stream.run(out)),
            }
        }
        (Method::Get, "/stats") => match hub.stats() {
            Ok(stats) => json(request, 200, &serde_json::json!(stats).to_string()),
            Err(e) => error(request, &e),
        },
        (Method::Post, "/broadcast") => {
            let bearer = header(&request, "Authorization");
            if token.is_some_and(|t| bearer.as_deref() != Some(&format!("Bearer {t}"))) {
                return json(request, 401, r#"{"error":"missing or wrong bearer token"}"#);
            }
            let mut body = Vec::new();
            let read = request
                .as_reader()
                .take(MAX_BODY + 1)
                .read_to_end(&mut body);
            if read.is_err() || body.len() as u64 > MAX_BODY {
                return json(request, 413, r#"{"error":"body too large"}"#);
            }
            match PublishBody::parse(&body).and_then(|body| body.publish(hub)) {
                Ok(reply) => json(request, 200, &reply),
                Err(e) => error(request, &e),
            }
        }
        _ => json(request, 404, r#"{"error":"not found"}"#),
    }
}

fn header(request: &Request, name: &'static str) -> Option<String> {
    let header = request.headers().iter().find(|h| h.field.equiv(name))?;
    Some(header.value.as_str().to_owned())
}

/// The error's own status, with `Retry-After` where one applies.
fn error(request: Request, error: &Error) {
    let mut response = response(error.status(), &error.to_json());
    if let Some(secs) = error.retry_after() {
        response.add_header(header_field("Retry-After", &secs.to_string()));
    }
    let _ = request.respond(response);
}

fn json(request: Request, status: u16, body: &str) {
    let _ = request.respond(response(status, body));
}

fn response(status: u16, json: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(json)
        .with_status_code(status)
        .with_header(header_field("Content-Type", "application/json"))
        .with_header(header_field("Access-Control-Allow-Origin", ORIGIN))
}

fn header_field(name: &str, value: &str) -> Header {
    Header::from_bytes(name, value).expect("a valid header field")
}
