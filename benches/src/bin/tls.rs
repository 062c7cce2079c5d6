//! Bytes per delivered message over HTTP/1.1, HTTPS with HTTP/1.1 and
//! HTTPS with HTTP/2, for every transport: writes the section "HTTP/2 over
//! TLS" of `docs/results.md` (in place, leaving the rest as it was) and
//! keeps a copy in `docs/results/tls.md` that `compare` puts back after it
//! rewrites `results.md`. About ten seconds.

use std::path::PathBuf;

use chat_benches::tls::{self, Mode};
use chat_client::Transport;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Measure bytes per message over HTTP/2 and HTTP/1.1, with and without TLS")]
struct Cli {
    /// The docs folder: results.md and results/ are in it.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// Messages per transport and mode.
    #[arg(long, default_value_t = 100)]
    messages: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut costs = Vec::new();
    for transport in Transport::ALL {
        for mode in [Mode::Plain, Mode::TlsH1, Mode::TlsH2] {
            if transport == Transport::Websocket && mode == Mode::TlsH2 {
                continue;
            }
            let cost = tls::measure(transport, mode, cli.messages).await?;
            eprintln!(
                "{:9} {:?}: {:.1} B down, {:.1} B up per message (the transport counted {:.1} down)",
                transport.as_str(),
                mode,
                cost.down,
                cost.up,
                cost.counted_down
            );
            costs.push(cost);
        }
    }
    let flags: Vec<String> = std::env::args().skip(1).collect();
    let mut command = "cargo run --release -p chat-benches --bin tls".to_owned();
    if !flags.is_empty() {
        command.push_str(" -- ");
        command.push_str(&flags.join(" "));
    }
    let machine = chat_loadgen::process::cpu_model().unwrap_or_else(|| "an unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let when = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let section = tls::markdown(
        &costs,
        cli.messages,
        &command,
        &format!("{machine} ({cores} cores)"),
        &when,
    );
    std::fs::create_dir_all(cli.out.join("results"))?;
    tls::SECTION.write(&cli.out, &section)?;
    eprintln!(
        "wrote the section into {}",
        cli.out.join("results.md").display()
    );
    Ok(())
}
