//! # Regular polling: ask, get an answer at once, ask again
//!
//! The oldest way to make a page feel live, and still the most robust: the
//! browser asks `GET /polling/messages?since=N` every few seconds and the
//! server answers at once with whatever arrived after message `N`.
//!
//! ## On the wire
//!
//! ```text
//! GET /polling/messages?since=16 HTTP/1.1            (every interval)
//!
//! HTTP/1.1 200 OK
//! content-length: 121
//! content-type: application/json
//! cache-control: no-store
//! date: …
//!
//! {"messages":[{"id":17,"user":"ana","text":"hello","sent_at_ms":…,"via":"sse"}],"cursor":17}
//! ```
//!
//! The message objects are the store's bytes, copied into the array as they
//! are; `cursor` is what the client sends as `since` next time. A client whose
//! cursor predates the retained history gets `"missed":K` beside `messages`.
//! A full page (`limit`, at most 500) means "ask again at once".
//!
//! ## What the server holds per client
//!
//! Nothing. Between polls a client is just a number it keeps itself. That is
//! the whole appeal: any server that shares the store can answer any poll.
//! (This project's store lives in the server's memory, so a restart loses
//! the history: a client whose cursor is then ahead of the newest id gets
//! `400 cursor_ahead` and starts over, as the page does.)
//!
//! ## What it costs
//!
//! A full request and response head (a few hundred bytes) per poll, whether
//! or not anything happened: most polls come back empty (`empty_responses` in
//! `/api/stats`), and a message waits on average half an interval before
//! anyone sees it. Shorter intervals buy latency with requests.
//!
//! ## Disconnects and shutdown
//!
//! There is no connection to lose. A failed poll is retried with the same
//! cursor, so nothing is missed and nothing is seen twice. On shutdown a poll
//! in flight is answered; the next one fails to connect and is retried.

use actix_web::http::header;
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use bytes::{BufMut, Bytes, BytesMut};

use chat_http::accounting::count_bytes;
use chat_http::config::MAX_PAGE;
use chat_http::{ApiError, AppState, Mount, Query, Transport};
use chat_store::Page;

/// Where this transport is mounted.
pub const PREFIX: &str = "/polling";

/// This transport, for [`chat_http::start`] and `run_binary`.
pub const MOUNT: Mount = Mount {
    transport: Transport::Polling,
    routes,
};

/// Adds `GET /polling/messages` to an app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .wrap(count_bytes(Transport::Polling))
            .route("/messages", web::get().to(messages)),
    );
}

/// `GET /polling/messages?since=N&limit=L`: everything after `N`, now.
async fn messages(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let since = query.since()?;
    let limit = page_limit(&query)?;
    let page = state.store.read(since, limit)?;
    Ok(page_response(&state, Transport::Polling, &page))
}

/// The `limit` parameter: 1 to [`MAX_PAGE`], larger values clamped.
pub fn page_limit(query: &Query) -> Result<usize, ApiError> {
    match query.number::<usize>("limit")? {
        None => Ok(MAX_PAGE),
        Some(0) => Err(ApiError::BadQuery {
            name: "limit",
            reason: format!("must be 1 to {MAX_PAGE}, got 0"),
        }),
        Some(n) => Ok(n.min(MAX_PAGE)),
    }
}

/// The answer to a poll (regular or long): `{"messages":[…],"cursor":C}`,
/// with `"missed":K` when the cursor predated the history.
pub fn page_response(state: &AppState, transport: Transport, page: &Page) -> HttpResponse {
    let counters = state.stats.of(transport);
    if page.messages.is_empty() {
        counters.empty();
    } else {
        counters.delivered(page.messages.len());
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(page_body(page))
}

/// Builds the JSON of a page around the stored bytes, without re-encoding them.
pub fn page_body(page: &Page) -> Bytes {
    let payload: usize = page.messages.iter().map(|m| m.json.len() + 1).sum();
    let mut body = BytesMut::with_capacity(payload + 64);
    body.put_slice(b"{\"messages\":[");
    for (i, message) in page.messages.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(&message.json);
    }
    body.put_slice(format!("],\"cursor\":{}", page.cursor).as_bytes());
    if page.missed > 0 {
        body.put_slice(format!(",\"missed\":{}", page.missed).as_bytes());
    }
    body.put_u8(b'}');
    body.freeze()
}
