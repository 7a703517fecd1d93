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
