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

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};

use chat_http::accounting::count_bytes;
use chat_http::api::page_answer;
use chat_http::presence;
use chat_http::{ApiError, AppState, Mount, Query, Transport};
use chat_protocol::limits::MAX_PAGE;

/// This crate's transport.
pub const TRANSPORT: Transport = Transport::Polling;

/// This transport, for [`chat_http::start`] and `run_binary`. Regular
/// polling has no settings of its own.
pub fn mount() -> Mount {
    Mount::new(TRANSPORT, routes)
}

/// Adds `GET /polling/messages` to an app.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(TRANSPORT.route())
            .wrap(count_bytes(TRANSPORT))
            .route(web::get().to(messages)),
    );
}

/// `GET /polling/messages?since=N&epoch=E&limit=L`: everything after `N`,
/// now (from the start, with a reset notice, if `E` is not the store's epoch).
async fn messages(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let user = presence::user_of(&query)?;
    let since = query.since()?;
    let epoch = query.epoch()?;
    let limit = query.limit(MAX_PAGE)?;
    let page = state.store.read_in(epoch.as_ref(), since, limit)?;
    // Online for a while after each poll (see `chat_http::presence`).
    if let Some(user) = user {
        state.presence.seen(&user, TRANSPORT);
    }

    Ok(page_answer(state.stats.of(TRANSPORT), &page))
}
