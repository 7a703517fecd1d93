//! [`Subscription`]: a subscriber inside this process. It takes frames
//! from its queue (`queue.rs`) the way a stream's thread does, and hands
//! them out one at a time, as wire bytes ([`Frame`]) or as typed events
//! ([`ReceivedEvent`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::client_id::ClientId;
use crate::core::closed::Closed;
use crate::core::command::Grant;
use crate::core::event_id::EventId;
use crate::core::hub::Hub;
use crate::core::queue::{Queue, Took};
use crate::core::sse::Frame;

/// A subscriber inside this process; see [`Hub::subscribe`].
///
/// Frames come out in publish order. A frame may hold several events (the
/// messages of one batch publish travel together): [`Frame::dispatch`]
/// reads them. Receiving ends when the hub closes the subscription, which
/// it does when the subscriber falls more than the queue limit behind, or
/// when the hub stops; [`Subscription::closed`] then says why. It is also an
/// iterator over frames that ends there.
pub struct Subscription {
    hub: Hub,
    grant: Grant,
    queue: Arc<Queue>,
    /// Frames taken from the queue and not handed out yet.
    taken: VecDeque<Frame>,
    /// Events of a frame that [`Subscription::recv_event`] took, not
    /// handed out yet.
    events: VecDeque<ReceivedEvent>,
    closed: Option<Closed>,
}

/// An event as a subscriber receives it: what an `EventSource` would
/// dispatch, read from the frame for you.
///
/// # Example
///
/// ```
/// use sse_hub::{Event, Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig::default())?;
/// let mut subscription = hub.subscribe(&[], None)?;
/// let sent = hub.publish(&Event::new("line one\nline two").with_name("note")?, None)?;
///
/// let event = subscription.recv_event().expect("an event");
/// assert_eq!(event.id, Some(sent.id));
/// assert_eq!(event.name, "note");
/// assert_eq!(event.data, "line one\nline two");
/// # Ok::<(), sse_hub::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedEvent {
    /// The message's ID.
    pub id: Option<EventId>,
    /// The event's type: its name, or `message` for a message published
    /// without one (what `EventSource` listens for).
    pub name: String,
    /// The data, its lines joined with LF.
    pub data: String,
}

impl ReceivedEvent {
    /// The events `frame` holds, in order.
    fn read(frame: &Frame) -> impl Iterator<Item = ReceivedEvent> {
        frame.dispatch().into_iter().map(|event| ReceivedEvent {
            id: event.id.and_then(|id| id.parse().ok()),
            name: event.event_type,
            data: event.data,
        })
    }
}

impl Subscription {
    pub(crate) fn new(hub: Hub, grant: Grant, queue: Arc<Queue>) -> Subscription {
        Subscription {
            hub,
            grant,
            queue,
            taken: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// This subscriber's ID.
    pub fn client(&self) -> ClientId {
        self.grant.client
    }

    /// The retained messages newer than the `last_event_id` given, for this
    /// subscriber's channels, oldest first.
    pub fn replay(&self) -> &[Frame] {
        &self.grant.replay.frames
    }

    /// True if messages newer than `last_event_id` may have been lost: the
    /// hub no longer holds all of them.
    pub fn gap(&self) -> bool {
        self.grant.replay.gap
    }

    /// The next frame, waiting for one as long as it takes; `None` once the
    /// subscription is closed and everything queued was received.
    pub fn recv(&mut self) -> Option<Frame> {
        self.next_frame(None)
    }

    /// The next frame, waiting at most `timeout`; `None` if none came.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Frame> {
        self.next_frame(Some(Instant::now() + timeout))
    }

    /// The next frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.next_frame(Some(Instant::now()))
    }

    /// The replay as typed events, oldest first.
    pub fn replay_events(&self) -> Vec<ReceivedEvent> {
        self.grant
            .replay
            .frames
            .iter()
            .flat_map(ReceivedEvent::read)
            .collect()
    }

    /// The next event, read from the frames as they come, waiting as long
    /// as it takes; `None` once the subscription is closed and everything
    /// queued was received. Use either this or [`Subscription::recv`] on
    /// one subscription: frames are handed out once.
    pub fn recv_event(&mut self) -> Option<ReceivedEvent> {
        self.next_event(None)
    }

    /// The next event, waiting at most `timeout`; `None` if none came.
    pub fn recv_event_timeout(&mut self, timeout: Duration) -> Option<ReceivedEvent> {
        self.next_event(Some(Instant::now() + timeout))
    }

    fn next_event(&mut self, deadline: Option<Instant>) -> Option<ReceivedEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            let frame = self.next_frame(deadline)?;
            self.events.extend(ReceivedEvent::read(&frame));
        }
    }

    /// Why the hub closed the subscription, once a receive has found it
    /// closed.
    pub fn closed(&self) -> Option<Closed> {
        self.closed
    }

    fn next_frame(&mut self, deadline: Option<Instant>) -> Option<Frame> {
        loop {
            if let Some(frame) = self.taken.pop_front() {
                return Some(frame);
            }
            match self.queue.next_batch(&mut self.taken, deadline) {
                Took::Events(_) => {}
                Took::Empty => return None,
                Took::Closed(why) => {
                    self.closed = Some(why);
                    return None;
                }
            }
        }
    }
}

impl Iterator for Subscription {
    type Item = Frame;

    /// Waits for the next frame; ends when the subscription is closed.
    fn next(&mut self) -> Option<Frame> {
        self.recv()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.grant.client);
    }
}
