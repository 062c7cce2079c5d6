//! The chaos run's section of `docs/results.md`, written by the run itself
//! (`loadgen --chaos --write-results docs`), with the exact command, the
//! server's command line (from `/proc`, with `--server-pid`), the machine
//! and the date.
//!
//! `compare` rewrites `results.md` from its own measurements; the section
//! is also kept in `docs/results/chaos.md`, and `compare` puts it back
//! ([`restore`]), as it does the capacity section.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::report::ChaosReport;
use crate::process;

/// The marker that opens the section in `results.md`.
pub const START: &str = "<!-- chaos: written by `loadgen --chaos --write-results` -->";
/// The marker that closes it.
pub const END: &str = "<!-- end of chaos -->";
/// Where the section is kept, in the docs folder.
pub const SAVED: &str = "results/chaos.md";

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

/// Writes `section` to `docs/results/chaos.md` and into `docs/results.md`.
pub fn write(docs: &Path, section: &str) -> anyhow::Result<()> {
    let saved = docs.join(SAVED);
    if let Some(folder) = saved.parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(&saved, section).with_context(|| format!("writing {}", saved.display()))?;
    splice(&docs.join("results.md"), section)
}

/// Puts the kept section back into `docs/results.md` after `compare`
/// rewrote it; nothing if there is none.
pub fn restore(docs: &Path) -> anyhow::Result<()> {
    match std::fs::read_to_string(docs.join(SAVED)) {
        Ok(section) => splice(&docs.join("results.md"), &section),
        Err(_) => Ok(()),
    }
}

/// Puts `section` into the file at `results`, in place of an earlier one,
/// else at the end.
fn splice(results: &Path, section: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(results).unwrap_or_default();
    let text = match (text.find(START), text.find(END)) {
        (Some(start), Some(end)) if end > start => format!(
            "{}{}{}",
            &text[..start],
            section.trim_end(),
            &text[end + END.len()..]
        ),
        _ => format!("{}\n\n{}\n", text.trim_end(), section.trim_end()),
    };
    std::fs::write(results, text).with_context(|| format!("writing {}", results.display()))
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

    /// The section goes at the end the first time, then replaces itself,
    /// leaving what is around it alone.
    #[test]
    fn splices_in_place() {
        let dir = std::env::temp_dir().join(format!("chaos-splice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let results = dir.join("results.md");
        std::fs::write(&results, "# Results\n\nbefore\n").expect("written");
        write(&dir, &format!("{START}\none\n{END}\n")).expect("written");
        let text = std::fs::read_to_string(&results).expect("read") + "\nafter\n";
        std::fs::write(&results, text).expect("written");
        write(&dir, &format!("{START}\ntwo\n{END}")).expect("written");
        std::fs::write(&results, "# Results, rewritten\n").expect("written");
        restore(&dir).expect("restored");
        let text = std::fs::read_to_string(&results).expect("read");
        assert_eq!(
            text,
            format!("# Results, rewritten\n\n{START}\ntwo\n{END}\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// This process's command line reads; the date has its shape.
    #[test]
    fn command_and_date() {
        assert!(command_of(std::process::id()).is_some());
        let now = now_utc();
        assert_eq!(now.len(), "2026-11-22 03:50".len(), "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
