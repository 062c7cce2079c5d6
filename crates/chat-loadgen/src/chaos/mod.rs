//! Chaos mode (`loadgen --chaos`): subscribers on every transport whose
//! connections are killed over and over, closed or reset at random moments,
//! and resume from their cursor, while the sender stores thousands of
//! messages. At the end every subscriber must have seen every message once,
//! in order.
//!
//! - `--clients` subscribers *per transport* (polling, long polling, SSE,
//!   WebSocket, streaming), each in its own task ([`subscriber`]), all
//!   starting after the store's newest message;
//! - each connection lives a random time between `--hold-min-ms` and
//!   `--hold-max-ms`, then its socket is dropped: half of them closed (a
//!   FIN), half reset (`SO_LINGER` 0, an RST), wherever the connection is:
//!   mid-event, mid-frame, mid-page, during a held long poll ([`wire`]);
//! - the subscriber reconnects at once after the id of the last whole
//!   message it read (`since`, or `Last-Event-ID` for SSE);
//! - the sender is the ordinary one ([`crate::sender`]): one message at a
//!   time at `--rate`, `--messages` of them;
//! - after the last send it waits (up to `--drain-timeout`, disconnects
//!   going on) until every subscriber has every message, stops them, and
//!   waits until the server counts no connection of theirs open.
//!
//! The report ([`report`]) gives, per transport, the forced disconnects of
//! each kind, the connections, the requests the server counted, and the
//! messages lost, duplicated and out of order; it passes only with none
//! lost, duplicated or reordered, no gap or reset notice, and at least one
//! forced disconnect on every transport. The subscribers read the wire with
//! the contract's types and filter nothing (no cursor drops repeats, as the
//! project's client does), so a server that sent a message twice after a
//! reconnect would show here.
//!
//! The sender sends one user's messages from one address, faster than the
//! send rate limit allows: start the server with the limits off (see the
//! crate's docs for the command).

pub mod docs;
pub mod report;
pub mod subscriber;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::{Client, Transport};
use chat_protocol::CountersSnapshot;
use tokio::sync::watch;
use tokio::time::{sleep, timeout_at};

pub use report::ChaosReport;
use subscriber::{ChaosLog, Plan, chaos_subscriber};

use crate::cli::SendFor;
use crate::probe::ProbeCodec;
use crate::run::Shared;
use crate::sender::send_probes;
use crate::stats;

/// How often the drain and the final check look again.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long subscribers get to stop, and the server to count their
/// connections closed, once told to.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosSettings {
    /// The transports, each with [`ChaosSettings::per_transport`]
    /// subscribers.
    pub transports: Vec<Transport>,
    /// Subscribers per transport.
    pub per_transport: u32,
    /// Messages per second.
    pub rate: f64,
    /// When the sender stops.
    pub send_for: SendFor,
    /// Shortest life of a connection.
    pub hold_min: Duration,
    /// Longest life of a connection.
    pub hold_max: Duration,
    /// Pause between regular polls after an empty page.
    pub poll_interval: Duration,
    /// How long to wait for every delivery after the last send.
    pub drain_timeout: Duration,
    /// Draws every connection's life and end; the same seed, the same
    /// draws (the moments still depend on the machine).
    pub seed: u64,
}

/// A chaos run against the server at `base`.
pub async fn run(base: &str, settings: &ChaosSettings) -> anyhow::Result<ChaosReport> {
    let control = Client::new(base);
    let before = control
        .stats()
        .await
        .with_context(|| format!("no chat server answers at {base}"))?;
    let plan = Arc::new(Plan {
        target: wire::Target::resolve(base).await?,
        start: before.store.last_id,
        hold_min: settings.hold_min,
        hold_max: settings.hold_max,
        poll_interval: settings.poll_interval,
    });
    let shared = Arc::new(Shared::new(ProbeCodec::for_this_run()));
    println!(
        "chaos: {} subscribers on each of {} against {base}, connections held {}..={} ms, \
         closed or reset, starting after message {}",
        settings.per_transport,
        settings
            .transports
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        settings.hold_min.as_millis(),
        settings.hold_max.as_millis(),
        plan.start,
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut seed = settings.seed;
    for &transport in &settings.transports {
        for _ in 0..settings.per_transport {
            seed = seed.wrapping_add(1);
            tasks.push(tokio::spawn(chaos_subscriber(
                Arc::clone(&plan),
                transport,
                seed,
                Arc::clone(&shared),
                stop_rx.clone(),
            )));
        }
    }

    let rsts_before = tcp_resets_sent();
    let started = Instant::now();
    let sent = send_probes(
        vec![control.clone()],
        Arc::clone(&shared),
        settings.rate,
        settings.send_for,
        1,
    )
    .await;
    let expected = sent.stored() * tasks.len() as u64;
    let deadline = tokio::time::Instant::now() + settings.drain_timeout;
    while shared.delivered.load(Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < deadline
    {
        sleep(CHECK_EVERY).await;
    }
    let elapsed = started.elapsed();

    // Stop the subscribers (each drops its connection as it stops).
    let _ = stop_tx.send(true);
    let stop_deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    let mut logs: Vec<ChaosLog> = Vec::with_capacity(tasks.len());
    for task in tasks {
        let abort = task.abort_handle();
        match timeout_at(stop_deadline, task).await {
            Ok(Ok(log)) => logs.push(log),
            Ok(Err(e)) => anyhow::bail!("a chaos subscriber failed: {e}"),
            Err(_) => {
                abort.abort();
                anyhow::bail!("a chaos subscriber did not stop in time");
            }
        }
    }
    let traffic = server_traffic(&control, &before, &settings.transports).await?;
    let mut report = ChaosReport::tally(&sent, &logs, &traffic, elapsed, settings.seed);
    report.rst_segments = rsts_before
        .zip(tcp_resets_sent())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(report)
}

/// TCP resets this machine has sent (`OutRsts` in `/proc/net/snmp`; on
/// loopback both ends are here), if the file can be read. Other processes'
/// resets count too, so over a run it is an upper bound of chaos's own.
pub fn tcp_resets_sent() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let column = names.split_whitespace().position(|n| n == "OutRsts")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

/// Per transport: the server's counter growth since `before`, and how many
/// connections it counts open above `before`, once that number is back to
/// zero or [`STOP_TIMEOUT`] has passed.
async fn server_traffic(
    control: &Client,
    before: &chat_protocol::StatsBody,
    transports: &[Transport],
) -> anyhow::Result<Vec<(Transport, CountersSnapshot, u64)>> {
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    loop {
        let after = control
            .stats()
            .await
            .context("GET /api/stats after the run")?;
        let traffic: Vec<_> = transports
            .iter()
            .map(|&t| {
                let (was, now) = (before.transports.of(t), after.transports.of(t));
                let open = now.open.saturating_sub(was.open);
                (t, stats::growth(&now, &was), open)
            })
            .collect();
        if traffic.iter().all(|(_, _, open)| *open == 0) || tokio::time::Instant::now() > deadline {
            return Ok(traffic);
        }
        sleep(CHECK_EVERY).await;
    }
}
