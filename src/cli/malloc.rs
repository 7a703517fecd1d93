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
/// `GLIBC_TUNABLES`, the binary starts again once at most. Its value is the
/// process's name from the first start: the kernel names a process after
/// the file it runs, which for the second start is `/proc/self/exe`, and
/// `ps`, `top`, `pgrep -x` and `killall` would see `exe`.
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

    if let Some(name) = std::env::var_os(RESTARTED) {
        // SAFETY: the binary calls this before it starts any thread, so
        // nothing reads the environment at the same time.
        unsafe { std::env::remove_var(RESTARTED) };
        set_process_name(&name);
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
            .env(RESTARTED, process_name())
            .exec(),
    )
}

/// The calling thread's name, which for the main thread is the process's
/// (`/proc/self/comm`, at most 15 bytes).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn process_name() -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;

    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into the
    // buffer, which holds 16.
    if unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) } != 0 {
        return std::ffi::OsString::new();
    }
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    std::ffi::OsString::from_vec(name[..len].to_vec())
}

/// Names the calling thread, the main one here, and with it the process;
/// the kernel keeps the first 15 bytes. An empty name changes nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_process_name(name: &std::ffi::OsStr) {
    use std::os::unix::ffi::OsStrExt;

    if name.is_empty() {
        return;
    }
    // An environment value holds no NUL, so this always succeeds.
    if let Ok(name) = std::ffi::CString::new(name.as_bytes()) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string, which `name`
        // is, and keeps a copy; a failure leaves the name as it was.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_with_settings() -> Option<std::io::Error> {
    None
}
