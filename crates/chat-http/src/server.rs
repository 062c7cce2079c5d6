//! Starting, running and stopping a server: the shared state, the app that
//! mounts the transports, graceful shutdown, and the binaries' `main`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use clap::{Args, Command, FromArgMatches};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use chat_store::Store;

use chat_protocol::Transport;

use crate::api;
use crate::config::Config;
use crate::stats::Stats;
use crate::streaming::remember_socket;

/// The page may load scripts, styles and connections from its own origin
/// only; no inline script can run, even if user text were ever mistaken for
/// HTML.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Everything a handler needs, shared by every worker.
#[derive(Clone)]
pub struct AppState {
    /// The one message store.
    pub store: Arc<Store>,
    /// Per-transport counters.
    pub stats: Arc<Stats>,
    /// The server's settings.
    pub config: Arc<Config>,
    /// Cancelled when the server starts shutting down: held long polls answer,
    /// streams end, sockets close with 1001.
    pub shutdown: CancellationToken,
    /// The transports this server mounts (set by [`start`]), for `/api/config`.
    pub transports: Arc<[Transport]>,
}

impl AppState {
    /// A fresh store and fresh counters for `config`.
    pub fn new(config: Config) -> Self {
        AppState {
            store: Arc::new(Store::new(config.store())),
            stats: Arc::new(Stats::default()),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            transports: Arc::new([]),
        }
    }
}

/// A transport a server can mount: which one, and the function that adds its
/// routes (with its own settings) to an app. Each transport crate makes one
/// with its `mount` function.
#[derive(Clone)]
pub struct Mount {
    /// The transport.
    pub transport: Transport,
    /// Adds its scope to an app; called once per worker.
    pub routes: Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>,
}

impl Mount {
    /// A mount for `transport` whose routes `routes` adds.
    pub fn new(
        transport: Transport,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        Mount {
            transport,
            routes: Arc::new(routes),
        }
    }
}

/// The settings of a binary whose transports have none of their own.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct NoSettings {}

/// A server started by [`start`].
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (tests read the store and counters through it).
    pub state: AppState,
    handle: ServerHandle,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Graceful shutdown: tell every held request and stream to finish,
    /// stop accepting, and wait (up to `shutdown_timeout`) for in-flight
    /// requests to be answered.
    pub async fn shutdown(self) -> io::Result<()> {
        self.state.shutdown.cancel();
        self.handle.stop(true).await;
        self.task.await.map_err(io::Error::other)?
    }
}

/// Starts a server on `listener` with the shared endpoints, the given
/// transports and the page. Must be called inside a Tokio runtime.
pub fn start(
    listener: TcpListener,
    mut state: AppState,
    mounts: &[Mount],
) -> io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    state.transports = mounts.iter().map(|m| m.transport).collect();
    let data = web::Data::new(state.clone());
    let mounts = mounts.to_vec();
    let web_dir = state.config.web_dir.clone();
    let mut server = HttpServer::new(move || {
        let mut app = App::new().app_data(data.clone()).configure(api::mount);
        for mount in &mounts {
            app = app.configure(|cfg| (mount.routes)(cfg));
        }
        app.service(
            web::scope("")
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .service(actix_files::Files::new("/", &web_dir).index_file("index.html")),
        )
        .default_service(web::to(api::not_found))
    })
    // Connection settings first: `listen` captures them.
    .on_connect(remember_socket)
    // By default actix lets a client half-close its side and still waits to
    // answer it, which also means a client that *hangs up* during a held
    // long poll is only noticed when the answer is finally written. Treating
    // EOF as "gone" drops the held request at once.
    .h1_allow_half_closed(false)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(state.config.shutdown_timeout);
    if state.config.workers > 0 {
        server = server.workers(state.config.workers);
    }
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer {
        addr,
        state,
        handle,
        task,
    })
}

/// The `main` of every server binary: parse the shared flags and the
/// binary's own transport settings `S`, log through `tracing`, listen, print
/// the address, and shut down gracefully on Ctrl-C or SIGTERM. `mounts` turns
/// the parsed settings into the transports to serve.
pub fn run_binary<S: Args + FromArgMatches>(
    name: &'static str,
    about: &'static str,
    mounts: impl FnOnce(S) -> Vec<Mount>,
) -> anyhow::Result<()> {
    let command = S::augment_args(Config::augment_args(Command::new(name).about(about)));
    let matches = command.get_matches();
    let config = Config::from_arg_matches(&matches)?;
    let mounts = mounts(S::from_arg_matches(&matches)?);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Every connection is a file descriptor: take all the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }

    runtime.block_on(async {
        let listener = listen(config.addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
        let server = start(listener, AppState::new(config), &mounts)?;
        println!("{name} listening on http://{}", server.addr);
        tracing::info!(addr = %server.addr, "started");
        shutdown_signal().await?;
        tracing::info!("shutting down: answering held requests and closing streams");
        server.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Pending connections the kernel queues before the server accepts them.
/// std's `TcpListener::bind` asks for 128, which a burst of thousands of
/// clients (the load generator's ramp-up) overflows.
pub const LISTEN_BACKLOG: i32 = 1_024;

/// A listening socket on `addr` with a [`LISTEN_BACKLOG`] queue.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() -> io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}
