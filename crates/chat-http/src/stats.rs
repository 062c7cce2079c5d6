//! The live counters behind `GET /api/stats`: one set per transport, kept
//! for every transport in [`Transport::ALL`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use chat_protocol::{CountersSnapshot, Transport, TransportStats};

/// One transport's counters. Relaxed atomics: each is an independent tally
/// read for display, never used to synchronize anything.
#[derive(Debug, Default)]
pub struct Counters {
    /// HTTP requests (a WebSocket counts its upgrade request once).
    pub requests: AtomicU64,
    /// Requests or connections in progress right now.
    pub open: AtomicU64,
    /// Bytes received: request heads, bodies, WebSocket frames.
    pub bytes_in: AtomicU64,
    /// Bytes sent: response heads, bodies with chunk framing, WebSocket frames.
    pub bytes_out: AtomicU64,
    /// Chat messages handed to clients.
    pub messages_delivered: AtomicU64,
    /// Answers that carried no message (polling and long polling).
    pub empty_responses: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            requests: self.requests.load(Relaxed),
            open: self.open.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            messages_delivered: self.messages_delivered.load(Relaxed),
            empty_responses: self.empty_responses.load(Relaxed),
        }
    }

    /// Adds `n` to bytes received.
    pub fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    /// Adds `n` to bytes sent.
    pub fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    /// Records `n` messages handed to a client (in one answer, or as events
    /// or frames); empty answers are recorded with [`Counters::empty`].
    pub fn delivered(&self, n: usize) {
        self.messages_delivered.fetch_add(n as u64, Relaxed);
    }

    /// Records an answer that carried no message.
    pub fn empty(&self) {
        self.empty_responses.fetch_add(1, Relaxed);
    }
}

/// Requests and connections refused or cut off by a limit of the server
/// (not by the contract's rules on messages). Logged as they happen and kept
/// here for tests and operators; `/api/stats` keeps the contract's shape.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Request bodies that did not arrive within `--body-timeout` (408).
    pub body_timeouts: AtomicU64,
    /// Request heads over [`crate::limits::MAX_REQUEST_HEAD`] (431).
    pub heads_too_large: AtomicU64,
    /// Streaming connections reset because they held `--max-unsent` bytes
    /// their client did not take for [`crate::streaming::STALL_GRACE`].
    pub stalled: AtomicU64,
}

impl Refusals {
    /// Request bodies that timed out so far.
    pub fn body_timeouts(&self) -> u64 {
        self.body_timeouts.load(Relaxed)
    }

    /// Request heads refused as too large so far.
    pub fn heads_too_large(&self) -> u64 {
        self.heads_too_large.load(Relaxed)
    }

    /// Stalled streaming connections reset so far.
    pub fn stalled(&self) -> u64 {
        self.stalled.load(Relaxed)
    }

    /// Adds one to `counter`.
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

/// Counters for every transport, in the order of [`Transport::ALL`].
#[derive(Debug, Default)]
pub struct Stats {
    counters: [Counters; Transport::ALL.len()],
    /// What the server's own limits refused or cut off.
    pub refused: Refusals,
}

impl Stats {
    /// One transport's counters.
    pub fn of(&self, transport: Transport) -> &Counters {
        &self.counters[transport.index()]
    }

    /// The `transports` object of `/api/stats`.
    pub fn snapshot(&self) -> TransportStats {
        TransportStats(
            Transport::ALL
                .into_iter()
                .map(|t| (t, self.of(t).snapshot()))
                .collect(),
        )
    }
}
