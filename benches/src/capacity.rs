//! The capacity harness behind `capacity` (`cargo run --release -p
//! chat-benches --bin capacity`): how many deliveries one server core makes,
//! what each costs it in CPU, and what an idle connection costs it in memory.
//!
//! The server is the release `chat-demo` binary, in its own process, pinned
//! to core 0 (`taskset -c 0`; actix and Tokio then start one worker, since
//! the standard library's count of available cores follows the affinity);
//! the load generator is the release `loadgen` (package `chat-loadgen`),
//! pinned to core 1. On a machine with fewer than two cores nothing is
//! pinned and the report says so.
//!
//! One [`Step`] is one `loadgen` run at one send rate. The server's CPU time
//! (`utime + stime` in `/proc/PID/stat`) is read when `loadgen` prints that
//! every subscriber is connected and again when it has exited, so the window
//! is the sending, the drain until every delivery arrived, and the closing
//! of the subscribers (a few milliseconds): the ramp-up is left out. CPU
//! microseconds per delivery are that CPU time over the deliveries `loadgen`
//! counted (every one checked for loss, duplicates and order). The load
//! generator's own CPU is read over the same window: near 100 % of its core,
//! it, not the server, is the limit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use chat_client::Transport;
use chat_loadgen::kept::KeptSection;
use chat_loadgen::process;
use chat_loadgen::report::{ParsedOutput, TABLE_HEADER, parse_output};

use crate::processes::ServerProcess;
use tokio::io::AsyncBufReadExt;

/// The binaries and where they run.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The release `chat-demo`.
    pub server: PathBuf,
    /// Extra flags for it (such as switching send rate limits off).
    pub server_args: Vec<String>,
    /// The release `loadgen`.
    pub loadgen: PathBuf,
    /// Whether the server and `loadgen` are pinned to cores 0 and 1.
    pub pinned: bool,
    /// `loadgen`'s senders (`--senders`), sharing the send rate.
    pub senders: u32,
    /// Whether subscribers that can be lean are (`loadgen --lean`).
    pub lean: bool,
    /// Whether this `loadgen` warms its connections up before timing
    /// (`--warmup`, which the idle-memory steps switch off).
    pub warms_up: bool,
}

impl Setup {
    /// Pins when the machine has at least two cores.
    pub fn new(
        server: PathBuf,
        server_args: Vec<String>,
        loadgen: PathBuf,
        senders: u32,
        lean: bool,
    ) -> Self {
        // An older `loadgen` (`--binaries DIR`) has no `--warmup`.
        let warms_up = std::process::Command::new(&loadgen)
            .arg("--help")
            .output()
            .is_ok_and(|help| String::from_utf8_lossy(&help.stdout).contains("--warmup"));
        Setup {
            server,
            server_args,
            loadgen,
            pinned: cores() >= 2,
            senders,
            lean,
            warms_up,
        }
    }

    /// `program`, under `taskset -c CORE` when pinning.
    fn command(&self, core: u32, program: &Path) -> tokio::process::Command {
        if self.pinned {
            let mut command = tokio::process::Command::new("taskset");
            command.arg("-c").arg(core.to_string()).arg(program);
            command
        } else {
            tokio::process::Command::new(program)
        }
    }
}

/// The machine's cores, as the standard library counts them.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The load averages (`/proc/loadavg`'s first three fields).
pub fn load_averages() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Starts a `chat-demo` of its own on a free loopback port, pinned to
/// core 0, and waits for the address it prints. The flags in
/// [`Setup::server_args`] follow: `capacity` adds `--no-client-limits` there
/// unless told `--client-limits` (every load client comes from 127.0.0.1 as
/// one user, and the send rates per address and per user would otherwise
/// cap the run). Its pid is the server's: `taskset` runs it in its own
/// process.
pub async fn start_server(setup: &Setup) -> anyhow::Result<ServerProcess> {
    let mut command = setup.command(0, &setup.server);
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(&setup.server_args);
    ServerProcess::spawn(command).await
}

