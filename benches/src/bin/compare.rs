//! The comparison in one command: measures every transport and writes
//! `docs/results.md` with tables, and `docs/results/*.svg` with charts.
//!
//! Run with `cargo run --release -p chat-benches --bin compare` (about two
//! minutes, most of it the idle minute). `--quick` shortens the idle
//! scenario to 10 s for a trial run; `--out DIR` writes somewhere other than
//! `docs/`.
//!
//! What it measures, each on a fresh in-process server over loopback, with
//! the project's Rust clients:
//! - wire overhead per delivered message at the socket (a counting relay
//!   between subscriber and server), in three scenarios, next to the server's
//!   own `/api/stats` count of the same bytes ([`chat_benches::wire`]);
//! - idle cost per minute per connected client;
//! - load: every transport with 1,000 clients at 100 messages/s, and with
//!   10,000 clients at 10 messages/s, through the `loadgen` binary (package
//!   `chat-loadgen`, built first, in this binary's profile, into the same
//!   folder) against a server in its own process (this binary, re-run with
//!   `--serve`), so that the server's memory and CPU are its own;
//! - several instances on a shared Redis log ([`chat_benches::scale`]):
//!   1,000 subscribers on one memory server, then split over two servers
//!   on one `redis-server` it starts itself, for every transport, with the
//!   Redis commands each message cost. `--no-scale` skips it, `--scale-only`
//!   runs nothing else; without `redis-server` it is skipped with a note.
//!
//! What it shares with `loadgen` rather than copies: the `/api/stats` reader
//! ([`chat_loadgen::stats`], through [`chat_benches::wire`]), the `/proc`
//! sampler ([`chat_loadgen::process`]: the CPU model in the heading; the
//! server's memory and CPU are sampled by `loadgen` itself), the server it
//! runs ([`chat_loadgen::server`]), and `loadgen`'s output format: the table
//! header and the parser of its printed report ([`chat_loadgen::report`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use plotters::prelude::*;

use chat_benches::links;
use chat_benches::processes::{ServerProcess, run_loadgen};
use chat_benches::scale;
use chat_benches::stamp::{command_line, cores, machine, now_utc};
use chat_benches::wire::{Scenario, WireResult, measure};
use chat_client::Transport;
use chat_loadgen::report::{TABLE_ALIGN, TABLE_HEADER};
use chat_loadgen::server;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Measure every transport and write docs/results.md")]
struct Cli {
    /// Where results.md and results/*.svg go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))]
    out: PathBuf,
    /// Idle for 10 s instead of a minute.
    #[arg(long)]
    quick: bool,
    /// Messages in the one-at-a-time scenario.
    #[arg(long, default_value_t = 100)]
    one_at_a_time: u64,
    /// Messages in the burst scenario.
    #[arg(long, default_value_t = 1_000)]
    burst: u64,
    /// Skip the load runs (they take about four minutes).
    #[arg(long)]
    no_load: bool,
    /// Skip the section on several instances sharing one Redis log (about
    /// three minutes).
    #[arg(long, conflicts_with = "scale_only")]
    no_scale: bool,
    /// Run only that section (with --quick: 3 s of sending per row).
    #[arg(long)]
    scale_only: bool,
    /// Skip the slow-links section (every transport at 0, 50 and 150 ms
    /// round trip; about two minutes).
    #[arg(long, conflicts_with = "links_only")]
    no_links: bool,
    /// Run only the slow-links section and put it into the existing
    /// results.md in place of the old one, leaving the rest as it was (with
    /// --quick: 20 messages instead of 200).
    #[arg(long, conflicts_with = "scale_only")]
    links_only: bool,
    /// Internal: serve the demo on this address until SIGTERM.
    #[arg(long, hide = true)]
    serve: Option<std::net::SocketAddr>,
    /// Internal: with --serve, the store (`redis://HOST:PORT`).
    #[arg(long, hide = true, requires = "serve")]
    serve_store: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(addr) = cli.serve {
        return serve(addr, cli.serve_store).await;
    }
    let idle = Duration::from_secs(if cli.quick { 10 } else { 60 });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let links_plan = if cli.quick { links::QUICK } else { links::FULL };
    if cli.links_only {
        return links::only(&cli.out, links_plan, &command).await;
    }

    let mut results = Vec::new();
    if !cli.scale_only {
        for scenario in [
            Scenario::OneAtATime(cli.one_at_a_time),
            Scenario::Burst(cli.burst),
        ] {
            for transport in Transport::ALL {
                eprintln!("{}: {}", transport.as_str(), scenario.name());
                results.push(measure(transport, scenario).await?);
            }
        }
        eprintln!(
            "idle: all {} at once, {} s",
            Transport::ALL.len(),
            idle.as_secs()
        );
        let idle_runs = futures_util::future::try_join_all(
            Transport::ALL.map(|t| measure(t, Scenario::Idle(idle))),
        )
        .await?;
        results.extend(idle_runs);
    }

