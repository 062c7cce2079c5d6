//! # loadgen: many clients of one transport against one chat server
//!
//! Opens `--clients` subscriptions on one transport, sends messages at
//! `--rate` per second (in total) through `POST /api/messages` with
//! `via: api`, and checks that every subscriber received every message, once,
//! in order. It measures:
//!
//! - **deliveries**: one message reaching one subscriber; a run should see
//!   `messages sent × clients` of them. Deliveries per second is that count
//!   over the time from the first send to the last delivery.
//! - **latency**: from just before the sender's `POST` to the moment the
//!   subscriber's [`Subscription::next`] returns the message. Each message's
//!   text carries its send time (microseconds since a clock shared by the
//!   sender and every subscriber, all in this process), so no map of send
//!   times is needed and a message can never arrive "before" it is known.
//!   Regular polling's latency is dominated by `--poll-interval-ms`.
//! - **lost / duplicated / out of order**: summed over subscribers. The
//!   project's client drops anything at or below its cursor, so a server
//!   that reordered messages would show up here as *lost* ones.
//! - **bytes out per delivery**: the transport's `bytes_out` over its
//!   `messages_delivered` in `/api/stats`, between "everyone connected" and
//!   "everything delivered": what one delivery costs on the wire, response
//!   heads, keep-alives and empty polls included.
//! - **server RSS and CPU** (with `--server-pid`, or `--in-process`): from
//!   `/proc/PID/status` (`VmRSS`) and `/proc/PID/stat` (`utime + stime`), at
//!   the start and at the end; memory per client is the growth over the run
//!   divided by the clients. With `--in-process` the process is the server
//!   *and* the load generator, with both ends of every connection, so those
//!   figures are upper bounds (a WebSocket client alone holds a 128 KiB
//!   read buffer, tungstenite's default); run the server on its own for
//!   server-only numbers.
//!
//! Subscribers start after the store's newest message, each in its own task,
//! opened at `--connect-rate`; the run starts sending once the server counts
//! them all (its `open` streams, sockets or held polls; for polling, its
//! requests). All HTTP subscribers share one connection pool, as the
//! project's client shares one `reqwest::Client`: long polls and streams
//! hold one connection each, but regular polls take whichever connection is
//! idle, so the server sees as many polling connections as polls in flight,
//! not one per client as it would with browsers.
//!
//! The sender sends one message at a time at `--rate`, each tagged with
//! this run's id and a sequence number (`loadgen RUN SEQ SENT_US`), so
//! other traffic on the same server is ignored. It waits for each answer, so
//! a server that cannot keep up slows it down; the report then shows the
//! achieved rate below the one asked, and says so.
//!
//! It exits with a non-zero status when a message was lost or duplicated or
//! a send failed. The last line it prints is a Markdown table row (the header
//! is printed above it) to paste into the docs.
//!
//! ## Running it
//!
//! ```text
//! cargo build --release -p chat-benches --bin loadgen
//! # 100 clients, server in this process:
//! ./target/release/loadgen --in-process --transport sse
//! ./target/release/loadgen --in-process --transport polling --poll-interval-ms 1000
//! ./target/release/loadgen --in-process --transport websocket --clients 1000 --rate 100 --duration 5
//! # against a separate server (the realistic setup: server-only RSS and CPU):
//! cargo run --release &
//! ./target/release/loadgen --transport websocket --server-pid "$(pgrep -n chat-demo)"
//! # 10,000 clients of each transport, 10 messages a second for 10 s; the
//! # server needs 10,000+ descriptors for them (it raises its own soft limit
//! # to the hard limit at start):
//! for t in polling longpoll sse websocket; do
//!   ./target/release/loadgen --transport $t --clients 10000 --rate 10 --duration 10 \
//!       --server-pid "$(pgrep -n chat-demo)"
//! done
//! ```
//!
//! `--in-process` with 10,000 clients needs 20,000 descriptors in one
//! process (see below). `loadgen` only talks to loopback addresses: a `--url`
//! elsewhere is refused.
//!
//! ## What limits 10,000+ clients on one machine
//!
//! - **File descriptors.** Every connection is a descriptor at each end:
//!   one per client here and one per client in the server, so two per
//!   client with `--in-process`. A server out of descriptors logs
//!   `Too many open files` and stops accepting. `loadgen` and the server
//!   binaries raise their soft `RLIMIT_NOFILE` to the hard limit at start;
//!   `loadgen` refuses to start when that is too few. Raising the hard limit takes root
//!   (`ulimit -Hn`, `prlimit`, `LimitNOFILE=` in a systemd unit,
//!   `/etc/security/limits.conf`), up to `fs.nr_open`.
//! - **Ephemeral ports.** Each connection from one client address to one
//!   server address and port needs its own local port, taken from
//!   `net.ipv4.ip_local_port_range` (default `32768 60999`: 28,232 ports).
//!   Beyond that, widen the range or spread the load over several loopback
//!   addresses (all of `127.0.0.0/8` is loopback on Linux).
//! - **The accept queue.** Connections the server has not accepted yet wait
//!   in its listen backlog, capped by `net.core.somaxconn` (4096 by default
//!   since Linux 5.4). The chat servers ask for 1,024
//!   (`chat_http::server::LISTEN_BACKLOG`). When the queue is full the kernel drops new connection
//!   attempts (`ListenOverflows` in `nstat`) and clients retry their SYN
//!   only after a second or more, which is why connections are opened at
//!   `--connect-rate`.
//! - **The server's connection cap.** actix-web stops accepting when one of
//!   its workers holds `max_connections` connections (25,600 per worker by
//!   default in actix-server 2.9; `--workers`, one per core by default).

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use chat_benches::{base_url, start_server};
use chat_client::{Client, ClientError, Cursor, Event, Options, Subscription, Transport, Via};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout, timeout_at};

