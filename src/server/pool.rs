//! The request workers: a few threads that answer requests the acceptor
//! hands them, growing when all are busy and shrinking when idle.
//!
//! Requests enter through [`Pool::queue`]; a worker takes one, routes it and
//! goes back for the next. A worker can be held up for a while (a body that
//! arrives slowly, up to the body deadline; a reply to a client that does not
//! read, up to the write timeout), so when none is free another starts, up to
//! a limit, rather than leaving the queue stuck behind one slow client.
//!
//! Free means: waiting for a request that no other queued request has
//! already claimed. One counter, workers waiting minus requests waiting,
//! keeps that exact: a request claims a free worker the moment it is queued,
//! and starts one when there is none. (Counting idle workers instead left a
//! request unattended now and then: a worker that had just taken a request
//! still counted as idle for the next one, which then waited behind slow
//! clients until some worker finished.)

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::error;
use sse_hub_tiny_http::Request;

/// Workers that stay even when idle.
const MIN_WORKERS: usize = 2;
/// Workers at most; past this, requests wait in the queue. Only clients
/// that send a body slowly hold a worker for long (up to the body deadline),
/// and a worker is cheap (one small thread, covered by the thread reserve in
/// `capacity.rs`), so this is generous: it is how many such clients can stall
/// at once before anyone else waits.
const MAX_WORKERS: usize = 512;
/// An extra worker idle this long ends.
const IDLE_EXIT: Duration = Duration::from_secs(10);
/// Enough for JSON parsing at serde_json's depth limit of 128, with margin.
const WORKER_STACK: usize = 512 * 1024;

/// The workers end when the pool is dropped.
pub(crate) struct Pool {
    jobs: Sender<Request>,
    shared: Arc<Shared>,
}

struct Shared {
    next: Receiver<Request>,
    workers: AtomicUsize,
    /// Workers waiting for a request, minus requests queued and not yet
    /// taken. Below zero, that many requests have no worker coming for them.
    free: AtomicIsize,
    idle_exit: Duration,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool::with_idle_exit(IDLE_EXIT)
    }

    fn with_idle_exit(idle_exit: Duration) -> Pool {
        let (jobs, next) = crossbeam_channel::unbounded();
        Pool {
            jobs,
            shared: Arc::new(Shared {
                next,
                workers: AtomicUsize::new(0),
                free: AtomicIsize::new(0),
                idle_exit,
            }),
        }
    }

    /// Queues a request. Returns true if a worker should be started for it:
    /// when no worker is free for it (busy ones may be held up by slow
    /// clients), unless the pool is at its limit.
    pub(crate) fn queue(&self, request: Request) -> bool {
        // Claimed before the request is visible, so that no worker retires
        // on the strength of a free place this request counts on.
        let free = self.shared.free.fetch_sub(1, SeqCst) - 1;
        // The pool holds the receiving end too, so this cannot fail.
        let _ = self.jobs.send(request);
        free < 0 && self.shared.workers.load(SeqCst) < MAX_WORKERS
    }

    /// Starts a worker that passes each queued request to `handle`.
    pub(crate) fn start_worker(&self, handle: impl Fn(Request) + Send + 'static) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        shared.workers.fetch_add(1, SeqCst);
        let started = thread::Builder::new()
            .name("worker".into())
            .stack_size(WORKER_STACK)
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.work(&handle)
            });
        if started.is_err() {
            shared.workers.fetch_sub(1, SeqCst);
        }
        started.map(drop)
    }
}

impl Shared {
    fn work(&self, handle: &dyn Fn(Request)) {
        loop {
            // Free; the request this worker takes was counted against it
            // when it was queued.
            self.free.fetch_add(1, SeqCst);
            let request = loop {
                match self.next.recv_timeout(self.idle_exit) {
                    Ok(request) => break request,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.retire() {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            // A bug in one handler must not cost the server a worker; the
            // panic itself is logged by the panic hook.
            if catch_unwind(AssertUnwindSafe(|| handle(request))).is_err() {
                error!("a request handler panicked; the request got a 500");
            }
        }
    }

    /// Whether an idle worker may end: only while more workers are free than
    /// requests wait (so no request counts on this one) and more than the
    /// minimum remain. If so, it is no longer counted.
    fn retire(&self) -> bool {
        let workers = self.workers.load(SeqCst);
        if workers <= MIN_WORKERS {
            return false;
        }
        let spare = self
            .free
            .fetch_update(SeqCst, SeqCst, |free| (free > 0).then(|| free - 1));
        if spare.is_err() {
            return false;
        }
        if self
            .workers
            .compare_exchange(workers, workers - 1, SeqCst, SeqCst)
            .is_ok()
        {
            return true;
        }
        // Another worker retired meanwhile: stay, free as before.
        self.free.fetch_add(1, SeqCst);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_hub_tiny_http::TestRequest;
    use std::time::Instant;

    /// Requests held up by slow clients never leave a later request waiting
    /// for a worker: with every handler blocked, each of a burst of
    /// requests must still be taken. Queued the way the acceptor does it,
    /// starting a worker whenever `queue` asks for one.
    #[test]
    fn a_burst_of_slow_requests_never_leaves_one_without_a_worker() {
        const REQUESTS: usize = 50;
        for round in 0..200 {
            // Idle workers retire at once, so that those of a round end
            // soon after it (and retiring is put to the test too).
            let pool = Pool::with_idle_exit(Duration::from_millis(1));
            let (taken, started) = crossbeam_channel::unbounded();
            let (release, held) = crossbeam_channel::unbounded::<()>();
            let handle = Arc::new(move |_: Request| {
                let _ = taken.send(());
                let _ = held.recv();
            });
            for _ in 0..REQUESTS {
                if pool.queue(TestRequest::new().into()) {
                    let handle = Arc::clone(&handle);
                    pool.start_worker(move |r| handle(r)).unwrap();
                }
            }
            let guard = Instant::now() + Duration::from_secs(20);
            for i in 0..REQUESTS {
                assert!(
                    started.recv_deadline(guard).is_ok(),
                    "round {round}: only {i} of {REQUESTS} requests were taken \
                     while the others were held up"
                );
            }
            drop(release);
        }
    }
}
