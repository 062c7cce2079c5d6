//! # chat-http: what every chat server shares beyond the store
//!
//! Each transport crate is only the part that differs: how messages travel to
//! a client. Everything around that lives here, once, and this crate knows no
//! transport by name: it keeps counters for every [`Transport`] in
//! `Transport::ALL`, serves whatever [`Mount`]s it is given, and offers the
//! streaming transports the pieces of their connection loop.
//!
//! - [`config`]: the flags every server has (`--addr`/`CHAT_ADDR`, history,
//!   backfill, size limits, the slow-reader backlog, workers, shutdown), with
//!   the defaults as named constants. Each transport crate adds its own
//!   settings (a `clap::Args` struct) next to these.
//! - [`api`]: `POST /api/messages` (send, with the contract's 400, 413 and 415
//!   answers), `GET /api/stats`, `GET /api/config`, the [`ApiError`] type
//!   that turns every refusal into a status and the contract's error body, and
//!   strict query parsing, so that `since=abc`, `since=-1` and
//!   `since=18446744073709551616` are clear 400s.
//! - [`limits`]: what a request may be, decided from its head before its
//!   body is read (431 for a head over 16 KiB, 413 for a body announced over
//!   the limit, with no `100 Continue` before it).
//! - [`shutdown`]: the gate every send passes, closed first on shutdown, so
//!   that no send is acknowledged that the streams will not carry.
//! - [`forwarded`]: the host a request was addressed to, believing
//!   `Forwarded` and `X-Forwarded-Host` only from `--trusted-proxies`.
//! - [`rate`]: the per-client limits: send rates per address and per user
//!   (`governor`'s token buckets; `429` with `Retry-After`, or a WebSocket
//!   error frame) and the cap on open connections per address.
//! - [`metrics`]: `GET /metrics`, the counters in Prometheus' text format,
//!   read from [`stats`] at each scrape, and the store-to-write histogram.
//! - [`stats`]: per-transport counters (requests, open, bytes in and out,
//!   messages delivered, empty responses), and what the limits refused.
//! - [`accounting`]: the middleware that counts bytes *on the wire*, heads and
//!   framing included, so that `bytes_out / messages_delivered` is the real
//!   cost of a message on each transport.
//! - [`streaming`]: what only the streaming transports need: the slow-reader
//!   rules ([`Backlog`]: messages behind, bytes unsent), the [`Connection`]
//!   handle that can reset a stalled client safely, the drain on shutdown,
//!   and [`End`], the outcome of every connection loop.
//! - [`feed`]: the response body of SSE and HTTP streaming, which reads the
//!   store at its own cursor when actix asks for the next chunk, and the
//!   handle its connection's task keeps the bounds with.
//! - [`server`]: [`AppState`], [`start`] (bind anything, including port 0 in
//!   tests), graceful shutdown through a cancellation token that held
//!   requests and streams listen to.
//! - [`binary`]: [`run_binary`], the `main` of every binary (`--version`,
//!   logs on stderr, one exit code per start-up failure: [`StartError`]).
//! - [`presence`]: who is online: the registry every subscription reports
//!   to (a guard per open subscription, the time of each poll), the list
//!   push transports send when it changes, and `GET /api/presence`.
//! - [`tls`]: `--tls`, HTTP/2 and HTTP/1.1 over TLS (rustls, ALPN), with a
//!   certificate made at start unless `--cert` and `--key` name one.
//! - [`page`]: the page's files, embedded in the binary at build time, or
//!   served from `--web-dir` while you edit them.
//!
//! A transport crate exports a `mount` function that returns a [`Mount`] (its
//! transport and a function that adds its scope, with its settings, to an
//! app); the demo server passes all of them to [`start`], a transport's own
//! binary passes just its own.

pub mod accounting;
pub mod api;
pub mod binary;
pub mod config;
pub mod feed;
pub mod forwarded;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod presence;
pub mod rate;
pub mod server;
pub mod shutdown;
pub mod stats;
pub mod streaming;
pub mod tls;
mod wire;

pub use api::{ApiError, Query};
pub use chat_protocol::Transport;
pub use config::Config;
pub use server::{
    AppState, LogFormat, Mount, NoSettings, RunningServer, StartError, listen, run_binary, start,
    start_with_tls,
};
pub use stats::Counters;
pub use streaming::{Backlog, Connection, End};