/// The server `--url` points at unless told otherwise (`cargo run`'s address).
const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// How long the sender runs when neither `--duration` nor `--messages` is
/// given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The `user` of every message sent, and the first word of its text.
const PROBE_USER: &str = "loadgen";
/// Descriptors the server holds per connection: the socket.
const SERVER_FDS_PER_CONNECTION: u64 = 1;
/// Descriptors this process needs besides its clients' connections:
/// stdio, the runtime's epoll and wakers, the sender's and stats'
/// connections, and (in process) the listener and actix's workers.
const FD_HEADROOM: u64 = 64;
/// Longest wait for `GET /api/stats`.
const STATS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one `POST /api/messages`.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per message; retries reuse the `client_msg_id`, so a message whose
/// answer was lost is stored once.
const SEND_ATTEMPTS: u32 = 3;
/// How often the ramp-up asks the server how many clients are connected.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long past its planned end the ramp-up may run before the run goes on
/// with whoever connected (the others show up as lost messages).
const RAMP_GRACE: Duration = Duration::from_secs(30);
/// How often the progress bar is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(250);
/// How long subscribers get to stop once told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the in-process server gets to shut down (its own in-flight
/// timeout is 10 s).
const SERVER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// Clock ticks per second of `/proc/PID/stat` when `getconf CLK_TCK` cannot
/// say: Linux's `USER_HZ`, 100 on every common architecture.
const FALLBACK_CLOCK_TICKS: u64 = 100;
/// Largest latency the histogram holds (one hour, in microseconds); larger
/// ones are recorded as this.
const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant digits the histogram keeps.
const LATENCY_SIGFIGS: u8 = 3;
/// Below this share of `--rate`, the report says the sender fell behind.
const KEEPING_UP: f64 = 0.95;
/// Highest `--rate` and `--connect-rate` accepted.
const MAX_RATE: f64 = 1_000_000.0;

/// Drives many clients of one transport against a chat server and reports
/// delivery, latency, loss and cost.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Cli {
    /// The transport every subscriber uses.
    #[arg(long, value_enum)]
    transport: TransportArg,
    /// How many subscribers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Messages sent per second, in total.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
    rate: f64,
    /// Send for this many seconds [default: 10].
    #[arg(long, conflicts_with = "messages")]
    duration: Option<u64>,
    /// Send this many messages, then stop.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    messages: Option<u64>,
    /// The server (loopback only).
    #[arg(long, default_value = DEFAULT_URL, conflicts_with = "in_process")]
    url: String,
    /// Start the demo server in this process (default settings) and use it.
    #[arg(long)]
    in_process: bool,
    /// The server's process id, to report its memory and CPU time
    /// (`--in-process` uses this process's own).
    #[arg(long, conflicts_with = "in_process")]
    server_pid: Option<u32>,
    /// Pause between regular polls, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_interval_ms: u64,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 2000.0, value_parser = parse_rate)]
    connect_rate: f64,
    /// Seconds to wait, after the last send, for every delivery.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
}

/// `--transport` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    /// Regular polling, every `--poll-interval-ms`.
    Polling,
    /// Long polling.
    Longpoll,
    /// Server-sent events.
    Sse,
    /// WebSocket.
    Websocket,
}

impl From<TransportArg> for Transport {
    fn from(arg: TransportArg) -> Self {
        match arg {
            TransportArg::Polling => Transport::Polling,
            TransportArg::Longpoll => Transport::Longpoll,
            TransportArg::Sse => Transport::Sse,
            TransportArg::Websocket => Transport::Websocket,
        }
    }
}

/// A rate: a positive number up to [`MAX_RATE`].
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!("must be above 0 and at most {MAX_RATE}"))
    }
}

/// When the sender stops.
#[derive(Debug, Clone, Copy)]
enum SendFor {
    /// After this long.
    Duration(Duration),
    /// After this many messages.
    Count(u64),
}

impl SendFor {
    /// How many messages the run should send at `rate`.
    fn planned(self, rate: f64) -> u64 {
        match self {
            SendFor::Duration(d) => (d.as_secs_f64() * rate).ceil() as u64,
            SendFor::Count(n) => n,
        }
    }
}

