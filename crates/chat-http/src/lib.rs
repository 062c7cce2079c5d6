//! # chat-http: what every chat server shares beyond the store
//!
//! Each transport crate (`chat-polling`, `chat-longpoll`, `chat-sse`,
//! `chat-websocket`) is only the part that differs: how messages travel to a
//! client. Everything around that lives here, once:
//!
//! - [`config`]: every flag and environment variable (`--addr`/`CHAT_ADDR`,
//!   history, backfill, size limits, timings), with the defaults as named
//!   constants.
//! - [`api`]: `POST /api/messages` (send, with the contract's 400, 413 and 415
//!   answers), `GET /api/stats`, the [`ApiError`] type that turns every
//!   refusal into a status and a JSON body, and strict query parsing, so that
//!   `since=abc`, `since=-1` and `since=18446744073709551616` are clear 400s.
//! - [`stats`]: per-transport counters (requests, open, bytes in and out,
//!   messages delivered, empty responses).
//! - [`accounting`]: the middleware that counts bytes *on the wire*, heads and
//!   framing included, so that `bytes_out / messages_delivered` is the real
//!   cost of a message on each transport.
//! - [`backlog`]: the slow-reader rule of the streaming transports: how far
//!   behind the live chat a client may fall before it is cut off.
//! - [`server`]: [`AppState`], [`start`] (bind anything, including port 0 in
//!   tests), graceful shutdown through a cancellation token that held
//!   requests and streams listen to, the static page, and [`run_binary`], the
//!   `main` of every binary.
//!
//! A transport crate exports one [`Mount`] (`MOUNT`: its name and a function
//! that adds its scope to an app); the demo server passes all four to
//! [`start`], a transport's own binary passes just its own.

pub mod accounting;
pub mod api;
pub mod backlog;
pub mod config;
pub mod server;
pub mod stats;

pub use api::{ApiError, Query};
pub use backlog::Backlog;
pub use config::Config;
pub use server::{AppState, ConnectionHandle, Mount, RunningServer, listen, run_binary, start};
pub use stats::{Counters, StatsBody, Transport};
