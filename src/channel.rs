//! Channel names: how a subscriber says which messages it wants.
//!
//! A message published to a channel goes only to the subscribers that joined
//! it; a message published without one goes to everyone. Names are checked at
//! the boundary (the `/events` query, the `/broadcast` body) and are cheap to
//! clone afterwards, because the hub keeps one per history entry and per
//! membership.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 64;

/// Most distinct channels one subscriber may join.
pub const MAX_CHANNELS_PER_SUBSCRIBER: usize = 32;

/// A checked channel name: 1 to 64 bytes of `A-Z a-z 0-9 - _ . : /`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(Arc<str>);

impl Channel {
    /// Checks `name` and returns it as a `Channel`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] saying what is wrong with it.
    pub fn new(name: &str) -> Result<Channel, Error> {
        if name.is_empty() || name.len() > MAX_CHANNEL_NAME_LEN {
            return Err(Error::InvalidChannel("must be 1 to 64 bytes long"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b);
        if !name.bytes().all(allowed) {
            return Err(Error::InvalidChannel(
                "may only contain A-Z, a-z, 0-9 and - _ . : /",
            ));
        }
        Ok(Channel(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a subscriber's channel names: each valid, repeats counted once, at
/// most [`MAX_CHANNELS_PER_SUBSCRIBER`] distinct ones. Keeps the order of
/// first appearance.
///
/// # Errors
///
/// [`Error::InvalidChannel`] for the first bad name, or
/// [`Error::TooManyChannels`].
pub fn channel_set<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<Channel>, Error> {
    let mut channels: Vec<Channel> = Vec::new();
    for name in names {
        let channel = Channel::new(name)?;
        if channels.contains(&channel) {
            continue;
        }
        if channels.len() == MAX_CHANNELS_PER_SUBSCRIBER {
            return Err(Error::TooManyChannels);
        }
        channels.push(channel);
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for good in ["a", "news", "user:42/inbox", "A-Z_0.9", &"x".repeat(64)] {
            assert!(Channel::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            " ",
            "a b",
            "a\nb",
            "é",
            "a?b",
            "a&b",
            "a%20",
            &"x".repeat(65),
        ] {
            assert!(Channel::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repeats_count_once() {
        let set = channel_set(["a", "b", "a", "b", "c"]).unwrap();
        let names: Vec<&str> = set.iter().map(Channel::as_str).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn the_limit_is_on_distinct_names() {
        let names: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
        let mut with_repeats: Vec<&str> = names.iter().map(String::as_str).collect();
        with_repeats.extend(names.iter().map(String::as_str));
        assert_eq!(channel_set(with_repeats.iter().copied()).unwrap().len(), 32);

        with_repeats.push("one-more");
        assert!(matches!(
            channel_set(with_repeats.iter().copied()),
            Err(Error::TooManyChannels)
        ));
    }
}
