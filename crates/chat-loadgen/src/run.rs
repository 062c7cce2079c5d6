//! The run: ramp up, send, drain, stop, count.
//!
//! Subscribers start after the store's newest message, each in its own task,
//! opened at `--connect-rate`; the run starts sending once the server counts
//! them all (its `open` streams, sockets or held polls; for polling, its
//! requests). All HTTP subscribers share one connection pool, as the
//! project's client shares one `reqwest::Client`: long polls and streams
//! hold one connection each, but regular polls take whichever connection is
//! idle, so the server sees as many polling connections as polls in flight,
//! not one per client as it would with browsers.
//!
//! Then the [`crate::sender`] sends, the run waits (up to
//! `--drain-timeout`) until every subscriber has every stored message, reads
//! the server's counters and process once more, stops the subscribers and
//! hands their logs to [`Report::tally`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::{Client, Cursor, Options, Transport};
use chat_protocol::CountersSnapshot;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, sleep};

use crate::cli::{Cli, SendFor};
use crate::lean::{LeanFeed, Target};
use crate::probe::ProbeCodec;
use crate::report::{ProcessReport, Report};
use crate::sender::{SenderLog, send_probes};
use crate::subscriber::{Feed, SubscriberLog, stop_subscribers, subscribe};
use crate::{process, stats};

/// How often the ramp-up asks the server how many clients are connected.
pub const READY_POLL: Duration = Duration::from_millis(100);
/// How long past its planned end the ramp-up may run before the run goes on
/// with whoever connected (the others show up as lost messages).
pub const RAMP_GRACE: Duration = Duration::from_secs(30);
/// How often the progress bar is redrawn.
pub const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// What the sender and every subscriber share.
#[derive(Debug)]
pub struct Shared {
    /// The clock every latency is measured on.
    pub epoch: Instant,
    /// Writes and reads this run's messages.
    pub probes: ProbeCodec,
    /// The untimed messages sent first (`--warmup`), if any: a run of
    /// their own, whose deliveries the subscribers count there.
    pub warmup: Option<Arc<Shared>>,
    /// Messages stored so far (for the progress bar).
    pub sent: AtomicU64,
    /// This run's messages received so far, by all subscribers.
    pub delivered: AtomicU64,
}

impl Shared {
    /// What a run writing and reading `probes` shares, its clock starting now.
    pub fn new(probes: ProbeCodec) -> Self {
        Shared {
            epoch: Instant::now(),
            probes,
            warmup: None,
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        }
    }

    /// The same, for a run that sends untimed messages first.
    pub fn warming_up(probes: ProbeCodec) -> Self {
        let warmup = Shared::new(probes.warmup());
        Shared {
            warmup: Some(Arc::new(warmup)),
            ..Shared::new(probes)
        }
    }