/// What the sender and every subscriber share.
struct Shared {
    /// The clock every latency is measured on.
    epoch: Instant,
    /// Tells this run's messages from anyone else's: `PID.UNIX_MS`.
    run: String,
    /// Messages stored so far (for the progress bar).
    sent: AtomicU64,
    /// This run's messages received so far, by all subscribers.
    delivered: AtomicU64,
}

impl Shared {
    /// Microseconds since [`Shared::epoch`].
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The text of message `seq`: `loadgen RUN SEQ SENT_US`.
    fn probe_text(&self, seq: u32, sent_us: u64) -> String {
        format!("{PROBE_USER} {} {seq} {sent_us}", self.run)
    }

    /// `(seq, sent_us)` from a text made by [`Shared::probe_text`] in this
    /// run; `None` for anyone else's message.
    fn parse_probe(&self, text: &str) -> Option<(u32, u64)> {
        let mut words = text.strip_prefix(PROBE_USER)?.split_whitespace();
        if words.next()? != self.run {
            return None;
        }
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let transport = Transport::from(cli.transport);
    // Checked first, so that a wrong --url fails before anything starts.
    let url = loopback_base(&cli.url)?;

    ensure_fd_budget(cli.clients, cli.in_process)?;

    let server = if cli.in_process {
        Some(start_server(chat_http::Config::default())?)
    } else {
        None
    };
    let base = server.as_ref().map_or(url, base_url);
    let server_pid = if cli.in_process {
        Some(std::process::id())
    } else {
        cli.server_pid
    };
    if let Some(pid) = server_pid.filter(|_| !cli.in_process) {
        warn_about_server_fds(pid, cli.clients);
    }

    let result = run(&cli, transport, &base, server_pid).await;

    if let Some(server) = server {
        match timeout(SERVER_SHUTDOWN_TIMEOUT, server.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("in-process server: {e}"),
            Err(_) => eprintln!("in-process server: no clean shutdown in time"),
        }
    }
    let report = result?;
    report.print();
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Raises this process's soft descriptor limit to its hard limit, prints it,
/// and fails if `clients` connections (and, `in_process`, the server's ends
/// of them) would not fit.
fn ensure_fd_budget(clients: u32, in_process: bool) -> anyhow::Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .context("cannot raise the file descriptor limit")?;
    // One socket per client, plus the server's share when it runs here.
    let per_client = if in_process {
        1 + SERVER_FDS_PER_CONNECTION
    } else {
        1
    };
    let needed = u64::from(clients) * per_client + FD_HEADROOM;
    println!("file descriptor limit: {limit} (this run needs about {needed})");
    if needed <= limit {
        return Ok(());
    }
    if in_process {
        bail!(
            "{clients} clients need about {needed} file descriptors in this process (its own \
             end of each connection, and the server's), but the limit is \
             {limit}: raise the hard limit (`ulimit -Hn`, as root), or run the server as its \
             own process and use --url"
        );
    }
    bail!(
        "{clients} clients need about {needed} file descriptors, but the limit is {limit}: \
         raise the hard limit (`ulimit -Hn`, as root)"
    );
}

/// `url` without a trailing slash, if it is `http://` to a loopback address
/// (`localhost`, `127.0.0.0/8`, `[::1]`): the load generator never talks to
/// another machine.
fn loopback_base(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url:?}"))?;
    if parsed.scheme() != "http" {
        bail!("--url {url:?}: only http:// is supported");
    }
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "--url {url:?}: refusing a host that is not a loopback address \
             (127.0.0.1, localhost or [::1]); this project's load tests stay on this machine"
        );
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Everything measured, ready to print.
struct Report {
    /// What every subscriber used.
    transport: Transport,
    /// `--clients`.
    clients: u32,
    /// `--rate`, messages per second asked for.
    rate: f64,
    /// Messages the server confirmed storing.
    sent: u64,
    /// Sends that failed for good.
    send_errors: u64,
    /// The first failed send's error.
    send_error: Option<String>,
    /// How long sending took.
    send_time: Duration,
    /// How long ramping up took.
    ramp_time: Duration,
    /// How many subscribers the server saw connected then.
    connected: u64,
    /// `sent × clients`.
    expected: u64,
    /// Deliveries of confirmed messages, duplicates included.
    received: u64,
    /// From the first send to the last delivery.
    delivery_time: Duration,
    /// Send-to-delivery times, in microseconds.
    latency: Histogram<u64>,
    /// Stored messages a subscriber never received, summed over subscribers.
    lost: u64,
    /// Extra receipts of a message, summed over subscribers.
    duplicated: u64,
    /// Messages whose id was not above the previous one's.
    out_of_order: u64,
    /// Messages the subscribers were told they missed (gap notices).
    gap_missed: u64,
    /// Failed requests or connections the clients retried.
    reconnects: u64,
    /// Subscribers that ended with an error.
    failed_subscribers: u64,
    /// The first of those errors.
    subscriber_error: Option<String>,
    /// Counter growth while messages flowed, if the server told.
    traffic: Option<Counters>,
    /// Server process figures, when a pid is known.
    process: Option<ProcessReport>,
}

