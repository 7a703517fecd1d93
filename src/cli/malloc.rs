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
//! `GLIBC_TUNABLES` wins. It starts again at most once, and not at all when
//! it runs with more rights than its user (setuid, or a file capability
//! such as `cap_net_bind_service` to listen on port 443): glibc then drops
//! such settings. The library never does this: a program that embeds the
//! hub owns its allocator.

/// What the binary adds to `GLIBC_TUNABLES`, each unless already named
/// there.
pub const SETTINGS: [&str; 3] = [
    "glibc.malloc.tcache_count=0",
    "glibc.malloc.arena_max=1",
    "glibc.pthread.stack_cache_size=0",
];

/// Set for the second start, which removes it: whatever glibc makes of
/// `GLIBC_TUNABLES`, the binary starts again once at most.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const RESTARTED: &str = "SSE_HUB_RESTARTED_WITH_TUNABLES";

/// Runs the binary again with [`SETTINGS`], when glibc is the allocator and
/// some are missing. Returns only when it does not: nothing was missing,
/// this is the second start, the process runs in glibc's secure mode, or
/// the new start failed (then the hub runs with glibc's defaults, and says
/// so once logging is up). Call it before any other thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn restart_with_settings() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;

    if std::env::var_os(RESTARTED).is_some() {
        // SAFETY: the binary calls this before it starts any thread, so
        // nothing reads the environment at the same time.
        unsafe { std::env::remove_var(RESTARTED) };
        return None;
    }
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave us.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return None;
    }
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
            .env(RESTARTED, "1")
            .exec(),
    )
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_with_settings() -> Option<std::io::Error> {
    None
}
