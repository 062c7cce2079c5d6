//! Wire overhead per delivered message, measured at the socket by a
//! [`Relay`] and cross-checked with the server's own `/api/stats` (read with
//! the load generator's reader, [`chat_loadgen::stats`]), for each transport
//! in three scenarios:
//!
//! - **one at a time**: messages sent one by one, each only after the
//!   subscriber has the previous one;
//! - **burst**: messages sent back to back, then delivered;
//! - **idle**: no message at all for a while (polling every second, long
//!   polls held 25 s, SSE keep-alives every 15 s, WebSocket pings every 15 s,
//!   HTTP streaming's ping lines every 15 s): what staying connected costs
//!   per minute.
//!
//! One subscriber per transport connects through the relay and receives one
//! message before counting starts (connection set-up is not counted); sends
//! go straight to the server with `via: api`, so that both counts are of
//! delivery alone.

use std::time::Duration;

use chat_client::{Client, Cursor, Event, Options, Transport, Via};
use chat_loadgen::stats;

use crate::relay::{Counts, Relay};
use crate::{base_url, start_server};

/// Text that makes a stored message 100 bytes of JSON (with a 4-digit id):
/// `{"id":1000,"user":"bench","text":"…","sent_at_ms":…,"via":"api"}`.
pub const TEXT: &str = "twenty-five characters ok";

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// This many messages, one at a time.
    OneAtATime(u64),
    /// This many messages back to back.
    Burst(u64),
    /// Nothing for this long.
    Idle(Duration),
}

impl Scenario {
    /// A short name for tables.
    pub fn name(&self) -> String {
        match self {
            Scenario::OneAtATime(n) => format!("{n} one at a time"),
            Scenario::Burst(n) => format!("burst of {n}"),
            Scenario::Idle(d) => format!("idle {} s", d.as_secs()),
        }
    }
}

/// What one transport cost in one scenario.
#[derive(Debug, Clone, Copy)]
pub struct WireResult {
    /// The transport.
    pub transport: Transport,
    /// The scenario.
    pub scenario: Scenario,
    /// Messages delivered to the subscriber.
    pub delivered: u64,
    /// What the relay counted.
    pub relay: Counts,
    /// The server's `bytes_out` for the transport over the same time.
    pub server_bytes_out: u64,
    /// The server's `bytes_in`.
    pub server_bytes_in: u64,
}

impl WireResult {
    /// `x / delivered`, or `x` itself when nothing was delivered (idle).
    pub fn per_message(&self, x: u64) -> f64 {
        x as f64 / self.delivered.max(1) as f64
    }

    /// How far the server's count of bytes down is from the relay's, in %.
    pub fn disagreement_percent(&self) -> f64 {
        let relay = self.relay.bytes_down as f64;
        if relay == 0.0 {
            return 0.0;
        }
        (self.server_bytes_out as f64 - relay) / relay * 100.0
    }
}

/// Runs one scenario for one transport on a fresh server.
pub async fn measure(transport: Transport, scenario: Scenario) -> anyhow::Result<WireResult> {
    let server = start_server(chat_http::Config::default())?;
    let relay = Relay::start(server.addr).await?;
    let sender = Client::new(base_url(&server));
    let subscriber = Client::new(relay.base_url());
    let mut sub = subscriber.subscribe(
        transport,
        Options {
            since: Some(Cursor(0)),
            poll_interval: Duration::from_secs(1),
            wait_s: 25,
            ..Options::default()
        },
    );

    // Warm up: the subscriber connects and gets one message before anything
    // is counted, so every scenario measures a connected client.
    sender.send("bench", TEXT, None, Via::Api).await?;
    next_message(&mut sub).await?;

    let before_relay = relay.tally.counts();
    let before_server = stats::snapshot(&sender, transport).await?;
    let mut delivered = 0;
    match scenario {
        Scenario::OneAtATime(n) => {
            for _ in 0..n {
                sender.send("bench", TEXT, None, Via::Api).await?;
                next_message(&mut sub).await?;
                delivered += 1;
            }
        }
        Scenario::Burst(n) => {
            for _ in 0..n {
                sender.send("bench", TEXT, None, Via::Api).await?;
            }
            for _ in 0..n {
                next_message(&mut sub).await?;
                delivered += 1;
            }
        }
        Scenario::Idle(duration) => {
            // Nothing is sent; the subscriber keeps its connection alive.
            let _ = tokio::time::timeout(duration, sub.next()).await;
        }
    }
    // Let the last answers and re-requests settle before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let relay_counts = relay.tally.counts().since(before_relay);
    let after_server = stats::snapshot(&sender, transport).await?;
    let server_counts = stats::growth(&after_server.counters, &before_server.counters);
    drop(sub);
    server.shutdown().await?;
    Ok(WireResult {
        transport,
        scenario,
        delivered,
        relay: relay_counts,
        server_bytes_out: server_counts.bytes_out,
        server_bytes_in: server_counts.bytes_in,
    })
}

async fn next_message(sub: &mut chat_client::Subscription) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), sub.next()).await?? {
            Event::Message { .. } => return Ok(()),
            Event::Gap { .. } | Event::Reset { .. } => {}
        }
    }
}
