//! Configuration shared by every server binary: flags with matching
//! environment variables, all listed by `--help`. Each transport crate adds
//! its own settings (a `clap::Args` struct) beside these.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use chat_protocol::limits::{DEFAULT_MAX_BODY, DEFAULT_MAX_TEXT_CHARS};
use chat_store::{DEFAULT_BACKFILL, DEFAULT_HISTORY, StoreConfig};

use crate::rate::LimitSettings;
use crate::server::LogFormat;

/// Where a server listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// How many messages a streaming connection may fall behind the newest one
/// before it is cut off as a slow reader. Below the default history, so that
/// the cut-off client can always resume from its cursor without loss.
pub const DEFAULT_BACKLOG: u64 = 1_000;
/// Seconds in-flight requests get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 10;
/// Seconds a request body may take to arrive, from the end of its head.
/// actix's own timeout covers the head only; without this a client that
/// announces a body and sends it a byte at a time holds its request (and a
/// place in the shutdown) as long as it likes. 64 KiB in 5 s is 13 KB/s.
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 5;
/// Bytes a streaming connection may hold that its client has not taken yet:
/// queued for it and not yet written to its socket (actix's write buffer
/// included). A connection at this bound hands over nothing more until its
/// client reads; one that stays there for [`crate::streaming::STALL_GRACE`]
/// is reset, like a slow reader. It bounds the memory of a stalled client in
/// bytes, whatever the size of the messages: the queue's bound is in items,
/// and 16 items of 20 KB are 320 KB. 16 KiB keeps actix's write buffer,
/// which grows by doubling, at 32 KiB at most; a client that reads at all
/// never notices it, since the kernel's socket buffers come first.
pub const DEFAULT_MAX_UNSENT: usize = 16 * 1024;

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
    /// Bytes a streaming connection may hold for a client that has not read
    /// them; a client that leaves them unread is cut off.
    #[arg(long, env = "CHAT_MAX_UNSENT", default_value_t = DEFAULT_MAX_UNSENT)]
    pub max_unsent: usize,
    /// Seconds a request body may take to arrive (then: 408).
    #[arg(long, env = "CHAT_BODY_TIMEOUT", default_value_t = DEFAULT_BODY_TIMEOUT_S)]
    pub body_timeout: u64,
    /// Addresses of the proxies in front of this server (comma-separated
    /// IPs). Only requests from them may name the public host with
    /// `Forwarded` or `X-Forwarded-Host`; by default nobody may.
    #[arg(long, env = "CHAT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
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
    /// Serve HTTPS: HTTP/2 and HTTP/1.1 over TLS (ALPN), with a certificate
    /// for localhost and 127.0.0.1 made at start unless `--cert` and `--key`
    /// name one.
    #[arg(long, env = "CHAT_TLS")]
    pub tls: bool,
    /// With `--tls`: the certificate chain to serve (a PEM file).
    #[arg(long, env = "CHAT_CERT", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With `--tls`: the certificate's private key (a PEM file).
    #[arg(long, env = "CHAT_KEY", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// Send rates and the connection cap per client (see [`crate::rate`]).
    /// Last: its help heading holds for the flags after it.
    #[command(flatten)]
    pub limits: LimitSettings,
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
            max_unsent: DEFAULT_MAX_UNSENT,
            body_timeout: DEFAULT_BODY_TIMEOUT_S,
            trusted_proxies: Vec::new(),
            web_dir: None,
            workers: 0,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT_S,
            log_format: LogFormat::Text,
            limits: LimitSettings::default(),
            store_url: None,
            tls: false,
            cert: None,
            key: None,
        }
    }
}

impl Config {
    /// The time a request body may take to arrive.
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.body_timeout)
    }

    /// Whether `peer` is one of the trusted proxies.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_proxies
            .iter()
            .any(|proxy| proxy.to_canonical() == peer)
    }

    /// The store's part of the configuration.
    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            history: self.history,
            backfill: self.backfill,
            max_text_chars: self.max_text,
        }
    }
}
