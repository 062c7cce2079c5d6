//! The demo server (every transport, default page settings) started in this
//! process: `loadgen --in-process`, `compare`'s separate server process
//! (`compare --serve`), and the benches' servers all start it here.
//!
//! Every one of them runs with the per-client limits off
//! (`--no-client-limits`: [`without_client_limits`]): a load run's
//! thousands of clients all come from 127.0.0.1, and would otherwise meet
//! the send rate per address and per user after the first second. A server
//! started apart for `loadgen --url` needs the flag too.

use std::net::SocketAddr;
use std::time::Duration;

use chat_http::server::StartError;
use chat_http::{AppState, Config, RunningServer};

/// How long an in-process server gets to shut down (its own in-flight
/// timeout is 10 s).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts the demo server with `config` on `addr` (port 0: any free port;
/// the server's `addr` says which). Must be called inside a Tokio runtime.
pub fn start(addr: SocketAddr, config: Config) -> Result<RunningServer, StartError> {
    let listener = chat_http::listen(addr).map_err(|source| StartError::Listen { addr, source })?;
    chat_http::start(
        listener,
        AppState::new(without_client_limits(config)),
        &chat_demo::mounts(chat_demo::Settings::default()),
    )
}

/// [`start`], but with the store `config` names (`store_url`: memory, or
/// a Redis log shared with other instances), opened the way the `chat-demo`
/// binary opens it ([`AppState::open`]): `compare`'s server processes on a
/// shared log.
pub async fn open(addr: SocketAddr, config: Config) -> Result<RunningServer, StartError> {
    let state = AppState::open(without_client_limits(config)).await?;
    let listener = chat_http::listen(addr).map_err(|source| StartError::Listen { addr, source })?;
    chat_http::start(
        listener,
        state,
        &chat_demo::mounts(chat_demo::Settings::default()),
    )
}

/// `config` with the per-client limits off, as a load run needs them.
pub fn without_client_limits(mut config: Config) -> Config {
    config.limits.no_client_limits = true;
    config
}

/// [`start`] on a free loopback port.
pub fn start_on_loopback(config: Config) -> Result<RunningServer, StartError> {
    start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
}

/// `http://ADDR` of a running server.
pub fn base_url(server: &RunningServer) -> String {
    format!("http://{}", server.addr)
}

/// Shuts `server` down, saying on stderr if it did not go cleanly within
/// [`SHUTDOWN_TIMEOUT`].
pub async fn shut_down(server: RunningServer) {
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, server.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("in-process server: {e}"),
        Err(_) => eprintln!("in-process server: no clean shutdown in time"),
    }
}
