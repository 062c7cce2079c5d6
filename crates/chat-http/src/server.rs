//! Starting, running and stopping a server: the shared state, the app that
//! mounts the transports, and graceful shutdown. The binaries' `main` is in
//! [`crate::binary`].

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_server::{Server, ServerHandle};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactoryExt, apply_fn_factory, boxed, fn_service, map_config,
};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpMessage, web};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use chat_store::{Log, OpenError, Store};

use chat_protocol::Transport;

use crate::api;
use crate::config::Config;
use crate::limits;
use crate::metrics::Metrics;
use crate::page::PageSource;
use crate::presence::{self, Presence};
use crate::rate::ClientLimits;
use crate::shutdown::SendGate;
use crate::stats::Stats;
use crate::tls::{Io, Tls};

pub use crate::binary::{LogFormat, StartError, run_binary};

/// The page may load scripts, styles and connections from its own origin
/// only; no inline script can run, even if user text were ever mistaken for
/// HTML.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The page sends no `Referer` anywhere: its address (and so the server's
/// name, and any query string) is nobody else's business.
pub const REFERRER_POLICY: &str = "no-referrer";

/// How long a client may take to send a request head (actix's default).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection is kept, after its last answer, for a client that
/// should close it (actix's default).
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything a handler needs, shared by every worker.
#[derive(Clone)]
pub struct AppState {
    /// The store the transports read: recent messages and wake-ups.
    pub store: Arc<Store>,
    /// Where sends go: the store itself (memory) or a shared Redis log.
    pub log: Arc<Log>,
    /// This process's name among the instances that may share one log.
    pub instance: Arc<str>,
    /// Per-transport counters.
    pub stats: Arc<Stats>,
    /// The server's settings.
    pub config: Arc<Config>,
    /// Cancelled when the server starts shutting down, once no send can be
    /// acknowledged any more: held long polls answer, streams hand over what
    /// is stored and end, sockets close with 1001.
    pub shutdown: CancellationToken,
    /// The gate every send passes; closed first on shutdown (see
    /// [`crate::shutdown`]).
    pub sends: Arc<SendGate>,
    /// The transports this server mounts (set by [`start`]), for `/api/config`.
    pub transports: Arc<[Transport]>,
    /// Who is online on this server (see [`crate::presence`]).
    pub presence: Arc<Presence>,
    /// The per-client limits' state (see [`crate::rate`]).
    pub limits: Arc<ClientLimits>,
    /// `GET /metrics`' exporter (see [`crate::metrics`]).
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// A fresh in-memory store and fresh counters for `config` (its
    /// `--store` is not looked at: see [`AppState::open`]).
    pub fn new(config: Config) -> Self {
        let log = Log::memory(config.store());
        AppState::with_log(config, log)
    }

    /// The store `config` names (`--store`): memory, or a Redis log that must
    /// answer now.
    pub async fn open(config: Config) -> Result<Self, OpenError> {
        let log = Log::open(config.store(), config.store_url.as_deref()).await?;
        Ok(AppState::with_log(config, log))
    }

