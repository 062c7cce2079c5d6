//! The live counters behind `GET /api/stats`: one set per transport.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

pub use chat_store::Transport;

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

/// A snapshot of one transport's counters, as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CountersSnapshot {
    /// See [`Counters::requests`].
    pub requests: u64,
    /// See [`Counters::open`].
    pub open: u64,
    /// See [`Counters::bytes_in`].
    pub bytes_in: u64,
    /// See [`Counters::bytes_out`].
    pub bytes_out: u64,
    /// See [`Counters::messages_delivered`].
    pub messages_delivered: u64,
    /// See [`Counters::empty_responses`].
    pub empty_responses: u64,
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

/// Counters for all four transports.
#[derive(Debug, Default)]
pub struct Stats {
    transports: [Counters; 4],
}

impl Stats {
    /// One transport's counters.
    pub fn of(&self, transport: Transport) -> &Counters {
        &self.transports[transport as usize]
    }

    /// The `transports` object of `/api/stats`.
    pub fn snapshot(&self) -> TransportsSnapshot {
        TransportsSnapshot {
            polling: self.of(Transport::Polling).snapshot(),
            longpoll: self.of(Transport::Longpoll).snapshot(),
            sse: self.of(Transport::Sse).snapshot(),
            websocket: self.of(Transport::Websocket).snapshot(),
        }
    }
}

/// Every transport's counters, keyed by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TransportsSnapshot {
    /// Regular polling.
    pub polling: CountersSnapshot,
    /// Long polling.
    pub longpoll: CountersSnapshot,
    /// Server-sent events.
    pub sse: CountersSnapshot,
    /// WebSocket.
    pub websocket: CountersSnapshot,
}

impl TransportsSnapshot {
    /// One transport's snapshot.
    pub fn of(&self, transport: Transport) -> &CountersSnapshot {
        match transport {
            Transport::Polling => &self.polling,
            Transport::Longpoll => &self.longpoll,
            Transport::Sse => &self.sse,
            Transport::Websocket => &self.websocket,
        }
    }
}

/// The store part of `/api/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StoreSnapshot {
    /// The newest message id.
    pub last_id: u64,
    /// Messages retained.
    pub retained: u64,
}

/// The whole `/api/stats` body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsBody {
    /// Per transport.
    pub transports: TransportsSnapshot,
    /// The store.
    pub store: StoreSnapshot,
}