/// The server process at the start, once everyone connected, and at the end.
struct ProcessReport {
    /// The server's process.
    pid: u32,
    /// Whether that is this process (server and load generator in one).
    in_process: bool,
    /// Before the first subscriber.
    start: ProcessSample,
    /// Once everyone connected.
    connected: ProcessSample,
    /// After the last delivery, connections still open.
    end: ProcessSample,
    /// Clock ticks per second of [`ProcessSample::cpu_ticks`].
    clock_ticks: u64,
}

impl ProcessReport {
    /// CPU seconds (user + system) spent over the run.
    fn cpu_seconds(&self) -> f64 {
        self.end.cpu_ticks.saturating_sub(self.start.cpu_ticks) as f64 / self.clock_ticks as f64
    }

    /// RSS growth between two samples, per client, in KiB.
    fn kib_per_client(from: ProcessSample, to: ProcessSample, clients: u32) -> f64 {
        (to.rss_kib as f64 - from.rss_kib as f64) / f64::from(clients)
    }
}

impl Report {
    /// No message lost or duplicated, and every send stored.
    fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.send_errors == 0
    }

    /// Messages stored per second while sending.
    fn send_rate(&self) -> f64 {
        self.sent as f64 / self.send_time.as_secs_f64().max(f64::EPSILON)
    }

    /// Deliveries from the first send to the last delivery, per second.
    fn deliveries_per_second(&self) -> f64 {
        self.received as f64 / self.delivery_time.as_secs_f64().max(f64::EPSILON)
    }

    /// The transport's bytes out per message delivered, from the server's
    /// counters.
    fn bytes_per_delivery(&self) -> Option<f64> {
        self.traffic
            .filter(|t| t.messages_delivered > 0)
            .map(|t| t.bytes_out as f64 / t.messages_delivered as f64)
    }

    /// Latency at `quantile` (or the maximum), in milliseconds.
    fn latency_ms(&self, quantile: Option<f64>) -> f64 {
        let us = match quantile {
            Some(q) => self.latency.value_at_quantile(q),
            None => self.latency.max(),
        };
        us as f64 / 1000.0
    }

    /// Prints the report, then its Markdown table row (with the header).
    fn print(&self) {
        let t = self.transport.as_str();
        println!();
        println!("transport            {t}");
        println!(
            "clients              {} ({} connected after {:.1} s of ramp-up)",
            self.clients,
            self.connected,
            self.ramp_time.as_secs_f64()
        );
        println!(
            "messages sent        {} in {:.1} s ({:.1}/s, {} asked)",
            self.sent,
            self.send_time.as_secs_f64(),
            self.send_rate(),
            self.rate
        );
        if self.send_rate() < self.rate * KEEPING_UP {
            println!(
                "                     the sender could not keep up: each send waits for the \
                 last, so the server (or this machine) is saturated at this load"
            );
        }
        if let Some(e) = &self.send_error {
            println!("send errors          {} (first: {e})", self.send_errors);
        }
        println!(
            "deliveries           {} of {} expected, {:.0}/s",
            self.received,
            self.expected,
            self.deliveries_per_second()
        );
        println!(
            "latency              p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latency_ms(Some(0.5)),
            self.latency_ms(Some(0.99)),
            self.latency_ms(None)
        );
        println!(
            "lost / dup / order   {} lost, {} duplicated, {} out of order",
            self.lost, self.duplicated, self.out_of_order
        );
        println!(
            "client retries       {} reconnects, {} messages reported missed by gap notices",
            self.reconnects, self.gap_missed
        );
        if let Some(e) = &self.subscriber_error {
            println!(
                "subscriber errors    {} (first: {e})",
                self.failed_subscribers
            );
        }
        if let Some(traffic) = &self.traffic {
            println!(
                "server counters      {} requests, {} deliveries, {} bytes out{}",
                traffic.requests,
                traffic.messages_delivered,
                traffic.bytes_out,
                match self.bytes_per_delivery() {
                    Some(b) => format!(" ({b:.0} per delivery)"),
                    None => String::new(),
                }
            );
        }
        if let Some(p) = &self.process {
            println!(
                "server process       pid {}{}: RSS {} -> {} -> {} KiB (start, connected, end), \
                 {:.2} CPU s (clock ticks {}/s)",
                p.pid,
                if p.in_process {
                    " (this process: server and load generator)"
                } else {
                    ""
                },
                p.start.rss_kib,
                p.connected.rss_kib,
                p.end.rss_kib,
                p.cpu_seconds(),
                p.clock_ticks
            );
            println!(
                "memory per client    {:.1} KiB over the run, {:.1} KiB once connected",
                ProcessReport::kib_per_client(p.start, p.end, self.clients),
                ProcessReport::kib_per_client(p.start, p.connected, self.clients)
            );
        }
        println!();
        println!(
            "| transport | clients | msgs/s | sent | deliveries | deliveries/s | p50 ms | p99 ms \
             | max ms | lost | dup | out of order | bytes out/delivery | server RSS MiB \
             | KiB/client | server CPU s |"
        );
        println!(
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
             | ---: | ---: | ---: | ---: |"
        );
        let (rss, per_client, cpu) = match &self.process {
            Some(p) => (
                format!("{:.1}", p.end.rss_kib as f64 / 1024.0),
                format!(
                    "{:.1}",
                    ProcessReport::kib_per_client(p.start, p.end, self.clients)
                ),
                format!("{:.2}", p.cpu_seconds()),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {t} | {} | {} | {} | {}/{} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} \
             | {rss} | {per_client} | {cpu} |",
            self.clients,
            self.rate,
            self.sent,
            self.received,
            self.expected,
            self.deliveries_per_second(),
            self.latency_ms(Some(0.5)),
            self.latency_ms(Some(0.99)),
            self.latency_ms(None),
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.bytes_per_delivery()
                .map_or_else(|| "–".into(), |b| format!("{b:.0}")),
        );
    }
}