/// One `loadgen` run at one rate, with the CPU both sides spent on it.
#[derive(Debug, Clone)]
pub struct Step {
    /// The transport.
    pub transport: Transport,
    /// Subscribers.
    pub clients: u32,
    /// Messages per second asked for.
    pub rate: f64,
    /// Messages stored.
    pub sent: u64,
    /// Deliveries counted by the subscribers.
    pub deliveries: u64,
    /// Deliveries from the first send to the last delivery, per second.
    pub deliveries_per_second: f64,
    /// 99th percentile send-to-deliver latency, ms.
    pub p99_ms: f64,
    /// Lost plus duplicated deliveries (must be 0).
    pub lost_or_dup: u64,
    /// Server CPU seconds over the window.
    pub server_cpu_s: f64,
    /// `loadgen` CPU seconds over the window.
    pub loadgen_cpu_s: f64,
    /// The window's length, seconds.
    pub window_s: f64,
    /// Server memory per client once connected, KiB.
    pub kib_per_client: Option<f64>,
    /// Load averages when the step began.
    pub load: String,
}

impl Step {
    /// Server CPU microseconds per delivery.
    pub fn cpu_us_per_delivery(&self) -> f64 {
        self.server_cpu_s * 1e6 / (self.deliveries.max(1) as f64)
    }

    /// Deliveries per server CPU-second.
    pub fn deliveries_per_cpu_second(&self) -> f64 {
        self.deliveries as f64 / self.server_cpu_s.max(f64::EPSILON)
    }

    /// `loadgen`'s share of its core over the window, percent.
    pub fn loadgen_percent(&self) -> f64 {
        100.0 * self.loadgen_cpu_s / self.window_s.max(f64::EPSILON)
    }

    /// The server's share of its core over the window, percent.
    pub fn server_percent(&self) -> f64 {
        100.0 * self.server_cpu_s / self.window_s.max(f64::EPSILON)
    }
}

/// What one `loadgen` run is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// The transport.
    pub transport: Transport,
    /// Subscribers.
    pub clients: u32,
    /// Messages per second.
    pub rate: f64,
    /// Seconds of sending, or `None` to send one message only (an idle
    /// memory run).
    pub seconds: Option<u32>,
}

/// Runs `loadgen` (pinned to core 1) against `server`.
pub async fn run_step(setup: &Setup, server: &ServerProcess, load: Load) -> anyhow::Result<Step> {
    let ticks = process::clock_ticks_per_second() as f64;
    let mut command = setup.command(1, &setup.loadgen);
    command
        .args([
            "--url",
            &server.url,
            "--server-pid",
            &server.pid.to_string(),
        ])
        .args(["--transport", load.transport.as_str()])
        .args(["--clients", &load.clients.to_string()])
        .args(["--rate", &load.rate.to_string()])
        .args(["--connect-rate", "5000", "--drain-timeout", "15"]);
    if setup.senders > 1 {
        // Only then: a `loadgen` older than `--senders` still runs.
        command.args(["--senders", &setup.senders.to_string()]);
    }
    if setup.lean && chat_loadgen::lean::reads(load.transport) {
        command.arg("--lean");
    }
    match load.seconds {
        Some(seconds) => command.args(["--duration", &seconds.to_string()]),
        // Idle memory: connections that have carried one message, as before
        // `--warmup` existed.
        None if setup.warms_up => command.args(["--messages", "1", "--warmup", "0"]),
        None => command.args(["--messages", "1"]),
    };
    let load_averages = load_averages();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting loadgen")?;
    let loadgen_pid = child.id().context("loadgen pid")?;
    let stdout = child.stdout.take().context("loadgen stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut text = String::new();
    let mut window_start = None;
    while let Some(line) = lines.next_line().await? {
        if window_start.is_none() && line.contains(" connected in ") {
            window_start = Some((
                Instant::now(),
                cpu_ticks(server.pid)?,
                cpu_ticks(loadgen_pid)?,
            ));
        }
        text.push_str(&line);
        text.push('\n');
    }
    // Read before waiting: until then the exited loadgen is a zombie whose
    // `/proc` entry still holds its CPU time.
    let loadgen_end = cpu_ticks(loadgen_pid);
    let server_end = cpu_ticks(server.pid)?;
    let (started, server_start, loadgen_start) =
        window_start.with_context(|| format!("loadgen never said who connected:\n{text}"))?;
    let window_s = started.elapsed().as_secs_f64();
    child.wait().await?;
    let parsed = parse_output(&text, load.transport)
        .with_context(|| format!("no result row from loadgen:\n{text}"))?;
    let figures = parsed.figures().context("a row that does not fit")?;
    Ok(Step {
        transport: load.transport,
        clients: load.clients,
        rate: load.rate,
        sent: figures.sent,
        deliveries: column(&parsed, "deliveries").context("no deliveries column")? as u64,
        deliveries_per_second: figures.deliveries_per_second,
        p99_ms: figures.p99_ms,
        lost_or_dup: figures.lost + figures.duplicated,
        server_cpu_s: server_end.saturating_sub(server_start) as f64 / ticks,
        loadgen_cpu_s: loadgen_end.map_or(0, |end| end.saturating_sub(loadgen_start)) as f64
            / ticks,
        window_s,
        kib_per_client: parsed.kib_per_client_connected,
        load: load_averages,
    })
}

/// A numeric column of a `loadgen` row, found by its name in the header.
fn column(parsed: &ParsedOutput, name: &str) -> Option<f64> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let at = cells(TABLE_HEADER).iter().position(|c| c == name)?;
    // `deliveries` reads `received/expected`: the first is the count.
    let cell = cells(&parsed.row).get(at)?.replace(',', "");
    cell.split('/').next()?.parse().ok()
}

