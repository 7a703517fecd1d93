//! Patched: a one-shot hand-over of one value from one thread to another.
//!
//! The sequential readers and writers pass a connection's reader (or a turn
//! to write) from one request to the next, once. Upstream used an `mpsc`
//! channel for each, whose first send allocates a block for 31 values and
//! whose counters are padded to cache lines: about 3.7 KiB for every
//! connection, kept for its whole life. This is a mutex and a condition
//! variable around one slot.

use std::sync::{Arc, Condvar, Mutex};

struct Slot<T> {
    value: Mutex<State<T>>,
    ready: Condvar,
}

enum State<T> {
    Waiting,
    Given(T),
    /// The giver went away without giving.
    Dropped,
    Taken,
}

/// The giving end.
pub struct Giver<T>(Option<Arc<Slot<T>>>);

/// The taking end.
pub struct Taker<T>(Arc<Slot<T>>);

/// A new hand-over.
pub fn handoff<T>() -> (Giver<T>, Taker<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(State::Waiting),
        ready: Condvar::new(),
    });
    (Giver(Some(Arc::clone(&slot))), Taker(slot))
}

impl<T> Giver<T> {
    /// Hands `value` over; it is dropped if nobody will take it.
    pub fn give(mut self, value: T) {
        if let Some(slot) = self.0.take() {
            slot.set(State::Given(value));
        }
    }
}

impl<T> Drop for Giver<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.set(State::Dropped);
        }
    }
}

impl<T> Slot<T> {
    fn set(&self, state: State<T>) {
        let mut value = self.value.lock().unwrap_or_else(|p| p.into_inner());
        *value = state;
        self.ready.notify_all();
    }
}

impl<T> Taker<T> {
    /// Waits for the value; `None` if the giver went away without it (or it
    /// was taken already).
    pub fn take(&self) -> Option<T> {
        let mut value = self.0.value.lock().unwrap_or_else(|p| p.into_inner());
        while let State::Waiting = *value {
            value = self.0.ready.wait(value).unwrap_or_else(|p| p.into_inner());
        }
        match std::mem::replace(&mut *value, State::Taken) {
            State::Given(v) => Some(v),
            _ => None,
        }
    }
}
