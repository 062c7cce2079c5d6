//! # HTTP streaming (Comet): one response that never ends, one line per message
//!
//! Before server-sent events had a name, pages got pushed data by asking for
//! a response that the server simply never finished: a hidden "forever
//! iframe" fed `<script>` tags, or an `XMLHttpRequest` whose `responseText`
//! grew. Today the browser half is `fetch()` and a `ReadableStream`: the page
//! reads the body as it arrives and splits it into lines. There is no
//! browser-side protocol at all (no `EventSource`, no automatic reconnect, no
//! `Last-Event-ID`): the page does what SSE does for it, which is the lesson.
//!
//! ## On the wire
//!
//! ```text
//! GET /stream/messages?since=16 HTTP/1.1
//!
//! HTTP/1.1 200 OK
//! transfer-encoding: chunked
//! content-type: application/x-ndjson
//! content-encoding: identity
//! cache-control: no-cache
//! x-accel-buffering: no
//!
//! {"id":17,"user":"ana","text":"hello","sent_at_ms":…,"via":"stream"}
//! {"type":"ping"}
//! ```
//!
//! Newline-delimited JSON: one line per message, exactly the store's bytes
//! and `\n` (JSON escapes every line break inside a string, so a line is
//! always one message). Control lines have a `type`, which a message never
//! has: `{"type":"gap","missed":K}` when the cursor predates the history,
//! `{"type":"presence","users":[…]}` when who is online changes (a stream
//! opened with `user=ana` lists ana while it is open: `chat_http::presence`),
//! and `{"type":"ping"}` after 15 s without a line, so proxies and the client
//! can tell a quiet stream from a dead one. A message that arrives alone is a
//! chunk of its own: it costs its JSON, one newline and the chunk framing
//! (`5a\r\n` … `\r\n`), the cheapest framing of the HTTP transports: 14 to 15
//! bytes a message below SSE's `id:`/`data:` lines (measured by `compare`,
//! `docs/streaming.md`), which buy the browser's resume for free. Messages
//! that are pending together (a burst, or a reader catching up) go out as one
//! chunk, up to `--max-unsent` bytes, so they share its framing and a write.
//! Each message's line is built once, by the first stream that needs it, and
//! shared by all (`chat_store::framing`).
//!
//! The same three headers as SSE keep it moving through the network:
//! `cache-control: no-cache`, `x-accel-buffering: no` for nginx, and
//! `content-encoding: identity` so that a compression middleware leaves it
//! alone. A proxy that buffers or compresses it anyway holds every line
//! back; a client sees nothing arrive, and should fall back to long polling.
//!
//! ## What the server holds per client
//!
//! Exactly what SSE holds: an open response whose body reads the store at
//! its own cursor (`chat_http::feed`), parked on the store between messages,
//! and a small task beside it for the bounds, the presence list and the
//! heartbeat (`connection.rs`, SSE's skeleton).
//!
//! ## Slow readers, disconnects and shutdown
//!
//! Also SSE's: a client more than `--backlog` messages behind the live chat,
//! or that leaves `--max-unsent` bytes unread for a few seconds, is reset and
//! resumes with `since` from the last complete line it read. On shutdown the
//! response gets what the store holds, then ends cleanly (the final empty
//! chunk); the page
//! reconnects with its cursor after a backoff with jitter. Sends go through
//! `POST /api/messages` with `via: stream`.

mod connection;

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};

use chat_http::accounting::count_bytes;
use chat_http::feed::Feed;
use chat_http::presence;
use chat_http::{ApiError, AppState, Connection, Mount, Query, Transport};
use chat_protocol::limits::DEFAULT_KEEPALIVE_S;

/// This crate's transport.
pub const TRANSPORT: Transport = Transport::Stream;
/// Messages read from the store at a time.
pub const BATCH: usize = 100;

/// HTTP streaming's own flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stream")]
#[command(next_help_heading = "HTTP streaming")]
pub struct Settings {
    /// Seconds of silence after which a stream sends a `{"type":"ping"}` line.
    #[arg(id = "stream_keepalive", long = "stream-keepalive", env = "CHAT_STREAM_KEEPALIVE", default_value_t = DEFAULT_KEEPALIVE_S, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keepalive_s: DEFAULT_KEEPALIVE_S,
        }
    }
}

impl Settings {
    /// The keep-alive interval.
    pub fn keepalive(&self) -> Duration {
        // At least a second, even for settings built in code: a zero
        // interval would be a keep-alive in a loop.
        Duration::from_secs(self.keepalive_s.max(1))
    }
}

/// This transport with `settings`, for [`chat_http::start`] and `run_binary`.
pub fn mount(settings: Settings) -> Mount {
    let settings = Data::new(settings);
    Mount::new(TRANSPORT, move |cfg| routes(cfg, settings.clone()))
}

/// Adds `GET /stream/messages` to an app.
fn routes(cfg: &mut web::ServiceConfig, settings: Data<Settings>) {
    cfg.service(
        web::resource(TRANSPORT.route())
            .app_data(settings)
            .wrap(count_bytes(TRANSPORT))
            .route(web::get().to(lines)),
    );
}

/// `GET /stream/messages?since=N`: a stream of JSON lines, everything after
/// `N`, then every new message.
async fn lines(
    req: HttpRequest,
    state: Data<AppState>,
    settings: Data<Settings>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let user = presence::user_of(&query)?;
    // Read the first page here, so a bogus cursor is a 400, not a stream.
    let first = state
        .store
        .read_in(query.epoch()?.as_ref(), query.since()?, BATCH)?;

    // The body: the store's lines after the cursor, read by the body itself
    // (see `chat_http::feed`).
    let (body, feed) = Feed::new(
        &req,
        state.get_ref().clone(),
        connection::FRAMES,
        first,
        BATCH,
        None,
    );
    let response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-ndjson"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .insert_header((
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        ))
        .insert_header(("x-accel-buffering", "no"))
        .body(body);
    let (connection, response) = Connection::serve(&req, response);
    actix_web::rt::spawn(connection::run(
        state.get_ref().clone(),
        settings.get_ref().clone(),
        feed,
        connection,
        state.presence.subscribe(user, TRANSPORT),
    ));
    Ok(response)
}
