//! The replay buffer behind `Last-Event-ID`: the last N published messages,
//! each as the ID, the channel and the very frame that was fanned out.
//!
//! Only the hub thread touches it. Publishing pushes one entry (evicting the
//! oldest when full); a subscriber that resumes gets, in one step on the hub
//! thread, every retained entry newer than its ID that its channels would
//! have received. Because that step and its registration for live messages
//! happen together, nothing is lost or doubled at the seam between replay
//! and live delivery.
//!
//! Memory is bounded by the entry count: each entry costs about 64 bytes plus
//! its frame (the encoded message).

use std::collections::VecDeque;
use std::time::Duration;

use crate::core::channel::Channel;
use crate::core::event_id::EventId;
use crate::core::sse::Frame;

struct Entry {
    id: EventId,
    channel: Option<Channel>,
    frame: Frame,
}

/// A bounded, ID-ordered buffer of published messages.
pub(crate) struct History {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// IDs older than this may have been published before this process
    /// started, and no one here kept them.
    known_since: EventId,
    /// The newest ID that was published but is no longer retained.
    newest_dropped: Option<EventId>,
    /// The newest ID published, or `known_since` before the first.
    newest: EventId,
    /// Entries older than this many milliseconds are dropped.
    ttl_ms: Option<u64>,
}

/// What a resuming subscriber is owed.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Retained messages newer than the requested ID, for its channels,
    /// oldest first.
    pub(crate) frames: Vec<Frame>,
    /// Messages newer than the requested ID may have been lost.
    pub(crate) gap: bool,
    /// The oldest retained ID, if anything is retained.
    pub(crate) oldest: Option<EventId>,
}

impl History {
    /// An empty history for `capacity` messages (0 keeps none), for a hub
    /// whose first possible ID is `known_since`.
    pub(crate) fn new(capacity: usize, known_since: EventId) -> History {
        History {
            entries: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            known_since,
            newest_dropped: None,
            newest: known_since,
            ttl_ms: None,
        }
    }

    /// Keeps messages only while they are younger than `ttl`; an ID's
    /// first part is its publish time in milliseconds, so its age needs no
    /// clock of its own.
    pub(crate) fn with_ttl(mut self, ttl: Option<Duration>) -> History {
        self.ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Drops the messages that are too old at `now_ms` (Unix time in
    /// milliseconds), oldest first; they count as dropped for a `gap`.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        let Some(cutoff) = self.cutoff(now_ms) else {
            return;
        };
        while let Some(entry) = self.entries.front()
            && entry.id < cutoff
        {
            self.newest_dropped = self.newest_dropped.max(Some(entry.id));
            self.entries.pop_front();
        }
    }

    /// With a lifetime, the first ID young enough at `now_ms` to be kept.
    pub(crate) fn cutoff(&self, now_ms: u64) -> Option<EventId> {
        self.ttl_ms
            .map(|ttl| EventId::new(now_ms.saturating_sub(ttl), 0))
    }

    /// Records a published message. IDs must arrive in increasing order.
    pub(crate) fn push(&mut self, id: EventId, channel: Option<Channel>, frame: Frame) {
        self.expire(id.ms());
        self.newest = id;
        if self.capacity == 0 {
            self.newest_dropped = Some(id);
            return;
        }
        if self.entries.len() == self.capacity
            && let Some(evicted) = self.entries.pop_front()
        {
            self.newest_dropped = Some(evicted.id);
        }
        self.entries.push_back(Entry { id, channel, frame });
    }

    /// Cluster: the memory holds every message from `id` on (the oldest
    /// one read from the log when the node first reached it), or, with
    /// `None`, everything the log ever held (it was read whole).
    pub(crate) fn set_known_since(&mut self, id: Option<EventId>) {
        self.known_since = id.unwrap_or(EventId::new(0, 0));
    }

    /// Cluster: messages up to `id` were dropped before this memory could
    /// keep them.
    pub(crate) fn dropped_through(&mut self, id: EventId) {
        self.newest_dropped = self.newest_dropped.max(Some(id));
    }

    /// How many messages are retained.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The newest ID published, or the first possible ID's predecessor
    /// (`known_since`) before anything was: the point from which a new
    /// subscriber's stream is complete.
    pub(crate) fn newest(&self) -> EventId {
        self.newest
    }

    /// The oldest retained ID.
    pub(crate) fn oldest(&self) -> Option<EventId> {
        self.entries.front().map(|e| e.id)
    }

