//! Hand the allocator's free pages back to the system, now and then.
//!
//! glibc's malloc keeps memory that the program has freed: in the arenas of
//! the threads that allocated it, in pages that hold a few live blocks
//! among many free ones. A hub whose streams come and go (each on a thread
//! of its own, with arenas shared between threads) leaves such pages behind
//! faster than later streams fill them, and RSS creeps up for hours while
//! the live heap stays the same (bench/SOAK_RESULTS.md). `malloc_trim(0)`
//! walks every arena and gives back the whole free pages inside it
//! (`MADV_DONTNEED`), not only the top of the heap.
//!
//! This is the binary's business only: the library leaves the allocator of
//! the program that embeds it alone. Elsewhere than glibc it does nothing.

use std::thread;
use std::time::Duration;

/// How often the arenas are trimmed. A trim takes each arena's lock for as
/// long as it walks that arena (well under a millisecond for a hub of a few
/// thousand streams), so once every half minute costs nothing measurable.
const EVERY: Duration = Duration::from_secs(30);

/// Starts a small thread that trims the allocator's arenas every 30 s, for
/// the life of the process. A thread that cannot start is logged and
/// skipped: the hub serves the same without it, only its RSS creeps.
pub(crate) fn trim_in_background() {
    if !TRIMS {
        return;
    }
    let started = thread::Builder::new()
        .name("malloc-trim".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            loop {
                thread::sleep(EVERY);
                trim();
            }
        });
    if let Err(e) = started {
        log::warn!("cannot start the thread that trims free memory: {e}");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIMS: bool = true;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const TRIMS: bool = false;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointer and is safe to call from any
    // thread at any time; it only returns whether memory was released.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