/// The whole run: ramp up, send, drain, stop, count.
async fn run(
    cli: &Cli,
    transport: Transport,
    base: &str,
    server_pid: Option<u32>,
) -> anyhow::Result<Report> {
    let send_for = match (cli.duration, cli.messages) {
        (_, Some(n)) => SendFor::Count(n),
        (Some(secs), None) => SendFor::Duration(Duration::from_secs(secs)),
        (None, None) => SendFor::Duration(DEFAULT_DURATION),
    };
    // One client for the sender and the stats, one whose connection pool
    // every subscriber shares (WebSocket subscriptions open their own).
    let control = Client::new(base);
    let subscribers = Client::new(base);
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        run: format!("{}.{unix_ms}", std::process::id()),
        sent: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    });
    let clock_ticks = clock_ticks_per_second();

    let start = snapshot(&control, transport)
        .await
        .with_context(|| format!("no chat server answers at {base}"))?;
    let process_start = server_pid.map(sample_process).transpose()?;
    println!(
        "{} {} clients against {base}, starting after message {}",
        cli.clients,
        transport.as_str(),
        start.last_id
    );

    // Ramp up.
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = Options {
        since: Some(Cursor(start.last_id)),
        poll_interval: Duration::from_millis(cli.poll_interval_ms),
        ..Options::default()
    };
    let ramp_started = Instant::now();
    let spawn_subscriber = {
        let shared = Arc::clone(&shared);
        move || {
            let sub = subscribers.subscribe(transport, options.clone());
            tokio::spawn(subscribe(sub, Arc::clone(&shared), stop_rx.clone()))
        }
    };
    let (tasks, connected) =
        ramp_up(cli, transport, &control, &start.counters, spawn_subscriber).await?;
    let ramp_time = ramp_started.elapsed();
    println!(
        "{connected} of {} connected in {:.1} s",
        cli.clients,
        ramp_time.as_secs_f64()
    );
    let before = snapshot_or_warn(&control, transport, "after the ramp-up").await;
    let process_connected = server_pid.and_then(sample_or_warn);

    // Send, then wait for every delivery.
    let sent_log = send_and_drain(cli, &control, &shared, send_for).await?;
    let expected = sent_log.stored() * u64::from(cli.clients);
    let delivered = shared.delivered.load(Ordering::Relaxed);
    if delivered < expected {
        eprintln!(
            "warning: {delivered} of {expected} deliveries arrived within --drain-timeout {} s",
            cli.drain_timeout
        );
    }
    let after = snapshot_or_warn(&control, transport, "after the run").await;
    let process_end = server_pid.and_then(sample_or_warn);

    let logs = stop_subscribers(stop_tx, tasks).await;

    let mut report = Report {
        transport,
        clients: cli.clients,
        rate: cli.rate,
        sent: sent_log.stored(),
        send_errors: sent_log.errors,
        send_error: sent_log.first_error.clone(),
        send_time: sent_log.elapsed,
        ramp_time,
        connected,
        expected,
        received: 0,
        delivery_time: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIGS)?,
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        gap_missed: 0,
        reconnects: 0,
        failed_subscribers: 0,
        subscriber_error: None,
        traffic: match (after, before) {
            (Some(after), Some(before)) => Some(after.counters.since(&before.counters)),
            _ => None,
        },
        process: match (server_pid, process_start, process_connected, process_end) {
            (Some(pid), Some(start), Some(connected), Some(end)) => Some(ProcessReport {
                pid,
                in_process: cli.in_process,
                start,
                connected,
                end,
                clock_ticks,
            }),
            _ => None,
        },
    };
    tally(&mut report, &sent_log, &logs);
    Ok(report)
}