    /// Microseconds since [`Shared::epoch`].
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// The whole run against the servers at `bases` (whose processes are
/// `server_pids`, if known): ramp up, send, drain, stop, count.
///
/// With several servers (instances sharing one log), subscriber `i` is on
/// server `i % n` and message `seq` is sent to server `seq % n`, so most
/// messages reach most subscribers through another instance; their
/// counters and processes are added up.
pub async fn run(cli: &Cli, bases: &[String], server_pids: &[u32]) -> anyhow::Result<Report> {
    anyhow::ensure!(!bases.is_empty(), "no server to run against");
    let transport = cli
        .transport
        .context("--transport: which transport the subscribers use")?;
    let send_for = cli.send_for();
    // Per server: one client for the sender and the stats, one whose
    // connection pool that server's subscribers share (WebSocket
    // subscriptions open their own).
    let controls: Vec<Client> = bases.iter().map(Client::new).collect();
    let pools: Vec<Client> = bases.iter().map(Client::new).collect();
    let probes = ProbeCodec::for_this_run();
    let shared = Arc::new(if cli.warmup > 0 {
        Shared::warming_up(probes)
    } else {
        Shared::new(probes)
    });
    let clock_ticks = process::clock_ticks_per_second();

    let mut starts = Vec::with_capacity(bases.len());
    for (control, base) in controls.iter().zip(bases) {
        starts.push(
            stats::snapshot(control, transport)
                .await
                .with_context(|| format!("no chat server answers at {base}"))?,
        );
    }
    if bases.len() > 1 {
        ensure_one_log(&controls, bases).await?;
    }
    // A cursor ahead of a server's newest message is refused; the oldest
    // newest is behind none of them (earlier messages are not this run's).
    let start_id = starts.iter().map(|s| s.last_id).min().unwrap_or(0);
    let process_start = if server_pids.is_empty() {
        None
    } else {
        Some(process::sample_all(server_pids).context("is --server-pid right?")?)
    };
    match bases {
        [base] => println!(
            "{} {} clients against {base}, starting after message {start_id}",
            cli.clients,
            transport.as_str(),
        ),
        _ => println!(
            "{} {} clients against {} servers sharing one log ({}), subscribers and sends \
             round-robin, starting after message {start_id}",
            cli.clients,
            transport.as_str(),
            bases.len(),
            bases.join(", "),
        ),
    }

    // Ramp up.
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = Options {
        since: Some(Cursor(start_id)),
        poll_interval: Duration::from_millis(cli.poll_interval_ms),
        ..Options::default()
    };
    let lean = if cli.lean {
        let targets: anyhow::Result<Vec<Target>> = bases
            .iter()
            .map(|base| Target::new(base, transport))
            .collect();
        Some(targets?)
    } else {
        None
    };
    let ramp_started = Instant::now();
    let spawn_subscriber = {
        let shared = Arc::clone(&shared);
        let mut next = 0usize;
        move || {
            let i = next % pools.len();
            next += 1;
            let feed = match &lean {
                Some(targets) => Feed::Lean(Box::new(LeanFeed::new(targets[i], Cursor(start_id)))),
                None => Feed::Client(Box::new(pools[i].subscribe(transport, options.clone()))),
            };
            tokio::spawn(subscribe(feed, Arc::clone(&shared), stop_rx.clone()))
        }
    };
    let baselines: Vec<CountersSnapshot> = starts.iter().map(|s| s.counters).collect();
    let (tasks, connected) =
        ramp_up(cli, transport, &controls, &baselines, spawn_subscriber).await?;
    let ramp_time = ramp_started.elapsed();
    // Said once settled and warmed up: `capacity` starts its CPU window at
    // this line.
    sleep(Duration::from_millis(cli.settle_ms)).await;
    if let Some(warmup) = &shared.warmup {
        // Untimed: the first segments of a new connection cost more than
        // the rest (see `crate::cli::DEFAULT_WARMUP`).
        let count = SendFor::Count(cli.warmup);
        send_and_drain(cli, &controls, warmup, count, "warm-up ").await?;
    }
    println!(
        "{connected} of {} connected in {:.1} s",
        cli.clients,
        ramp_time.as_secs_f64()
    );
    let before = stats::total_or_warn(&controls, transport, "after the ramp-up").await;
    let process_connected = some_pids(server_pids).and_then(process::sample_all_or_warn);

    // Send, then wait for every delivery.
    let sent_log = send_and_drain(cli, &controls, &shared, send_for, "").await?;
    let expected = sent_log.stored() * u64::from(cli.clients);
    let after = stats::total_or_warn(&controls, transport, "after the run").await;
    let process_end = some_pids(server_pids).and_then(process::sample_all_or_warn);

    let logs = stop_subscribers(stop_tx, tasks).await;

    let mut report = Report {
        transport,
        clients: cli.clients,
        rate: cli.rate,
        servers: if bases.len() > 1 {
            bases.to_vec()
        } else {
            Vec::new()
        },
        sent: sent_log.stored(),
        send_errors: sent_log.errors,
        send_error: sent_log.first_error.clone(),
        send_time: sent_log.elapsed,
        ramp_time,
        connected,
        expected,
        received: 0,
        delivery_time: Duration::ZERO,
        latency: Report::latency_histogram()?,
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        gap_missed: 0,
        resets: 0,
        reconnects: 0,
        failed_subscribers: 0,
        subscriber_error: None,
        traffic: match (after, before) {
            (Some(after), Some(before)) => Some(stats::growth(&after, &before)),
            _ => None,
        },
        process: match (process_start, process_connected, process_end) {
            (Some(start), Some(connected), Some(end)) => Some(ProcessReport {
                pids: server_pids.to_vec(),
                in_process: cli.in_process,
                start,
                connected,
                end,
                clock_ticks,
            }),
            _ => None,
        },
    };
    report.tally(&sent_log, &logs);
    Ok(report)
}

/// `pids`, unless there are none.
fn some_pids(pids: &[u32]) -> Option<&[u32]> {
    (!pids.is_empty()).then_some(pids)
}

/// Fails unless every server reports the same epoch: instances that share
/// one log (`--store redis://…`) do; separate memory stores never do, and
/// messages sent to one would never reach the others' subscribers.
async fn ensure_one_log(controls: &[Client], bases: &[String]) -> anyhow::Result<()> {
    let mut first: Option<(chat_protocol::Epoch, &str)> = None;
    for (control, base) in controls.iter().zip(bases) {
        let store = stats::store(control)
            .await
            .with_context(|| format!("no chat server answers at {base}"))?;
        match &first {
            None => first = Some((store.epoch, base)),
            Some((epoch, first_base)) => anyhow::ensure!(
                *epoch == store.epoch,
                "{first_base} and {base} do not share one log (epochs {epoch} and {}, \
                 store {}): start every instance with the same --store redis://HOST:PORT",
                store.epoch,
                store.backend
            ),
        }
    }
    Ok(())
}

/// Starts `--clients` subscribers at `--connect-rate` (`spawn_subscriber`
/// starts one in its own task) and waits, bounded, until the server counts
/// them all. Returns the tasks and how many the server saw connected.
///
/// "Connected" is the transport's `open` count in `/api/stats` (streams,
/// sockets, held long polls), added up over the servers. A regular poll is not held, so for polling it
/// is the number of polls made since the start, to which every client's
/// first poll adds one.
async fn ramp_up(
    cli: &Cli,
    transport: Transport,
    controls: &[Client],
    baselines: &[CountersSnapshot],
    mut spawn_subscriber: impl FnMut() -> JoinHandle<SubscriberLog> + Send + 'static,
) -> anyhow::Result<(Vec<JoinHandle<SubscriberLog>>, u64)> {
    let clients = u64::from(cli.clients);
    let started = Arc::new(AtomicU64::new(0));
    let mut pace = interval(Duration::from_secs_f64(1.0 / cli.connect_rate));
    // Catch up after a late tick: the timer's resolution (1 ms) is coarser
    // than the pace at thousands of connections per second.
    pace.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let spawner = tokio::spawn({
        let started = Arc::clone(&started);
        async move {
            let mut tasks = Vec::new();
            for _ in 0..clients {
                pace.tick().await;
                tasks.push(spawn_subscriber());
                started.fetch_add(1, Ordering::Relaxed);
            }
            tasks
        }
    });

    // Meanwhile, ask the server how many are connected.
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(PROGRESS_TICK);
    let planned = Duration::from_secs_f64(clients as f64 / cli.connect_rate);
    let deadline = Instant::now() + planned + RAMP_GRACE;
    let mut connected = 0;
    let mut stats_error = None;
    while Instant::now() < deadline {
        // A server too busy to answer is no reason to stop: the deadline is.
        match stats::snapshot_all(controls, transport).await {
            Ok(now) => {
                stats_error = None;
                connected = now
                    .iter()
                    .zip(baselines)
                    .map(|(now, baseline)| match transport {
                        Transport::Polling => {
                            now.counters.requests.saturating_sub(baseline.requests)
                        }
                        _ => now.counters.open.saturating_sub(baseline.open),
                    })
                    .sum::<u64>()
                    .min(clients);
            }
            Err(e) => stats_error = Some(anyhow::Error::from(e)),
        }
        spinner.set_message(format!(
            "connecting: {} started, {connected} connected, of {clients}",
            started.load(Ordering::Relaxed)
        ));
        if connected >= clients && spawner.is_finished() {
            break;
        }
        sleep(READY_POLL).await;
    }
    spinner.finish_and_clear();
    // The spawner's loop ends by itself, after about `planned`.
    let tasks = spawner.await?;
    if let Some(e) = stats_error {
        eprintln!("warning: the server stopped answering GET /api/stats during the ramp-up: {e:#}");
    }
    if connected < clients {
        eprintln!(
            "warning: only {connected} of {clients} clients connected within {:.0} s; \
             going on without the rest (see the server's log)",
            (planned + RAMP_GRACE).as_secs_f64()
        );
    }
    Ok((tasks, connected))
}

/// Runs the sender (round-robin over `controls`), then waits (up to `--drain-timeout`) until every
/// subscriber has every message stored, with a progress bar throughout; warns,
/// naming the run `what`, if some did not arrive.
async fn send_and_drain(
    cli: &Cli,
    controls: &[Client],
    shared: &Arc<Shared>,
    send_for: SendFor,
    what: &str,
) -> anyhow::Result<SenderLog> {
    let bar = ProgressBar::new(send_for.planned(cli.rate));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} sent · {msg}")?
            .progress_chars("=> "),
    );
    let sender = tokio::spawn(send_probes(
        controls.to_vec(),
        Arc::clone(shared),
        cli.rate,
        send_for,
        cli.senders,
    ));
    let mut ticker = interval(PROGRESS_TICK);
    let mut last_delivered = 0;
    while !sender.is_finished() {
        ticker.tick().await;
        last_delivered = show_progress(&bar, shared, last_delivered);
    }
    let sent_log = sender.await?;
    let expected = sent_log.stored() * u64::from(cli.clients);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(cli.drain_timeout);
    while shared.delivered.load(Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < deadline
    {
        ticker.tick().await;
        last_delivered = show_progress(&bar, shared, last_delivered);
    }
    bar.finish_and_clear();
    let delivered = shared.delivered.load(Ordering::Relaxed);
    if delivered < expected {
        eprintln!(
            "warning: {delivered} of {expected} {what}deliveries arrived within --drain-timeout {} s",
            cli.drain_timeout
        );
    }
    Ok(sent_log)
}

/// Redraws the progress bar; returns the delivery count it showed.
fn show_progress(bar: &ProgressBar, shared: &Shared, last_delivered: u64) -> u64 {
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let per_second = (delivered - last_delivered) as f64 / PROGRESS_TICK.as_secs_f64();
    bar.set_position(shared.sent.load(Ordering::Relaxed));
    bar.set_message(format!("{delivered} delivered · {per_second:.0}/s"));
    delivered
}
