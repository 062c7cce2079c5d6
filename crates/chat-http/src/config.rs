//! Configuration shared by every server binary: flags with matching
//! environment variables, all listed by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_store::{DEFAULT_BACKFILL, DEFAULT_HISTORY, DEFAULT_MAX_TEXT_CHARS, StoreConfig};

/// Where a server listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Largest request body, in bytes (64 KiB).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Most messages one polling or long-polling answer carries.
pub const MAX_PAGE: usize = 500;
/// How long a long poll is held when the client names no `wait_s`.
pub const DEFAULT_LONGPOLL_WAIT_S: u64 = 25;
/// The shortest and longest hold a client may ask for. 55 s stays below the
/// 60 s idle timeout common to proxies and load balancers.
pub const LONGPOLL_WAIT_RANGE_S: std::ops::RangeInclusive<u64> = 1..=55;
/// Seconds without events after which an SSE stream sends a comment line.
pub const DEFAULT_SSE_KEEPALIVE_S: u64 = 15;
/// The `retry:` an SSE stream opens with, in milliseconds.
pub const DEFAULT_SSE_RETRY_MS: u64 = 1_000;
/// Seconds between WebSocket pings.
pub const DEFAULT_WS_PING_S: u64 = 15;
/// Seconds without a pong (or any frame) after which a socket is closed.
pub const DEFAULT_WS_TIMEOUT_S: u64 = 30;
/// Largest WebSocket frame a client may send, in bytes (64 KiB).
pub const DEFAULT_WS_MAX_FRAME: usize = 64 * 1024;
/// How many messages a streaming connection may fall behind the newest one
/// before it is cut off as a slow reader. Below the default history, so that
/// the cut-off client can always resume from its cursor without loss.
pub const DEFAULT_BACKLOG: u64 = 1_000;
/// Seconds in-flight requests get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 10;

/// Every setting of a chat server.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CHAT_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// How many recent messages the store retains.
    #[arg(long, env = "CHAT_HISTORY", default_value_t = DEFAULT_HISTORY)]
    pub history: usize,
    /// How many recent messages a client without `since` starts with.
    #[arg(long, env = "CHAT_BACKFILL", default_value_t = DEFAULT_BACKFILL)]
    pub backfill: usize,
    /// Longest message text, in characters.
    #[arg(long, env = "CHAT_MAX_TEXT", default_value_t = DEFAULT_MAX_TEXT_CHARS)]
    pub max_text: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "CHAT_MAX_BODY", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Seconds a long poll is held when the client names no `wait_s`.
    #[arg(long, env = "CHAT_LONGPOLL_WAIT", default_value_t = DEFAULT_LONGPOLL_WAIT_S,
          value_parser = clap::value_parser!(u64).range(1..=55))]
    pub longpoll_wait: u64,
    /// Seconds of silence after which an SSE stream sends a keep-alive comment.
    #[arg(long, env = "CHAT_SSE_KEEPALIVE", default_value_t = DEFAULT_SSE_KEEPALIVE_S)]
    pub sse_keepalive: u64,
    /// Seconds between WebSocket pings.
    #[arg(long, env = "CHAT_WS_PING", default_value_t = DEFAULT_WS_PING_S)]
    pub ws_ping: u64,
    /// Seconds without an answer after which a WebSocket is closed.
    #[arg(long, env = "CHAT_WS_TIMEOUT", default_value_t = DEFAULT_WS_TIMEOUT_S)]
    pub ws_timeout: u64,
    /// Largest WebSocket frame a client may send, in bytes.
    #[arg(long, env = "CHAT_WS_MAX_FRAME", default_value_t = DEFAULT_WS_MAX_FRAME)]
    pub ws_max_frame: usize,
    /// Messages a streaming connection may fall behind before it is cut off.
    #[arg(long, env = "CHAT_BACKLOG", default_value_t = DEFAULT_BACKLOG)]
    pub backlog: u64,
    /// Extra origins allowed to open a WebSocket (comma-separated, e.g.
    /// `https://chat.example`). The server's own origin is always allowed.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Folder with the page's static files.
    #[arg(long, env = "CHAT_WEB_DIR", default_value = default_web_dir())]
    pub web_dir: PathBuf,
    /// Worker threads (0: one per CPU core).
    #[arg(long, env = "CHAT_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "CHAT_SHUTDOWN_TIMEOUT", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_S)]
    pub shutdown_timeout: u64,
}

/// The `web/` folder of this checkout, so that `cargo run` works from anywhere.
fn default_web_dir() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../web")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // A literal that always parses.
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            history: DEFAULT_HISTORY,
            backfill: DEFAULT_BACKFILL,
            max_text: DEFAULT_MAX_TEXT_CHARS,
            max_body: DEFAULT_MAX_BODY,
            longpoll_wait: DEFAULT_LONGPOLL_WAIT_S,
            sse_keepalive: DEFAULT_SSE_KEEPALIVE_S,
            ws_ping: DEFAULT_WS_PING_S,
            ws_timeout: DEFAULT_WS_TIMEOUT_S,
            ws_max_frame: DEFAULT_WS_MAX_FRAME,
            backlog: DEFAULT_BACKLOG,
            allowed_origins: Vec::new(),
            web_dir: PathBuf::from(default_web_dir()),
            workers: 0,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT_S,
        }
    }
}

impl Config {
    /// The store's part of the configuration.
    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            history: self.history,
            backfill: self.backfill,
            max_text_chars: self.max_text,
        }
    }

    /// The SSE keep-alive interval.
    pub fn sse_keepalive(&self) -> Duration {
        Duration::from_secs(self.sse_keepalive)
    }

    /// The WebSocket ping interval.
    pub fn ws_ping(&self) -> Duration {
        Duration::from_secs(self.ws_ping)
    }

    /// The WebSocket idle timeout.
    pub fn ws_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_timeout)
    }
}