/// Starts `--clients` subscribers at `--connect-rate` (`spawn_subscriber`
/// starts one in its own task) and waits, bounded, until the server counts
/// them all. Returns the tasks and how many the server saw connected.
///
/// "Connected" is the transport's `open` count in `/api/stats` (streams,
/// sockets, held long polls). A regular poll is not held, so for polling it
/// is the number of polls made since the start, to which every client's
/// first poll adds one.
async fn ramp_up(
    cli: &Cli,
    transport: Transport,
    control: &Client,
    baseline: &Counters,
    spawn_subscriber: impl Fn() -> JoinHandle<SubscriberLog> + Send + 'static,
) -> anyhow::Result<(Vec<JoinHandle<SubscriberLog>>, u64)> {
    let clients = u64::from(cli.clients);
    let started = Arc::new(AtomicU64::new(0));
    let mut pace = interval(Duration::from_secs_f64(1.0 / cli.connect_rate));
    // Catch up after a late tick: the timer's resolution (1 ms) is coarser
    // than the pace at thousands of connections per second.
    pace.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let spawner = tokio::spawn({
        let started = Arc::clone(&started);
        async move {
            let mut tasks = Vec::new();
            for _ in 0..clients {
                pace.tick().await;
                tasks.push(spawn_subscriber());
                started.fetch_add(1, Ordering::Relaxed);
            }
            tasks
        }
    });

    // Meanwhile, ask the server how many are connected.
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(PROGRESS_TICK);
    let planned = Duration::from_secs_f64(clients as f64 / cli.connect_rate);
    let deadline = Instant::now() + planned + RAMP_GRACE;
    let mut connected = 0;
    let mut stats_error = None;
    while Instant::now() < deadline {
        // A server too busy to answer is no reason to stop: the deadline is.
        match snapshot(control, transport).await {
            Ok(now) => {
                stats_error = None;
                connected = match transport {
                    Transport::Polling => now.counters.requests.saturating_sub(baseline.requests),
                    _ => now.counters.open.saturating_sub(baseline.open),
                }
                .min(clients);
            }
            Err(e) => stats_error = Some(e),
        }
        spinner.set_message(format!(
            "connecting: {} started, {connected} connected, of {clients}",
            started.load(Ordering::Relaxed)
        ));
        if connected >= clients && spawner.is_finished() {
            break;
        }
        sleep(READY_POLL).await;
    }
    spinner.finish_and_clear();
    // The spawner's loop ends by itself, after about `planned`.
    let tasks = spawner.await?;
    if let Some(e) = stats_error {
        eprintln!("warning: the server stopped answering GET /api/stats during the ramp-up: {e:#}");
    }
    if connected < clients {
        eprintln!(
            "warning: only {connected} of {clients} clients connected within {:.0} s; \
             going on without the rest (see the server's log)",
            (planned + RAMP_GRACE).as_secs_f64()
        );
    }
    Ok((tasks, connected))
}

/// Runs the sender, then waits (up to `--drain-timeout`) until every
/// subscriber has every message stored, with a progress bar throughout.
async fn send_and_drain(
    cli: &Cli,
    control: &Client,
    shared: &Arc<Shared>,
    send_for: SendFor,
) -> anyhow::Result<SenderLog> {
    let bar = ProgressBar::new(send_for.planned(cli.rate));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} sent · {msg}")?
            .progress_chars("=> "),
    );
    let sender = tokio::spawn(send_probes(
        control.clone(),
        Arc::clone(shared),
        cli.rate,
        send_for,
    ));
    let mut ticker = interval(PROGRESS_TICK);
    let mut last_delivered = 0;
    while !sender.is_finished() {
        ticker.tick().await;
        last_delivered = show_progress(&bar, shared, last_delivered);
    }
    let sent_log = sender.await?;
    let expected = sent_log.stored() * u64::from(cli.clients);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(cli.drain_timeout);
    while shared.delivered.load(Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < deadline
    {
        ticker.tick().await;
        last_delivered = show_progress(&bar, shared, last_delivered);
    }
    bar.finish_and_clear();
    Ok(sent_log)
}

/// Tells every subscriber to stop and collects what each saw; one that does
/// not stop within [`STOP_TIMEOUT`] is aborted and reported as failed.
async fn stop_subscribers(
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<SubscriberLog>>,
) -> Vec<Result<SubscriberLog, String>> {
    // Sending fails only if every receiver is gone, and then all have stopped.
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let abort = task.abort_handle();
        logs.push(match timeout_at(deadline, task).await {
            Ok(Ok(log)) => Ok(log),
            Ok(Err(e)) => Err(format!("subscriber task: {e}")),
            Err(_) => {
                abort.abort();
                Err("subscriber did not stop in time".to_owned())
            }
        });
    }
    logs
}

/// Redraws the progress bar; returns the delivery count it showed.
fn show_progress(bar: &ProgressBar, shared: &Shared, last_delivered: u64) -> u64 {
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let per_second = (delivered - last_delivered) as f64 / PROGRESS_TICK.as_secs_f64();
    bar.set_position(shared.sent.load(Ordering::Relaxed));
    bar.set_message(format!("{delivered} delivered · {per_second:.0}/s"));
    delivered
}

/// What the sender did.
struct SenderLog {
    /// Whether message `seq` was stored (index: seq).
    stored: Vec<bool>,
    /// Sends that failed after every attempt.
    errors: u64,
    /// The first of those failures.
    first_error: Option<String>,
    /// When the first send started, in [`Shared::now_us`].
    first_send_us: u64,
    /// From the first send to the end of the last.
    elapsed: Duration,
}

