//! # Server-sent events: one long response, one event per message
//!
//! The browser opens `new EventSource("/sse/events?since=N")`: a plain GET
//! whose response never ends. The server writes one event per message as it
//! is stored, and the browser's `EventSource` parses them, remembers the last
//! `id:` it saw, and reconnects by itself with `Last-Event-ID` if the
//! connection drops. Sends go the other way over `POST /api/messages`.
//!
//! ## On the wire
//!
//! ```text
//! GET /sse/events?since=16 HTTP/1.1
//! accept: text/event-stream
//!
//! HTTP/1.1 200 OK
//! transfer-encoding: chunked
//! content-type: text/event-stream
//! content-encoding: identity
//! cache-control: no-cache
//! x-accel-buffering: no
//!
//! retry: 3172
//!
//! id: 17
//! data: {"id":17,"user":"ana","text":"hello","sent_at_ms":…,"via":"sse"}
//!
//! : keep-alive
//!
//! ```
//!
//! A message that arrives alone is a chunk of its own, so it costs its JSON
//! plus `id: 17\ndata: ` and `\n\n` (about 16 bytes) plus the chunk framing
//! (`52\r\n` … `\r\n`, 6 or 7 bytes); messages pending together (a burst,
//! a reader catching up) share one chunk, up to `--max-unsent` bytes. Each
//! message's event is built once, by the first stream that needs it, and
//! the same bytes are written to every stream (`chat_store::framing`).
//! A cursor that predates the history gets
//! `event: gap` with `data: {"missed":K}` first. When who is online changes,
//! `event: presence` with `data: {"users":[…]}` (a stream opened with
//! `user=ana` lists ana while it is open: `chat_http::presence`). After 15 s
//! without events a comment line keeps proxies and the browser from timing
//! the stream out. Each stream's `retry:` is drawn between
//! `--sse-retry-min` and `--sse-retry-max` (1 and 5 s), so that the streams
//! a restart ends do not all come back in the same instant.
//!
//! Three headers matter in production. `cache-control: no-cache` keeps caches
//! out. `x-accel-buffering: no` tells nginx not to buffer the response (it
//! would otherwise hold events until a buffer fills). And
//! `content-encoding: identity` makes actix-web's `Compress` middleware leave
//! the stream alone: a gzip encoder buffers its output, so a compressed event
//! stream delivers nothing until kilobytes have piled up.
//!
//! Event data is the store's JSON, which never contains a raw line break
//! (JSON escapes them), so a message whose text holds `\nid: 9` or
//! `\nevent: x` is still exactly one event with the right id. Should data
//! ever hold a line break, the encoder splits it into separate `data:` lines
//! rather than letting it inject a field. The encoder is actix-web-lab's
//! (its `Sse` body), run once per event rather than once per connection: a
//! message's event is kept beside it in the store and every stream sends
//! the same bytes (`connection::encode`).
//!
//! ## What the server holds per client
//!
//! An open response whose body is a feed (`chat_http::feed`): its cursor
//! into the store, its waker parked in the store's list between messages.
//! When actix asks for the next chunk, the body reads what the store holds
//! after its cursor and hands it over, every pending event in one chunk.
//! Beside it a small task (see `connection.rs`) that keeps the bounds below,
//! the presence list and the heartbeat; under traffic it wakes at most
//! about once a second, not once a message.
//!
//! ## Slow readers
//!
//! A client that stops reading stops actix from polling the response body:
//! the body's cursor stays where it is, and nothing piles up for it but what
//! actix's write buffer holds. The task checks, every second while messages
//! flow, how far the chat has moved on: once the client is more than
//! `--backlog` messages behind, the task resets the connection. The bytes
//! held for it are bounded too (`--max-unsent`): at the bound the body hands
//! over nothing more, and a client that leaves them unread for a few seconds
//! is reset as well. Other clients never wait for it.
//! Its `EventSource` reconnects with `Last-Event-ID` and catches up from the
//! store's history, losing nothing.
//!
//! ## Disconnects and shutdown
//!
//! When the client goes away the response body is dropped, and the task
//! ends. On shutdown every stream first gets what the
//! store holds (every send acknowledged before), then ends cleanly (the
//! final empty chunk is sent); the browser reconnects after `retry:` with its
//! `Last-Event-ID` (to any server that shares the store).

mod connection;

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};

use chat_http::accounting::count_bytes;
use chat_http::api::whole_number;
use chat_http::feed::Feed;
use chat_http::presence;
use chat_http::{ApiError, AppState, Connection, Mount, Query, Transport};
use chat_protocol::Cursor;
use chat_protocol::limits::DEFAULT_KEEPALIVE_S;