    let load = if cli.no_load || cli.scale_only {
        Vec::new()
    } else {
        load_runs().await?
    };
    let scale = if cli.no_scale {
        None
    } else {
        let load = if cli.quick { scale::QUICK } else { scale::FULL };
        let this = std::env::current_exe()?;
        Some(scale::measure(&this, &loadgen_binary()?, load).await?)
    };

    let links = if cli.no_links || cli.scale_only {
        None
    } else {
        Some(links::section(links_plan, &command).await?)
    };

    std::fs::create_dir_all(cli.out.join("results"))?;
    let mut markdown = heading(&command)?;
    if !cli.scale_only {
        chart_bytes(&results, &cli.out.join("results/bytes_per_message.svg"))?;
        markdown.push_str(&report(&results, idle)?);
    }
    if !load.is_empty() {
        chart_memory(&load, &cli.out.join("results/memory_per_connection.svg"))?;
        markdown.push_str(&load_report(&load)?);
    }
    if let Some(scale) = &scale {
        markdown.push_str(&scale::markdown(scale)?);
    }
    if let Some((runs, section)) = &links {
        links::chart(runs, &cli.out.join("results/latency_by_round_trip.svg"))?;
        markdown.push_str(section);
    }
    let path = cli.out.join("results.md");
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    // The sections other runs wrote (`--bin capacity`, `--bin tls`,
    // `loadgen --chaos --write-results`), kept beside it, go back in.
    for kept in [
        chat_benches::capacity::SECTION,
        chat_benches::tls::SECTION,
        chat_loadgen::chaos::docs::SECTION,
    ] {
        kept.restore(&cli.out)?;
    }
    eprintln!("wrote {}", path.display());
    // The tables of comparison.md and the README's decision guide, from it.
    chat_benches::tables::update_docs(&cli.out)?;
    Ok(())
}

/// The page's title and the line saying how, where and when it was measured.
fn heading(command: &str) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "# Results\n")?;
    writeln!(
        md,
        "Measured by `{}` on {} ({} cores, {}), {} UTC. Every number is from that run; \
         run the command to get your own.\n",
        command_line(command),
        machine(),
        cores(),
        std::env::consts::ARCH,
        now_utc(),
    )?;
    Ok(md)
}

/// The wire and idle sections.
fn report(results: &[WireResult], idle: Duration) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "## Wire overhead per delivered message\n")?;
    writeln!(
        md,
        "One subscriber per transport connects through a counting relay and gets \
         one message before counting starts; then messages of 100 bytes of JSON are \
         sent with `via: api` straight to the server, so only delivery is counted. *Relay* columns are bytes the relay forwarded; \
         *server* is the server's own `bytes_out` for the transport (`/api/stats`), and \
         *diff* how far it is from the relay's count. Polling polls every second; long \
         polls are held up to 25 s.\n"
    )?;
    writeln!(
        md,
        "| transport | scenario | delivered | bytes down/msg (relay) | bytes up/msg (relay) | \
         requests/msg | frames or events/msg | bytes down/msg (server) | diff |"
    )?;
    writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for r in results.iter().filter(|r| r.delivered > 0) {
        writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.3} | {:.3} | {:.1} | {:+.2}% |",
            r.transport.as_str(),
            r.scenario.name(),
            r.delivered,
            r.per_message(r.relay.bytes_down),
            r.per_message(r.relay.bytes_up),
            r.per_message(r.relay.requests),
            r.per_message(r.relay.frames_down),
            r.per_message(r.server_bytes_out),
            r.disagreement_percent(),
        )?;
    }
    writeln!(
        md,
        "\n![Bytes down per delivered message](results/bytes_per_message.svg)\n"
    )?;

    writeln!(md, "## The cost of waiting: an idle client\n")?;
    writeln!(
        md,
        "No message at all for {} s; figures scaled to one minute.\n",
        idle.as_secs()
    )?;
    writeln!(
        md,
        "| transport | requests/min | bytes down/min | bytes up/min | server bytes out/min |"
    )?;
    writeln!(md, "| --- | ---: | ---: | ---: | ---: |")?;
    let scale = 60.0 / idle.as_secs_f64();
    for r in results
        .iter()
        .filter(|r| matches!(r.scenario, Scenario::Idle(_)))
    {
        writeln!(
            md,
            "| {} | {:.1} | {:.0} | {:.0} | {:.0} |",
            r.transport.as_str(),
            r.relay.requests as f64 * scale,
            r.relay.bytes_down as f64 * scale,
            r.relay.bytes_up as f64 * scale,
            r.server_bytes_out as f64 * scale,
        )?;
    }
    writeln!(
        md,
        "\nIn the delivery table the relay and the server agree to the byte. In the \
         idle table they can differ for long polling by part of one exchange: a held \
         request that is cancelled when the window ends is counted by the relay as it \
         forwards, and by the server only when it answers. This is noted, not yet \
         tracked down.",
    )?;
    Ok(md)
}

