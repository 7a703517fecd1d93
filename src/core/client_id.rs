//! A subscriber's ID, as the `connection` event and the logs show it.

/// A subscriber's ID: unique across restarts of the hub (it starts with a
/// random tag of the hub's run) and, with that, across the nodes of a
/// cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    run: u64,
    n: u64,
}

impl ClientId {
    pub(crate) fn new(run: u64, n: u64) -> ClientId {
        ClientId { run, n }
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:012x}-{}", self.run, self.n)
    }
}

/// As its text, `<run>-<n>`, the way the `connection` event shows it.
impl serde::Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads the text form back, `<run in hex>-<n>`.
impl std::str::FromStr for ClientId {
    type Err = ();

    fn from_str(text: &str) -> Result<ClientId, ()> {
        let (run, n) = text.split_once('-').ok_or(())?;
        Ok(ClientId {
            run: u64::from_str_radix(run, 16).map_err(|_| ())?,
            n: n.parse().map_err(|_| ())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ClientId;

    #[test]
    fn the_text_form_reads_back() {
        let id = ClientId::new(0x5ce6_db6e_10c1, 42);
        assert_eq!(id.to_string(), "5ce6db6e10c1-42");
        assert_eq!("5ce6db6e10c1-42".parse(), Ok(id));
        for bad in ["", "x-1", "12", "12-x", "12-1-2"] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad}");
        }
    }
}
