//! A send flood from one address against the demo server's default limits:
//! how many sends a flooding client gets accepted, how many are refused
//! (`429`), and what each request costs the server in CPU time.
//!
//! Starts the release `chat-demo` binary beside this one (build both first)
//! with any flags given after `--`, floods `POST /api/messages` from
//! 127.0.0.1 over `--connections` keep-alive connections for `--seconds`,
//! and reads the server's CPU time from `/proc` before and after:
//!
//! ```text
//! cargo build --release -p chat-demo -p chat-benches
//! target/release/flood                          # the default limits
//! target/release/flood --users 1                # one user: its own bucket binds
//! target/release/flood -- --no-client-limits    # the same flood, unlimited
//! ```

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncBufReadExt;

use chat_loadgen::process::{clock_ticks_per_second, sample};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Flood the demo server with sends from one address; count 201s and 429s and the server's CPU"
)]
struct Cli {
    /// How long to flood, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Distinct user names to send as (1: every send as one user).
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Flags for the server (after `--`).
    #[arg(last = true)]
    server_args: Vec<String>,
}

/// What the flood got back.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binary = std::env::current_exe()?.with_file_name("chat-demo");
    let mut server = tokio::process::Command::new(&binary)
        .args(["--addr", "127.0.0.1:0"])
        .args(&cli.server_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} (build it first)", binary.display()))?;
    let stdout = server.stdout.take().context("server stdout")?;
    let line = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .context("the server printed nothing")?;
    let url = line
        .rsplit_once(' ')
        .map(|(_, url)| url.to_owned())
        .context("no address in the server's first line")?;
    let pid = server.id().context("server pid")?;

    let client = reqwest::Client::new();
    let tally = Arc::new(Tally::default());
    let before = sample(pid)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(cli.seconds);
    let mut workers = Vec::new();
    for worker in 0..cli.connections {
        let (client, tally) = (client.clone(), tally.clone());
        let url = format!("{url}/api/messages");
        let user = format!("flood{}", worker % cli.users.max(1));
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let body = serde_json::json!({"user": user, "text": "flood"});
                let counter = match client.post(&url).json(&body).send().await {
                    Ok(answer) if answer.status() == 201 => &tally.accepted,
                    Ok(answer) if answer.status() == 429 => &tally.refused,
                    _ => &tally.other,
                };
                counter.fetch_add(1, Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = sample(pid)?;
    let cpu_s = (after.cpu_ticks - before.cpu_ticks) as f64 / clock_ticks_per_second() as f64;

    let accepted = tally.accepted.load(Relaxed);
    let refused = tally.refused.load(Relaxed);
    let other = tally.other.load(Relaxed);
    let requests = (accepted + refused + other).max(1);
    println!(
        "flood: {elapsed:.1} s, {} connections, {} users, one address, server flags {:?}",
        cli.connections, cli.users, cli.server_args
    );
    println!(
        "accepted (201): {accepted} ({:.0}/s); refused (429): {refused} ({:.0}/s); other: {other}",
        accepted as f64 / elapsed,
        refused as f64 / elapsed
    );
    println!(
        "server CPU: {cpu_s:.2} s over {elapsed:.1} s, {:.0} µs per request",
        cpu_s * 1e6 / requests as f64
    );
    server.start_kill()?;
    Ok(())
}
