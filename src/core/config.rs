//! The hub's settings, each with its one default: [`HubConfig`] (history,
//! queues, client limit, the heartbeat and `retry:` every stream gets, and
//! the write timeout of streams run on an application's sockets),
//! and the checks every floor above shares for its own settings (a
//! duration in range, a header value that is printable ASCII). Built once,
//! by the application or the server's configuration, and passed down as
//! one value.

use std::time::Duration;

use crate::core::channel::Pattern;
use crate::error::Error;

/// The longest any timeout or interval may be: longer ones would overflow
/// clock arithmetic, and mean "never" anyway.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// How a hub behaves, whatever serves its streams. [`HubConfig::default`]
/// gives the documented defaults.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// let config = sse_hub::HubConfig {
///     history: 100,
///     heartbeat: Some(Duration::from_secs(5)),
///     ..sse_hub::HubConfig::default()
/// };
/// assert_eq!(config.queue, 256);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Published messages kept for `Last-Event-ID` replay; 0 keeps none.
    pub history: usize,
    /// Capacity of each subscriber's queue, in events. A subscriber whose
    /// queue is full is dropped and catches up from history when it resumes.
    pub queue: usize,
    /// Most subscribers at once; past it, subscribing fails with
    /// [`Error::HubFull`].
    pub max_clients: usize,
    /// Keep-alive comment on an idle stream this often; `None` sends none.
    pub heartbeat: Option<Duration>,
    /// Reconnection delay sent as `retry:` at the start of every stream;
    /// `None` sends none.
    pub retry: Option<Duration>,
    /// Messages older than this are not replayed: a client resuming from
    /// before them gets a `gap`, as if `history` had pushed them out.
    /// `None` keeps them until `history` does. At most a year.
    pub history_ttl: Option<Duration>,
    /// Channels with presence: when a client joins or leaves one, the hub
    /// publishes a `presence` event on it, and [`Hub::presence`] lists its
    /// members. Empty: none.
    ///
    /// [`Hub::presence`]: crate::Hub::presence
    pub presence: Vec<Pattern>,
    /// A write to a subscriber's socket that blocks this long fails, and the
    /// stream ends: a subscriber that stops reading holds its thread no
    /// longer. Set on the socket by
    /// [`EventStream::run_on_socket`](crate::EventStream::run_on_socket) and
    /// [`EventStream::run_through`](crate::EventStream::run_through); a bare
    /// [`EventStream::run`](crate::EventStream::run) on a writer cannot set
    /// it. Default 10 s, like the server's `--write-timeout`.
    pub write_timeout: Duration,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            history: 1024,
            queue: 256,
            max_clients: 10_000,
            heartbeat: Some(Duration::from_secs(15)),
            retry: Some(Duration::from_millis(3000)),
            history_ttl: None,
            presence: Vec::new(),
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl HubConfig {
    /// Checks the values that would otherwise fail later, at a worse moment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting and what it needs.
    pub fn validate(&self) -> Result<(), Error> {
        if self.queue == 0 {
            return invalid("queue", "must be at least 1");
        }
        if self.max_clients == 0 {
            return invalid("max_clients", "must be at least 1");
        }
        if let Some(heartbeat) = self.heartbeat {
            check_duration("heartbeat", heartbeat)?;
        }
        if let Some(retry) = self.retry {
            check_duration("retry", retry)?;
        }
        if let Some(ttl) = self.history_ttl
            && (ttl.as_millis() == 0 || ttl > MAX_HISTORY_TTL)
        {
            return invalid(
                "history_ttl",
                "must be at least a millisecond and at most a year (31536000 seconds)",
            );
        }
        check_duration("write_timeout", self.write_timeout)?;
        Ok(())
    }
}

/// The longest [`HubConfig::history_ttl`]: a year.
const MAX_HISTORY_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) fn invalid(field: &'static str, why: &str) -> Result<(), Error> {
    Err(Error::InvalidConfig {
        field,
        why: why.to_owned(),
    })
}

pub(crate) fn check_duration(field: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        return invalid(field, "must be longer than zero");
    }
    if value > MAX_DURATION {
        return invalid(field, "must be at most a day (86400 seconds)");
    }
    Ok(())
}

/// Checks a value that goes into a response header: printable ASCII.
pub(crate) fn check_header_value(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return invalid(
            field,
            "must be printable ASCII, like * or https://example.com",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        HubConfig::default().validate().unwrap();
    }

    #[test]
    fn a_write_timeout_of_zero_is_named() {
        let config = HubConfig {
            write_timeout: Duration::ZERO,
            ..HubConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig {
                field: "write_timeout",
                ..
            })
        ));
    }
}