/// This crate's transport.
pub const TRANSPORT: Transport = Transport::Sse;
/// Messages read from the store at a time.
pub const BATCH: usize = 100;
/// The shortest `retry:` a stream opens with: how long a browser waits
/// before it reconnects, in milliseconds.
pub const DEFAULT_RETRY_MIN_MS: u64 = 1_000;
/// The longest. Each stream gets its own `retry:`, drawn uniformly between
/// the two, so that the streams a deploy ends all at once do not all come
/// back in the same moment (docs/pitfalls.md, "Every `EventSource`
/// reconnecting at once after a deploy", has the measurement).
pub const DEFAULT_RETRY_MAX_MS: u64 = 5_000;

/// SSE's own flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "sse")]
#[command(next_help_heading = "Server-sent events")]
pub struct Settings {
    /// Seconds of silence after which an SSE stream sends a keep-alive comment.
    #[arg(id = "sse_keepalive", long = "sse-keepalive", env = "CHAT_SSE_KEEPALIVE", default_value_t = DEFAULT_KEEPALIVE_S, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_s: u64,
    /// Shortest `retry:` (milliseconds) a stream tells its browser to wait
    /// before reconnecting; each stream gets a random one between this and
    /// `--sse-retry-max`. Equal values give every stream the same.
    #[arg(long = "sse-retry-min", env = "CHAT_SSE_RETRY_MIN", default_value_t = DEFAULT_RETRY_MIN_MS)]
    pub retry_min_ms: u64,
    /// Longest `retry:` (milliseconds); below `--sse-retry-min`, it is taken
    /// as equal to it.
    #[arg(long = "sse-retry-max", env = "CHAT_SSE_RETRY_MAX", default_value_t = DEFAULT_RETRY_MAX_MS)]
    pub retry_max_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keepalive_s: DEFAULT_KEEPALIVE_S,
            retry_min_ms: DEFAULT_RETRY_MIN_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
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

    /// A stream's `retry:`: uniform in `--sse-retry-min..=--sse-retry-max`.
    pub fn retry(&self) -> Duration {
        let max = self.retry_max_ms.max(self.retry_min_ms);
        Duration::from_millis(rand::random_range(self.retry_min_ms..=max))
    }
}

/// This transport with `settings`, for [`chat_http::start`] and `run_binary`.
pub fn mount(settings: Settings) -> Mount {
    let settings = Data::new(settings);
    Mount::new(TRANSPORT, move |cfg| routes(cfg, settings.clone()))
}

/// Adds `GET /sse/events` to an app.
fn routes(cfg: &mut web::ServiceConfig, settings: Data<Settings>) {
    cfg.service(
        web::resource(TRANSPORT.route())
            .app_data(settings)
            .wrap(count_bytes(TRANSPORT))
            .route(web::get().to(events)),
    );
}

/// `GET /sse/events?since=N`: an event stream of everything after `N`, then
/// every new message. `Last-Event-ID` (sent by a reconnecting browser) takes
/// precedence over `since`.
async fn events(
    req: HttpRequest,
    state: Data<AppState>,
    settings: Data<Settings>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let user = presence::user_of(&query)?;
    let since = match last_event_id(&req)? {
        Some(cursor) => Some(cursor),
        None => query.since()?,
    };
    // Read the first page here, so a bogus cursor is a 400, not a stream.
    let first = state.store.read_in(query.epoch()?.as_ref(), since, BATCH)?;

    // The body: `retry:` first, then the store's events after the cursor,
    // read by the body itself (see `chat_http::feed`).
    let retry = connection::retry_field(settings.retry());
    let (body, feed) = Feed::new(
        &req,
        state.get_ref().clone(),
        connection::FRAMES,
        first,
        BATCH,
        Some(retry),
    );
    let response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header(header::ContentEncoding::Identity)
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
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

/// The `Last-Event-ID` header as a cursor, if present.
fn last_event_id(req: &HttpRequest) -> Result<Option<Cursor>, ApiError> {
    let Some(value) = req.headers().get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| whole_number::<u64>(v.trim()))
        .map(|id| Some(Cursor(id)))
        .ok_or_else(|| ApiError::BadQuery {
            name: "Last-Event-ID",
            reason: format!("must be a message id, got {value:?}"),
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// The flags alone, as a binary would read them.
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        sse: super::Settings,
    }

    /// A keep-alive of 0 s is refused: it would send keep-alives in a loop.
    #[test]
    fn a_zero_keepalive_is_refused() {
        assert!(Flags::try_parse_from(["sse", "--sse-keepalive", "0"]).is_err());
        let flags = Flags::try_parse_from(["sse", "--sse-keepalive", "1"]).expect("1 s is fine");
        assert_eq!(flags.sse.keepalive(), std::time::Duration::from_secs(1));
    }
}
