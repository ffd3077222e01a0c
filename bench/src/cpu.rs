//! CPU time of individual threads, from /proc: the exact on-CPU nanoseconds
//! of `schedstat` and the user/system split of `stat` (in clock ticks). The
//! device under test's cost per packet is the time its NAPI kernel threads
//! and the forwarder's own threads spent, divided by the packets it
//! forwarded; a busy-poller's spinning counts, as it should.

use std::collections::BTreeMap;
use std::fs;

/// CPU time of one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadTime {
    /// Nanoseconds on a CPU (schedstat field 1).
    pub on_cpu_ns: u64,
    /// Clock ticks in user mode (stat field 14).
    pub user_ticks: u64,
    /// Clock ticks in kernel mode (stat field 15).
    pub system_ticks: u64,
}

/// CPU time of a set of threads, keyed by thread id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    threads: BTreeMap<i32, ThreadTime>,
}

/// What a set of threads used between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Nanoseconds on a CPU.
    pub on_cpu_ns: u64,
    /// The user-mode share of it, from the tick counts (0-1; 0 without ticks).
    pub user_share: f64,
}

impl Snapshot {
    /// Reads the threads `tids` (thread ids, any process). A thread that
    /// has exited is left out.
    pub fn of_threads(tids: &[i32]) -> Self {
        let threads = tids
            .iter()
            .filter_map(|&tid| read_thread(&format!("/proc/{tid}")).map(|t| (tid, t)))
            .collect();
        Self { threads }
    }

    /// Reads every thread of process `pid`.
    pub fn of_process(pid: i32) -> Self {
        Self::of_threads(&threads_of(pid))
    }

    /// Adds `other`'s threads (later entries win on the same id).
    pub fn merge(mut self, other: Snapshot) -> Self {
        self.threads.extend(other.threads);
        self
    }

    /// What the threads used since `before`; a thread born since counts
    /// from zero.
    pub fn since(&self, before: &Snapshot) -> Usage {
        let mut total = ThreadTime::default();
        for (tid, now) in &self.threads {
            let then = before.threads.get(tid).copied().unwrap_or_default();
            total.on_cpu_ns += now.on_cpu_ns.saturating_sub(then.on_cpu_ns);
            total.user_ticks += now.user_ticks.saturating_sub(then.user_ticks);
            total.system_ticks += now.system_ticks.saturating_sub(then.system_ticks);
        }
        let ticks = total.user_ticks + total.system_ticks;
        let user_share = if ticks > 0 { total.user_ticks as f64 / ticks as f64 } else { 0.0 };
        Usage { on_cpu_ns: total.on_cpu_ns, user_share }
    }
}

/// Thread ids of process `pid` (empty when it is gone).
pub fn threads_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut tids: Vec<i32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    tids
}

fn read_thread(dir: &str) -> Option<ThreadTime> {
    let schedstat = fs::read_to_string(format!("{dir}/schedstat")).ok()?;
    let stat = fs::read_to_string(format!("{dir}/stat")).ok()?;
    let on_cpu_ns = parse_schedstat(&schedstat)?;
    let (user_ticks, system_ticks) = parse_stat_times(&stat)?;
    Some(ThreadTime { on_cpu_ns, user_ticks, system_ticks })
}

/// The first field of /proc/PID/schedstat: nanoseconds on a CPU.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// utime and stime (fields 14 and 15) of /proc/PID/stat. The name (field
/// 2) is in parentheses and may hold spaces and parentheses itself, so the
/// fields are counted from the last ')'.
fn parse_stat_times(text: &str) -> Option<(u64, u64)> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come state (field 3) ... utime is field 14: 11 later.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime stime ...
        let stat = "1234 (napi/x) y) (z) S 2 0 0 0 -1 2129984 0 0 0 0 17 42 0 0 20 0 1 0";
        assert_eq!(parse_stat_times(stat), Some((17, 42)));
        assert_eq!(parse_stat_times("1 (short) S 2"), None);
        assert_eq!(parse_schedstat("123456 789 10\n"), Some(123_456));
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn usage_counts_new_threads_from_zero_and_splits_user_time() {
        let t = |ns, u, s| ThreadTime { on_cpu_ns: ns, user_ticks: u, system_ticks: s };
        let before = Snapshot { threads: BTreeMap::from([(1, t(100, 1, 1)), (2, t(50, 0, 0))]) };
        let after = Snapshot {
            threads: BTreeMap::from([(1, t(400, 4, 2)), (2, t(50, 0, 0)), (3, t(100, 0, 2))]),
        };
        let usage = after.since(&before);
        assert_eq!(usage.on_cpu_ns, 300 + 100);
        // user 3 ticks, system 1 + 2 ticks.
        assert!((usage.user_share - 0.5).abs() < 1e-9);
    }

    #[test]
    fn reads_this_process() {
        let me = i32::try_from(std::process::id()).unwrap();
        let snapshot = Snapshot::of_process(me);
        assert!(snapshot.threads.contains_key(&me));
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let later = Snapshot::of_process(me);
        assert!(later.since(&snapshot).on_cpu_ns >= 10_000_000);
    }

    proptest! {
        #[test]
        fn stat_parser_never_panics(text in ".{0,200}") {
            let _ = parse_stat_times(&text);
            let _ = parse_schedstat(&text);
        }

        #[test]
        fn stat_parser_finds_the_times_whatever_the_name(
            name in "[ -~]{0,15}", utime in 0u64..1 << 40, stime in 0u64..1 << 40,
        ) {
            let stat = format!("7 ({name}) R 1 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0");
            prop_assert_eq!(parse_stat_times(&stat), Some((utime, stime)));
        }
    }
}
