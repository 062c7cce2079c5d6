//! The command line, and the checks on it that need no server.
//!
//! `--transport` takes the wire names of [`Transport::ALL`], so a new
//! transport is a `loadgen` flag value without a line changed here.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use chat_client::Transport;
use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::chaos::ChaosSettings;

/// The server `--url` points at unless told otherwise (`cargo run`'s address).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// `--settle-ms`: at 1,000 subscribers and 100 messages a second, sending
/// at once made the first 20 or so fan-outs take about 12 ms instead of
/// 7.5, and put more than a quarter of the first half second's deliveries
/// over 10 ms (docs/measurements.md, "A second of quiet before the first
/// send").
pub const DEFAULT_SETTLE_MS: u64 = 1000;
/// `--warmup`: at 1,000 subscribers and 100 messages a second, each
/// connection's first 18 or so messages made every fan-out about 40% slower
/// (about 11 ms instead of 8); 20 messages first removed it, 8 did not.
/// Linux's quick-ACK mode (each of the first 16 segments a connection
/// receives is acknowledged at once, then acknowledgements are delayed and
/// combined) fits that count (docs/measurements.md, "Warming up each
/// connection").
pub const DEFAULT_WARMUP: u64 = 20;
/// How long the sender runs when neither `--duration` nor `--messages` is
/// given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Highest `--rate` and `--connect-rate` accepted.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Drives many clients of one transport against a chat server and reports
/// delivery, latency, loss and cost.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
pub struct Cli {
    /// The transport every subscriber uses (not with `--chaos`).
    #[arg(long, value_parser = transport_parser(), required_unless_present = "chaos")]
    pub transport: Option<Transport>,
    /// How many subscribers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: u32,
    /// Messages sent per second, in total.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Senders sharing `--rate`, each awaiting its own sends one at a time.
    /// One sender cannot offer more than one message per round trip, which a
    /// busy server (or a busy load generator) makes long: several keep the
    /// rate asked when one could not.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub senders: u32,
    /// SSE, streaming, WebSocket and long-polling subscribers read their
    /// own sockets in one task each, without the project's client and its
    /// HTTP library: cheaper per delivery, so that on a shared machine the
    /// load generator does not add its own queue to the latency it
    /// measures. They still check every message and resume after a cut.
    #[arg(long)]
    pub lean: bool,
    /// Send for this many seconds [default: 10].
    #[arg(long, conflicts_with = "messages")]
    pub duration: Option<u64>,
    /// Send this many messages, then stop.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,
    /// The server (loopback only). Give it more than once (`--url A --url B`
    /// or `--url A,B`) for several instances that share one log (`chat-demo
    /// --store redis://…`): subscribers are spread over them round-robin,
    /// and so are sends, so messages cross from one instance to another.
    #[arg(
        long = "url",
        visible_alias = "urls",
        value_name = "URL",
        default_value = DEFAULT_URL,
        value_delimiter = ',',
        conflicts_with = "in_process"
    )]
    pub urls: Vec<String>,
    /// Start the demo server in this process (default settings) and use it.
    #[arg(long)]
    pub in_process: bool,
    /// The server's process id, to report its memory and CPU time
    /// (`--in-process` uses this process's own). Repeat it (or give a
    /// comma-separated list) for several servers: their RSS and CPU are
    /// summed.
    #[arg(
        long = "server-pid",
        value_name = "PID",
        value_delimiter = ',',
        conflicts_with = "in_process"
    )]
    pub server_pids: Vec<u32>,
    /// Pause between regular polls, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 2000.0, value_parser = parse_rate)]
    pub connect_rate: f64,
    /// Seconds to wait, after the last send, for every delivery.
    #[arg(long, default_value_t = 10)]
    pub drain_timeout: u64,
    /// Milliseconds to wait, once every subscriber is connected, before the
    /// first send: the connections' setup (on both sides, and in the
    /// kernel) then does not overlap the messages whose latency is measured.
    #[arg(long, default_value_t = DEFAULT_SETTLE_MS)]
    pub settle_ms: u64,
    /// Messages sent after the settling and before the timed ones, at the
    /// same rate, delivered and checked like any but not timed: the first
    /// messages on a new connection cost more than the rest.
    #[arg(long, default_value_t = DEFAULT_WARMUP)]
    pub warmup: u64,
    /// Chaos mode: `--clients` subscribers on *every* transport, whose
    /// connections are closed or reset at random moments and resume from
    /// their cursor; passes only if every subscriber saw every message once,
    /// in order. Start the server with its send rate limits off.
    #[arg(long, conflicts_with = "transport")]
    pub chaos: bool,
    /// Chaos mode: shortest life of a connection, in milliseconds.
    #[arg(long, default_value_t = 50, conflicts_with = "transport")]
    pub hold_min_ms: u64,
    /// Chaos mode: longest life of a connection, in milliseconds.
    #[arg(long, default_value_t = 500, conflicts_with = "transport")]
    pub hold_max_ms: u64,
    /// Chaos mode: the seed of the random draws [default: the clock].
    #[arg(long, conflicts_with = "transport")]
    pub seed: Option<u64>,
    /// Chaos mode: write the result as a section of `DIR/results.md` (and
    /// keep it in `DIR/results/chaos.md`), with this command line and the
    /// `--server-pid`'s.
    #[arg(long, value_name = "DIR", conflicts_with = "transport")]
    pub write_results: Option<std::path::PathBuf>,
}

