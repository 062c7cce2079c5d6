//! The `/proc` sampler: what a process costs the machine, read the way `ps`
//! and `top` read it. Linux only.
//!
//! - [`sample`]: resident memory (`VmRSS` in `/proc/PID/status`) and CPU
//!   time (`utime + stime` in `/proc/PID/stat`, in clock ticks; see
//!   [`clock_ticks_per_second`]).
//! - [`max_open_files`]: the soft descriptor limit in `/proc/PID/limits`.
//! - [`cpu_model`]: the machine's CPU, from `/proc/cpuinfo`, for the heading
//!   of a results page.
//!
//! Shared by `loadgen` (the server's memory and CPU over a run) and
//! `compare` (the machine it measured on).

/// Clock ticks per second of `/proc/PID/stat` when `getconf CLK_TCK` cannot
/// say: Linux's `USER_HZ`, 100 on every common architecture.
pub const FALLBACK_CLOCK_TICKS: u64 = 100;

/// A process's resident memory and CPU time at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
}

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read: no such process, or no permission.
    #[error("cannot read {path}")]
    Read {
        /// The `/proc` file.
        path: String,
        /// What the read said.
        #[source]
        source: std::io::Error,
    },
    /// The file did not hold what it should (the process may have exited
    /// between two reads).
    #[error("no {what} in {path} (has the process exited?)")]
    Missing {
        /// The `/proc` file.
        path: String,
        /// The field looked for.
        what: &'static str,
    },
}

/// Reads `/proc/PID/status` and `/proc/PID/stat`.
pub fn sample(pid: u32) -> Result<Sample, ProcError> {
    let (status_path, status) = read(pid, "status")?;
    let rss_kib = rss_kib(&status).ok_or(ProcError::Missing {
        path: status_path,
        what: "VmRSS",
    })?;
    let (stat_path, stat) = read(pid, "stat")?;
    let cpu_ticks = cpu_ticks(&stat).ok_or(ProcError::Missing {
        path: stat_path,
        what: "utime and stime",
    })?;
    Ok(Sample { rss_kib, cpu_ticks })
}

/// [`sample`], or a warning on stderr and `None` (the process may have died;
/// a report is printed either way).
pub fn sample_or_warn(pid: u32) -> Option<Sample> {
    sample(pid)
        .map_err(|e| eprintln!("warning: {:#}", anyhow::Error::from(e)))
        .ok()
}

/// [`sample`] of every process in `pids`, added up: several server
/// instances as one (their memory and CPU time together).
pub fn sample_all(pids: &[u32]) -> Result<Sample, ProcError> {
    let mut total = Sample {
        rss_kib: 0,
        cpu_ticks: 0,
    };
    for &pid in pids {
        let one = sample(pid)?;
        total.rss_kib += one.rss_kib;
        total.cpu_ticks += one.cpu_ticks;
    }
    Ok(total)
}

/// [`sample_all`], or a warning on stderr and `None`.
pub fn sample_all_or_warn(pids: &[u32]) -> Option<Sample> {
    sample_all(pids)
        .map_err(|e| eprintln!("warning: {:#}", anyhow::Error::from(e)))
        .ok()
}

/// Clock ticks per second for `/proc/PID/stat`, from `getconf CLK_TCK` (the
/// workspace forbids the `unsafe` a `sysconf` call needs), or
/// [`FALLBACK_CLOCK_TICKS`].
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(FALLBACK_CLOCK_TICKS)
}

/// The soft limit on open files of process `pid`, from `/proc/PID/limits`;
/// `None` if it cannot be read.
pub fn max_open_files(pid: u32) -> Option<u64> {
    let (_, limits) = read(pid, "limits").ok()?;
    soft_open_files(&limits)
}

/// The CPU model (`model name` in `/proc/cpuinfo`), if it says.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    model_name(&info)
}

/// `/proc/PID/FILE` and its text.
fn read(pid: u32, file: &str) -> Result<(String, String), ProcError> {
    let path = format!("/proc/{pid}/{file}");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

/// `VmRSS` from the text of `/proc/PID/status`, in KiB.
fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// `utime + stime` from the text of `/proc/PID/stat`, in clock ticks.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // Field 2, the command name, is in parentheses and may hold spaces and
    // parentheses itself: count fields from the last ')'. Field 3 (state)
    // is then the first, so utime (field 14) and stime (15) are the 12th and
    // 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The soft `Max open files` from the text of `/proc/PID/limits`.
fn soft_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The first `model name` in the text of `/proc/cpuinfo`.
fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command name with spaces and parentheses does not shift the fields.
    #[test]
    fn cpu_ticks_count_from_the_last_parenthesis() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(12));
        assert_eq!(cpu_ticks("42 (x) S 1"), None);
    }

    /// The fields are read from the texts Linux writes.
    #[test]
    fn status_limits_and_cpuinfo_parse() {
        assert_eq!(rss_kib("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2048));
        assert_eq!(rss_kib("Name:\tx\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(soft_open_files(limits), Some(1024));
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: fpu\n";
        assert_eq!(model_name(cpuinfo).as_deref(), Some("AMD EPYC"));
    }

    /// This very process can be sampled.
    #[test]
    fn samples_this_process() {
        let own = sample(std::process::id()).expect("own /proc entry");
        assert!(own.rss_kib > 0);
        assert!(max_open_files(std::process::id()).is_some_and(|n| n > 0));
        assert!(matches!(sample(u32::MAX), Err(ProcError::Read { .. })));
        let own_id = std::process::id();
        let twice = sample_all(&[own_id, own_id]).expect("own /proc entry twice");
        // CPU time never goes down, so each later sample holds at least as much.
        assert!(twice.cpu_ticks >= own.cpu_ticks * 2 && twice.rss_kib > own.rss_kib / 2);
        assert!(sample_all(&[own_id, u32::MAX]).is_err());
    }
}
