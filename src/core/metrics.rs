//! The hub's figures: counters that any thread bumps, and the snapshot served
//! as `/stats` (JSON) and `/metrics` (Prometheus text format 0.0.4).
//!
//! Counters are atomics so that writers can count deliveries without a
//! message to the hub; the per-channel membership lives only in the hub, so
//! a snapshot is assembled on the hub thread (see `Hub::stats`). In a
//! cluster, the Redis reader publishes whether Redis is reachable here too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};

use serde::Serialize;

/// Counters shared by the hub, the writers and the HTTP layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped_slow: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    /// Open streams, kept current by the hub (read for the fast 503 check).
    pub(crate) clients: AtomicUsize,
    /// Cluster mode: whether Redis is reachable ([`REDIS_UP`] or
    /// [`REDIS_DOWN`]), kept current by the cluster's reader; 0 outside a
    /// cluster.
    pub(crate) redis: AtomicU8,
}
/// `Counters::redis`: Redis is reachable.
pub(crate) const REDIS_UP: u8 = 1;
/// `Counters::redis`: Redis is out of reach.
pub(crate) const REDIS_DOWN: u8 = 2;

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Whether a clustered hub's Redis is reachable; `None` outside a
    /// cluster.
    pub(crate) fn redis(&self) -> Option<RedisState> {
        match self.redis.load(Relaxed) {
            REDIS_UP => Some(RedisState::Up),
            REDIS_DOWN => Some(RedisState::Down),
            _ => None,
        }
    }
}

/// Whether a clustered hub reaches its Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// Reachable: publishes go through, the reader tails the stream.
    Up,
    /// Out of reach: publishes get 503, the reader keeps trying.
    Down,
}

/// A snapshot of the hub, as `/stats` serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Open `/events` streams.
    pub clients: usize,
    /// Members of each channel listed: every channel that has any from
    /// [`Hub::stats`](crate::Hub::stats), a bounded selection from
    /// [`Hub::stats_listing`](crate::Hub::stats_listing).
    pub channels: BTreeMap<String, usize>,
    /// How many channels have members, listed or not.
    pub channels_total: usize,
    /// Messages accepted for publishing.
    pub published: u64,
    /// Events written to sockets (heartbeats not included).
    pub delivered: u64,
    /// Subscribers dropped because their queue was full.
    pub dropped_slow: u64,
    /// Streams that ended because a write failed or timed out.
    pub write_errors: u64,
    /// Messages retained for replay.
    pub history: usize,
    /// Seconds since the hub started.
    pub uptime_s: u64,
    /// In cluster mode, whether Redis is reachable; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisState>,
}

impl Stats {
    pub(crate) fn new(
        counters: &Counters,
        channels: BTreeMap<String, usize>,
        channels_total: usize,
        history: usize,
        uptime_s: u64,
    ) -> Stats {
        Stats {
            clients: counters.clients.load(Relaxed),
            channels,
            channels_total,
            published: counters.published.load(Relaxed),
            delivered: counters.delivered.load(Relaxed),
            dropped_slow: counters.dropped_slow.load(Relaxed),
            write_errors: counters.write_errors.load(Relaxed),
            history,
            uptime_s,
            redis: counters.redis(),
        }
    }

    /// The snapshot as JSON, the body of `/stats`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The snapshot in Prometheus text format 0.0.4, the body of `/metrics`.
    /// Names start with `sse_hub_`; counters end in `_total`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(1024 + 48 * self.channels.len());
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        let clients = self.clients as u64;
        metric("sse_hub_clients", "gauge", "Open /events streams.", clients);
        let channels = self.channels_total as u64;
        metric(
            "sse_hub_channels",
            "gauge",
            "Channels with at least one member.",
            channels,
        );
        let help = "Messages accepted for publishing.";
        metric("sse_hub_published_total", "counter", help, self.published);
        let help = "Events written to sockets.";
        metric("sse_hub_delivered_total", "counter", help, self.delivered);
        let help = "Subscribers dropped because their queue was full.";
        metric(
            "sse_hub_dropped_slow_total",
            "counter",
            help,
            self.dropped_slow,
        );
        let help = "Streams ended by a failed or timed-out write.";
        metric(
            "sse_hub_write_errors_total",
            "counter",
            help,
            self.write_errors,
        );
        let history = self.history as u64;
        metric(
            "sse_hub_history",
            "gauge",
            "Messages retained for replay.",
            history,
        );
        metric(
            "sse_hub_uptime_seconds",
            "gauge",
            "Seconds since the hub started.",
            self.uptime_s,
        );
        if let Some(redis) = self.redis {
            let up = u64::from(redis == RedisState::Up);
            let help = "1 if this clustered node reaches Redis, 0 if not.";
            metric("sse_hub_redis_up", "gauge", help, up);
        }

        out.push_str("# HELP sse_hub_channel_clients Members of each channel listed.\n");
        out.push_str("# TYPE sse_hub_channel_clients gauge\n");
        for (name, members) in &self.channels {
            // Channel names cannot hold `"`, `\` or a line break, the only
            // characters a label value would need escaped.
            let _ = writeln!(
                out,
                "sse_hub_channel_clients{{channel=\"{name}\"}} {members}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stats {
        Stats {
            clients: 3,
            channels: BTreeMap::from([("a".to_owned(), 2), ("b/c".to_owned(), 1)]),
            channels_total: 3,
            published: 10,
            delivered: 25,
            dropped_slow: 1,
            write_errors: 2,
            history: 10,
            uptime_s: 7,
            redis: None,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "clients": 3, "channels": {"a": 2, "b/c": 1}, "channels_total": 3,
                "published": 10,
                "delivered": 25, "dropped_slow": 1, "write_errors": 2,
                "history": 10, "uptime_s": 7
            })
        );
    }

    #[test]
    fn prometheus_lines_carry_help_type_and_value() {
        let text = sample().to_prometheus();
        assert!(
            text.contains("# TYPE sse_hub_published_total counter\nsse_hub_published_total 10\n")
        );
        assert!(text.contains("# TYPE sse_hub_clients gauge\nsse_hub_clients 3\n"));
        assert!(text.contains("sse_hub_channel_clients{channel=\"b/c\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("sse_hub_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
        assert!(
            !text.contains("redis"),
            "no Redis figures outside a cluster"
        );
    }

    #[test]
    fn a_cluster_node_says_whether_it_reaches_redis() {
        let down = Stats {
            redis: Some(RedisState::Down),
            ..sample()
        };
        let json: serde_json::Value = serde_json::from_str(&down.to_json()).unwrap();
        assert_eq!(json["redis"], "down");
        assert!(down.to_prometheus().contains("\nsse_hub_redis_up 0\n"));
        let up = Stats {
            redis: Some(RedisState::Up),
            ..sample()
        };
        assert!(up.to_json().contains("\"redis\":\"up\""));
        assert!(up.to_prometheus().contains("\nsse_hub_redis_up 1\n"));
    }
}
