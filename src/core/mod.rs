//! The hub without sockets: everything an application needs to publish
//! and to serve event streams, whatever serves its HTTP.
//!
//! A message takes this path: a [`Hub`] handle (`hub/mod.rs`) encodes it
//! on the publisher's thread and sends it to the hub thread
//! (`hub/thread.rs`), which gives it its ID, keeps it in the history
//! (`history.rs`) and queues one shared frame for every subscriber
//! (`queue.rs`); each subscriber's thread takes everything queued and
//! writes it to its stream in one batch (`stream/`), or hands it to an
//! in-process [`Subscription`] (`subscription.rs`). Nothing here opens a
//! socket or changes anything for the rest of the process. In a cluster,
//! publishes go through a shared log instead of the hub's own clock; the
//! core sees that log only as the trait in `upstream.rs`.

pub mod channel;
pub(crate) mod client_id;
pub(crate) mod closed;
pub(crate) mod command;
pub(crate) mod config;
pub(crate) mod direct;
pub mod event_id;
pub(crate) mod gzip;
pub(crate) mod hangup;
pub(crate) mod history;
pub(crate) mod hub;
pub(crate) mod metrics;
pub(crate) mod presence;
pub(crate) mod publish;
pub(crate) mod queue;
pub(crate) mod socket;
pub mod sse;
pub(crate) mod stream;
pub(crate) mod subscription;
pub(crate) mod upstream;

pub use hub::{Hub, Message, Published, PublishedBatch};
pub use subscription::{ReceivedEvent, Subscription};
