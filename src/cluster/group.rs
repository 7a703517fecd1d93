//! Appends that arrive together go to Redis together: a group commit.
//!
//! Each publish on a node is one `XADD`, and a round trip to Redis costs
//! far more system calls and wake-ups (in the node, in Redis, and in every
//! node's reader) than the command itself. When several publishers append
//! at once, the first one to find no append in flight sends everything
//! queued by then as one pipeline, and hands each publisher its own ID;
//! the others wait for that answer, and whoever is still waiting when it
//! comes sends what queued up meanwhile. A lone publisher pays nothing for
//! this: it finds no one in flight and sends its own command at once.
//!
//! Only single messages are grouped: a batch is one `MULTI` of its own, so
//! that its messages stay adjacent in the stream.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::core::event_id::EventId;
use crate::error::Error;

/// The appends waiting to be sent and the answers not yet collected.
pub(crate) struct Group<C> {
    state: Mutex<State<C>>,
    answered: Condvar,
}

struct State<C> {
    /// Commands waiting to be sent, each with its publisher's slot.
    queued: Vec<(u64, C)>,
    /// Answers waiting for their publishers.
    answers: HashMap<u64, Result<EventId, Error>>,
    /// A pipeline is in flight.
    sending: bool,
    /// Publishers asleep on `answered`: waking none costs a system call
    /// all the same, which a lone publisher should not pay.
    waiting: usize,
    next_slot: u64,
}

impl<C> Group<C> {
    pub(crate) fn new() -> Group<C> {
        Group {
            state: Mutex::new(State {
                queued: Vec::new(),
                answers: HashMap::new(),
                sending: false,
                waiting: 0,
                next_slot: 0,
            }),
            answered: Condvar::new(),
        }
    }

    /// Appends `command`, sent with whatever else is queued by `send`,
    /// which takes the commands in order and returns their IDs in order.
    /// Returns this command's ID.
    ///
    /// # Errors
    ///
    /// The error `send` returned for the pipeline this command was in.
    pub(crate) fn append(
        &self,
        command: C,
        send: impl Fn(Vec<C>) -> Result<Vec<EventId>, Error>,
    ) -> Result<EventId, Error> {
        let mut state = self.lock();
        let slot = state.next_slot;
        state.next_slot += 1;
        state.queued.push((slot, command));
        loop {
            if let Some(answer) = state.answers.remove(&slot) {
                return answer;
            }
            if state.sending {
                state.waiting += 1;
                state = match self.answered.wait(state) {
                    Ok(state) => state,
                    Err(poisoned) => poisoned.into_inner(),
                };
                state.waiting -= 1;
                continue;
            }
            // Nothing in flight: send everything queued, this one included
            // (unless an earlier pipeline already took it).
            state.sending = true;
            let (slots, commands): (Vec<u64>, Vec<C>) = state.queued.drain(..).unzip();
            drop(state);
            let sent = send(commands);
            state = self.lock();
            state.sending = false;
            match sent {
                Ok(ids) if ids.len() == slots.len() => {
                    for (slot, id) in slots.into_iter().zip(ids) {
                        state.answers.insert(slot, Ok(id));
                    }
                }
                Ok(ids) => {
                    let why = format!(
                        "Redis answered {} IDs to {} XADDs; try again later",
                        ids.len(),
                        slots.len()
                    );
                    for slot in slots {
                        state
                            .answers
                            .insert(slot, Err(Error::RedisUnavailable(why.clone())));
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    for slot in slots {
                        state
                            .answers
                            .insert(slot, Err(Error::RedisUnavailable(why.clone())));
                    }
                }
            }
            if state.waiting > 0 {
                self.answered.notify_all();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic while holding the lock leaves plain data behind: the
        // queue and the answers are still whole.
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn a_lone_append_is_sent_at_once() {
        let group = Group::new();
        let id = group.append(7u64, |commands| {
            assert_eq!(commands, [7]);
            Ok(vec![EventId::new(1, 0)])
        });
        assert_eq!(id.unwrap(), EventId::new(1, 0));
    }

    #[test]
    fn appends_made_meanwhile_travel_together_and_each_gets_its_own_id() {
        let group = Arc::new(Group::new());
        let pipelines = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16u64)
            .map(|n| {
                let (group, pipelines) = (Arc::clone(&group), Arc::clone(&pipelines));
                std::thread::spawn(move || {
                    let id = group.append(n, |commands| {
                        pipelines.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(5));
                        // The "ID" of each command tells which it was.
                        Ok(commands.iter().map(|&c| EventId::new(c, 0)).collect())
                    });
                    (n, id.unwrap())
                })
            })
            .collect();
        for thread in threads {
            let (n, id) = thread.join().unwrap();
            assert_eq!(id, EventId::new(n, 0), "each publisher gets its own ID");
        }
        assert!(
            pipelines.load(Ordering::Relaxed) < 16,
            "some travelled together"
        );
    }

    #[test]
    fn a_failed_pipeline_fails_every_append_in_it() {
        let group = Group::new();
        let answer = group.append((), |_| Err(Error::RedisUnavailable("down".to_owned())));
        assert!(matches!(answer, Err(Error::RedisUnavailable(why)) if why == "down"));
    }
}
