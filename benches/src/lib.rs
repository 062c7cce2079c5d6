//! # chat-benches: what the transports cost, measured
//!
//! Shared setup for the criterion benches in `benches/` and the measurement
//! binaries in `src/bin/`: a real demo server in this process on a loopback
//! port, and the project's own clients talking to it over TCP.
//!
//! - `cargo bench -p chat-benches --bench longpoll_wakeup`: the time from a
//!   send (`POST /api/messages`) to the held long poll's answer arriving.
//! - `cargo run --release -p chat-benches --bin wire_overhead`: bytes and
//!   requests per delivered message for each transport, from `/api/stats`.

use chat_http::{AppState, Config, RunningServer};

/// Starts the demo server (every transport) on a free loopback port.
pub fn start_server(config: Config) -> anyhow::Result<RunningServer> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(chat_http::start(
        listener,
        AppState::new(config),
        chat_demo::MOUNTS,
    )?)
}

/// `http://ADDR` of a running server.
pub fn base_url(server: &RunningServer) -> String {
    format!("http://{}", server.addr)
}
