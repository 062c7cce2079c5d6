//! # chat-benches: what the transports cost, measured
//!
//! Shared setup for the criterion benches in `benches/` and the measurement
//! binaries in `src/bin/`: a real demo server in this process on a loopback
//! port, and the project's own clients talking to it over TCP.
//!
//! - `cargo bench -p chat-benches --bench longpoll_wakeup`: the time from a
//!   send (`POST /api/messages`) to the held long poll's answer arriving.
//! - `cargo bench -p chat-benches --bench send_to_deliver` (and `fanout`,
//!   `burst`, `store`): latency, fan-out and burst throughput, the store alone.
//! - `cargo run --release -p chat-benches --bin compare`: the comparison in
//!   one command, written to `docs/results.md` ([`wire`] measures at the
//!   socket through a counting [`relay`]; the load runs are the
//!   `chat-loadgen` crate's `loadgen`, whose `/api/stats` reader and `/proc`
//!   sampler `compare` shares; [`processes`] starts the server processes,
//!   `loadgen` runs and `redis-server` its load runs use, and [`scale`] is
//!   its section on several instances sharing one Redis log).
//! - `cargo run --release -p chat-benches --bin tls`: bytes per message over
//!   HTTP/1.1, HTTPS with HTTP/1.1 and HTTPS with HTTP/2 ([`tls`]), the
//!   section "HTTP/2 over TLS" of `docs/results.md`.
//! - `cargo run --release -p chat-benches --bin capacity`: capacity on one
//!   server core ([`capacity`]): the release `chat-demo` pinned to core 0 and
//!   `loadgen` to core 1, the send rate stepped to saturation per transport,
//!   server CPU per delivery and memory per idle connection, the section
//!   "Capacity on one server core" of `docs/results.md`. Beside it,
//!   `benches/profile/instructions.sh` (instructions per delivery, callgrind)
//!   and `benches/profile/heap.sh` (heap per connection, massif).
//!
//! The load generator is its own crate: `cargo run --release -p chat-loadgen
//! -- --help` (many clients of one transport against a server, with
//! latency, loss, duplicates, bytes per message, and the server's memory and
//! CPU).

pub mod capacity;
pub mod link;
pub mod link_server;
pub mod links;
pub mod processes;
pub mod relay;
pub mod scale;
pub mod stamp;
pub mod tables;
pub mod tls;
pub mod wire;

use chat_http::{Config, RunningServer};

pub use chat_loadgen::server::base_url;

/// Starts the demo server (every transport) on a free loopback port.
pub fn start_server(config: Config) -> anyhow::Result<RunningServer> {
    Ok(chat_loadgen::server::start_on_loopback(config)?)
}

/// `n` subscribers on one transport, each a task with the project's client,
/// counting every message they receive into one shared tally.
pub struct Subscribers {
    /// How many subscribers.
    count: usize,
    delivered: tokio::sync::watch::Receiver<u64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Subscribers {
    /// Connects `n` subscribers to `base` over `transport`, after `since`,
    /// and returns once the server counts them all as open (polling has no
    /// open connection, so for it this returns at once).
    pub async fn connect(
        server: &RunningServer,
        transport: chat_client::Transport,
        n: usize,
        poll_interval: std::time::Duration,
    ) -> Self {
        let (tally, delivered) = tokio::sync::watch::channel(0u64);
        let tally = std::sync::Arc::new(tally);
        let client = chat_client::Client::new(base_url(server));
        let since = server.state.store.newest();
        let open_before = open(server, transport);
        let tasks = (0..n)
            .map(|_| {
                let mut sub = client.subscribe(
                    transport,
                    chat_client::Options {
                        since: Some(since),
                        poll_interval,
                        ..chat_client::Options::default()
                    },
                );
                let tally = tally.clone();
                tokio::spawn(async move {
                    while let Ok(event) = sub.next().await {
                        if let chat_client::Event::Message { .. } = event {
                            tally.send_modify(|d| *d += 1);
                        }
                    }
                })
            })
            .collect();
        if transport != chat_client::Transport::Polling {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while open(server, transport) < open_before + n as u64
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        Subscribers {
            count: n,
            delivered,
            tasks,
        }
    }

    /// Messages received so far, over all subscribers.
    pub fn delivered(&self) -> u64 {
        *self.delivered.borrow()
    }

    /// Times `rounds` rounds of: append `messages` messages straight to the
    /// store, then wait until every subscriber has every one of them.
    pub async fn time_rounds(
        &mut self,
        server: &RunningServer,
        rounds: u64,
        messages: u64,
    ) -> std::time::Duration {
        let mut total = std::time::Duration::ZERO;
        for round in 0..rounds {
            let target = self.delivered() + messages * self.count as u64;
            let start = std::time::Instant::now();
            for i in 0..messages {
                append(server, round * messages + i);
            }
            self.wait_for(target).await;
            total += start.elapsed();
        }
        total
    }

    /// Waits until the tally reaches `target`.
    pub async fn wait_for(&mut self, target: u64) {
        // The sender lives in the subscriber tasks, which outlive this wait.
        let _ = self.delivered.wait_for(|d| *d >= target).await;
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The server's `open` counter for a transport.
fn open(server: &RunningServer, transport: chat_client::Transport) -> u64 {
    server.state.stats.snapshot().of(transport).open
}

/// Appends one message of about 100 bytes of JSON straight to the store.
pub fn append(server: &RunningServer, i: u64) {
    let message = chat_store::NewMessage {
        user: "bench".into(),
        text: format!("a message of the usual sort {i:>6}"),
        client_msg_id: None,
        via: chat_store::Via::Api,
    };
    // Always valid: fixed user, short text.
    let _ = server.state.store.append(message);
}
