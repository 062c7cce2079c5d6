//! The subscribers: one task each, reading its [`Feed`] (the project's
//! [`Subscription`], or with `--lean` a [`LeanFeed`]) until told to stop,
//! and logging every message of this run with its latency.
//!
//! A subscriber keeps no map of send times: each probe carries its own
//! (see [`crate::probe`]), and every task reads the same clock
//! ([`Shared::now_us`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_client::{Event, Subscription};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout_at;

use crate::lean::LeanFeed;
use crate::run::Shared;

/// What a subscriber reads.
pub enum Feed {
    /// The project's client, as an application would use it.
    Client(Box<Subscription>),
    /// Its own socket, parsed in place (`--lean`).
    Lean(Box<LeanFeed>),
}

impl Feed {
    /// The next message or notice.
    async fn next(&mut self) -> Result<Event, String> {
        match self {
            Feed::Client(sub) => sub.next().await.map_err(|e| e.to_string()),
            Feed::Lean(feed) => feed.next().await.map_err(|e| format!("{e:#}")),
        }
    }

    /// Connections opened again after a failure or an end.
    fn reconnects(&self) -> u64 {
        match self {
            Feed::Client(sub) => sub.reconnects(),
            Feed::Lean(feed) => feed.reconnects(),
        }
    }
}

/// How long subscribers get to stop once told to.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One delivery as a subscriber saw it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// The message's sequence number in this run.
    pub seq: u32,
    /// Microseconds from send to delivery (saturated).
    pub latency_us: u32,
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct SubscriberLog {
    /// This run's messages, in arrival order.
    pub deliveries: Vec<Delivery>,
    /// When the last one arrived, in [`Shared::now_us`].
    pub last_delivery_us: u64,
    /// Messages whose id was not above the previous one's.
    pub out_of_order: u64,
    /// Messages that gap notices said were missed.
    pub gap_missed: u64,
    /// Reset notices: the server's ids started again during the run.
    pub resets: u64,
    /// Retried failures, from [`Subscription::reconnects`] or
    /// [`LeanFeed::reconnects`].
    pub reconnects: u64,
    /// Why the subscription ended early, if it did.
    pub error: Option<String>,
}

/// Reads one feed until told to stop, logging this run's messages.
pub async fn subscribe(
    mut sub: Feed,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SubscriberLog {
    let mut log = SubscriberLog::default();
    let mut last_id = 0;
    // One wait for the whole run: a new one per message would register
    // with the channel and leave it again for every delivery.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            biased;
            // A change, or the sender gone: either way, stop.
            _ = &mut stopped => break,
            event = sub.next() => event,
        };
        match event {
            Ok(Event::Message { message, .. }) => {
                let now_us = shared.now_us();
                if message.id.0 <= last_id {
                    log.out_of_order += 1;
                }
                last_id = last_id.max(message.id.0);
                if let Some(probe) = shared.probes.decode(&message.text) {
                    let latency_us =
                        u32::try_from(now_us.saturating_sub(probe.sent_us)).unwrap_or(u32::MAX);
                    log.deliveries.push(Delivery {
                        seq: probe.seq,
                        latency_us,
                    });
                    log.last_delivery_us = now_us;
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                } else if let Some(warmup) = &shared.warmup
                    && warmup.probes.decode(&message.text).is_some()
                {
                    warmup.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Event::Gap { missed }) => log.gap_missed += missed,
            // A new numbering: ids start again, which is not disorder. What
            // the old log held is gone; the report says why it is missing.
            Ok(Event::Reset { .. }) => {
                log.resets += 1;
                last_id = 0;
            }
            Err(e) => {
                log.error = Some(e);
                break;
            }
        }
    }
    log.reconnects = sub.reconnects();
    log
}

/// Tells every subscriber to stop and collects what each saw; one that does
/// not stop within [`STOP_TIMEOUT`] is aborted and reported as failed.
pub async fn stop_subscribers(
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<SubscriberLog>>,
) -> Vec<Result<SubscriberLog, String>> {
    // Sending fails only if every receiver is gone, and then all have stopped.
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let abort = task.abort_handle();
        logs.push(match timeout_at(deadline, task).await {
            Ok(Ok(log)) => Ok(log),
            Ok(Err(e)) => Err(format!("subscriber task: {e}")),
            Err(_) => {
                abort.abort();
                Err("subscriber did not stop in time".to_owned())
            }
        });
    }
    logs
}
