//! The behaviour suite: real servers on port 0, real clients.
//!
//! One test binary (faster to build than one per file), one module per
//! subject. `helpers` has `spawn_app`, which every test starts from; `kit`
//! has the raw HTTP and WebSocket clients for tests that need the bytes.

mod abuse;
mod abuse_corpus;
mod abuse_slow;
mod abuse_ws;
mod accounting;
mod api;
mod behaviour;
mod binary;
mod chaos;
mod defects;
mod defects_input;
mod docs;
mod docs_claims;
mod docs_tables;
mod helpers;
mod https;
mod kit;
mod limits;
mod longpoll;
mod metrics;
mod polling;
mod presence;
mod proxy;
#[path = "../support/redis.rs"]
mod redis_server;
mod resume;
mod scale;
mod scale_errors;
mod sse;
mod tls;
mod websocket;
