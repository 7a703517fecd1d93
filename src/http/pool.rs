//! The request workers: a few threads that answer requests the acceptor
//! hands them, growing when all are busy and shrinking when idle.
//!
//! Requests enter through [`Pool::queue`]; a worker takes one, routes it and
//! goes back for the next. A worker can be held up for a while (a body that
//! arrives slowly, up to the body deadline; a reply to a client that does not
//! read, up to the write timeout), so when none is idle another starts, up to
//! a limit, rather than leaving the queue stuck behind one slow client.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::error;
use tiny_http::Request;

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

pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    jobs: Sender<Request>,
    next: Receiver<Request>,
    workers: AtomicUsize,
    idle: AtomicUsize,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        let (jobs, next) = crossbeam_channel::unbounded();
        Pool {
            shared: Arc::new(Shared {
                jobs,
                next,
                workers: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
            }),
        }
    }

    /// Queues a request. Returns true if a worker should be started for it:
    /// when more requests wait than workers are idle (idle ones may be about
    /// to take requests queued earlier, and those may be slow).
    pub(crate) fn queue(&self, request: Request) -> bool {
        // The pool holds the receiving end too, so this cannot fail.
        let _ = self.shared.jobs.send(request);
        let workers = self.shared.workers.load(SeqCst);
        let waiting = self.shared.jobs.len();
        workers < MIN_WORKERS || (waiting > self.shared.idle.load(SeqCst) && workers < MAX_WORKERS)
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
            self.idle.fetch_add(1, SeqCst);
            let next = self.next.recv_timeout(IDLE_EXIT);
            self.idle.fetch_sub(1, SeqCst);
            match next {
                Ok(request) => {
                    // A bug in one handler must not cost the server a worker;
                    // the panic itself is logged by the panic hook.
                    if catch_unwind(AssertUnwindSafe(|| handle(request))).is_err() {
                        error!("a request handler panicked; the request got a 500");
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let workers = self.workers.load(SeqCst);
                    if workers > MIN_WORKERS
                        && self
                            .workers
                            .compare_exchange(workers, workers - 1, SeqCst, SeqCst)
                            .is_ok()
                    {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
