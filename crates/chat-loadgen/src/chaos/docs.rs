//! The chaos run's section of `docs/results.md`, written by the run itself
//! (`loadgen --chaos --write-results docs`), with the exact command, the
//! server's command line (from `/proc`, with `--server-pid`), the machine
//! and the date.
//!
//! `compare` rewrites `results.md` from its own measurements; the section
//! is also kept in `docs/results/chaos.md`, and `compare` puts it back
//! ([`SECTION`], a [`KeptSection`]), as it does the capacity section.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::report::ChaosReport;
use crate::kept::KeptSection;
use crate::process;

/// The marker that opens the section in `results.md`.
pub const START: &str = "<!-- chaos: written by `loadgen --chaos --write-results` -->";
/// The marker that closes it.
pub const END: &str = "<!-- end of chaos -->";
/// Where the section is kept, in the docs folder.
pub const SAVED: &str = "results/chaos.md";
/// The section, kept beside results.md so that `compare` puts it back.
pub const SECTION: KeptSection = KeptSection {
    start: START,
    end: END,
    saved: SAVED,
};

/// The section for `report`, run as `command` against a server started as
/// `server_command` (if known).
pub fn section(report: &ChaosReport, command: &str, server_command: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{START}\n## Chaos: forced disconnects on every transport\n"
    );
    let machine = process::cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = write!(md, "Measured by `{command}`");
    if let Some(server) = server_command {
        let _ = write!(md, " against a server started as `{server}`");
    }
    let _ = writeln!(
        md,
        " on {machine} ({cores} cores, {}), {} UTC.\n",
        std::env::consts::ARCH,
        now_utc()
    );
    let total = report.total();
    let _ = writeln!(
        md,
        "Subscribers on every transport had their connections killed at random moments, \
         half closed (FIN) and half reset (RST, `SO_LINGER` 0), and resumed from their \
         cursor, while {} messages were stored; {} forced disconnects over {} connections \
         in {:.1} s. *Lost*, *duplicated* and *reorders* are summed over subscribers and \
         must be 0; *server requests* are the requests the server counted for the \
         transport meanwhile.",
        report.sent,
        total.forced(),
        total.connections,
        report.elapsed.as_secs_f64(),
    );
    if let Some(rsts) = report.rst_segments {
        let _ = writeln!(
            md,
            "The machine's TCP stack sent {rsts} resets meanwhile (`OutRsts` in \
             `/proc/net/snmp`), for {} forced resets.",
            total.forced_resets
        );
    }
    md.push('\n');
    md.push_str(&report.table());
    let _ = writeln!(
        md,
        "\n{}\n{END}",
        if report.passed() {
            "Passed."
        } else {
            "FAILED."
        }
    );
    md
}

/// The command line of process `pid`, from `/proc/PID/cmdline`.
pub fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Now, as `YYYY-MM-DD HH:MM` in UTC.
fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's command line reads; the date has its shape.
    #[test]
    fn command_and_date() {
        assert!(command_of(std::process::id()).is_some());
        let now = now_utc();
        assert_eq!(now.len(), "2026-11-22 03:50".len(), "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