impl SenderLog {
    /// How many messages were stored.
    fn stored(&self) -> u64 {
        self.stored.iter().filter(|&&s| s).count() as u64
    }
}

/// Sends one message per tick at `rate` until `send_for` is over.
///
/// Ticks missed while a send was slow are made up at once
/// ([`MissedTickBehavior::Burst`]): the run sends the same number of messages
/// whatever the hiccups, so runs stay comparable, and a sender that cannot
/// keep up shows as a lower achieved rate. Sends are awaited one at a time,
/// so a catch-up is back-to-back sends, never a pile of concurrent ones.
/// Each message's time is taken just before its send, so the latency
/// measured is the server's, not the sender's lateness.
async fn send_probes(
    client: Client,
    shared: Arc<Shared>,
    rate: f64,
    send_for: SendFor,
) -> SenderLog {
    let mut ticker = interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut log = SenderLog {
        stored: Vec::new(),
        errors: 0,
        first_error: None,
        first_send_us: shared.now_us(),
        elapsed: Duration::ZERO,
    };
    for seq in 0u32.. {
        if let SendFor::Count(n) = send_for
            && u64::from(seq) >= n
        {
            break;
        }
        ticker.tick().await;
        if let SendFor::Duration(d) = send_for
            && started.elapsed() >= d
        {
            break;
        }
        let text = shared.probe_text(seq, shared.now_us());
        let key = format!("{}-{seq}", shared.run);
        match send_probe(&client, &text, &key).await {
            Ok(()) => {
                log.stored.push(true);
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                log.stored.push(false);
                log.errors += 1;
                log.first_error.get_or_insert(e);
            }
        }
    }
    log.elapsed = started.elapsed();
    log
}

/// Sends one message, retrying with the same `client_msg_id`.
async fn send_probe(client: &Client, text: &str, key: &str) -> Result<(), String> {
    let mut error = String::new();
    for _ in 0..SEND_ATTEMPTS {
        match timeout(
            SEND_TIMEOUT,
            client.send(PROBE_USER, text, Some(key), Via::Api),
        )
        .await
        {
            Ok(Ok(_)) => return Ok(()),
            // A refusal will not change on retry.
            Ok(Err(e @ ClientError::Refused { .. })) => return Err(e.to_string()),
            Ok(Err(e)) => error = e.to_string(),
            Err(_) => error = format!("no answer in {} s", SEND_TIMEOUT.as_secs()),
        }
    }
    Err(error)
}

/// One delivery as a subscriber saw it.
struct Delivery {
    /// The message's sequence number in this run.
    seq: u32,
    /// Microseconds from send to delivery (saturated).
    latency_us: u32,
}

/// What one subscriber saw.
#[derive(Default)]
struct SubscriberLog {
    /// This run's messages, in arrival order.
    deliveries: Vec<Delivery>,
    /// When the last one arrived, in [`Shared::now_us`].
    last_delivery_us: u64,
    /// Messages whose id was not above the previous one's.
    out_of_order: u64,
    /// Messages that gap notices said were missed.
    gap_missed: u64,
    /// Retried failures, from [`Subscription::reconnects`].
    reconnects: u64,
    /// Why the subscription ended early, if it did.
    error: Option<String>,
}

