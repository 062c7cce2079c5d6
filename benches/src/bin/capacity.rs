//! Capacity on one server core: deliveries per second, server CPU per
//! delivery and memory per idle connection, per transport, written as the
//! section "Capacity on one server core" of `docs/results.md` (kept in
//! `docs/results/capacity.txt` too, from which `compare` puts it back when it
//! rewrites the page) with charts in `docs/results/`.
//!
//! Run with `cargo run --release -p chat-benches --bin capacity` (about six
//! minutes). It builds the release `chat-demo` and `loadgen` first, then for
//! each transport steps the send rate up, 1,000 subscribers, each step
//! against a fresh server pinned to core 0 with `loadgen` on core 1, until
//! deliveries per second stop growing; then connects 10,000 idle clients
//! per transport to a fresh server and reads its memory growth. See
//! [`chat_benches::capacity`] for how each figure is taken.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use plotters::prelude::*;

use chat_benches::capacity::{self, END, START, Setup, Step, saturation};
use chat_client::Transport;
use chat_loadgen::process;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Capacity on one server core: deliveries/s, CPU per delivery, idle memory")]
struct Cli {
    /// Where results.md and results/ are.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))]
    out: PathBuf,
    /// Transports, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "websocket,sse,stream,longpoll"
    )]
    transports: Vec<Transport>,
    /// Subscribers in the rate steps.
    #[arg(long, default_value_t = 1_000)]
    clients: u32,
    /// Send rates to step through, messages per second, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50,100,150,200,300,400,600,800"
    )]
    rates: Vec<f64>,
    /// Senders sharing each rate (`loadgen --senders`). One sender awaits
    /// each answer before the next send, so it cannot offer more than one
    /// message per round trip, and with both cores busy that held the rate
    /// under about 200 a second whatever was asked. Give 1 for a `loadgen`
    /// older than `--senders`.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    senders: u32,
    /// Subscribers use the project's client on every transport, as before
    /// `loadgen --lean`: it costs the load generator 8 to 10 µs per
    /// delivery, so the load generator's queue then adds to the latency
    /// measured. By default SSE, streaming, WebSocket and long-polling
    /// subscribers are lean (their own sockets, parsed in place).
    #[arg(long)]
    full_client: bool,
    /// Seconds of sending per step.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Idle connections for the memory figure (0: skip it).
    #[arg(long, default_value_t = 10_000)]
    idle_clients: u32,
    /// A flag for the server (repeat it).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Leave the server's per-client limits on. By default the server gets
    /// `--no-client-limits`: every sender and subscriber of `loadgen` shares
    /// one address and one user name, which its send rate limits would
    /// throttle. (Builds older than those limits need this flag, having no
    /// limits to switch off.)
    #[arg(long)]
    client_limits: bool,
    /// Measure the `chat-demo` and `loadgen` in this folder instead of
    /// building them (to compare two builds).
    #[arg(long)]
    binaries: Option<PathBuf>,
    /// Print the section instead of writing it into the docs.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let (server, loadgen) = match &cli.binaries {
        Some(dir) => (dir.join("chat-demo"), dir.join("loadgen")),
        None => build()?,
    };
    let mut server_args = cli.server_args.clone();
    if !cli.client_limits {
        server_args.push("--no-client-limits".to_owned());
    }
    let setup = Setup::new(server, server_args, loadgen, cli.senders, !cli.full_client);
    if !setup.pinned {
        eprintln!("warning: fewer than two cores; the server and loadgen are not pinned");
    }
    let before = capacity::load_averages();
    let mut runs = Vec::new();
    for &transport in &cli.transports {
        let steps =
            capacity::saturate(&setup, transport, cli.clients, &cli.rates, cli.seconds).await?;
        runs.push(steps);
    }
    let mut memory = Vec::new();
    if cli.idle_clients > 0 {
        for &transport in &cli.transports {
            memory.push(capacity::idle_memory(&setup, transport, cli.idle_clients).await?);
        }
    }
    let md = section(&command, &setup, &before, &runs, &memory)?;
    if cli.dry_run {
        println!("{md}");
        return Ok(());
    }
    std::fs::create_dir_all(cli.out.join("results"))?;
    chart(&runs, &memory, &cli.out.join("results/capacity.svg"))?;
    capacity::SECTION.write(&cli.out, &md)?;
    eprintln!("wrote {}", cli.out.join("results.md").display());
    Ok(())
}

/// Builds the release `chat-demo` and `loadgen`; returns their paths.
fn build() -> anyhow::Result<(PathBuf, PathBuf)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--release", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .args(["-p", "chat-demo", "-p", "chat-loadgen"])
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(built.success(), "building chat-demo and loadgen failed");
    let dir = std::env::current_exe()?
        .parent()
        .context("no folder")?
        .to_path_buf();
    // This binary may be a debug build; the measured ones are release.
    let release = dir
        .parent()
        .map(|target| target.join("release"))
        .filter(|r| r.join("chat-demo").exists())
        .unwrap_or(dir);
    Ok((release.join("chat-demo"), release.join("loadgen")))
}