/// A bar chart of bytes down per delivered message, per transport and scenario.
fn chart_bytes(results: &[WireResult], path: &std::path::Path) -> anyhow::Result<()> {
    let bars: Vec<(String, f64)> = results
        .iter()
        .filter(|r| r.delivered > 0)
        .map(|r| {
            (
                format!("{} / {}", r.transport.as_str(), r.scenario.name()),
                r.per_message(r.relay.bytes_down),
            )
        })
        .collect();
    bar_chart(
        path,
        "Bytes down per delivered ~100-byte message",
        "bytes",
        &bars,
    )
}

/// A horizontal bar chart, one bar per `(label, value)`, written as SVG.
fn bar_chart(
    path: &std::path::Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
) -> anyhow::Result<()> {
    if bars.is_empty() {
        return Ok(());
    }
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 60 + 34 * bars.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(230)
        .build_cartesian_2d(0.0..max, (0..bars.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(unit)
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            // One colour per transport: bars come in `Transport::ALL` order.
            Palette99::pick(i % Transport::ALL.len()).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// One `loadgen` run.
#[derive(Debug, Clone)]
struct LoadRun {
    transport: Transport,
    clients: u32,
    /// The Markdown row `loadgen` printed.
    row: String,
    /// Server memory per client once every client was connected, KiB.
    kib_per_client_connected: Option<f64>,
}

/// The load scenarios: (clients, messages per second, seconds).
const LOADS: [(u32, u32, u32); 2] = [(1_000, 100, 5), (10_000, 10, 10)];

async fn load_runs() -> anyhow::Result<Vec<LoadRun>> {
    let loadgen = loadgen_binary()?;
    let mut runs = Vec::new();
    for (clients, rate, seconds) in LOADS {
        for transport in Transport::ALL {
            eprintln!("load: {} × {clients} at {rate}/s", transport.as_str());
            runs.push(load_run(&loadgen, transport, clients, rate, seconds).await?);
        }
    }
    Ok(runs)
}

/// `loadgen` next to this binary, built (or brought up to date) first with
/// the same profile, so that a run never measures a stale load generator.
fn loadgen_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("loadgen");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args([
        "build",
        "--quiet",
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"),
        "-p",
        "chat-loadgen",
    ]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let built = build
        .status()
        .context("running cargo to build loadgen (package chat-loadgen)")?;
    anyhow::ensure!(built.success(), "building loadgen failed");
    anyhow::ensure!(path.exists(), "no loadgen at {}", path.display());
    Ok(path)
}

/// Starts a server process, runs `loadgen` against it, stops the server.
async fn load_run(
    loadgen: &std::path::Path,
    transport: Transport,
    clients: u32,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<LoadRun> {
    let server = ServerProcess::start(&std::env::current_exe()?, None).await?;
    let output = run_loadgen(loadgen, &[&server], transport, clients, rate, seconds).await;
    server.stop().await;
    let parsed = output?;
    Ok(LoadRun {
        transport,
        clients,
        row: parsed.row,
        kib_per_client_connected: parsed.kib_per_client_connected,
    })
}

fn load_report(runs: &[LoadRun]) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "\n## Under load\n")?;
    writeln!(
        md,
        "`loadgen` against a server in its own process on the same 2 cores (so the clients \
         compete with the server for CPU). Latency is from the start of each send to \
         delivery; *lost* and *dup* must be 0. Server RSS and CPU are the server \
         process's own; KiB/client is its RSS growth over the run divided by the clients.\n"
    )?;
    writeln!(md, "{TABLE_HEADER}")?;
    writeln!(md, "{TABLE_ALIGN}")?;
    for run in runs {
        writeln!(md, "{}", run.row)?;
    }
    writeln!(md, "\n### Server memory per connection, once connected\n")?;
    writeln!(md, "| transport | clients | KiB per connection |")?;
    writeln!(md, "| --- | ---: | ---: |")?;
    for run in runs.iter().filter(|r| r.clients >= 10_000) {
        writeln!(
            md,
            "| {} | {} | {} |",
            run.transport.as_str(),
            run.clients,
            run.kib_per_client_connected
                .map_or("–".to_owned(), |k| format!("{k:.1}"))
        )?;
    }
    writeln!(
        md,
        "\n![Server memory per connection](results/memory_per_connection.svg)"
    )?;
    Ok(md)
}

/// A bar chart of server memory per connection at 10,000 clients.
fn chart_memory(runs: &[LoadRun], path: &std::path::Path) -> anyhow::Result<()> {
    let bars: Vec<(String, f64)> = runs
        .iter()
        .filter(|r| r.clients >= 10_000)
        .filter_map(|r| Some((r.transport.as_str().to_owned(), r.kib_per_client_connected?)))
        .collect();
    bar_chart(
        path,
        "Server memory per connection at 10,000 clients",
        "KiB",
        &bars,
    )
}

/// `--serve`: the demo server alone, until SIGTERM or Ctrl-C, on the store
/// `--serve-store` names (memory without it).
async fn serve(addr: std::net::SocketAddr, store: Option<String>) -> anyhow::Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let config = chat_http::Config {
        store_url: store,
        ..chat_http::Config::default()
    };
    let server = server::open(addr, config).await?;
    println!("compare listening on http://{}", server.addr);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await?;
    Ok(())
}
