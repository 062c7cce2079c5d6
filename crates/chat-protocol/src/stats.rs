//! The bodies of `GET /api/stats` and `GET /api/config`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::epoch::Epoch;
use crate::transport::Transport;

/// One transport's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// HTTP requests (a WebSocket counts its upgrade request once).
    pub requests: u64,
    /// Requests or connections in progress right now.
    pub open: u64,
    /// Bytes received: request heads, bodies, WebSocket frames.
    pub bytes_in: u64,
    /// Bytes sent: response heads, bodies with chunk framing, WebSocket frames.
    pub bytes_out: u64,
    /// Chat messages handed to clients.
    pub messages_delivered: u64,
    /// Answers that carried no message (polling and long polling).
    pub empty_responses: u64,
}

/// Every transport's counters, keyed by its wire name, in page order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransportStats(pub BTreeMap<Transport, CountersSnapshot>);

impl TransportStats {
    /// One transport's counters (zero for one the server does not report).
    pub fn of(&self, transport: Transport) -> CountersSnapshot {
        self.0.get(&transport).copied().unwrap_or_default()
    }
}

/// The store part of `/api/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSnapshot {
    /// The newest message id.
    pub last_id: u64,
    /// Messages retained.
    pub retained: u64,
    /// The store's epoch.
    pub epoch: Epoch,
    /// Where the messages live: `memory` or `redis`.
    #[serde(default)]
    pub backend: String,
}

/// The whole `/api/stats` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsBody {
    /// Per transport.
    pub transports: TransportStats,
    /// The store.
    pub store: StoreSnapshot,
    /// What the byte counts mean on this server (not in the contract: an
    /// addition for `--tls`; absent from older servers).
    #[serde(default)]
    pub accounting: AccountingSnapshot,
    /// What the server's own limits refused or cut off (not in the
    /// contract's counters: an addition; absent from older servers).
    #[serde(default)]
    pub refused: RefusalsSnapshot,
}

/// The `refused` object of `/api/stats`: requests and connections a limit
/// of the server refused or cut off, since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalsSnapshot {
    /// Sends over a rate limit (`429` on POST, an error frame on WebSocket).
    pub rate_limited: u64,
    /// Requests and WebSockets over the cap on open connections per client
    /// address (`429`, or close code 1013).
    pub connections_capped: u64,
    /// Request bodies that did not arrive in time (`408`).
    pub body_timeouts: u64,
    /// Request heads over the size limit (`431`).
    pub heads_too_large: u64,
    /// Streaming connections reset because their client left bytes unread.
    pub stalled: u64,
    /// Streaming connections reset as slow readers (too far behind, or
    /// stalled), per transport.
    pub slow_readers: BTreeMap<Transport, u64>,
}

/// How far `transports`' byte counts are exact, and what TLS connections
/// carried, counted at the socket (`docs/protocol.md`, "HTTPS and
/// HTTP/2").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountingSnapshot {
    /// `exact` while every request counted came over HTTP/1.1 (plain or
    /// inside TLS: the bytes of HTTP/1.1 as written, TLS records excluded);
    /// `h2-bodies-only` once an HTTP/2 request has been counted, whose head
    /// (HPACK-compressed, its size unknown to the app) and frame headers are
    /// not in the transport's counts, only its body.
    pub transports: String,
    /// Every TLS connection's bytes on the socket, records and handshakes
    /// included, for all transports together.
    pub tls: TlsSnapshot,
}

/// The TLS connections' totals in `/api/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSnapshot {
    /// TLS connections accepted (handshake completed).
    pub connections: u64,
    /// Of those, the ones that chose HTTP/2 (ALPN `h2`).
    pub h2_connections: u64,
    /// HTTP/2 requests counted under a transport (bodies only).
    pub h2_requests: u64,
    /// Bytes read from TLS connections' sockets.
    pub bytes_in: u64,
    /// Bytes written to TLS connections' sockets.
    pub bytes_out: u64,
}

/// The `/api/config` body: what the page needs to know about a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigBody {
    /// The transports this server mounts, in page order.
    pub transports: Vec<Transport>,
    /// The store's epoch.
    pub epoch: Epoch,
    /// This server process, among the instances that may share one log.
    pub instance: String,
    /// The longest text it accepts, in characters.
    pub max_text: usize,
    /// The largest request body it accepts, in bytes.
    pub max_body: usize,
}
