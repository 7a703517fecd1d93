//! The classic first SSE demo: the current time, every few seconds, to
//! every browser that listens. The whole server is sse-hub's own; the
//! application is one loop that publishes.
//!
//! ```sh
//! cargo run --example ticker                       # every 5 s on 127.0.0.1:3000
//! cargo run --example ticker -- 127.0.0.1:0 1      # any free port, every second
//! curl -N http://127.0.0.1:3000/events
//! ```
//!
//! Or open <http://127.0.0.1:3000/> and watch the `tick` events arrive.

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sse_hub::{Config, Event, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or("127.0.0.1:3000".into()).parse()?;
    let every = Duration::from_secs(args.next().map_or(Ok(5), |s| s.parse())?);

    let server = Server::bind(Config {
        listen,
        ..Config::default()
    })?;
    eprintln!("listening on http://{}", server.local_addr());

    let hub = server.hub();
    thread::spawn(move || {
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let time = format!(
                "{:02}:{:02}:{:02} UTC",
                now / 3600 % 24,
                now / 60 % 60,
                now % 60
            );
            let tick = Event::new(time).with_name("tick").expect("a valid name");
            if hub.publish(&tick, None).is_err() {
                return; // the server has stopped
            }
            thread::sleep(every);
        }
    });
    server.run()?;
    Ok(())
}
