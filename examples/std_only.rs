//! A complete SSE hub on a plain `std::net::TcpListener`: one thread per
//! connection, HTTP read by hand, the hub from sse-hub. `GET /events`
//! streams, `POST /broadcast` publishes. (A client that leaves is noticed
//! at the next write to it, a heartbeat at the latest; sse-hub's own server
//! also watches each socket to notice at once.)
//!
//! ```sh
//! cargo run --example std_only -- 127.0.0.1:3000
//! curl -N http://127.0.0.1:3000/events
//! curl -d '{"message": "hello"}' http://127.0.0.1:3000/broadcast
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use sse_hub::{Error, EventStream, Hub, HubConfig, PublishBody, StreamRequest};

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
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }

    let outcome = match (method, path) {
        ("GET", "/events") => StreamRequest::from_query(query, last_event_id.as_deref())
            .and_then(|request| EventStream::open(hub, request))
            // Head, `connection` event, replay, then live events and
            // heartbeats until the client leaves or the hub stops.
            .map(|stream| drop(stream.run(&connection)))
            .map(|()| None),
        ("POST", "/broadcast") if length <= 65_536 => {
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
        Err(e) => {
            let status = match e {
                Error::HubFull | Error::HubStopped => "503 Service Unavailable",
                _ => "400 Bad Request",
            };
            let json = serde_json::json!({ "error": e.to_string() });
            reply(&mut connection, status, &json.to_string())
        }
    }
}

fn reply(connection: &mut TcpStream, status: &str, json: &str) -> io::Result<()> {
    write!(
        connection,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    )
}
