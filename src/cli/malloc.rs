//! The allocator settings the binary runs with. The hub's connection
//! threads come and go all day, and glibc's defaults let that churn creep
//! into memory for hours even though the hub's live memory does not grow
//! (BENCHMARKS.md, "Memory through an hour of churn"):
//!
//! - every thread keeps a cache of the small blocks it frees (the tcache),
//!   which pins blocks of other threads' frames and requests in the middle
//!   of the heap;
//! - threads spread over up to eight heaps (arenas) per core, whose holes
//!   never line up to be reused;
//! - the stacks of ended threads are kept for new threads, and each keeps
//!   the deepest pages any of its threads touched.
//!
//! glibc reads these settings only from `GLIBC_TUNABLES` when a process
//! starts, so the binary starts itself once more (the same process, by
//! `exec`) with those it lacks added. A setting the operator already put in
//! `GLIBC_TUNABLES` wins. The library never does this: a program that
//! embeds the hub owns its allocator.

/// What the binary adds to `GLIBC_TUNABLES`, each unless already named
/// there.
pub const SETTINGS: [&str; 3] = [
    "glibc.malloc.tcache_count=0",
    "glibc.malloc.arena_max=1",
    "glibc.pthread.stack_cache_size=0",
];

/// Runs the binary again with [`SETTINGS`], when glibc is the allocator and
/// some are missing. Returns only when it does not: nothing was missing, or
/// the new start failed (then the hub runs with glibc's defaults, and says
/// so once logging is up).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn restart_with_settings() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;

    let mut value = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    let given = value.to_string_lossy().into_owned();
    let mut added = false;
    for setting in SETTINGS {
        let name = setting.split('=').next().unwrap_or(setting);
        let named = given.split(':').any(|t| t.split('=').next() == Some(name));
        if !named {
            if !value.is_empty() {
                value.push(":");
            }
            value.push(setting);
            added = true;
        }
    }
    if !added {
        return None;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "sse-hub".into());
    // `exec` replaces this process (same pid, same descriptors) and returns
    // only on failure.
    Some(
        std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", value)
            .exec(),
    )
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_with_settings() -> Option<std::io::Error> {
    None
}
