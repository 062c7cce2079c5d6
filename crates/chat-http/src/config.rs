//! Configuration shared by every server binary: flags with matching
//! environment variables, all listed by `--help`. Each transport crate adds
//! its own settings (a `clap::Args` struct) beside these.

use std::net::SocketAddr;
use std::path::PathBuf;

use chat_protocol::limits::{DEFAULT_MAX_BODY, DEFAULT_MAX_TEXT_CHARS};
use chat_store::{DEFAULT_BACKFILL, DEFAULT_HISTORY, StoreConfig};

use crate::server::LogFormat;

/// Where a server listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// How many messages a streaming connection may fall behind the newest one
/// before it is cut off as a slow reader. Below the default history, so that
/// the cut-off client can always resume from its cursor without loss.
pub const DEFAULT_BACKLOG: u64 = 1_000;
/// Seconds in-flight requests get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 10;

/// The settings every chat server has, whatever it mounts.
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
    /// Messages a streaming connection may fall behind before it is cut off.
    #[arg(long, env = "CHAT_BACKLOG", default_value_t = DEFAULT_BACKLOG)]
    pub backlog: u64,
    /// Serve the page from this folder instead of the copy built into the
    /// binary (to edit `web/` and reload without rebuilding). It must hold
    /// an `index.html`.
    #[arg(long, env = "CHAT_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Worker threads (0: one per CPU core).
    #[arg(long, env = "CHAT_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "CHAT_SHUTDOWN_TIMEOUT", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_S)]
    pub shutdown_timeout: u64,
    /// Where messages live: `memory` (this process; the default) or
    /// `redis://HOST:PORT`, a log that every instance pointed at it shares.
    #[arg(long = "store", env = "CHAT_STORE")]
    pub store_url: Option<String>,
    /// How logs are written to stderr (the level comes from `RUST_LOG`).
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
            backlog: DEFAULT_BACKLOG,
            web_dir: None,
            workers: 0,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT_S,
            log_format: LogFormat::Text,
            store_url: None,
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
}
