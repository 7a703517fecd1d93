//! A complete SSE hub on a plain `std::net::TcpListener`: one thread per
//! connection, HTTP read by hand, the hub from sse-hub. `GET /events`
//! streams, `POST /broadcast` publishes, `GET /stats` shows the hub. Each
//! stream runs on its socket with `run_on_socket`, as sse-hub's own server
//! runs it: a client that leaves is gone at once, and one that stops
//! reading is dropped within the write timeout.
//!
//! ```sh
//! cargo run --example std_only -- 127.0.0.1:3000
//! curl -N http://127.0.0.1:3000/events
//! curl -d '{"message": "hello"}' http://127.0.0.1:3000/broadcast
//! curl http://127.0.0.1:3000/stats
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use sse_hub::{Error, EventStream, Hub, HubConfig, PublishBody, StreamRequest};

const MAX_BODY: usize = 64 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:3000".into());
    let listener = TcpListener::bind(addr)?;
    let hub = Hub::start(HubConfig::default())?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    for connection in listener.incoming().flatten() {
        let hub = hub.clone();
        thread::spawn(move || {
            if let Err(e) = serve(&hub, connection) {
                eprintln!("connection failed: {e}");
            }
        });
    }
    Ok(())
}

/// One request per connection, then the connection closes.
fn serve(hub: &Hub, mut connection: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(connection.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    // The headers that matter here: Last-Event-ID and Content-Length.
    let (mut last_event_id, mut length) = (None, 0);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "last-event-id" => last_event_id = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap_or(usize::MAX),
                _ => {}
            }
        }
    }

    let outcome: Result<Option<String>, Error> = match (method, path) {
        ("GET", "/events") => StreamRequest::from_query(query, last_event_id.as_deref())
            .and_then(|request| EventStream::open(hub, request))
            // Head, `connection` event, replay, then live events and
            // heartbeats until the client leaves or the hub stops.
            .map(|stream| drop(stream.run_on_socket(&connection)))
            .map(|()| None),
        ("GET", "/stats") => hub.stats().map(|stats| Some(json(&stats))),
        ("POST", "/broadcast") if length <= MAX_BODY => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            PublishBody::parse(&body).and_then(|body| body.publish(hub).map(Some))
        }
        ("POST", "/broadcast") => return reply(&mut connection, "413 Content Too Large", "{}"),
        _ => return reply(&mut connection, "404 Not Found", "{}"),
    };
    match outcome {
        Ok(None) => Ok(()),
        Ok(Some(json)) => reply(&mut connection, "200 OK", &json),
        // The error's own status, `Retry-After` where one applies, and the
        // JSON body.
        Err(e) => connection.write_all(&e.to_http_response(None)),
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn reply(connection: &mut TcpStream, status: &str, json: &str) -> io::Result<()> {
    write!(
        connection,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    )
}
