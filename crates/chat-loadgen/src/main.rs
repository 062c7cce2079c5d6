//! `loadgen`: many clients of one transport against one chat server (see the
//! library's docs, or `loadgen --help`).
//!
//! Run with `cargo run --release -p chat-loadgen -- --in-process --transport sse`.

use std::process::ExitCode;

use chat_loadgen::cli::{Cli, loopback_base};
use chat_loadgen::{limits, run, server};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // Checked first, so that a wrong --url fails before anything starts.
    let url = loopback_base(&cli.url)?;

    limits::ensure_fd_budget(cli.clients, cli.in_process)?;

    let server = if cli.in_process {
        Some(server::start_on_loopback(chat_http::Config::default())?)
    } else {
        None
    };
    let base = server.as_ref().map_or(url, server::base_url);
    let server_pid = if cli.in_process {
        Some(std::process::id())
    } else {
        cli.server_pid
    };
    if let Some(pid) = server_pid.filter(|_| !cli.in_process) {
        limits::warn_about_server_fds(pid, cli.clients);
    }

    let result = run::run(&cli, &base, server_pid).await;

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
