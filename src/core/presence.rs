//! Presence (SPEC "Presence"): who is in a channel that a presence pattern
//! names, and a `presence` event on that channel whenever someone joins or
//! leaves.
//!
//! The book is kept on the subscribers' own threads, not on the hub thread:
//! a subscriber is entered when [`Hub`](crate::Hub) registers it and taken
//! out when it unsubscribes, which every stream and subscription does
//! exactly once as it ends, whatever ended it (its client left, it fell
//! behind, the hub closed it). The join and leave events are then published
//! like any message, from that same thread: they get IDs, go into history
//! and replay, and in a cluster through the shared stream to every node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use crate::core::channel::{Channel, Pattern};
use crate::core::client_id::ClientId;

/// A client in a channel with presence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The client's ID, as its `connection` event gave it.
    pub client: ClientId,
    /// Who it is, if a token (`sub`) or the application's auth callback
    /// said.
    pub user: Option<String>,
}

/// Whether a presence event says hello or goodbye.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Join,
    Leave,
}

impl Action {
    /// The event's data: `{"action":..,"client":..,"user":..}`.
    pub(crate) fn data(self, client: ClientId, user: Option<&str>) -> String {
        #[derive(Serialize)]
        struct Data<'a> {
            action: &'static str,
            client: ClientId,
            user: Option<&'a str>,
        }
        let action = match self {
            Action::Join => "join",
            Action::Leave => "leave",
        };
        serde_json::to_string(&Data {
            action,
            client,
            user,
        })
        .unwrap_or_default()
    }
}

/// Who is where, on this hub.
#[derive(Default)]
pub(crate) struct Book {
    patterns: Vec<Pattern>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each present client: its channels with presence, and its user.
    clients: HashMap<ClientId, (Vec<Channel>, Option<String>)>,
    /// Each channel with presence and members: its members.
    channels: HashMap<Channel, BTreeMap<ClientId, Option<String>>>,
}

impl Book {
    /// A book for the channels that `patterns` name.
    pub(crate) fn new(patterns: Vec<Pattern>) -> Book {
        Book {
            patterns,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `channel` has presence.
    pub(crate) fn covers(&self, channel: &Channel) -> bool {
        self.patterns.iter().any(|p| p.matches(channel))
    }

    /// Enters `client` in those of `channels` that have presence; returns
    /// them (none: nothing to announce).
    pub(crate) fn join(
        &self,
        client: ClientId,
        channels: &[Channel],
        user: Option<&str>,
    ) -> Vec<Channel> {
        let present: Vec<Channel> = channels
            .iter()
            .filter(|c| self.covers(c))
            .cloned()
            .collect();
        if present.is_empty() {
            return present;
        }
        let mut inner = self.lock();
        for channel in &present {
            inner
                .channels
                .entry(channel.clone())
                .or_default()
                .insert(client, user.map(str::to_owned));
        }
        inner
            .clients
            .insert(client, (present.clone(), user.map(str::to_owned)));
        present
    }

    /// Takes `client` out; its channels with presence and its user, if it
    /// was in any.
    pub(crate) fn leave(&self, client: ClientId) -> Option<(Vec<Channel>, Option<String>)> {
        // Every stream's end passes here: without presence, no lock.
        if self.patterns.is_empty() {
            return None;
        }
        let mut inner = self.lock();
        let (channels, user) = inner.clients.remove(&client)?;
        for channel in &channels {
            if let Some(members) = inner.channels.get_mut(channel) {
                members.remove(&client);
                if members.is_empty() {
                    inner.channels.remove(channel);
                }
            }
        }
        Some((channels, user))
    }

    /// The members of `channel` on this hub, oldest client first; `None`
    /// if the channel has no presence.
    pub(crate) fn members(&self, channel: &Channel) -> Option<Vec<Member>> {
        if !self.covers(channel) {
            return None;
        }
        let inner = self.lock();
        Some(
            inner
                .channels
                .get(channel)
                .map(|members| {
                    members
                        .iter()
                        .map(|(client, user)| Member {
                            client: *client,
                            user: user.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_and_go_in_the_channels_with_presence_only() {
        let book = Book::new(vec![Pattern::new("room:*").unwrap()]);
        let room = Channel::new("room:1").unwrap();
        let news = Channel::new("news").unwrap();
        let (a, b) = (ClientId::new(1, 1), ClientId::new(1, 2));
        let joined = book.join(a, &[room.clone(), news.clone()], Some("ann"));
        assert_eq!(joined, std::slice::from_ref(&room));
        assert!(book.join(b, std::slice::from_ref(&news), None).is_empty());
        let joined = book.join(b, std::slice::from_ref(&room), None);
        assert_eq!(joined, std::slice::from_ref(&room));
        let members = book.members(&room).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].user.as_deref(), Some("ann"));
        assert_eq!(book.members(&news), None, "no presence there");
        assert_eq!(
            book.leave(a),
            Some((vec![room.clone()], Some("ann".to_owned())))
        );
        assert_eq!(book.leave(a), None, "once");
        assert_eq!(
            book.members(&room).unwrap(),
            [Member {
                client: b,
                user: None
            }]
        );
        book.leave(b);
        assert_eq!(book.members(&room), Some(Vec::new()));
    }

    #[test]
    fn the_event_data_is_the_documented_json() {
        let client = ClientId::new(0xabc, 7);
        let join: serde_json::Value =
            serde_json::from_str(&Action::Join.data(client, Some("ann"))).unwrap();
        assert_eq!(
            join,
            serde_json::json!({"action": "join", "client": client.to_string(), "user": "ann"})
        );
        let leave: serde_json::Value =
            serde_json::from_str(&Action::Leave.data(client, None)).unwrap();
        assert_eq!(leave["action"], "leave");
        assert_eq!(leave["user"], serde_json::Value::Null);
    }
}
