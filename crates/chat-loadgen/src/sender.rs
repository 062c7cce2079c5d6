//! The sender: `--rate` messages a second through `POST /api/messages` with
//! `via: api`, from `--senders` senders (one by default), each one message
//! at a time.
//!
//! Each waits for its answers, so a server that cannot keep up slows it
//! down; the report then shows the achieved rate below the one asked, and
//! says so.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chat_client::{Client, ClientError, Via};
use tokio::time::{MissedTickBehavior, interval_at, timeout};

use crate::cli::SendFor;
use crate::probe::PROBE_USER;
use crate::run::Shared;

/// Longest wait for one `POST /api/messages`.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per message; retries reuse the `client_msg_id`, so a message whose
/// answer was lost is stored once.
pub const SEND_ATTEMPTS: u32 = 3;

/// What the sender did.
#[derive(Debug)]
pub struct SenderLog {
    /// Whether message `seq` was stored (index: seq).
    pub stored: Vec<bool>,
    /// Sends that failed after every attempt.
    pub errors: u64,
    /// The first of those failures.
    pub first_error: Option<String>,
    /// When the first send started, in [`Shared::now_us`].
    pub first_send_us: u64,
    /// From the first send to the end of the last.
    pub elapsed: Duration,
}

impl SenderLog {
    /// How many messages were stored.
    pub fn stored(&self) -> u64 {
        self.stored.iter().filter(|&&s| s).count() as u64
    }
}

/// Sends at `rate` in all, from `senders` senders, until `send_for` is
/// over; message `seq` goes to `clients[seq % n]` (one client per server).
///
/// Sender `k` sends messages `k`, `k + senders`, `k + 2 × senders`, … at
/// `rate / senders`, one tick each, awaiting each send before the next. Ticks
/// missed while a send was slow are made up at once
/// ([`MissedTickBehavior::Burst`]): the run sends the same number of messages
/// whatever the hiccups, so runs stay comparable, and senders that cannot
/// keep up show as a lower achieved rate. A catch-up is back-to-back sends
/// from each sender, never a pile of concurrent ones beyond `senders`. Each
/// message's time is taken just before its send, so the latency measured is
/// the server's, not the sender's lateness.
pub async fn send_probes(
    clients: Vec<Client>,
    shared: Arc<Shared>,
    rate: f64,
    send_for: SendFor,
    senders: u32,
) -> SenderLog {
    let started = Instant::now();
    let first_send_us = shared.now_us();
    let senders = senders.max(1);
    let lanes = (0..senders).map(|lane| {
        let lane = Lane {
            first: lane,
            step: senders,
            rate: rate / f64::from(senders),
            started,
        };
        lane.send(&clients, &shared, send_for)
    });
    let lanes = futures_util::future::join_all(lanes).await;
    let mut log = SenderLog {
        stored: Vec::new(),
        errors: 0,
        first_error: None,
        first_send_us,
        elapsed: started.elapsed(),
    };
    for lane in lanes {
        for &(seq, stored) in &lane.sent {
            let seq = seq as usize;
            if log.stored.len() <= seq {
                // A sequence number no sender reached was not stored.
                log.stored.resize(seq + 1, false);
            }
            log.stored[seq] = stored;
        }
        log.errors += lane.sent.iter().filter(|(_, stored)| !stored).count() as u64;
        if log.first_error.is_none() {
            log.first_error = lane.first_error;
        }
    }
    log
}

/// One sender's share of the messages.
struct Lane {
    /// Its first sequence number.
    first: u32,
    /// How far apart its sequence numbers are (the number of senders).
    step: u32,
    /// Its rate.
    rate: f64,
    /// When the run's sending began.
    started: Instant,
}

/// What one sender did.
struct LaneLog {
    /// Each message it sent, and whether it was stored (if not, the send
    /// failed after every attempt).
    sent: Vec<(u32, bool)>,
    /// The first of its failures.
    first_error: Option<String>,
}

impl Lane {
    /// Its sequence numbers: `first`, `first + step`, …
    fn sequence(&self) -> impl Iterator<Item = u32> + use<> {
        (self.first..).step_by(self.step as usize)
    }

    /// How long after sender 0's its ticks fall, each sender's ticks being
    /// `period` apart: the senders take turns, `first / step` of a period
    /// apart, so together they send evenly at the whole rate, not `step`
    /// messages at once.
    fn offset(&self, period: Duration) -> Duration {
        period.mul_f64(f64::from(self.first) / f64::from(self.step))
    }

    async fn send(self, clients: &[Client], shared: &Shared, send_for: SendFor) -> LaneLog {
        let period = Duration::from_secs_f64(1.0 / self.rate);
        let first_tick = tokio::time::Instant::from_std(self.started) + self.offset(period);
        let mut ticker = interval_at(first_tick, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut log = LaneLog {
            sent: Vec::new(),
            first_error: None,
        };
        for seq in self.sequence() {
            if let SendFor::Count(n) = send_for
                && u64::from(seq) >= n
            {
                break;
            }
            ticker.tick().await;
            if let SendFor::Duration(d) = send_for
                && self.started.elapsed() >= d
            {
                break;
            }
            let text = shared.probes.text(seq, shared.now_us());
            let key = shared.probes.client_msg_id(seq);
            let client = &clients[seq as usize % clients.len()];
            let stored = match send_probe(client, &text, &key).await {
                Ok(()) => {
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    log.first_error.get_or_insert(e);
                    false
                }
            };
            log.sent.push((seq, stored));
        }
        log
    }
}

/// Sends one message, retrying with the same `client_msg_id`.
async fn send_probe(client: &Client, text: &str, key: &str) -> Result<(), String> {
    let mut error = String::new();
    for _ in 0..SEND_ATTEMPTS {
        match timeout(
            SEND_TIMEOUT,
            client.send(PROBE_USER, text, Some(key), Via::Api),
        )
        .await
        {
            Ok(Ok(_)) => return Ok(()),
            // A refusal will not change on retry.
            Ok(Err(e @ ClientError::Refused { .. })) => return Err(e.to_string()),
            Ok(Err(e)) => error = e.to_string(),
            Err(_) => error = format!("no answer in {} s", SEND_TIMEOUT.as_secs()),
        }
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(step: u32) -> Vec<Lane> {
        (0..step)
            .map(|first| Lane {
                first,
                step,
                rate: 25.0,
                started: Instant::now(),
            })
            .collect()
    }

    /// Three senders together send every sequence number exactly once.
    #[test]
    fn senders_share_every_sequence_number_once() {
        let mut all: Vec<u32> = lanes(3)
            .iter()
            .flat_map(|lane| lane.sequence().take_while(|&seq| seq < 300))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
    }

    /// Four senders at 25 a second each (a tick every 40 ms) tick 10 ms
    /// apart: together, one message every 10 ms, as 100 a second asks.
    #[test]
    fn senders_take_turns_evenly() {
        let period = Duration::from_millis(40);
        let ms: Vec<u128> = lanes(4)
            .iter()
            .map(|lane| lane.offset(period).as_millis())
            .collect();
        assert_eq!(ms, [0, 10, 20, 30]);
    }
}
