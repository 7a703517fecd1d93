//! What the load generator measures besides deliveries: a latency histogram
//! that costs one array increment per sample, the server's resources read
//! from `/proc/<pid>`, and this process's own CPU time.

use std::fs;
use std::time::Duration;

/// Sub-buckets per power of two: values are kept to within 1/64 (1.6%).
const SUB_BITS: u32 = 7;
const HALF: usize = 1 << (SUB_BITS - 1);
/// Enough for any u64: the index of `u64::MAX` is the last.
const BUCKETS: usize = (66 - SUB_BITS as usize) * HALF;

/// A log-linear histogram of nanosecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `q` (0..=1) of the samples fall, to within the
    /// bucket width; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (at, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bucket(at);
                return (low + width / 2).min(self.max);
            }
        }
        self.max
    }
}

fn index(value: u64) -> usize {
    if value < (1 << SUB_BITS) {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - (SUB_BITS - 1);
    ((shift as usize) << (SUB_BITS - 1)) + (value >> shift) as usize
}

/// A bucket's lowest value and width.
fn bucket(at: usize) -> (u64, u64) {
    if at < (1 << SUB_BITS) {
        return (at as u64, 1);
    }
    let shift = (at / HALF - 1) as u32;
    let mantissa = (at % HALF + HALF) as u64;
    (mantissa << shift, 1 << shift)
}

/// A reading of one or more processes (nginx: master and workers).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub threads: u64,
    pub cpu_s: f64,
    /// Every pid could be read.
    pub complete: bool,
}

/// Sums the figures of `pids` from `/proc`.
pub fn usage(pids: &[u32]) -> Usage {
    let ticks = clock_ticks();
    let mut total = Usage {
        complete: !pids.is_empty(),
        ..Usage::default()
    };
    for &pid in pids {
        let status = fs::read_to_string(format!("/proc/{pid}/status"));
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"));
        let (Ok(status), Ok(stat)) = (status, stat) else {
            total.complete = false;
            continue;
        };
        total.rss_kib += field_kib(&status, "VmRSS:");
        total.threads += field_kib(&status, "Threads:");
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            total.pss_kib += field_kib(&rollup, "Pss:");
        }
        // Fields after the command name, which may hold spaces: utime is
        // the 14th field of the line, stime the 15th.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
            let stime: f64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
            total.cpu_s += (utime + stime) / ticks;
        }
    }
    total
}

fn field_kib(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The kernel stack of one thread, in KiB: `THREAD_SIZE` on x86-64 and
/// arm64 (without KASAN). It is not part of any process's RSS.
pub const KERNEL_STACK_KIB: u64 = 16;

/// Machine-wide kernel stack memory, in KiB: each thread has one
/// ([`KERNEL_STACK_KIB`]), outside any process's RSS.
pub fn kernel_stack_kib() -> u64 {
    fs::read_to_string("/proc/meminfo").map_or(0, |m| field_kib(&m, "KernelStack:"))
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(-1.0)
}

/// CPU time (user + system) this process has used.
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the struct passed; zeroed is a valid start.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Raises the soft limit on open files to the hard one.
pub fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut expected_low = 0;
        for at in 0..BUCKETS - 1 {
            let (low, width) = bucket(at);
            assert_eq!(low, expected_low, "bucket {at}");
            assert_eq!(index(low), at);
            assert_eq!(index(low + width - 1), at);
            assert!(width == 1 || (width as f64) / (low as f64) <= 1.0 / 64.0 + 1e-9);
            expected_low = low + width;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(h.max(), 10_000_000);
    }

    #[test]
    fn reads_this_process() {
        let me = usage(&[std::process::id()]);
        assert!(me.complete);
        assert!(me.rss_kib > 0 && me.threads >= 1);
    }
}
