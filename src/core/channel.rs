//! Channel names: how a subscriber says which messages it wants; and
//! channel patterns ([`Pattern`]), which name many channels at once for
//! `--private`, a token's lists and `--presence`.
//!
//! A message published to a channel goes only to the subscribers that joined
//! it; a message published without one goes to everyone. Names are checked at
//! the boundary (the `/events` query, the `/broadcast` body) and are cheap to
//! clone afterwards, because the hub keeps one per history entry and per
//! membership.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// Channel names as `--private` and a token's lists give them: a name, or
/// a name's beginning followed by `*`, which matches any rest. `*` alone
/// matches every channel, and is the only pattern that covers a message
/// published without a channel.
///
/// # Example
///
/// ```
/// use sse_hub::{Channel, Pattern};
///
/// let rooms: Pattern = "room:*".parse()?;
/// assert!(rooms.matches(&Channel::new("room:7")?));
/// assert!(!rooms.matches(&Channel::new("rooms")?));
///
/// let news: Pattern = "news".parse()?;
/// assert!(news.matches(&Channel::new("news")?));
/// assert!(!news.matches(&Channel::new("news:sport")?));
///
/// assert!("room:*:admin".parse::<Pattern>().is_err()); // `*` only at the end
/// # Ok::<(), sse_hub::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The name, or the beginning of the names it matches.
    stem: Box<str>,
    /// True if it ended with `*`.
    any_rest: bool,
}

impl Pattern {
    /// Checks `text` and returns it as a pattern.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`] saying what is wrong with it.
    pub fn new(text: &str) -> Result<Pattern, Error> {
        let (stem, any_rest) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if stem.is_empty() && !any_rest {
            return Err(Error::InvalidPattern("must not be empty"));
        }
        if stem.len() > MAX_CHANNEL_NAME_LEN {
            return Err(Error::InvalidPattern(
                "must be at most 64 bytes long before a final *",
            ));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b);
        if !stem.bytes().all(allowed) {
            return Err(Error::InvalidPattern(
                "may only contain A-Z, a-z, 0-9 and - _ . : /, and * at the end",
            ));
        }
        Ok(Pattern {
            stem: stem.into(),
            any_rest,
        })
    }

    /// True if `channel` is one this pattern names.
    pub fn matches(&self, channel: &Channel) -> bool {
        if self.any_rest {
            channel.as_str().starts_with(&*self.stem)
        } else {
            channel.as_str() == &*self.stem
        }
    }

    /// True for `*`, the pattern that matches everything, messages without
    /// a channel included.
    pub fn is_everything(&self) -> bool {
        self.any_rest && self.stem.is_empty()
    }
}

impl std::str::FromStr for Pattern {
    type Err = Error;

    fn from_str(text: &str) -> Result<Pattern, Error> {
        Pattern::new(text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stem)?;
        if self.any_rest {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Pattern, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        Pattern::new(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
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

/// Property tests: names are accepted exactly by the documented rule, and a
/// subscriber's list of names is checked the way the SPEC says, whatever it
/// holds.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::{fuzz, tricky_text};

    /// The documented rule, written out independently of the code.
    fn name_is_valid(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
    }

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![
            tricky_text(),
            "[A-Za-z0-9._:/-]{0,3}",
            "[A-Za-z0-9._:/-]{62,66}",
            "[A-Za-z0-9._:/ ?&=%#-]{1,8}",
            (0usize..4).prop_map(|n| format!("c{n}")),
        ]
    }

    fn a_name_is_checked(name: String) -> Result<(), TestCaseError> {
        match Channel::new(&name) {
            Ok(channel) => {
                prop_assert!(name_is_valid(&name), "accepted {name:?}");
                prop_assert_eq!(channel.as_str(), name.as_str());
            }
            Err(e) => {
                prop_assert!(!name_is_valid(&name), "refused {name:?}: {e}");
                prop_assert!(matches!(e, Error::InvalidChannel(_)));
            }
        }
        Ok(())
    }

    /// Lists with many repeats, around the limit of 32 distinct names, and
    /// now and then a bad name.
    fn name_lists() -> impl Strategy<Value = Vec<String>> {
        let name = prop_oneof![
            20 => (0usize..40).prop_map(|n| format!("c{n}")),
            1 => names(),
        ];
        prop::collection::vec(name, 0..80)
    }

    /// What `channel_set` must give, written out from the SPEC: the first
    /// bad name is an error; repeats count once; more than 32 distinct names
    /// is an error.
    fn expected_set(names: &[String]) -> Result<Vec<String>, &'static str> {
        let mut set: Vec<String> = Vec::new();
        for name in names {
            if !name_is_valid(name) {
                return Err("invalid");
            }
            if set.contains(name) {
                continue;
            }
            if set.len() == MAX_CHANNELS_PER_SUBSCRIBER {
                return Err("too many");
            }
            set.push(name.clone());
        }
        Ok(set)
    }

    fn a_list_is_checked(names: Vec<String>) -> Result<(), TestCaseError> {
        let got = match channel_set(names.iter().map(String::as_str)) {
            Ok(set) => Ok(set.iter().map(|c| c.as_str().to_owned()).collect()),
            Err(Error::InvalidChannel(_)) => Err("invalid"),
            Err(Error::TooManyChannels) => Err("too many"),
            Err(other) => panic!("unexpected error {other}"),
        };
        prop_assert_eq!(got, expected_set(&names));
        Ok(())
    }

    proptest! {
        #[test]
        fn channel_names_follow_the_rule(name in names()) {
            a_name_is_checked(name)?;
        }

        #[test]
        fn channel_lists_are_checked_as_documented(names in name_lists()) {
            a_list_is_checked(names)?;
        }

        /// The `/events` query as the route reads it: percent-decoded,
        /// repeatable `channel=`, other keys ignored.
        #[test]
        fn a_percent_encoded_query_decodes_to_the_names(
            names in prop::collection::vec(names(), 0..6),
            noise in prop::collection::vec(("[a-zA-Z]{1,6}", tricky_text()), 0..3),
        ) {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in &noise {
                if key != "channel" {
                    query.append_pair(key, value);
                }
            }
            for name in &names {
                query.append_pair("channel", name);
            }
            let query = query.finish();
            let decoded: Vec<String> = form_urlencoded::parse(query.as_bytes())
                .filter(|(key, _)| key == "channel")
                .map(|(_, value)| value.into_owned())
                .collect();
            prop_assert_eq!(&decoded, &names);
            a_list_is_checked(decoded)?;
        }
    }

    #[test]
    #[ignore = "fuzz pass, about 12 s: CI runs it with --include-ignored"]
    fn fuzz_pass() {
        fuzz("channel: names", names(), a_name_is_checked);
        fuzz("channel: lists", name_lists(), a_list_is_checked);
    }
}
