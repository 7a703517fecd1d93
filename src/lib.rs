//! # sse-hub
//!
//! A Server-Sent Events broadcaster on plain threads. One process holds many
//! long-lived `text/event-stream` connections and fans every published
//! message out to all of them, or to the members of a channel, with message
//! IDs, `Last-Event-ID` resume and heartbeats. No async runtime: a request
//! takes this path, one module per room on it.
//!
//! ```text
//!  socket ─> http (acceptor ─> worker pool ─> route)
//!               ├─ GET /events ─────> writer thread (client.rs) <─┐
//!               └─ POST /broadcast ─> hub thread (hub.rs) ─────────┘
//!                                     ids, history, fan-out into
//!                                     each subscriber's queue
//! ```
//!
//! - [`sse`]: the wire format; an event is encoded once into a shared
//!   [`Frame`].
//! - [`event_id`]: `<ms>-<seq>` IDs that only grow.
//! - [`channel`]: channel names.
//! - `history`: the replay buffer behind `Last-Event-ID`.
//! - `hub`: the one thread that owns the registry and fans out.
//! - `client`: a subscriber's writer thread, batching queued frames into one
//!   write.
//! - `http`: requests, routes, the web client, and the defences tiny_http
//!   needs.
//! - [`Server`]: starts and supervises all of it.
//!
//! # Example
//!
//! ```no_run
//! use sse_hub::{Config, Event, Server};
//!
//! let server = Server::bind(Config::default())?;
//! let hub = server.hub();
//! std::thread::spawn(move || {
//!     for n in 0.. {
//!         let _ = hub.publish(&Event::new(format!("tick {n}")), None);
//!         std::thread::sleep(std::time::Duration::from_secs(1));
//!     }
//! });
//! server.run()?;
//! # Ok::<(), sse_hub::Error>(())
//! ```

pub mod capacity;
pub mod channel;
mod client;
mod config;
mod error;
pub mod event_id;
mod history;
mod http;
mod hub;
mod metrics;
mod server;
pub mod sse;

pub use channel::Channel;
pub use config::Config;
pub use error::Error;
pub use event_id::EventId;
pub use hub::{ClientId, HubHandle, Published, Subscription};
pub use metrics::Stats;
pub use server::{Server, Stopper};
pub use sse::{Event, EventName, Frame};
