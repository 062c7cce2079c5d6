//! The sender: one message at a time at `--rate`, through
//! `POST /api/messages` with `via: api`.
//!
//! It waits for each answer, so a server that cannot keep up slows it down;
//! the report then shows the achieved rate below the one asked, and says
//! so.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chat_client::{Client, ClientError, Via};
use tokio::time::{MissedTickBehavior, interval, timeout};

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

/// Sends one message per tick at `rate` until `send_for` is over; message
/// `seq` goes to `clients[seq % n]` (one client per server).
///
/// Ticks missed while a send was slow are made up at once
/// ([`MissedTickBehavior::Burst`]): the run sends the same number of messages
/// whatever the hiccups, so runs stay comparable, and a sender that cannot
/// keep up shows as a lower achieved rate. Sends are awaited one at a time,
/// so a catch-up is back-to-back sends, never a pile of concurrent ones.
/// Each message's time is taken just before its send, so the latency
/// measured is the server's, not the sender's lateness.
pub async fn send_probes(
    clients: Vec<Client>,
    shared: Arc<Shared>,
    rate: f64,
    send_for: SendFor,
) -> SenderLog {
    let mut ticker = interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut log = SenderLog {
        stored: Vec::new(),
        errors: 0,
        first_error: None,
        first_send_us: shared.now_us(),
        elapsed: Duration::ZERO,
    };
    for seq in 0u32.. {
        if let SendFor::Count(n) = send_for
            && u64::from(seq) >= n
        {
            break;
        }
        ticker.tick().await;
        if let SendFor::Duration(d) = send_for
            && started.elapsed() >= d
        {
            break;
        }
        let text = shared.probes.text(seq, shared.now_us());
        let key = shared.probes.client_msg_id(seq);
        let client = &clients[seq as usize % clients.len()];
        match send_probe(client, &text, &key).await {
            Ok(()) => {
                log.stored.push(true);
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                log.stored.push(false);
                log.errors += 1;
                log.first_error.get_or_insert(e);
            }
        }
    }
    log.elapsed = started.elapsed();
    log
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
