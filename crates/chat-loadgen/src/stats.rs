//! The typed `/api/stats` reader: one transport's counters, as the server
//! counts them, and their growth between two readings.
//!
//! The body is [`chat_protocol::StatsBody`], read by
//! [`chat_client::Client::stats`]; nothing here names a counter by string.
//! `loadgen` reads it before the ramp-up, after it and after the run;
//! `compare` (through `chat_benches::wire`) reads it around each scenario.
//! A `GET /api/stats` is no transport's request, so reading the counters
//! does not move them.

use std::time::Duration;

use chat_client::{Client, ClientError, Transport};
use chat_protocol::{CountersSnapshot, StoreSnapshot};
use tokio::time::timeout;

/// Longest wait for `GET /api/stats`.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `/api/stats` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// No answer within [`STATS_TIMEOUT`].
    #[error("GET /api/stats did not answer in time")]
    Timeout,
    /// The request failed or the body was not the contract's.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// `/api/stats` at one moment, for one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The transport's counters.
    pub counters: CountersSnapshot,
    /// The store's newest id.
    pub last_id: u64,
}

/// Reads `/api/stats` for `transport`.
pub async fn snapshot(client: &Client, transport: Transport) -> Result<Snapshot, StatsError> {
    let stats = timeout(STATS_TIMEOUT, client.stats())
        .await
        .map_err(|_| StatsError::Timeout)??;
    Ok(Snapshot {
        counters: stats.transports.of(transport),
        last_id: stats.store.last_id,
    })
}

/// The store part of `/api/stats`: its epoch (the same on every instance
/// that shares one log) and backend.
pub async fn store(client: &Client) -> Result<StoreSnapshot, StatsError> {
    let stats = timeout(STATS_TIMEOUT, client.stats())
        .await
        .map_err(|_| StatsError::Timeout)??;
    Ok(stats.store)
}

/// [`snapshot`] of every server, in order.
pub async fn snapshot_all(
    clients: &[Client],
    transport: Transport,
) -> Result<Vec<Snapshot>, StatsError> {
    let mut all = Vec::with_capacity(clients.len());
    for client in clients {
        all.push(snapshot(client, transport).await?);
    }
    Ok(all)
}

/// [`snapshot_or_warn`] of every server, their counters added up
/// ([`sum`]); `None` if any one could not be read.
pub async fn total_or_warn(
    clients: &[Client],
    transport: Transport,
    when: &str,
) -> Option<CountersSnapshot> {
    let mut total = CountersSnapshot::default();
    for client in clients {
        total = sum(
            &total,
            &snapshot_or_warn(client, transport, when).await?.counters,
        );
    }
    Some(total)
}

/// Reads `/api/stats`, or says on stderr why it could not (`when`: at which
/// point of the run) and returns `None`: a report is printed either way.
pub async fn snapshot_or_warn(
    client: &Client,
    transport: Transport,
    when: &str,
) -> Option<Snapshot> {
    match snapshot(client, transport).await {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            eprintln!(
                "warning: no counters {when}: {:#} (a server out of file descriptors \
                 cannot accept a new connection: see its log)",
                anyhow::Error::from(e)
            );
            None
        }
    }
}

/// What the counters grew by from `earlier` to `later`; `open`, a level
/// rather than a total, is the later value.
pub fn growth(later: &CountersSnapshot, earlier: &CountersSnapshot) -> CountersSnapshot {
    CountersSnapshot {
        requests: later.requests.saturating_sub(earlier.requests),
        open: later.open,
        bytes_in: later.bytes_in.saturating_sub(earlier.bytes_in),
        bytes_out: later.bytes_out.saturating_sub(earlier.bytes_out),
        messages_delivered: later
            .messages_delivered
            .saturating_sub(earlier.messages_delivered),
        empty_responses: later
            .empty_responses
            .saturating_sub(earlier.empty_responses),
    }
}

/// Two servers' counters as one: every field added, `open` too.
pub fn sum(a: &CountersSnapshot, b: &CountersSnapshot) -> CountersSnapshot {
    CountersSnapshot {
        requests: a.requests + b.requests,
        open: a.open + b.open,
        bytes_in: a.bytes_in + b.bytes_in,
        bytes_out: a.bytes_out + b.bytes_out,
        messages_delivered: a.messages_delivered + b.messages_delivered,
        empty_responses: a.empty_responses + b.empty_responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Totals are subtracted (never below zero); `open` is the later level.
    #[test]
    fn growth_subtracts_totals_and_keeps_the_open_level() {
        let earlier = CountersSnapshot {
            requests: 10,
            open: 5,
            bytes_in: 100,
            bytes_out: 1_000,
            messages_delivered: 7,
            empty_responses: 3,
        };
        let later = CountersSnapshot {
            requests: 15,
            open: 2,
            bytes_in: 150,
            bytes_out: 4_000,
            messages_delivered: 27,
            empty_responses: 3,
        };
        let grown = growth(&later, &earlier);
        assert_eq!(
            grown,
            CountersSnapshot {
                requests: 5,
                open: 2,
                bytes_in: 50,
                bytes_out: 3_000,
                messages_delivered: 20,
                empty_responses: 0,
            }
        );
        assert_eq!(growth(&earlier, &later).bytes_out, 0);
        let both = sum(&earlier, &later);
        assert_eq!((both.requests, both.open, both.bytes_out), (25, 7, 5_000));
        assert_eq!(sum(&CountersSnapshot::default(), &later), later);
    }
}
