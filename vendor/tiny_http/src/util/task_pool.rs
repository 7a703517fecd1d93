use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
    // Patched: the stack size of the pool's threads.
    stack_size: Option<usize>,
    // Patched: called when the system refuses a thread.
    on_refused: Box<dyn Fn() + Send>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    pub fn new(stack_size: Option<usize>, on_refused: Box<dyn Fn() + Send>) -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
            }),
            stack_size,
            on_refused,
        };

        for _ in 0..MIN_THREADS {
            pool.add_thread();
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Box<dyn FnMut() + Send>) {
        let mut queue = self.sharing.todo.lock().unwrap_or_else(|p| p.into_inner());

        // Patched: an idle thread counts as idle until it has taken a task,
        // so upstream's `waiting_tasks == 0` queued a burst of connections
        // behind threads already promised to earlier ones. A connection can
        // hold its thread for good (a long-lived response), so the queued
        // ones could wait forever. Start a thread unless an idle one is left
        // over after the tasks already queued.
        let start_thread = self.sharing.waiting_tasks.load(Ordering::Acquire) <= queue.len();
        queue.push_back(code);
        drop(queue);
        if !start_thread {
            self.sharing.condvar.notify_one();
        } else if !self.add_thread() {
            // Patched: the task stays queued for the next thread that is
            // free, and the application is told, so that it can free some.
            (self.on_refused)();
        }
    }

    // Patched: upstream used `thread::spawn`, which panics when the system
    // refuses a thread and so killed the accept thread. A refused thread is
    // now reported (false) and the server goes on. A new thread takes its
    // first task from the queue.
    fn add_thread(&self) -> bool {
        let sharing = self.sharing.clone();

        let mut builder = thread::Builder::new().name("connection".into());
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let spawned = builder.spawn(move || {
            let sharing = sharing;
            let _active_guard = Registration::new(&sharing.active_tasks);

            loop {
                let mut task: Box<dyn FnMut() + Send> = {
                    let mut todo = sharing.todo.lock().unwrap_or_else(|p| p.into_inner());

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                todo = sharing
                                    .condvar
                                    .wait(todo)
                                    .unwrap_or_else(|p| p.into_inner());
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap_or_else(|p| p.into_inner());
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();

                // Patched: a thread beyond the pool's minimum ends with its
                // connection instead of idling for more. A connection often
                // lives for hours (an event stream) and thousands of threads
                // come and go; each kept a cache of freed blocks (glibc's
                // tcache) that only the thread's end gives back, and RSS
                // climbed for as long as streams churned.
                if sharing.active_tasks.load(Ordering::Acquire) > MIN_THREADS {
                    return;
                }
            }
        });
        match spawned {
            Ok(_) => true,
            Err(e) => {
                log::error!(
                    "Cannot start a connection thread; the connection waits for a free one: {}",
                    e
                );
                false
            }
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
