//! The demo page through a slow link: starts the demo server (or points at
//! one with `--upstream`) and a relay in front of it that delays every byte
//! by half the round trip each way, with optional jitter and a bandwidth
//! limit, and prints the URL to open. Each pane of the page shows its
//! latency: polling's and long polling's grow with the round trip more than
//! SSE's, WebSocket's and streaming's do.
//!
//! `cargo run --release -p chat-benches --bin link -- --rtt-ms 150`
//! (`--jitter-ms 20`, `--kbit 1000`, `--upstream 127.0.0.1:8080`,
//! `--listen 127.0.0.1:8090`). Ctrl-C stops it and prints what the relay
//! counted.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use chat_benches::link_server::{LinkOptions, LinkServer};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Serve the chat page through a modelled slow link (delay, jitter, bandwidth)"
)]
struct Cli {
    /// The round trip, ms: half of it is added each way.
    #[arg(long, default_value_t = 150)]
    rtt_ms: u64,
    /// Up to this many ms more for each chunk, each way (bytes never
    /// overtake each other).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Each direction's rate in kbit/s (1000 = 1 Mbit/s); none: no limit.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    kbit: Option<u64>,
    /// A server already running (HOST:PORT); without it, the demo server
    /// is started here on a free loopback port.
    #[arg(long)]
    upstream: Option<SocketAddr>,
    /// Where the relay listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let options = LinkOptions {
        round_trip: Duration::from_millis(cli.rtt_ms),
        jitter: Duration::from_millis(cli.jitter_ms),
        bits_per_second: cli.kbit.map(|k| k * 1_000),
        upstream: cli.upstream,
        listen: cli.listen,
    };
    let link = LinkServer::start(options).await?;
    let rate = cli.kbit.map_or("no bandwidth limit".to_owned(), |k| {
        format!("{k} kbit/s each way")
    });
    println!(
        "link: {} ms round trip ({} ms each way, up to {} ms jitter), {rate}, to {}",
        cli.rtt_ms,
        cli.rtt_ms as f64 / 2.0,
        cli.jitter_ms,
        link.upstream
    );
    println!("open {}", link.url());
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    let counts = link.relay.tally.counts();
    println!(
        "relayed {} connections, {} requests, {} bytes up, {} bytes down",
        counts.connections, counts.requests, counts.bytes_up, counts.bytes_down
    );
    link.stop().await;
    Ok(())
}
