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
//! `{"type":"gap","missed":K}`, `{"type":"ack",…}` after a send from this
//! socket, and `{"type":"error","code":…,"message":…}` for a refused send
//! (the socket stays open). Sends get the same validation and idempotency
//! as `POST /api/messages`, with `via` set to `websocket`.
//!
//! ## What the server holds per client
//!
//! The socket, actix-ws's outgoing channel (32 frames), and one task that
//! `select!`s over the client's frames, the store's news, the ping timer
//! and shutdown (see `connection.rs`).
//!
//! ## Origins
//!
//! Browsers let any page open a WebSocket to any host, with the user's
//! cookies, and only tell the server who asked through `Origin`. A server
//! that does not check it can be driven by any site the user visits
//! (cross-site WebSocket hijacking). An upgrade whose `Origin` is neither
//! this server's own nor in `--allowed-origins` is refused with 403.
//! Non-browser clients send no `Origin` and are let through: the check
//! protects browsers' users, it is not authentication.
//!
//! ## Heartbeats, limits, slow readers
//!
//! The server pings every 15 s and closes a socket that has sent nothing,
//! not even a pong, for 30 s: the only way to notice a client that vanished
//! without a close (a laptop lid, a dead NAT mapping). A frame over
//! `--ws-max-frame` closes the socket with 1009. A client that stops reading
//! is reset once it is more than `--backlog` messages behind, exactly as for
//! SSE, and resumes with `since` from the last id it saw.
//!
//! ## Disconnects and shutdown
//!
//! A client's close frame is echoed and the task ends. On shutdown every
//! socket is closed with 1001 (going away); clients reconnect with `since`
//! set to the last id they saw, so nothing is lost or repeated.

mod connection;

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse, http::header};

use chat_http::accounting::count_bytes;
use chat_http::{ApiError, AppState, Config, ConnectionHandle, Mount, Query, Transport};

/// Where this transport is mounted.
pub const PREFIX: &str = "/ws";
/// Messages read from the store at a time.
pub const BATCH: usize = 100;

/// This transport, for [`chat_http::start`] and `run_binary`.
pub const MOUNT: Mount = Mount {
    transport: Transport::Websocket,
    routes,
};

/// Adds `GET /ws` to an app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .wrap(count_bytes(Transport::Websocket))
            .route("", web::get().to(upgrade)),
    );
}

/// `GET /ws?since=N`: checks the origin and the cursor, completes the
/// handshake, and hands the socket to its own task.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &state.config)?;
    let since = Query::parse(&req)?.since()?;
    // Read the first page before upgrading, so a bogus cursor is a 400.
    let first = state.store.read(since, BATCH)?;

    let (response, session, frames) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::NotWebSocket(e.to_string()))?;
    let frames = frames
        .max_frame_size(state.config.ws_max_frame)
        .aggregate_continuations()
        .max_continuation_size(state.config.ws_max_frame);
    // actix-ws's frame stream is tied to this worker thread, hence a local task.
    actix_web::rt::spawn(connection::run(
        state.get_ref().clone(),
        first,
        session,
        frames,
        ConnectionHandle::of(&req),
    ));
    Ok(response)
}

/// Refuses a browser's upgrade from a page on another origin.
fn check_origin(req: &HttpRequest, config: &Config) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = req.connection_info().host().to_owned();
    let own = [format!("http://{host}"), format!("https://{host}")];
    let allowed = own.iter().any(|o| o.eq_ignore_ascii_case(origin))
        || config
            .allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::CrossOrigin(origin.to_owned()))
    }
}
