//! The `main` of every server binary: flags, logs, start-up failures with
//! their exit codes, and a graceful stop on Ctrl-C or SIGTERM. Every binary
//! (the demo server and each transport's own) is [`run_binary`] with its
//! transports.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Command, FromArgMatches};

use chat_store::OpenError;

use crate::config::Config;
use crate::page::{PageSource, WebDirError};
use crate::server::{AppState, Mount, listen, start_with_tls};
use crate::tls::{Tls, TlsError};

/// Why a server could not start. Each has its own exit code, so that a
/// script or a service manager can tell them apart (README, "Exit codes").
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A flag or environment variable is not valid (clap's own code).
    #[error("{0}")]
    Usage(String),
    /// The address cannot be listened on (in use, not ours, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// `--web-dir` has no readable `index.html`.
    #[error(transparent)]
    WebDir(#[from] WebDirError),
    /// `--store` names a store that is not valid or does not answer.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// `--cert` or `--key` cannot be read or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Anything else the operating system refused.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl StartError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Io(_) => 1,
            StartError::Usage(_) => 2,
            StartError::Listen { .. } => 3,
            StartError::WebDir(_) => 4,
            StartError::Store(OpenError::Url { .. }) => 2,
            StartError::Store(OpenError::Unreachable { .. }) => 5,
            StartError::Tls(_) => 6,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `main` of every server binary: parse the shared flags and the
/// binary's own transport settings `S`, log through `tracing` (to stderr),
/// listen, print the address on stdout, and shut down gracefully on Ctrl-C or
/// SIGTERM. `mounts` turns the parsed settings into the transports to serve.
/// A failure to start is one line on stderr and [`StartError::exit_code`].
pub fn run_binary<S: Args + FromArgMatches>(
    name: &'static str,
    about: &'static str,
    mounts: impl FnOnce(S) -> Vec<Mount>,
) -> ExitCode {
    match serve_binary(name, about, mounts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn serve_binary<S: Args + FromArgMatches>(
    name: &'static str,
    about: &'static str,
    mounts: impl FnOnce(S) -> Vec<Mount>,
) -> Result<(), StartError> {
    // `about` last: a settings struct's doc comment would otherwise replace it.
    let command = S::augment_args(Config::augment_args(
        Command::new(name).version(env!("CARGO_PKG_VERSION")),
    ))
    .about(about);
    let matches = match command.try_get_matches() {
        Ok(matches) => matches,
        // --help and --version print and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => return Err(usage(e)),
    };
    let config = Config::from_arg_matches(&matches).map_err(usage)?;
    let mounts = mounts(S::from_arg_matches(&matches).map_err(usage)?);
    init_logs(config.log_format);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Every connection is a file descriptor: take all the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }

    runtime.block_on(async {
        // Everything that can be checked is checked before the port is
        // taken: a bad --web-dir or an absent store never holds the address.
        PageSource::new(config.web_dir.as_deref())?;
        let tls = Tls::from_config(&config)?;
        let addr = config.addr;
        let state = AppState::open(config).await?;
        let listener = listen(addr).map_err(|source| StartError::Listen { addr, source })?;
        let server = start_with_tls(listener, state, &mounts, tls)?;
        crate::tls::announce(name, server.addr, server.tls.as_ref());
        tracing::info!(addr = %server.addr, "started");
        shutdown_signal().await?;
        tracing::info!("shutting down: answering held requests and closing streams");
        server.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// clap's message, first line only (it names the flag and the problem).
fn usage(e: clap::Error) -> StartError {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    StartError::Usage(format!("{line} (see --help)"))
}

/// Logs to stderr at the level `RUST_LOG` sets (default `info`): text,
/// coloured only when stderr is a terminal and `NO_COLOR` is not set, or
/// one JSON object per line.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init();
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() -> io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}