    /// State around an opened log.
    pub fn with_log(config: Config, log: Log) -> Self {
        let metrics = Arc::new(Metrics::new());
        let stats = Stats::timed(|transport| metrics.store_to_write(transport));
        let limits = Arc::new(ClientLimits::new(&config.limits));
        AppState {
            store: log.store().clone(),
            log: Arc::new(log),
            instance: Arc::from(chat_store::new_epoch().as_str()),
            stats: Arc::new(stats),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            sends: Arc::default(),
            transports: Arc::new([]),
            presence: Arc::default(),
            limits,
            metrics,
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
    /// Its TLS setup, with `--tls` (tests trust its certificate).
    pub tls: Option<Tls>,
    handle: ServerHandle,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Graceful shutdown: refuse every send from now on (waiting for those
    /// under way), then tell every held request and stream to finish (streams
    /// first hand over what is stored), stop accepting, and wait (up to
    /// `shutdown_timeout`) for in-flight requests to be answered.
    pub async fn shutdown(self) -> io::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_timeout);
        if tokio::time::timeout(grace, self.state.sends.close())
            .await
            .is_err()
        {
            tracing::warn!("sends under way did not finish within the shutdown timeout");
        }
        self.state.shutdown.cancel();
        self.handle.stop(true).await;
        self.task.await.map_err(io::Error::other)?
    }
}

/// Starts a server on `listener` with the shared endpoints, the given
/// transports and the page. Must be called inside a Tokio runtime.
///
/// The server is assembled from actix's parts rather than with
/// `actix_web::HttpServer`, for two things `HttpServer` does not let an app
/// set: the `Expect: 100-continue` service (so that a body over the limit is
/// refused before the client is told to send it: see [`crate::limits`]), and
/// the socket itself, wrapped so that a streaming connection knows how many
/// of its bytes are still in the server's memory (see
/// [`crate::streaming::Backlog`]). The other settings are `HttpServer`'s.
pub fn start(
    listener: TcpListener,
    state: AppState,
    mounts: &[Mount],
) -> Result<RunningServer, StartError> {
    let tls = Tls::from_config(&state.config)?;
    start_with_tls(listener, state, mounts, tls)
}

/// [`start`] with the TLS setup already made (`None`: plain HTTP/1.1),
/// whatever the configuration says.
pub fn start_with_tls(
    listener: TcpListener,
    mut state: AppState,
    mounts: &[Mount],
    tls: Option<Tls>,
) -> Result<RunningServer, StartError> {
    let addr = listener.local_addr()?;
    let page = PageSource::new(state.config.web_dir.as_deref())?;
    state.transports = mounts.iter().map(|m| m.transport).collect();
    let data = web::Data::new(state.clone());
    let mounts = mounts.to_vec();
    let app = move || {
        let mut app = App::new()
            .app_data(data.clone())
            // Before `api::mount`, whose `/api` scope answers 404 for the rest.
            .configure(presence::mount)
            .configure(api::mount);
        for mount in &mounts {
            app = app.configure(|cfg| (mount.routes)(cfg));
        }
        app.service(
            page.serve(web::scope("")).wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, REFERRER_POLICY)),
            ),
        )
        .default_service(web::to(api::not_found))
        .wrap(from_fn(crate::rate::cap_connections))
        .wrap(from_fn(limits::guard))
        .wrap(from_fn(instance_header))
    };

    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(state.config.shutdown_timeout);
    if state.config.workers > 0 {
        builder = builder.workers(state.config.workers);
    }
    let stopping = builder.graceful_shutdown_signal();
    let expect_state = state.clone();
    let accept_tls = tls.clone();
    let builder = builder.listen("chat", listener, move || {
        let stopping = stopping.clone();
        let tls = accept_tls.clone();
        let stats = expect_state.stats.clone();
        let stopping_h2 = stopping.clone();
        let http = HttpService::build()
            // Idle keep-alive connections close as soon as a graceful stop
            // begins, as with `HttpServer`.
            .graceful_shutdown_signal(move || {
                let stopping = stopping.clone();
                async move { stopping.notified().await }
            })
            .client_request_timeout(HEAD_TIMEOUT)
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            // By default actix lets a client half-close its side and still
            // waits to answer it, which also means a client that *hangs up*
            // during a held long poll is only noticed when the answer is
            // finally written. Treating EOF as "gone" drops the held request
            // at once.
            .h1_allow_half_closed(false)
            .local_addr(addr)
            .on_connect_ext(|io: &Io, ext: &mut Extensions| io.remember(ext))
            .expect(limits::expect_continue(expect_state.clone()));
        let app = map_config(
            app()
                .into_factory()
                .map_err(|e: actix_web::Error| e.error_response()),
            // No URL is generated from it, and the origin check reads the
            // request's own `Host`.
            |_| AppConfig::default(),
        );
        // Without TLS every connection is HTTP/1.1, so the server is
        // HTTP/1.1 alone: a connection's future that could also become
        // HTTP/2 is the size of HTTP/2's (1.3 KB), more than twice HTTP/1.1's.
        let http = if tls.is_some() {
            boxed::factory(http.finish(app))
        } else {
            boxed::factory(apply_fn_factory(
                http.h1(app),
                |(io, _, peer): (Io, Protocol, Option<SocketAddr>), h1| h1.call((io, peer)),
            ))
        };
        // Both futures boxed: actix spawns one task per connection whose
        // size is the larger of the two, twice over, for as long as the
        // connection lives. The TLS handshake's future (1.8 KB) is then
        // freed once it is done, and the connection's task holds a pointer
        // instead of the HTTP future inline: about 3 KiB less per idle
        // connection (docs/measurements.md, "Memory per idle connection").
        fn_service(move |io: TcpStream| {
            Box::pin(crate::tls::connection(
                io,
                tls.clone(),
                stats.clone(),
                stopping_h2.clone(),
            ))
        })
        .and_then(http)
    })?;
    let server = builder.run();
    // Polls that stopped age out of the presence list until shutdown.
    tokio::spawn(state.presence.clone().sweep_until(state.shutdown.clone()));
    // The limits forget full buckets, and the histograms fold their
    // samples, until shutdown.
    tokio::spawn(crate::rate::upkeep_until_shutdown(state.clone()));
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer {
        addr,
        state,
        tls,
        handle,
        task,
    })
}

/// The response header that names the instance that answered (a shared store only).
pub const INSTANCE_HEADER: &str = "x-chat-instance";

/// Adds [`INSTANCE_HEADER`] to every response when the log is shared
/// (`--store redis://…`), so that a client behind a load balancer sees which
/// instance answered; a server on its own adds nothing, so its byte counts do
/// not change. The transports' accounting measured the head before this runs,
/// so the line's bytes are added to the transport that answered here.
async fn instance_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let Some(state) = res.request().app_data::<web::Data<AppState>>().cloned() else {
        return Ok(res);
    };
    if state.log.backend() != "redis" {
        return Ok(res);
    }
    // An instance name is an epoch: `[A-Za-z0-9_-]`, always a valid value.
    let Ok(value) = HeaderValue::from_str(&state.instance) else {
        return Ok(res);
    };
    let path = res.request().path();
    let named = res.request().extensions().get::<Transport>().copied();
    let counted = named.or_else(|| Transport::ALL.into_iter().find(|t| t.route() == path));
    if let Some(transport) = counted {
        let line = INSTANCE_HEADER.len() + ": ".len() + value.len() + "\r\n".len();
        state.stats.of(transport).add_out(line);
    }
    let name = HeaderName::from_static(INSTANCE_HEADER);
    res.headers_mut().insert(name, value);
    Ok(res)
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
