//! How many subscribers this process can hold before the system refuses it a
//! thread, a memory map or a file descriptor.
//!
//! Each subscriber costs one thread (its connection's, which writes its
//! stream) and one file descriptor. Connections that are not streams (a
//! publisher's, one being set up) cost the same, which the reserves below
//! cover. Each thread costs four memory maps (stack, guard page, signal
//! stack, its guard page). Running out is never clean: a
//! refused memory map makes the next large allocation abort the process, and
//! a refused descriptor leaves new connections waiting in the kernel's
//! queue.
//! So at start the server works out, from the limits below, how many
//! subscribers it can hold with some room to spare, and lowers
//! `--max-clients` to that with a warning that names the limit and how to
//! raise it. Past the cap, new subscribers get `503` and existing ones carry
//! on.

#![allow(unsafe_code)]

use std::fs;

/// What one subscriber costs.
const FDS_PER_CLIENT: u64 = 1;
const THREADS_PER_CLIENT: u64 = 1;
const MAPS_PER_THREAD: u64 = 4;

/// Left for everything else: connections being set up (a burst of
/// reconnecting subscribers), publishers' connections, request workers, the
/// hub, logs, files of the web client; and room for the allocator's maps.
/// Under a small descriptor limit (1,024 is a common hard limit in
/// containers) a quarter of it is kept instead, so the hub still starts.
const RESERVED_FDS: u64 = 1024;
const RESERVED_THREADS: u64 = 1024;
const RESERVED_MAPS: u64 = 4096 + RESERVED_THREADS * MAPS_PER_THREAD;

/// One system limit and the number of subscribers it leaves room for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The limit's name, as a user would look it up.
    pub name: &'static str,
    /// Its current value.
    pub value: u64,
    /// Subscribers it leaves room for.
    pub clients: usize,
    /// How to raise it.
    pub raise: &'static str,
}

/// The outcome of [`plan`].
#[derive(Clone, Debug)]
pub struct Capacity {
    /// `--max-clients` as the server will apply it.
    pub max_clients: usize,
    /// The limit that lowered it, if one did.
    pub lowered_by: Option<Limit>,
    /// Every limit that could be read.
    pub limits: Vec<Limit>,
}

/// Raises the soft file-descriptor limit to the hard one, then works out how
/// many of `requested` subscribers the system's limits leave room for.
pub fn plan(requested: usize) -> Capacity {
    let limits: Vec<Limit> = [open_files(), memory_maps(), threads(), cgroup_pids()]
        .into_iter()
        .flatten()
        .collect();
    let tightest = limits.iter().min_by_key(|l| l.clients).cloned();
    match tightest {
        Some(limit) if limit.clients < requested => Capacity {
            max_clients: limit.clients,
            lowered_by: Some(limit),
            limits,
        },
        _ => Capacity {
            max_clients: requested,
            lowered_by: None,
            limits,
        },
    }
}

fn clients(available: u64, per_client: u64) -> usize {
    usize::try_from(available / per_client).unwrap_or(usize::MAX)
}

/// Keeps 5% of a limit in reserve.
fn with_headroom(limit: u64) -> u64 {
    limit - limit / 20
}

fn open_files() -> Option<Limit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let value = limit.rlim_cur;
    let available = with_headroom(value).saturating_sub(RESERVED_FDS.min(value / 4));
    Some(Limit {
        name: "open files (ulimit -n)",
        value,
        clients: clients(available, FDS_PER_CLIENT),
        raise: "raise the hard limit: `ulimit -n` as root, LimitNOFILE= in a systemd unit, or nofile in /etc/security/limits.conf",
    })
}

fn memory_maps() -> Option<Limit> {
    let value = read_number("/proc/sys/vm/max_map_count")?;
    let in_use = fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count() as u64);
    let available = with_headroom(value).saturating_sub(in_use + RESERVED_MAPS);
    Some(Limit {
        name: "vm.max_map_count",
        value,
        clients: clients(available, THREADS_PER_CLIENT * MAPS_PER_THREAD),
        raise: "sysctl -w vm.max_map_count=262144",
    })
}

fn threads() -> Option<Limit> {
    let pid_max = read_number("/proc/sys/kernel/pid_max")?;
    let threads_max = read_number("/proc/sys/kernel/threads-max").unwrap_or(u64::MAX);
    // The fourth field of loadavg is running/total threads on the machine.
    let in_use = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok())
        .unwrap_or(0);
    let (name, value, raise) = if threads_max < pid_max {
        (
            "kernel.threads-max",
            threads_max,
            "sysctl -w kernel.threads-max=200000",
        )
    } else {
        (
            "kernel.pid_max",
            pid_max,
            "sysctl -w kernel.pid_max=4194304",
        )
    };
    let available = with_headroom(value).saturating_sub(in_use + RESERVED_THREADS);
    Some(Limit {
        name,
        value,
        clients: clients(available, THREADS_PER_CLIENT),
        raise,
    })
}

/// A container's task limit (cgroup v2 `pids.max`), if there is one.
fn cgroup_pids() -> Option<Limit> {
    let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = format!("/sys/fs/cgroup{}", path.trim_end());
    let value = read_number(&format!("{dir}/pids.max"))?;
    let in_use = read_number(&format!("{dir}/pids.current")).unwrap_or(0);
    let available = with_headroom(value).saturating_sub(in_use + RESERVED_THREADS);
    Some(Limit {
        name: "cgroup pids.max",
        value,
        clients: clients(available, THREADS_PER_CLIENT),
        raise: "raise the container's task limit (TasksMax= in systemd, --pids-limit in docker)",
    })
}

fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_request_is_kept() {
        let capacity = plan(10);
        assert_eq!(capacity.max_clients, 10);
        assert!(capacity.lowered_by.is_none());
    }

    #[test]
    fn a_huge_request_is_lowered_to_the_tightest_limit() {
        let capacity = plan(usize::MAX);
        let tightest = capacity.limits.iter().map(|l| l.clients).min().unwrap();
        assert_eq!(capacity.max_clients, tightest);
        assert_eq!(capacity.lowered_by.unwrap().clients, tightest);
    }

    #[test]
    fn headroom_keeps_a_twentieth() {
        assert_eq!(with_headroom(20_000), 19_000);
        assert_eq!(clients(19_000 - RESERVED_FDS, FDS_PER_CLIENT), 17_976);
    }
}
