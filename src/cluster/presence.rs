//! Presence across the nodes of a cluster, in Redis: one hash per channel
//! with presence, `<stream>:presence:<channel>`, whose fields are the
//! clients in it on any node and whose values say who each one is and until
//! when its node vouches for it (`{"user":..,"until":<unix ms>}`).
//!
//! A node writes a client when it joins and deletes it when it leaves, and
//! every [`REFRESH`] writes all of its present clients again with a new
//! `until`, [`VOUCH`] ahead. A node that dies stops doing so: its clients
//! drop out of every list within [`VOUCH`] of its last refresh, and their
//! fields are deleted by the next node that reads the list. A channel's hash
//! expires by itself when no node has written it for a minute.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::{Connection, RedisError};
use serde::{Deserialize, Serialize};

use crate::core::channel::Channel;
use crate::core::client_id::ClientId;
use crate::core::event_id::now_ms;
use crate::core::presence::Member;

/// How often a node writes its present clients again.
pub(crate) const REFRESH: Duration = Duration::from_secs(5);

/// How long a node's word for a client lasts: three refreshes.
pub(crate) const VOUCH: Duration = Duration::from_secs(15);

/// A channel's hash expires when no node has written it for this long.
const KEY_LIFETIME_MS: u64 = 60_000;

#[derive(Serialize, Deserialize)]
struct Entry {
    user: Option<String>,
    until: u64,
}

/// This node's present clients, to write again every [`REFRESH`].
#[derive(Default)]
pub(crate) struct Local {
    channels: Mutex<HashMap<Channel, BTreeMap<ClientId, Option<String>>>>,
}

impl Local {
    fn lock(&self) -> MutexGuard<'_, HashMap<Channel, BTreeMap<ClientId, Option<String>>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add(&self, channel: &Channel, member: &Member) {
        self.lock()
            .entry(channel.clone())
            .or_default()
            .insert(member.client, member.user.clone());
    }

    pub(crate) fn remove(&self, channel: &Channel, client: ClientId) {
        let mut channels = self.lock();
        if let Some(members) = channels.get_mut(channel) {
            members.remove(&client);
            if members.is_empty() {
                channels.remove(channel);
            }
        }
    }

    /// A copy to write, so that the lock is not held across Redis calls.
    fn snapshot(&self) -> Vec<(Channel, Vec<Member>)> {
        self.lock()
            .iter()
            .map(|(channel, members)| {
                let members = members
                    .iter()
                    .map(|(client, user)| Member {
                        client: *client,
                        user: user.clone(),
                    })
                    .collect();
                (channel.clone(), members)
            })
            .collect()
    }
}

fn key(stream: &str, channel: &Channel) -> String {
    format!("{stream}:presence:{channel}")
}

fn value(member: &Member, now: u64) -> String {
    let entry = Entry {
        user: member.user.clone(),
        until: now + u64::try_from(VOUCH.as_millis()).unwrap_or(u64::MAX),
    };
    serde_json::to_string(&entry).unwrap_or_default()
}

/// Writes `members` of `channel` (one joined, or all of a refresh).
pub(crate) fn write(
    connection: &mut Connection,
    stream: &str,
    channel: &Channel,
    members: &[Member],
) -> Result<(), RedisError> {
    if members.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let key = key(stream, channel);
    let mut pipe = redis::pipe();
    let hset = pipe.cmd("HSET").arg(&key);
    for member in members {
        hset.arg(member.client.to_string()).arg(value(member, now));
    }
    pipe.ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(KEY_LIFETIME_MS)
        .ignore()
        .query(connection)
}

/// Deletes `client` from `channel`.
pub(crate) fn delete(
    connection: &mut Connection,
    stream: &str,
    channel: &Channel,
    client: ClientId,
) -> Result<(), RedisError> {
    redis::cmd("HDEL")
        .arg(key(stream, channel))
        .arg(client.to_string())
        .query(connection)
}

/// Every node's members of `channel` whose node still vouches for them,
/// oldest client first; deletes those it no longer does.
pub(crate) fn read(
    connection: &mut Connection,
    stream: &str,
    channel: &Channel,
) -> Result<Vec<Member>, RedisError> {
    let key = key(stream, channel);
    let fields: Vec<(String, String)> = redis::cmd("HGETALL").arg(&key).query(connection)?;
    let now = now_ms();
    let mut members = Vec::new();
    let mut lapsed = Vec::new();
    for (client, entry) in fields {
        let parsed = client
            .parse::<ClientId>()
            .ok()
            .zip(serde_json::from_str::<Entry>(&entry).ok());
        match parsed {
            Some((client, entry)) if entry.until > now => members.push(Member {
                client,
                user: entry.user,
            }),
            _ => lapsed.push(client),
        }
    }
    if !lapsed.is_empty() {
        redis::cmd("HDEL")
            .arg(&key)
            .arg(lapsed)
            .query::<()>(connection)?;
    }
    members.sort_by_key(|m| m.client);
    Ok(members)
}

/// Writes every present client of this node again.
pub(crate) fn refresh(
    connection: &mut Connection,
    stream: &str,
    local: &Local,
) -> Result<(), RedisError> {
    for (channel, members) in local.snapshot() {
        write(connection, stream, &channel, &members)?;
    }
    Ok(())
}
