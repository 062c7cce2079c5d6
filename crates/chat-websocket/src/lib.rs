//! # WebSocket: one socket, message frames down, sends up
//!
//! The browser opens `new WebSocket("ws://host/ws?since=N")`: one HTTP
//! request that *upgrades* the connection into a two-way stream of frames.
//! The server pushes one text frame per message; the client sends its
//! messages over the same socket. There is no per-message HTTP at all.
//!
//! ## On the wire
//!
//! ```text
//! GET /ws?since=16 HTTP/1.1
//! connection: Upgrade
//! upgrade: websocket
//! origin: http://127.0.0.1:8080
//! sec-websocket-key: …
//! sec-websocket-version: 13
//!
//! HTTP/1.1 101 Switching Protocols
//! connection: upgrade
//! upgrade: websocket
//! sec-websocket-accept: …
//!
//! ← {"id":17,"user":"ana","text":"hello","sent_at_ms":…,"via":"sse"}
//! → {"type":"send","user":"bob","text":"hi","client_msg_id":"c1"}
//! ← {"type":"ack","client_msg_id":"c1","id":18}
//! ← {"id":18,"user":"bob","text":"hi","sent_at_ms":…,"via":"websocket"}
//! ```
//!
//! A message frame is the store's bytes with a 2-byte frame header (4 bytes
//! past 125 bytes of payload): the cheapest framing of the four transports.
//! Control frames all have a `type`, which a message never has:
//! `{"type":"gap","missed":K}`, `{"type":"presence","users":[…]}` when who
//! is online changes (`user=ana` on the upgrade lists ana while the socket
//! is open: `chat_http::presence`), `{"type":"ack",…}` after a send from this
//! socket, and `{"type":"error","code":…,"message":…}` for a refused send
//! (the socket stays open). Sends get the same validation and idempotency
//! as `POST /api/messages`, with `via` set to `websocket`.
//!
//! ## What the server holds per client
//!
//! The socket, actix-ws's outgoing channel (32 frames), and one task that
//! `select!`s over the client's frames, the store's news, the ping timer
//! and shutdown (see `connection.rs`, which has the same skeleton as every
//! streaming transport's: `chat_http::streaming`).
//!
//! ## Origins
//!
//! Browsers let any page open a WebSocket to any host, with the user's
//! cookies, and only tell the server who asked through `Origin`. A server
//! that does not check it can be driven by any site the user visits
//! (cross-site WebSocket hijacking). An upgrade whose `Origin` is neither
//! this server's own nor in `--allowed-origins` is refused with 403. The
//! server's own is the `Host` the request came with; a forwarded host
//! (`Forwarded`, `X-Forwarded-Host`) counts only from `--trusted-proxies`.
//! Non-browser clients send no `Origin` and are let through: the check
//! protects browsers' users, it is not authentication.
//!
//! ## Heartbeats, limits, slow readers
//!
//! The server pings every 15 s and closes a socket that has sent nothing,
//! not even a pong, for 30 s: the only way to notice a client that vanished
//! without a close (a laptop lid, a dead NAT mapping). A frame over
//! `--ws-max-frame` closes the socket with 1009, as does a message whose
//! fragments add up to more; a text message that is not UTF-8 closes it with
//! 1007. A client that stops reading is reset once it is more than
//! `--backlog` messages behind, or leaves `--max-unsent` bytes unread for a
//! few seconds, exactly as for SSE, and resumes with `since` from the last id
//! it saw. Sends pass the same per-client rate limits as a POST
//! (`chat_http::rate`): over them, an error frame `rate_limited` with
//! `retry_after_ms`, nothing stored, the socket open; an upgrade from an
//! address over `--max-connections-per-address` is closed at once with 1013.
//!
//! ## Framing: actix-ws's session, on purpose
//!
//! SSE and HTTP streaming write a message's bytes, built once per message,
//! to every connection (`chat_store::framing`). A server's text frame is
//! the same for every socket too (it is not masked), but this crate keeps
//! actix-ws's `Session`, which frames each message per socket: the frame is
//! a 2-byte header and a copy of the payload into the socket's buffer, about
//! 1% of the server's CPU under fan-out (a `perf` profile,
//! docs/measurements.md), and actix-ws already writes every frame queued
//! for a socket as one chunk, so the socket gets one write per wake-up
//! however many messages it carries. Writing shared frames would mean
//! driving actix-http's WebSocket codec behind the handshake ourselves, the
//! incoming half and the close handshake included, for that 1%.
//!
//! ## Disconnects and shutdown
//!
//! A client's close frame is echoed and the task ends. On shutdown no send is
//! acknowledged any more (an error frame, `shutting_down`), every socket gets
//! what the store holds and is closed with 1001 (going away); clients reconnect with `since`
//! set to the last id they saw, so nothing is lost or repeated.

mod connection;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, http::header};

use chat_http::accounting::count_bytes;
use chat_http::api::error_response;
use chat_http::forwarded::public_hosts;
use chat_http::presence;
use chat_http::rate::OverConnectionCap;
use chat_http::{ApiError, AppState, Config, Connection, Mount, Query, Transport};
use chat_protocol::limits::DEFAULT_KEEPALIVE_S;

