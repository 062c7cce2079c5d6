//! One chaos subscriber: connect after its cursor, read for a random while,
//! kill the connection, reconnect from the cursor, until told to stop.
//!
//! Each connection's life is drawn before it opens: how long it is held
//! (between `--hold-min-ms` and `--hold-max-ms`) and how it dies ([`Cut`]:
//! closed or reset, even odds). When its time is up the feed is dropped
//! wherever it is: in the middle of a page, an event, a frame, a held long
//! poll or a poll's answer. The cursor is the id of the last whole message
//! read, so the next connection asks for what came after it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_client::Transport;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use super::wire::{Cut, Feed, Item, Target};
use crate::run::Shared;

/// Pause after a connection could not be opened, before the next try.
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What every chaos subscriber is told.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server.
    pub target: Target,
    /// The cursor every subscriber starts after: the newest message before
    /// the run.
    pub start: u64,
    /// Shortest life of a connection.
    pub hold_min: Duration,
    /// Longest life of a connection.
    pub hold_max: Duration,
    /// Pause between regular polls after an empty page.
    pub poll_interval: Duration,
}

/// What one chaos subscriber saw and did.
#[derive(Debug, Clone)]
pub struct ChaosLog {
    /// Its transport.
    pub transport: Transport,
    /// Sequence numbers of this run's messages, in arrival order, every
    /// arrival (repeats included).
    pub seqs: Vec<u32>,
    /// Messages whose id was not above the one before (across reconnects).
    pub reorders: u64,
    /// Messages that gap notices said were missed.
    pub gap_missed: u64,
    /// Reset notices.
    pub resets: u64,
    /// Connections opened (the server answered).
    pub connections: u64,
    /// Connections this subscriber closed (FIN).
    pub forced_closes: u64,
    /// Connections this subscriber reset (RST).
    pub forced_resets: u64,
    /// Connections the server ended by itself.
    pub ended_by_server: u64,
    /// Connections that could not be opened, or that broke the contract.
    pub failures: u64,
    /// The first of those failures.
    pub first_failure: Option<String>,
}

impl ChaosLog {
    fn new(transport: Transport) -> Self {
        ChaosLog {
            transport,
            seqs: Vec::new(),
            reorders: 0,
            gap_missed: 0,
            resets: 0,
            connections: 0,
            forced_closes: 0,
            forced_resets: 0,
            ended_by_server: 0,
            failures: 0,
            first_failure: None,
        }
    }

    /// Forced disconnects of both kinds.
    pub fn forced(&self) -> u64 {
        self.forced_closes + self.forced_resets
    }

    fn fail(&mut self, e: anyhow::Error) {
        self.failures += 1;
        self.first_failure.get_or_insert_with(|| format!("{e:#}"));
    }
}

/// Runs one subscriber of `transport` until `stop` changes; `seed` draws
/// its connections' lives.
pub async fn chaos_subscriber(
    plan: Arc<Plan>,
    transport: Transport,
    seed: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> ChaosLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = ChaosLog::new(transport);
    let mut cursor = plan.start;
    // Which of this run's messages it has seen at least once.
    let mut seen: Vec<bool> = Vec::new();
    let (min, max) = (plan.hold_min.as_millis(), plan.hold_max.as_millis());
    'connections: loop {
        let cut = if rng.random_bool(0.5) {
            Cut::Reset
        } else {
            Cut::Close
        };
        let hold = Duration::from_millis(rng.random_range(min..=max.max(min)) as u64);
        let opened = tokio::select! {
            biased;
            _ = stop.changed() => break,
            opened = Feed::open(&plan.target, transport, cursor, cut, plan.poll_interval) => opened,
        };
        let mut feed = match opened {
            Ok(feed) => feed,
            Err(e) => {
                log.fail(e);
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    _ = sleep(RETRY_PAUSE) => continue,
                }
            }
        };
        log.connections += 1;
        let deadline = Instant::now() + hold;
        loop {
            let item = tokio::select! {
                biased;
                _ = stop.changed() => break 'connections,
                _ = sleep_until(deadline) => {
                    // The forced disconnect: the socket goes now, as `cut` says.
                    drop(feed);
                    match cut {
                        Cut::Close => log.forced_closes += 1,
                        Cut::Reset => log.forced_resets += 1,
                    }
                    break;
                }
                item = feed.next() => item,
            };
            match item {
                Ok(Some(Item::Message(message))) => {
                    if message.id.0 <= cursor {
                        log.reorders += 1;
                    }
                    cursor = cursor.max(message.id.0);
                    if let Some(probe) = shared.probes.decode(&message.text) {
                        log.seqs.push(probe.seq);
                        let seq = probe.seq as usize;
                        if seen.len() <= seq {
                            seen.resize(seq + 1, false);
                        }
                        if !seen[seq] {
                            seen[seq] = true;
                            shared.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Some(Item::Gap(missed))) => log.gap_missed += missed,
                Ok(Some(Item::Reset)) => log.resets += 1,
                Ok(None) => {
                    log.ended_by_server += 1;
                    break;
                }
                Err(e) => {
                    log.fail(e);
                    break;
                }
            }
        }
    }
    log
}
