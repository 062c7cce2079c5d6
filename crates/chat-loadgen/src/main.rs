//! `loadgen`: many clients of one transport against one chat server (see the
//! library's docs, or `loadgen --help`).
//!
//! Run with `cargo run --release -p chat-loadgen -- --in-process --transport sse`.

use std::process::ExitCode;

use chat_loadgen::cli::{Cli, loopback_bases};
use chat_loadgen::{chaos, limits, run, server};
use clap::Parser;

fn main() -> anyhow::Result<ExitCode> {
    // Pinned to one core (`taskset -c 1`, as `capacity` runs it), the load
    // generator runs every subscriber on the thread that calls it: a
    // multi-threaded runtime would add a second thread and the atomics of
    // work stealing to every delivery, with no second core to use.
    let runtime = match std::thread::available_parallelism().map(|n| n.get()) {
        Ok(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(run_loadgen())
}

async fn run_loadgen() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // Checked first, so that a wrong --url fails before anything starts.
    let urls = loopback_bases(&cli.urls)?;

    let subscribers = if cli.chaos {
        cli.clients
            .saturating_mul(chat_client::Transport::ALL.len() as u32)
    } else {
        cli.clients
    };
    limits::ensure_fd_budget(subscribers, cli.in_process)?;

    let server = if cli.in_process {
        Some(server::start_on_loopback(chat_http::Config::default())?)
    } else {
        None
    };
    let bases = match &server {
        Some(server) => vec![server::base_url(server)],
        None => urls,
    };
    if cli.chaos {
        let result = chaos::run(&bases[0], &cli.chaos_settings()).await;
        if let Some(server) = server {
            server::shut_down(server).await;
        }
        let report = result?;
        print!("{}", report.render());
        if let Some(docs) = &cli.write_results {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let server = cli
                .server_pids
                .first()
                .and_then(|&pid| chaos::docs::command_of(pid));
            chaos::docs::SECTION.write(
                docs,
                &chaos::docs::section(&report, &command, server.as_deref()),
            )?;
            println!(
                "wrote the chaos section of {}",
                docs.join("results.md").display()
            );
        }
        return Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let server_pids = if cli.in_process {
        vec![std::process::id()]
    } else {
        cli.server_pids.clone()
    };
    if !cli.in_process {
        // Subscribers are spread round-robin: the first server gets the most.
        let per_server = cli.clients.div_ceil(bases.len().max(1) as u32);
        for &pid in &server_pids {
            limits::warn_about_server_fds(pid, per_server);
        }
    }

    let result = run::run(&cli, &bases, &server_pids).await;

    if let Some(server) = server {
        server::shut_down(server).await;
    }
    let report = result?;
    report.print();
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