    /// What a subscriber of `channels` that last saw `after` has missed.
    ///
    /// A gap is reported when a message newer than `after` was dropped from
    /// history, or when `after` is older than this process (messages may have
    /// been published before it started that no one here kept). It is
    /// conservative: the dropped messages may all have been on channels this
    /// subscriber did not join.
    pub(crate) fn replay(&self, after: EventId, channels: &[Channel]) -> Replay {
        let gap = after < self.known_since || self.newest_dropped.is_some_and(|d| d > after);
        let first_newer = self.entries.partition_point(|e| e.id <= after);
        let frames = self
            .entries
            .range(first_newer..)
            .filter(|e| e.channel.as_ref().is_none_or(|c| channels.contains(c)))
            .map(|e| e.frame.clone())
            .collect();
        Replay {
            frames,
            gap,
            oldest: self.oldest(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: EventId = EventId::new(1000, 0);

    fn id(seq: u64) -> EventId {
        EventId::new(1000, seq)
    }

    fn frame(seq: u64) -> Frame {
        Frame::new(format!("id: 1000-{seq}\ndata: {seq}\n\n").as_bytes(), 1)
    }

    fn history(capacity: usize, published: &[(u64, Option<&str>)]) -> History {
        let mut h = History::new(capacity, START);
        for &(seq, channel) in published {
            h.push(
                id(seq),
                channel.map(|c| Channel::new(c).unwrap()),
                frame(seq),
            );
        }
        h
    }

    fn seqs(replay: &Replay) -> Vec<u64> {
        replay
            .frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(f).unwrap();
                text.lines().nth(1).unwrap()["data: ".len()..]
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn messages_past_their_lifetime_are_dropped_and_count_for_a_gap() {
        let at = |ms: u64, seq: u64| EventId::new(ms, seq);
        let mut h = History::new(10, at(1000, 0)).with_ttl(Some(Duration::from_millis(100)));
        h.push(at(1000, 1), None, frame(1));
        h.push(at(1050, 0), None, frame(2));
        h.push(at(1120, 0), None, frame(3));
        // At 1120 the first (1000) is older than 100 ms; the second is not.
        assert_eq!(h.len(), 2);
        assert!(h.replay(at(1000, 0), &[]).gap);
        assert!(!h.replay(at(1000, 1), &[]).gap);
        h.expire(1200);
        assert_eq!(h.len(), 1);
        assert_eq!(h.oldest(), Some(at(1120, 0)));
        assert_eq!(h.cutoff(1200), Some(at(1100, 0)));
        h.expire(5000);
        assert_eq!((h.len(), h.oldest()), (0, None));
        assert!(h.replay(at(1050, 0), &[]).gap);
        assert_eq!(History::new(10, START).cutoff(5000), None);
    }

    #[test]
    fn the_newest_id_is_the_start_until_something_is_published() {
        let mut h = History::new(0, START);
        assert_eq!(h.newest(), START);
        h.push(id(4), None, frame(4));
        assert_eq!(h.newest(), id(4));
    }

    #[test]
    fn replays_everything_newer_in_order() {
        let h = history(10, &[(1, None), (2, None), (3, None)]);
        let r = h.replay(id(1), &[]);
        assert_eq!(seqs(&r), [2, 3]);
        assert!(!r.gap);
        assert_eq!(r.oldest, Some(id(1)));
    }

    #[test]
    fn filters_by_channel() {
        let h = history(
            10,
            &[(1, Some("a")), (2, Some("b")), (3, None), (4, Some("a"))],
        );
        let a = Channel::new("a").unwrap();
        assert_eq!(seqs(&h.replay(id(0), &[a])), [1, 3, 4]);
        assert_eq!(seqs(&h.replay(id(0), &[])), [3]);
    }

    #[test]
    fn an_id_newer_than_everything_replays_nothing_and_no_gap() {
        let h = history(10, &[(1, None), (2, None)]);
        let r = h.replay(id(99), &[]);
        assert!(r.frames.is_empty());
        assert!(!r.gap);
    }

    #[test]
    fn eviction_makes_a_gap_for_older_ids_only() {
        let h = history(2, &[(1, None), (2, None), (3, None), (4, None)]);
        let old = h.replay(id(1), &[]);
        assert!(old.gap);
        assert_eq!(seqs(&old), [3, 4]);
        assert_eq!(old.oldest, Some(id(3)));

        let recent = h.replay(id(2), &[]);
        assert!(!recent.gap, "only message 2 and older were dropped");
        assert_eq!(seqs(&recent), [3, 4]);
    }

    #[test]
    fn ids_from_before_this_process_get_a_gap() {
        let h = history(10, &[]);
        let r = h.replay(EventId::new(999, 5), &[]);
        assert!(r.gap);
        assert_eq!(r.oldest, None);
        assert!(!h.replay(START, &[]).gap);
    }

    #[test]
    fn zero_capacity_keeps_nothing_but_still_reports_the_gap() {
        let h = history(0, &[(1, None), (2, None)]);
        assert_eq!(h.len(), 0);
        let r = h.replay(id(1), &[]);
        assert!(r.frames.is_empty());
        assert!(r.gap);
        assert_eq!(r.oldest, None);
        assert!(!h.replay(id(2), &[]).gap);
    }
}
