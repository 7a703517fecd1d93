//! A blocking program that reads a sensor in a loop publishes each reading,
//! and another part of the same program follows them as an in-process
//! subscriber. No socket anywhere: the hub is a library here.
//!
//! ```sh
//! cargo run --example sensor            # ten readings
//! cargo run --example sensor -- 3       # three
//! ```
//!
//! A real program would also serve the readings over HTTP: see
//! `ticker.rs` (sse-hub's server) or `embed_tiny_http.rs` (your own).

use std::thread;
use std::time::Duration;

use sse_hub::{Channel, Event, Hub, HubConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let readings: u32 = std::env::args().nth(1).map_or(Ok(10), |n| n.parse())?;
    let hub = Hub::start(HubConfig::default())?;
    let greenhouse = Channel::new("greenhouse")?;

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
