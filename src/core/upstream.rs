//! The outside log a clustered hub publishes through, as the core sees it:
//! an ordered, shared list of messages that gives each message its ID.
//!
//! On its own the hub numbers messages itself (`event_id.rs`). When
//! several hubs serve one audience, none of them may: the log orders every
//! message from every node and names it, and each node's reader hands the
//! log's entries to its hub in the log's order. The core knows only this
//! trait; the one implementation, on Redis Streams, lives in
//! `src/cluster/`, so the hub itself never opens a socket.
//!
//! Data enters the hub from the log as [`Incoming`] entries (through
//! [`Feed`]) and leaves for it through [`Upstream::append`]. A publisher
//! on this node waits until its own entries have come back through the
//! reader and were fanned out here, so it reads its own write; the
//! [`Origin`] it tags them with is how the hub knows them again.

use crossbeam_channel::Sender;

use crate::core::channel::Channel;
use crate::core::client_id::ClientId;
use crate::core::command::Command;
use crate::core::event_id::EventId;
use crate::core::hub::Message;
use crate::core::presence::Member;
use crate::core::sse::Frame;
use crate::error::Error;

/// Who appended an entry: a hub run and a publish of that run. Entries
/// from other nodes, or from other programs, carry another run or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The random tag of the hub's run (as in its client IDs).
    pub(crate) run: u64,
    /// The publish, numbered within the run.
    pub(crate) ticket: u64,
}

/// One entry of the log, read back and ready for the hub thread: its ID,
/// its encoded body (everything but the `id:` line) and its channel.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) id: EventId,
    pub(crate) body: Vec<u8>,
    pub(crate) channel: Option<Channel>,
    /// The publish on this node that appended it, if one did.
    pub(crate) ticket: Option<u64>,
}

/// Where a resuming subscriber's replay from the log stops: the hub's
/// memory takes over from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// Up to this ID, not included: the oldest message the hub holds.
    Before(EventId),
    /// Up to this ID, included: the newest the hub has seen, when it holds
    /// nothing.
    Through(EventId),
}

/// A replay read from the log rather than from the hub's memory.
#[derive(Debug, Default)]
pub(crate) struct Backfill {
    /// The messages for the subscriber's channels, oldest first, each with
    /// its `id:` line.
    pub(crate) frames: Vec<Frame>,
    /// The log no longer holds every message after the requested ID.
    pub(crate) gap: bool,
    /// The oldest ID the log holds.
    pub(crate) oldest: Option<EventId>,
}

/// A log that orders and names the messages of several hubs.
pub(crate) trait Upstream: Send + Sync {
    /// Appends `messages` in order, as one step (all or none), each tagged
    /// with `origin`; returns their IDs.
    ///
    /// # Errors
    ///
    /// [`Error::RedisUnavailable`] when the log cannot be reached; then
    /// nothing was appended.
    fn append(&self, messages: &[Message], origin: Origin) -> Result<Vec<EventId>, Error>;

    /// The messages after `after` up to `until` that a subscriber of
    /// `channels` would have received. Runs on the subscriber's thread,
    /// never the hub's.
    ///
    /// # Errors
    ///
    /// [`Error::RedisUnavailable`] when the log cannot be reached.
    fn backfill(
        &self,
        after: EventId,
        until: Until,
        channels: &[Channel],
    ) -> Result<Backfill, Error>;

    /// Stops the reader that feeds the hub; called when the hub stops.
    fn stop(&self);

    /// `member` of this hub joined `channel`, which has presence: the log
    /// lists it for every node until it leaves, or until this node stops
    /// saying it is there.
    fn joined(&self, channel: &Channel, member: &Member);

    /// `client` of this hub left `channel`.
    fn left(&self, channel: &Channel, client: ClientId);

    /// The members of `channel` on every node.
    ///
    /// # Errors
    ///
    /// [`Error::RedisUnavailable`] when the log cannot be reached.
    fn members(&self, channel: &Channel) -> Result<Vec<Member>, Error>;
}

/// How the log's reader hands entries to the hub thread.
// Only the cluster module (the `cluster` feature) has a reader.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct Feed {
    pub(crate) commands: Sender<Command>,
    /// The hub's run tag, to know this node's own entries.
    pub(crate) run: u64,
}

#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
impl Feed {
    /// Hands entries over, in log order, to be fanned out and kept.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] once the hub has stopped.
    pub(crate) fn ingest(&self, entries: Vec<Incoming>) -> Result<(), Error> {
        self.commands
            .send(Command::Ingest { entries })
            .map_err(|_| Error::HubStopped)
    }

    /// Hands over the log's recent past when the reader first reaches it:
    /// kept for replay, not fanned out. `complete` says the entries are the
    /// whole log; `trimmed` is the newest ID the log has dropped.
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] once the hub has stopped.
    pub(crate) fn prime(
        &self,
        entries: Vec<Incoming>,
        complete: bool,
        trimmed: Option<EventId>,
    ) -> Result<(), Error> {
        self.commands
            .send(Command::Prime {
                entries,
                complete,
                trimmed,
            })
            .map_err(|_| Error::HubStopped)
    }

    /// Tells the hub that entries up to `trimmed` were dropped from the log
    /// before this node read them (it was cut off too long): the memory
    /// cannot cover them, and the streams open now have missed them, so
    /// they are closed to resume (and learn of the gap).
    ///
    /// # Errors
    ///
    /// [`Error::HubStopped`] once the hub has stopped.
    pub(crate) fn missed(&self, trimmed: EventId) -> Result<(), Error> {
        self.commands
            .send(Command::Missed { trimmed })
            .map_err(|_| Error::HubStopped)
    }
}