/// The section, Markdown.
fn section(
    command: &str,
    setup: &Setup,
    load_before: &str,
    runs: &[Vec<Step>],
    memory: &[Step],
) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "{START}\n## Capacity on one server core\n")?;
    let mut line = "cargo run --release -p chat-benches --bin capacity".to_owned();
    if !command.is_empty() {
        write!(line, " -- {command}")?;
    }
    writeln!(
        md,
        "Measured by `{line}` on {} ({} cores), {} UTC; load averages {load_before} at the start \
         (each row gives its own: a load near 2 or above means other work shared the cores). {}\n",
        process::cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
        capacity::cores(),
        chat_benches::stamp::now_utc(),
        if setup.pinned {
            "The release `chat-demo` ran alone on core 0 (`taskset -c 0`, so one actix worker) \
             and `loadgen` on core 1 (`taskset -c 1`); the server's per-client limits were \
             off (`--no-client-limits`) unless the command says `--client-limits`."
        } else {
            "With fewer than two cores nothing was pinned: server and clients shared the CPU."
        },
    )?;
    writeln!(
        md,
        "Each row is the step of the send rate with the most deliveries per second, on a fresh \
         server, sent by {} `loadgen` sender{} (each awaits its own answers), every delivery \
         checked by `loadgen` for loss, duplicates and order{}. Server CPU \
         is `utime + stime` from `/proc/PID/stat` from the moment every subscriber was connected \
         to the end of the run (sending, then the drain); *server core* and *loadgen core* are \
         each one's share of its core over that window: a loadgen near 100 % means the clients, \
         not the server, set the pace, and then CPU per delivery is the figure to compare.\n",
        setup.senders,
        if setup.senders == 1 { "" } else { "s" },
        if setup.lean {
            "; the subscribers were lean (`loadgen --lean`: each reads its own socket)"
        } else {
            "; every subscriber used the project's client (`--full-client`)"
        },
    )?;
    writeln!(
        md,
        "| transport | subscribers | msgs/s | deliveries/s | server CPU µs/delivery | \
         deliveries per server CPU-second | server core | loadgen core | p99 ms | lost+dup | load avg |"
    )?;
    writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )?;
    for steps in runs {
        if let Some(s) = saturation(steps) {
            row(&mut md, s)?;
        }
    }
    writeln!(md, "\n### Every step of the send rate\n")?;
    writeln!(
        md,
        "| transport | subscribers | msgs/s | deliveries/s | server CPU µs/delivery | \
         deliveries per server CPU-second | server core | loadgen core | p99 ms | lost+dup | load avg |"
    )?;
    writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )?;
    for s in runs.iter().flatten() {
        row(&mut md, s)?;
    }
    if !memory.is_empty() {
        writeln!(md, "\n### Server memory per idle connection\n")?;
        writeln!(
            md,
            "A fresh server, then `loadgen` connects the clients and sends one message; the \
             figure is the server's RSS growth from before the first client to when all were \
             connected, divided by the clients.\n"
        )?;
        writeln!(
            md,
            "| transport | connections | KiB per idle connection | load avg |"
        )?;
        writeln!(md, "| --- | ---: | ---: | --- |")?;
        for s in memory {
            writeln!(
                md,
                "| {} | {} | {} | {} |",
                s.transport.as_str(),
                s.clients,
                s.kib_per_client
                    .map_or("–".to_owned(), |k| format!("{k:.1}")),
                s.load
            )?;
        }
    }
    writeln!(
        md,
        "\n![Capacity on one server core](results/capacity.svg)\n{END}"
    )?;
    Ok(md)
}

fn row(md: &mut String, s: &Step) -> std::fmt::Result {
    writeln!(
        md,
        "| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} % | {:.0} % | {:.1} | {} | {} |",
        s.transport.as_str(),
        s.clients,
        s.rate,
        s.deliveries_per_second,
        s.cpu_us_per_delivery(),
        s.deliveries_per_cpu_second(),
        s.server_percent(),
        s.loadgen_percent(),
        s.p99_ms,
        s.lost_or_dup,
        s.load
    )
}

/// Bars: deliveries per second and per server CPU-second (thousands) at
/// saturation, and KiB per idle connection, per transport.
fn chart(runs: &[Vec<Step>], memory: &[Step], path: &Path) -> anyhow::Result<()> {
    let mut bars: Vec<(String, f64)> = Vec::new();
    for s in runs.iter().filter_map(|steps| saturation(steps)) {
        let name = s.transport.as_str();
        bars.push((
            format!("{name}: k deliveries/s"),
            s.deliveries_per_second / 1e3,
        ));
        bars.push((
            format!("{name}: k deliveries per CPU-s"),
            s.deliveries_per_cpu_second() / 1e3,
        ));
    }
    for s in memory {
        if let Some(kib) = s.kib_per_client {
            bars.push((format!("{}: KiB per idle conn.", s.transport.as_str()), kib));
        }
    }
    if bars.is_empty() {
        return Ok(());
    }
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 60 + 30 * bars.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Capacity on one server core", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(260)
        .build_cartesian_2d(0.0..max, (0..bars.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (label, v))| {
        let colour = if label.contains("KiB") {
            2
        } else if label.contains("CPU") {
            1
        } else {
            0
        };
        Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            Palette99::pick(colour).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}
