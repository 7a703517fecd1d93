//! Small values shared by every node of a cluster, kept in the cluster's
//! Redis beside its stream, each under `<stream>:<space>:<name>` and with a
//! lifetime: what `Idempotency-Key`s need (`server/idempotency.rs`), so
//! that a retry that reaches another node is caught too.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Connection, RedisError};

use super::{COMMAND_TIMEOUT, ClusterConfig, Redis};
use crate::error::Error;

/// Idle connections kept for publishers.
const KEEP_IDLE: usize = 4;

/// One space of shared values.
pub(crate) struct SharedKeys {
    redis: Redis,
    space: &'static str,
    idle: Mutex<Vec<Connection>>,
}

impl SharedKeys {
    /// Values named under `space` in the Redis of `cluster`; connects when
    /// first used.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a Redis URL that cannot be used.
    pub(crate) fn new(cluster: &ClusterConfig, space: &'static str) -> Result<SharedKeys, Error> {
        Ok(SharedKeys {
            redis: Redis::open(cluster)?,
            space,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn name(&self, key: &str) -> String {
        format!("{}:{}:{key}", self.redis.key, self.space)
    }

    /// Runs `call` on a pooled connection; one that failed is dropped.
    fn with_connection<T>(
        &self,
        call: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, Error> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.redis.connect(COMMAND_TIMEOUT).map_err(unavailable)?,
        };
        let outcome = call(&mut connection).map_err(unavailable)?;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEEP_IDLE
        {
            idle.push(connection);
        }
        Ok(outcome)
    }

    /// Sets `key` to `value` for `ttl` unless it is set (`SET NX PX`):
    /// true if this call set it. Of many nodes asking at once, one wins.
    pub(crate) fn set_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        let set: Option<String> = self.with_connection(|connection| {
            redis::cmd("SET")
                .arg(self.name(key))
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query(connection)
        })?;
        Ok(set.is_some())
    }

    /// Sets `key` to `value` for `ttl`, whatever it was.
    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.with_connection(|connection| {
            redis::cmd("SET")
                .arg(self.name(key))
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .query(connection)
        })
    }

    /// The value of `key`, if it is set.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.with_connection(|connection| redis::cmd("GET").arg(self.name(key)).query(connection))
    }

    /// Unsets `key`.
    pub(crate) fn delete(&self, key: &str) -> Result<(), Error> {
        self.with_connection(|connection| redis::cmd("DEL").arg(self.name(key)).query(connection))
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(e: RedisError) -> Error {
    Error::RedisUnavailable(format!(
        "Redis failed ({e}); nothing was published, try again later"
    ))
}
