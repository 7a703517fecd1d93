//! The messages other threads send the hub thread, and its answers.
//!
//! Every change to the hub's state arrives as one [`Command`] on its
//! channel, so the order in which the hub takes them is the one true order
//! of events: IDs, history and fan-out all follow it. A command that needs
//! an answer carries a one-shot channel for it.

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::core::channel::{Channel, Pattern};
use crate::core::client_id::ClientId;
use crate::core::closed::Closed;
use crate::core::event_id::EventId;
use crate::core::history::Replay;
use crate::core::metrics::Stats;
use crate::core::queue::Queue;
use crate::core::upstream::{Incoming, Until};
use crate::error::Error;

/// One message to publish: its encoded body (`event:` and `data:` lines,
/// without the `id:` line only the hub writes) and its channel.
pub(crate) struct Outgoing {
    pub(crate) body: Vec<u8>,
    pub(crate) channel: Option<Channel>,
}

/// What the hub answers to a publish.
#[derive(Debug)]
pub(crate) struct Receipt {
    /// The ID of each message, in order.
    pub(crate) ids: Vec<EventId>,
    /// Subscribers that at least one of the messages was queued for.
    pub(crate) clients: usize,
}

/// What a new subscriber asks the hub for.
pub(crate) struct SubscribeRequest {
    pub(crate) channels: Vec<Channel>,
    /// Replay what was published after this ID.
    pub(crate) resume: Option<EventId>,
    pub(crate) queue: Arc<Queue>,
    /// Who the subscriber is, for presence.
    pub(crate) user: Option<String>,
}

/// What the hub grants a new subscriber.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) client: ClientId,
    pub(crate) replay: Replay,
    /// The point from which the stream is complete: the ID the client
    /// resumes from, or else the newest ID when it was registered.
    pub(crate) resume_point: EventId,
    /// In a cluster, when the hub's memory does not reach back to the
    /// resume point: the rest of the replay is read from the log, after
    /// this ID and up to this bound, on the subscriber's thread.
    pub(crate) backfill: Option<(EventId, Until)>,
}

// The log's entries come only from the cluster's reader (`cluster` feature).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) enum Command {
    /// Publish these messages, in order, as one step.
    Publish {
        batch: Vec<Outgoing>,
        reply: Sender<Receipt>,
    },
    Subscribe {
        request: SubscribeRequest,
        reply: Sender<Result<Grant, Error>>,
    },
    /// A subscriber's stream ended; sent once per granted subscription.
    Unsubscribe { client: ClientId },
    /// End this client's stream now.
    Close { client: ClientId, why: Closed },
    Stats {
        /// List at most this many channels, those with the most members,
        /// and none that one of `hide` matches.
        limit: usize,
        hide: Vec<Pattern>,
        reply: Sender<Stats>,
    },
    /// Cluster: a publisher on this node is about to append `messages`
    /// entries tagged with `ticket`; answer it once they have all come back
    /// from the log and were fanned out.
    Expect {
        ticket: u64,
        messages: usize,
        reply: Sender<Receipt>,
    },
    /// Cluster: the publish with this ticket failed or gave up waiting.
    Forget { ticket: u64 },
    /// Cluster: entries read from the log, in its order.
    Ingest { entries: Vec<Incoming> },
    /// Cluster: the log's recent past, read when the reader first reaches
    /// it; kept for replay, not fanned out.
    Prime {
        entries: Vec<Incoming>,
        /// The entries are the whole log.
        complete: bool,
        /// The newest ID the log has dropped, if it says.
        trimmed: Option<EventId>,
    },
    /// Cluster: the log dropped entries up to `trimmed` before this node
    /// read them.
    Missed { trimmed: EventId },
    /// Close every stream and end the hub thread.
    Shutdown,
}
