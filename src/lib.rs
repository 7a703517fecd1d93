//! # sse-hub
//!
//! A Server-Sent Events broadcaster on plain threads. One process holds many
//! long-lived `text/event-stream` connections and fans every published
//! message out to all of them, or to the members of a channel, with message
//! IDs, `Last-Event-ID` resume and heartbeats. No async runtime.
//!
//! The crate has two floors:
//!
//! - **The hub** ([`Hub`], [`EventStream`], [`Subscription`]) needs no
//!   socket. Start one, publish from any thread, subscribe inside the
//!   process, or write a subscriber's whole event stream to any [`Write`]:
//!   a socket your own HTTP server accepted, or a buffer in a test.
//! - **The server** ([`Server`]) is an HTTP server around a hub, on
//!   tiny_http: `GET /events`, `POST /broadcast`, a web client, `/stats`
//!   and `/metrics`. The `sse-hub` binary is this server and a command
//!   line.
//!
//! Either can be one node of a cluster (`src/cluster/`, the `cluster`
//! feature): hubs that share one Redis stream, so that a message published
//! on any node reaches the subscribers of every node with one ID, in one
//! order, and a client resumes on any node.
//!
//! A message takes this path, one module per room on it:
//!
//! ```text
//!  publisher ──> Hub::publish ──> hub thread ──> each subscriber's queue ──> writer ──> socket
//!  (any thread)  encodes once     IDs, history,  bounded; a full one        one batch,
//!                                 fan-out of     drops its subscriber       one write
//!                                 shared bytes
//! ```
//!
//! At steady traffic one step is skipped: a frame for a stream whose
//! writer sleeps on an empty queue, and that goes plain onto a socket, is
//! sent by the hub thread itself with one non-blocking `send`, so no
//! thread wakes (`core/direct.rs`). The writer stays the stream's owner:
//! whatever does not go out at once, heartbeats, replay and the end are
//! its, and it alone blocks on the socket.
//!
//! `docs/PROTOCOL.md` in the repository walks
//! through the protocol and this code together.
//!
//! # A hub without sockets
//!
//! ```
//! use sse_hub::{Channel, Event, Hub, HubConfig};
//!
//! let hub = Hub::start(HubConfig::default())?;
//! let news = Channel::new("news")?;
//! let mut reader = hub.subscribe(&[news.clone()], None)?;
//!
//! // From any thread: the hub thread orders, numbers and fans out.
//! let publisher = hub.clone();
//! std::thread::spawn(move || {
//!     let event = Event::new("rain at noon").with_name("forecast")?;
//!     publisher.publish(&event, Some(&news))
//! })
//! .join()
//! .unwrap()?;
//!
//! let frame = reader.recv().expect("a message");
//! assert!(std::str::from_utf8(&frame).unwrap().ends_with("event: forecast\ndata: rain at noon\n\n"));
//! # Ok::<(), sse_hub::Error>(())
//! ```
//!
//! # Serving streams from your own server
//!
//! Hand the connection's socket and the request's query and
//! `Last-Event-ID` over, and the stream is the same one `GET /events`
//! serves, watched the same way: [`EventStream::run_on_socket`] gives the
//! socket the hub's [write timeout](HubConfig::write_timeout) and has the
//! hub's hang-up watcher see at once when the subscriber leaves.
//! [`EventStream::run_through`] does the same when the bytes go through a
//! framework's writer (with [`find_connection`] for a framework that hands
//! over the connection without its socket), and [`EventStream::run`] takes
//! any writer, with neither. A framework's `Read` response body cannot
//! carry a stream live (see [`EventStream::run`]): hand over the connection
//! after the head instead ([`Framing::BodyOnly`]). Here on a plain
//! [`TcpListener`](std::net::TcpListener):
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::{TcpListener, TcpStream};
//! use sse_hub::{Event, EventStream, Hub, HubConfig, StreamRequest};
//!
//! let hub = Hub::start(HubConfig::default())?;
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//!
//! let server_hub = hub.clone();
//! std::thread::spawn(move || {
//!     let (socket, _) = listener.accept().unwrap();
//!     // (A real server reads the request line and headers here.)
//!     let request = StreamRequest::from_query("channel=news", None).unwrap();
//!     if let Ok(stream) = EventStream::open(&server_hub, request) {
//!         stream.run_on_socket(&socket);
//!     }
//! });
//!
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"GET /events?channel=news HTTP/1.1\r\n\r\n").unwrap();
//! let mut lines = BufReader::new(client).lines().map(Result::unwrap);
//! assert_eq!(lines.next().unwrap(), "HTTP/1.1 200 OK");
//! // The `connection` event's data comes once the subscriber is registered:
//! let hello = lines.by_ref().find(|l| l.contains("data: {\"client\"")).unwrap();
//! assert!(hello.contains("\"channels\":[\"news\"]"));
//!
//! hub.publish(&Event::new("hello"), None)?;
//! assert!(lines.any(|l| l.contains("data: hello")));
//! # Ok::<(), sse_hub::Error>(())
//! ```
//!
//! # The server
//!
//! With the `server` feature:
//!
//! ```
//! use sse_hub::{Config, Server};
//!
//! let server = Server::bind(Config {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     ..Config::default()
//! })?;
//! println!("listening on http://{}", server.local_addr());
//! let hub = server.hub(); // publish into the server's streams
//! hub.publish(&sse_hub::Event::new("hello"), None)?;
//! server.stopper().stop(); // from any thread, e.g. a signal handler
//! server.run()?; // serves until stopped
//! # Ok::<(), sse_hub::Error>(())
//! ```
//!
//! # Features
//!
//! All on by default, and all in the binary:
//!
//! - `server`: the HTTP server ([`Server`], [`Config`]) on the vendored
//!   tiny_http fork.
//! - `gzip`: gzip event streams ([`StreamRequest::offer_gzip`], the
//!   server's `--compress`), on zlib.
//! - `cluster`: hubs that share one Redis stream
//!   ([`ClusterConfig::start_hub`], `Config::cluster`), through the `redis`
//!   crate's blocking client.
//! - `jwt`: private channels and scoped publishing with JSON Web Tokens,
//!   checked by the server.
//! - `cli`: the `sse-hub` binary's command line, logs and signals, and all
//!   of the above.
//!
//! With `default-features = false` the crate is the socket-free hub alone:
//! [`Hub`], [`Subscription`], [`EventStream`] on any [`Write`], and the
//! wire format, with none of those dependencies.
//!
//! [`Write`]: std::io::Write
#![cfg_attr(
    not(feature = "server"),
    doc = "[`Server`]: #features\n[`Config`]: #features"
)]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cluster;
mod core;
mod error;
#[cfg(feature = "server")]
mod server;
#[cfg(test)]
mod testkit;

pub use crate::cluster::{ClusterConfig, DEFAULT_STREAM};
pub use crate::core::channel::{self, Channel, Pattern};
pub use crate::core::client_id::ClientId;
pub use crate::core::closed::Closed;
pub use crate::core::config::{HubConfig, MAX_DURATION};
pub use crate::core::event_id::{self, EventId};
pub use crate::core::metrics::{RedisState, Stats};
pub use crate::core::presence::Member;
pub use crate::core::publish::{MAX_BATCH_MESSAGES, PublishBody};
pub use crate::core::socket::find_connection;
pub use crate::core::sse::{self, Event, EventName, Frame};
pub use crate::core::stream::{Ended, EventStream, Framing, StreamRequest};
pub use crate::core::{Hub, Message, Published, PublishedBatch, ReceivedEvent, Subscription};
pub use crate::error::Error;
#[cfg(feature = "server")]
pub use crate::server::config::Config;
#[cfg(feature = "tls")]
pub use crate::server::tls::{TlsFiles, TlsReloader};
#[cfg(feature = "server")]
pub use crate::server::{Server, Stopper, access, capacity};

/// The README's Rust snippets, compiled and run as doctests, so that what a
/// reader pastes works as written.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeSnippets;