impl Cli {
    /// When the sender stops: `--messages`, else `--duration`, else
    /// [`DEFAULT_DURATION`].
    pub fn send_for(&self) -> SendFor {
        match (self.duration, self.messages) {
            (_, Some(n)) => SendFor::Count(n),
            (Some(secs), None) => SendFor::Duration(Duration::from_secs(secs)),
            (None, None) => SendFor::Duration(DEFAULT_DURATION),
        }
    }

    /// What `--chaos` does with these flags: `--clients` subscribers on
    /// every transport.
    pub fn chaos_settings(&self) -> ChaosSettings {
        let seed = self.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        ChaosSettings {
            transports: Transport::ALL.to_vec(),
            per_transport: self.clients,
            rate: self.rate,
            send_for: self.send_for(),
            hold_min: Duration::from_millis(self.hold_min_ms),
            hold_max: Duration::from_millis(self.hold_max_ms.max(self.hold_min_ms)),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            drain_timeout: Duration::from_secs(self.drain_timeout),
            seed,
        }
    }
}

/// `--transport`: one of the wire names in [`Transport::ALL`] (listed in
/// `--help`), parsed by [`Transport`]'s `FromStr`.
fn transport_parser() -> impl TypedValueParser<Value = Transport> {
    PossibleValuesParser::new(Transport::ALL.map(Transport::as_str))
        .try_map(|name| name.parse::<Transport>())
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SendFor {
    /// After this long.
    Duration(Duration),
    /// After this many messages.
    Count(u64),
}

impl SendFor {
    /// How many messages the run should send at `rate`.
    pub fn planned(self, rate: f64) -> u64 {
        match self {
            SendFor::Duration(d) => (d.as_secs_f64() * rate).ceil() as u64,
            SendFor::Count(n) => n,
        }
    }
}

/// Every `--url` through [`loopback_base`], refusing one given twice (its
/// counters would be added up twice).
pub fn loopback_bases(urls: &[String]) -> anyhow::Result<Vec<String>> {
    let mut bases: Vec<String> = Vec::with_capacity(urls.len());
    for url in urls {
        let base = loopback_base(url)?;
        if bases.contains(&base) {
            bail!("--url {url:?} is given twice");
        }
        bases.push(base);
    }
    Ok(bases)
}

/// `url` without a trailing slash, if it is `http://` to a loopback address
/// (`localhost`, `127.0.0.0/8`, `[::1]`): the load generator never talks to
/// another machine.
pub fn loopback_base(url: &str) -> anyhow::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transport's wire name is a `--transport` value.
    #[test]
    fn every_transport_is_a_flag_value() {
        for transport in Transport::ALL {
            let cli = Cli::try_parse_from(["loadgen", "--transport", transport.as_str()])
                .expect("a valid command line");
            assert_eq!(cli.transport, Some(transport));
        }
        assert!(Cli::try_parse_from(["loadgen", "--transport", "carrier-pigeon"]).is_err());
    }

    /// `--messages` wins, then `--duration`, then ten seconds.
    #[test]
    fn send_for_follows_the_flags() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["loadgen", "--transport", "sse"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).expect("valid").send_for()
        };
        assert_eq!(parse(&["--messages", "5"]), SendFor::Count(5));
        assert_eq!(
            parse(&["--duration", "3"]),
            SendFor::Duration(Duration::from_secs(3))
        );
        assert_eq!(parse(&[]), SendFor::Duration(DEFAULT_DURATION));
        assert_eq!(SendFor::Duration(Duration::from_secs(3)).planned(2.5), 8);
    }

    /// `--chaos` needs no `--transport` and refuses one, and so do its own
    /// flags; its settings cover every transport.
    #[test]
    fn chaos_takes_every_transport() {
        assert!(
            Cli::try_parse_from(["loadgen"]).is_err(),
            "a mode is needed"
        );
        let cli = Cli::try_parse_from(["loadgen", "--chaos", "--clients", "3", "--seed", "9"])
            .expect("valid");
        let settings = cli.chaos_settings();
        assert_eq!(settings.transports, Transport::ALL);
        assert_eq!((settings.per_transport, settings.seed), (3, 9));
        assert!(Cli::try_parse_from(["loadgen", "--chaos", "--transport", "sse"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "--transport", "sse", "--seed", "1"]).is_err());
        assert!(
            Cli::try_parse_from(["loadgen", "--transport", "sse", "--hold-max-ms", "9"]).is_err()
        );
    }

    /// Rates outside (0, MAX_RATE] are refused.
    #[test]
    fn rates_are_bounded() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("1e9").is_err());
        assert!(parse_rate("fast").is_err());
    }

    /// `--url` repeats or takes a list; without it, the default; the same
    /// server twice is refused. `--server-pid` repeats too.
    #[test]
    fn several_urls_and_pids() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["loadgen", "--transport", "sse"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).expect("valid")
        };
        assert_eq!(parse(&[]).urls, [DEFAULT_URL]);
        let a = "http://127.0.0.1:1";
        let b = "http://127.0.0.1:2";
        assert_eq!(parse(&["--url", a, "--url", b]).urls, [a, b]);
        assert_eq!(parse(&["--urls", &format!("{a},{b}")]).urls, [a, b]);
        let cli = parse(&["--server-pid", "7", "--server-pid", "8,9"]);
        assert_eq!(cli.server_pids, [7, 8, 9]);
        assert!(parse(&[]).server_pids.is_empty());
        assert_eq!(
            loopback_bases(&[format!("{a}/"), b.into()]).expect("two servers"),
            [a, b]
        );
        assert!(loopback_bases(&[a.into(), format!("{a}/")]).is_err());
        assert!(loopback_bases(&[a.into(), "http://example.com".into()]).is_err());
    }

    /// Loopback URLs pass without their trailing slash; others are refused.
    #[test]
    fn only_loopback_urls_pass() {
        assert_eq!(
            loopback_base("http://127.0.0.1:8080/").expect("loopback"),
            "http://127.0.0.1:8080"
        );
        assert!(loopback_base("http://localhost:1").is_ok());
        assert!(loopback_base("http://[::1]:1").is_ok());
        assert!(loopback_base("http://127.1.2.3:1").is_ok());
        assert!(loopback_base("http://example.com").is_err());
        assert!(loopback_base("http://10.0.0.1:8080").is_err());
        assert!(loopback_base("https://127.0.0.1").is_err());
    }
}
