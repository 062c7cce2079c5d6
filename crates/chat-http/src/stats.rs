//! The live counters behind `GET /api/stats`: one set per transport, kept
//! for every transport in [`Transport::ALL`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use std::time::{SystemTime, UNIX_EPOCH};

use chat_protocol::{
    AccountingSnapshot, CountersSnapshot, RefusalsSnapshot, TlsSnapshot, Transport, TransportStats,
};
use chat_store::{Page, StoredMessage};

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
    /// Streaming connections reset as slow readers (too far behind, or
    /// stalled): in `/api/stats`' `refused.slow_readers`.
    pub slow_reader_disconnects: AtomicU64,
    /// `chat_store_to_write_seconds{transport}` (see [`crate::metrics`]).
    pub store_to_write: DeliveryTimer,
}

/// A histogram of the time from the store accepting a message to its
/// delivery; records nothing until [`Stats::timed`] gives it one.
#[derive(Debug, Clone)]
pub struct DeliveryTimer(metrics::Histogram);

impl Default for DeliveryTimer {
    fn default() -> Self {
        DeliveryTimer(metrics::Histogram::noop())
    }
}

/// Whether a page's messages are news, timed on delivery, rather than
/// history a client asked for: the recent backfill of a client without a
/// cursor, or what follows a reset or gap notice.
fn is_news(page: &Page) -> bool {
    !page.backfill && !page.reset && page.missed == 0
}

/// Now, in milliseconds since the Unix epoch, with the fraction.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
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

    /// Records one message of `page` handed to a streaming client, and
    /// times it if the page is news. The one place the streaming transports
    /// count a delivery.
    pub fn delivered_message(&self, page: &Page, message: &StoredMessage) {
        self.messages_delivered.fetch_add(1, Relaxed);
        if is_news(page) {
            self.observe(message, now_ms());
        }
    }

    /// Records a poll's answer: its messages delivered (each timed if the
    /// page is news), or an empty answer. The one place polling and long
    /// polling count a delivery.
    pub fn delivered_page(&self, page: &Page) {
        match page.messages.len() {
            0 => self.empty(),
            n => self.delivered(n),
        }
        if is_news(page) && !page.messages.is_empty() {
            let now = now_ms();
            for message in &page.messages {
                self.observe(message, now);
            }
        }
    }

    fn observe(&self, message: &StoredMessage, now_ms: f64) {
        let elapsed_ms = (now_ms - message.sent_at_ms as f64).max(0.0);
        self.store_to_write.0.record(elapsed_ms / 1e3);
    }

    /// Streaming connections of this transport reset as slow readers so far.
    pub fn slow_reader_disconnects(&self) -> u64 {
        self.slow_reader_disconnects.load(Relaxed)
    }
}

/// Requests and connections refused or cut off by a limit of the server
/// (not by the contract's rules on messages). Logged as they happen, and
/// shown in `/api/stats`' `refused` object and in `/metrics`.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Request bodies that did not arrive within `--body-timeout` (408).
    pub body_timeouts: AtomicU64,
    /// Request heads over [`crate::limits::MAX_REQUEST_HEAD`] (431).
    pub heads_too_large: AtomicU64,
    /// Streaming connections reset because they held `--max-unsent` bytes
    /// their client did not take for [`crate::streaming::STALL_GRACE`].
    pub stalled: AtomicU64,
    /// Sends refused by a rate limit (429, or a WebSocket error frame).
    pub rate_limited: AtomicU64,
    /// Requests and WebSocket upgrades over `--max-connections-per-address`.
    pub connections_capped: AtomicU64,
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

    /// Sends refused by a rate limit so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Relaxed)
    }

    /// Requests refused over the connection cap so far.
    pub fn connections_capped(&self) -> u64 {
        self.connections_capped.load(Relaxed)
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
    /// What TLS connections carried, counted at the socket.
    pub tls: TlsCounters,
}

/// TLS connections and their bytes on the socket (under TLS: records,
/// handshakes, HTTP/2 frames and all), for every transport together: over
/// HTTP/2 one connection carries many transports' requests at once, so these
/// bytes cannot be split between them. See [`crate::tls`].
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// TLS connections whose handshake completed.
    pub connections: AtomicU64,
    /// Of those, the ones that chose HTTP/2.
    pub h2_connections: AtomicU64,
    /// HTTP/2 requests counted under a transport (bodies only).
    pub h2_requests: AtomicU64,
    /// Bytes read from TLS connections' sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to TLS connections' sockets.
    pub bytes_out: AtomicU64,
}

impl TlsCounters {
    /// The `accounting` object of `/api/stats`.
    pub fn snapshot(&self) -> AccountingSnapshot {
        let h2_requests = self.h2_requests.load(Relaxed);
        AccountingSnapshot {
            transports: if h2_requests == 0 {
                "exact"
            } else {
                "h2-bodies-only"
            }
            .to_owned(),
            tls: TlsSnapshot {
                connections: self.connections.load(Relaxed),
                h2_connections: self.h2_connections.load(Relaxed),
                h2_requests,
                bytes_in: self.bytes_in.load(Relaxed),
                bytes_out: self.bytes_out.load(Relaxed),
            },
        }
    }
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

    /// Counters whose deliveries are timed by `timer(transport)`'s histogram.
    pub fn timed(timer: impl Fn(Transport) -> metrics::Histogram) -> Self {
        let mut stats = Stats::default();
        for t in Transport::ALL {
            stats.counters[t.index()].store_to_write = DeliveryTimer(timer(t));
        }
        stats
    }

    /// The `refused` object of `/api/stats`.
    pub fn refusals(&self) -> RefusalsSnapshot {
        let refused = &self.refused;
        RefusalsSnapshot {
            rate_limited: refused.rate_limited(),
            connections_capped: refused.connections_capped(),
            body_timeouts: refused.body_timeouts(),
            heads_too_large: refused.heads_too_large(),
            stalled: refused.stalled(),
            slow_readers: Transport::ALL
                .into_iter()
                .map(|t| (t, self.of(t).slow_reader_disconnects()))
                .collect(),
        }
    }
}