/// Reads one subscription until told to stop, logging this run's messages.
async fn subscribe(
    mut sub: Subscription,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SubscriberLog {
    let mut log = SubscriberLog::default();
    let mut last_id = 0;
    loop {
        let event = tokio::select! {
            biased;
            // A change, or the sender gone: either way, stop.
            _ = stop.changed() => break,
            event = sub.next() => event,
        };
        match event {
            Ok(Event::Message { message, .. }) => {
                let now_us = shared.now_us();
                if message.id.0 <= last_id {
                    log.out_of_order += 1;
                }
                last_id = last_id.max(message.id.0);
                if let Some((seq, sent_us)) = shared.parse_probe(&message.text) {
                    let latency_us =
                        u32::try_from(now_us.saturating_sub(sent_us)).unwrap_or(u32::MAX);
                    log.deliveries.push(Delivery { seq, latency_us });
                    log.last_delivery_us = now_us;
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Event::Gap { missed }) => log.gap_missed += missed,
            Err(e) => {
                log.error = Some(e.to_string());
                break;
            }
        }
    }
    log.reconnects = sub.reconnects();
    log
}

/// Adds up every subscriber's log into `report`: deliveries, latency, lost,
/// duplicated and out-of-order messages.
fn tally(report: &mut Report, sent: &SenderLog, logs: &[Result<SubscriberLog, String>]) {
    // How often each message reached the subscriber at hand (index: seq).
    let mut seen = vec![0u32; sent.stored.len()];
    let mut last_delivery_us = sent.first_send_us;
    for log in logs {
        let log = match log {
            Ok(log) => log,
            Err(e) => {
                // Nothing is known of what it received: count it all lost.
                report.failed_subscribers += 1;
                report.subscriber_error.get_or_insert_with(|| e.clone());
                report.lost += sent.stored();
                continue;
            }
        };
        if let Some(e) = &log.error {
            report.failed_subscribers += 1;
            report.subscriber_error.get_or_insert_with(|| e.clone());
        }
        seen.fill(0);
        for delivery in &log.deliveries {
            let seq = delivery.seq as usize;
            if sent.stored.get(seq) == Some(&true) {
                seen[seq] += 1;
                report.received += 1;
                report
                    .latency
                    .saturating_record(u64::from(delivery.latency_us).max(1));
            }
        }
        for (count, &stored) in seen.iter().zip(&sent.stored) {
            if stored {
                match count {
                    0 => report.lost += 1,
                    n => report.duplicated += u64::from(n - 1),
                }
            }
        }
        report.out_of_order += log.out_of_order;
        report.gap_missed += log.gap_missed;
        report.reconnects += log.reconnects;
        last_delivery_us = last_delivery_us.max(log.last_delivery_us);
    }
    report.delivery_time = Duration::from_micros(last_delivery_us - sent.first_send_us);
}

/// One transport's counters from `/api/stats`.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// Requests made to the transport's path.
    requests: u64,
    /// Requests, streams or sockets in progress.
    open: u64,
    /// Bytes written to its clients, heads and framing included.
    bytes_out: u64,
    /// Messages handed to its clients.
    messages_delivered: u64,
}

impl Counters {
    /// Growth since `earlier` (`open` is the later value).
    fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            requests: self.requests.saturating_sub(earlier.requests),
            open: self.open,
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
            messages_delivered: self
                .messages_delivered
                .saturating_sub(earlier.messages_delivered),
        }
    }
}

/// `/api/stats` at one moment.
struct Snapshot {
    counters: Counters,
    /// The store's newest id.
    last_id: u64,
}

/// Reads `/api/stats` for `transport`.
async fn snapshot(client: &Client, transport: Transport) -> anyhow::Result<Snapshot> {
    let stats = timeout(STATS_TIMEOUT, client.stats())
        .await
        .context("GET /api/stats did not answer in time")??;
    let c = stats.transports.of(transport);
    Ok(Snapshot {
        counters: Counters {
            requests: c.requests,
            open: c.open,
            bytes_out: c.bytes_out,
            messages_delivered: c.messages_delivered,
        },
        last_id: stats.store.last_id,
    })
}

/// Reads `/api/stats`, or says why it could not (`when`: at which point of
/// the run) and returns `None`: the report is printed either way.
async fn snapshot_or_warn(client: &Client, transport: Transport, when: &str) -> Option<Snapshot> {
    match snapshot(client, transport).await {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            eprintln!(
                "warning: no counters {when}: {e:#} (a server out of file descriptors \
                 cannot accept a new connection: see its log)"
            );
            None
        }
    }
}

/// A process's resident memory and CPU time at one moment.
#[derive(Debug, Clone, Copy)]
struct ProcessSample {
    /// `VmRSS`, in KiB.
    rss_kib: u64,
    /// User plus system time, in clock ticks.
    cpu_ticks: u64,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat`.
fn sample_process(pid: u32) -> anyhow::Result<ProcessSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status (is --server-pid right?)"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status (has it exited?)"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // Field 2, the command name, is in parentheses and may hold spaces and
    // parentheses itself: count fields from the last ')'. Field 3 (state)
    // is then the first, so utime (field 14) and stime (15) are the 12th and
    // 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("unexpected /proc/{pid}/stat"))
    };
    Ok(ProcessSample {
        rss_kib,
        cpu_ticks: field(11)? + field(12)?,
    })
}

/// [`sample_process`], or a warning and `None` (the server may have died).
fn sample_or_warn(pid: u32) -> Option<ProcessSample> {
    sample_process(pid)
        .map_err(|e| eprintln!("warning: {e:#}"))
        .ok()
}

/// Clock ticks per second for `/proc/PID/stat`, from `getconf CLK_TCK` (this
/// crate forbids the `unsafe` a `sysconf` call needs), or
/// [`FALLBACK_CLOCK_TICKS`].
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(FALLBACK_CLOCK_TICKS)
}

/// Warns when the server's own descriptor limit (from `/proc/PID/limits`)
/// is too low for `clients` connections.
fn warn_about_server_fds(pid: u32, clients: u32) {
    let Ok(limits) = std::fs::read_to_string(format!("/proc/{pid}/limits")) else {
        return;
    };
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
    let needed = u64::from(clients) * SERVER_FDS_PER_CONNECTION + FD_HEADROOM;
    match soft {
        Some(soft) if soft < needed => eprintln!(
            "warning: the server (pid {pid}) may open {soft} files, but {clients} clients \
             need about {needed} there: restart it with a higher `ulimit -n`"
        ),
        Some(soft) => println!("server file descriptor limit: {soft}"),
        None => {}
    }
}