/// `utime + stime` of `pid`, in clock ticks, from `/proc/PID/stat` (which a
/// process that has exited but not been waited for still has).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (in parentheses, which may hold spaces):
    // state is the first, utime the 12th and stime the 13th.
    let (_, rest) = stat.rsplit_once(')').context("no command name")?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next =
        || -> anyhow::Result<u64> { Ok(fields.next().context("short /proc stat")?.parse()?) };
    Ok(next()? + next()?)
}

/// Steps `transport` up through `rates` until deliveries per second stop
/// growing (under 5 % above the best so far), a delivery is lost or
/// duplicated, or p99 latency passes a second; each step on a fresh server.
pub async fn saturate(
    setup: &Setup,
    transport: Transport,
    clients: u32,
    rates: &[f64],
    seconds: u32,
) -> anyhow::Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    for &rate in rates {
        eprintln!("capacity: {} × {clients} at {rate}/s", transport.as_str());
        let server = start_server(setup).await?;
        let load = Load {
            transport,
            clients,
            rate,
            seconds: Some(seconds),
        };
        let step = run_step(setup, &server, load).await;
        server.stop().await;
        let step = step?;
        eprintln!(
            "  {:.0} deliveries/s, {:.2} µs CPU each, server {:.0} %, loadgen {:.0} %, p99 {:.1} ms",
            step.deliveries_per_second,
            step.cpu_us_per_delivery(),
            step.server_percent(),
            step.loadgen_percent(),
            step.p99_ms
        );
        let best = steps
            .iter()
            .map(|s| s.deliveries_per_second)
            .fold(0.0, f64::max);
        let done = step.deliveries_per_second < best * 1.05
            || step.lost_or_dup > 0
            || step.p99_ms > 1_000.0;
        steps.push(step);
        if done {
            break;
        }
    }
    Ok(steps)
}

/// The step with the most deliveries per second.
pub fn saturation(steps: &[Step]) -> Option<&Step> {
    steps
        .iter()
        .max_by(|a, b| a.deliveries_per_second.total_cmp(&b.deliveries_per_second))
}

/// Server memory per idle connection with `clients` connected, one fresh
/// server per transport.
pub async fn idle_memory(
    setup: &Setup,
    transport: Transport,
    clients: u32,
) -> anyhow::Result<Step> {
    eprintln!("memory: {} × {clients}", transport.as_str());
    let server = start_server(setup).await?;
    let load = Load {
        transport,
        clients,
        rate: 1.0,
        seconds: None,
    };
    let step = run_step(setup, &server, load).await;
    server.stop().await;
    step
}

/// The marker that opens the section in `results.md`.
pub const START: &str = "<!-- capacity: written by `--bin capacity` -->";
/// The marker that closes it.
pub const END: &str = "<!-- end of capacity -->";
/// Where the section is kept beside `results.md`, in the docs folder.
pub const SAVED: &str = "results/capacity.txt";

/// The section, kept beside results.md so that `compare` puts it back.
pub const SECTION: KeptSection = KeptSection {
    start: START,
    end: END,
    saved: SAVED,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's CPU time reads; a process that is not there is an
    /// error.
    #[test]
    fn reads_cpu_ticks() {
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert!(cpu_ticks(u32::MAX).is_err());
        assert!(!load_averages().is_empty());
    }
}
