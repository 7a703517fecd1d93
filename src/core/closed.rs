//! Why the hub ended a subscriber's stream or subscription.

/// Why the hub closed a subscriber: a [`Subscription`](crate::Subscription)
/// or an [`EventStream`](crate::EventStream) ends with one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The queue was full: the subscriber did not keep up.
    Slow,
    /// The client's connection was seen to close.
    HungUp,
    /// The hub asked for it (a request pipelined behind the stream, or the
    /// application's own call).
    Asked(&'static str),
    /// The hub is shutting down.
    Shutdown,
}
