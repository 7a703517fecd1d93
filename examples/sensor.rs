//! A blocking program that reads a sensor in a loop publishes each reading,
//! and another part of the same program follows them as an in-process
//! subscriber: no socket between them, the hub is a library here. The one
//! socket is for an operator: `GET /stats` shows the hub's figures while
//! the readings run.
//!
//! ```sh
//! cargo run --example sensor                        # ten readings, on 127.0.0.1:3000
//! cargo run --example sensor -- 127.0.0.1:0 3       # three, on any free port
//! curl http://127.0.0.1:3000/stats
//! ```
//!
//! A real program would also serve the readings over HTTP: see
//! `ticker.rs` (sse-hub's server) or `embed_tiny_http.rs` (your own).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use sse_hub::{Channel, Event, Hub, HubConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listener = TcpListener::bind(args.next().unwrap_or("127.0.0.1:3000".into()))?;
    let readings: u32 = args.next().map_or(Ok(10), |n| n.parse())?;
    let hub = Hub::start(HubConfig::default())?;
    let greenhouse = Channel::new("greenhouse")?;

    eprintln!("listening on http://{}", listener.local_addr()?);
    thread::spawn({
        let hub = hub.clone();
        move || {
            for connection in listener.incoming().flatten() {
                let _ = stats(&hub, connection);
            }
        }
    });

    // The logger subscribes before the first reading, so it misses none.
    let mut log = hub.subscribe(std::slice::from_ref(&greenhouse), None)?;
    let logger = thread::spawn(move || {
        // Ends when the hub stops.
        for frame in &mut log {
            for event in frame.dispatch() {
                println!(
                    "{} {} {}",
                    event.last_event_id, event.event_type, event.data
                );
            }
        }
    });

    for n in 0..readings {
        let celsius = 20.0 + f64::from(n % 7) * 0.25; // a stand-in for a real sensor
        let reading = Event::new(format!("{{\"celsius\":{celsius:.2}}}")).with_name("reading")?;
        hub.publish(&reading, Some(&greenhouse))?;
        thread::sleep(Duration::from_millis(100));
    }
    hub.stop();
    logger.join().expect("the logger");
    Ok(())
}

/// Answers one request on `connection`: `GET /stats`, or 404.
fn stats(hub: &Hub, mut connection: TcpStream) -> std::io::Result<()> {
    // One thread answers every operator: none may hold it.
    connection.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request_line = String::new();
    BufReader::new(&connection).read_line(&mut request_line)?;
    if !request_line.starts_with("GET /stats ") {
        return reply(&mut connection, "404 Not Found", r#"{"error":"not found"}"#);
    }
    match hub.stats() {
        Ok(stats) => reply(
            &mut connection,
            "200 OK",
            &serde_json::json!(stats).to_string(),
        ),
        // Its own status and JSON body.
        Err(e) => connection.write_all(&e.to_http_response(None)),
    }
}

fn reply(connection: &mut TcpStream, status: &str, json: &str) -> std::io::Result<()> {
    write!(
        connection,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    )
}