/// This crate's transport.
pub const TRANSPORT: Transport = Transport::Websocket;
/// Messages read from the store at a time.
pub const BATCH: usize = 100;
/// Seconds without a pong (or any frame) after which a socket is closed.
pub const DEFAULT_TIMEOUT_S: u64 = 30;
/// Largest WebSocket message a client may send, in bytes (64 KiB).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// WebSocket's own flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "websocket")]
#[command(next_help_heading = "WebSocket")]
pub struct Settings {
    /// Seconds between WebSocket pings.
    #[arg(long = "ws-ping", env = "CHAT_WS_PING", default_value_t = DEFAULT_KEEPALIVE_S)]
    pub ping_s: u64,
    /// Seconds without an answer after which a WebSocket is closed.
    #[arg(long = "ws-timeout", env = "CHAT_WS_TIMEOUT", default_value_t = DEFAULT_TIMEOUT_S)]
    pub timeout_s: u64,
    /// Largest WebSocket frame a client may send, in bytes.
    #[arg(long = "ws-max-frame", env = "CHAT_WS_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// Extra origins allowed to open a WebSocket (comma-separated, e.g.
    /// `https://chat.example`). The server's own origin is always allowed.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ping_s: DEFAULT_KEEPALIVE_S,
            timeout_s: DEFAULT_TIMEOUT_S,
            max_frame: DEFAULT_MAX_FRAME,
            allowed_origins: Vec::new(),
        }
    }
}

impl Settings {
    /// The ping interval.
    pub fn ping(&self) -> Duration {
        Duration::from_secs(self.ping_s)
    }

    /// The idle timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

/// Why an upgrade is refused.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Anything any endpoint refuses (a bad cursor, a bad query).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A WebSocket upgrade from a page on another origin.
    #[error("origin {0:?} may not open a WebSocket here")]
    CrossOrigin(String),
    /// A request that is not a valid upgrade.
    #[error("not a WebSocket upgrade: {0}")]
    NotWebSocket(String),
}

impl ResponseError for UpgradeError {
    fn status_code(&self) -> StatusCode {
        match self {
            UpgradeError::Api(e) => e.status_code(),
            UpgradeError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            UpgradeError::NotWebSocket(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            UpgradeError::Api(e) => e.code(),
            UpgradeError::CrossOrigin(_) => "cross_origin",
            UpgradeError::NotWebSocket(_) => "not_websocket",
        };
        error_response(self.status_code(), code, &self.to_string())
    }
}

/// This transport with `settings`, for [`chat_http::start`] and `run_binary`.
pub fn mount(settings: Settings) -> Mount {
    let settings = Data::new(settings);
    Mount::new(TRANSPORT, move |cfg| routes(cfg, settings.clone()))
}

/// Adds `GET /ws` to an app.
fn routes(cfg: &mut web::ServiceConfig, settings: Data<Settings>) {
    cfg.service(
        web::resource(TRANSPORT.route())
            .app_data(settings)
            .wrap(count_bytes(TRANSPORT))
            .route(web::get().to(upgrade)),
    );
}

/// `GET /ws?since=N`: checks the origin and the cursor, completes the
/// handshake, and hands the socket to its own task.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: Data<AppState>,
    settings: Data<Settings>,
) -> Result<HttpResponse, UpgradeError> {
    check_origin(&req, &settings, &state.config)?;
    let query = Query::parse(&req)?;
    let user = presence::user_of(&query)?;
    // Read the first page before upgrading, so a bogus cursor is a 400.
    let first = state
        .store
        .read_in(query.epoch()?.as_ref(), query.since()?, BATCH)
        .map_err(ApiError::from)?;

    let (response, session, frames) =
        actix_ws::handle(&req, body).map_err(|e| UpgradeError::NotWebSocket(e.to_string()))?;
    let frames = frames
        .max_frame_size(settings.max_frame)
        .aggregate_continuations()
        .max_continuation_size(settings.max_frame);
    let (connection, response) = Connection::serve(&req, response);
    if req.extensions().contains::<OverConnectionCap>() {
        // Over `--max-connections-per-address`: 1013, try again later.
        let close = session.close(Some(actix_ws::CloseCode::Again.into()));
        actix_web::rt::spawn(async move {
            connection
                .close_within(connection::CLOSE_GRACE, close)
                .await;
        });
        return Ok(response);
    }
    actix_web::rt::spawn(connection::run(
        state.get_ref().clone(),
        settings.get_ref().clone(),
        first,
        (session, frames),
        connection,
        state.presence.subscribe(user, TRANSPORT),
    ));
    Ok(response)
}

/// Refuses a browser's upgrade from a page on another origin. The server's
/// own origins are `http://` and `https://` plus the host the request was
/// addressed to: its `Host`, or the host a trusted proxy forwards
/// (`chat_http::forwarded`), never a forwarded host from anyone else, or a
/// client could name its own origin as the server's.
fn check_origin(
    req: &HttpRequest,
    settings: &Settings,
    config: &Config,
) -> Result<(), UpgradeError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let own = public_hosts(req, config)
        .into_iter()
        .flat_map(|host| [format!("http://{host}"), format!("https://{host}")]);
    let allowed = own.into_iter().any(|o| o.eq_ignore_ascii_case(origin))
        || settings
            .allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if allowed {
        Ok(())
    } else {
        Err(UpgradeError::CrossOrigin(origin.to_owned()))
    }
}
