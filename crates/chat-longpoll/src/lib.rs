//! # Long polling: ask, and the server holds the answer until there is news
//!
//! Regular polling with one change: when nothing is new, the server does not
//! answer "nothing" at once. It holds the request until a message arrives or
//! `wait_s` seconds pass, then answers exactly like polling. The client asks
//! again the moment it has an answer, so there is almost always one request
//! waiting on the server, and a message reaches the client as soon as it is
//! stored.
//!
//! ## On the wire
//!
//! ```text
//! GET /longpoll/messages?since=16&wait_s=25 HTTP/1.1
//!                                   … held until message 17 is stored …
//! HTTP/1.1 200 OK
//! content-length: 121
//! content-type: application/json
//! cache-control: no-store
//! date: …
//!
//! {"messages":[{"id":17,…}],"cursor":17}
//! ```
//!
//! The body is the contract's page ([`chat_protocol::PageBody`]), the same as
//! polling's: long polling answers exactly like polling, only *when* differs. After `wait_s` (default 25, clamped to 1 to
//! 55, below the 60 s idle timeout of common proxies) the answer is an empty
//! list and the same cursor.
//!
//! ## What the server holds per client
//!
//! One parked future per held request: the request, and a receiver on the
//! store's watch channel. No thread and no task of its own, no timer wheel
//! entry beyond the one `sleep`. Every held request is woken by the append
//! that passes its cursor. If the client hangs up, actix drops the handler's
//! future, and with it the receiver: nothing is left behind (the
//! `open` counter in `/api/stats` and `Store::waiting` show it).
//!
//! ## What it costs
//!
//! A request and response head per *delivery* rather than per interval, and
//! one more per `wait_s` of silence. Messages that arrive while the answer
//! is on its way wait for the next request, so a burst is delivered in a few
//! large answers rather than one each.
//!
//! ## Disconnects and shutdown
//!
//! The cursor makes it lossless: a message stored between two requests is in
//! the next answer, because the client asks for everything after its cursor,
//! not for "what is new since you last answered me". On shutdown every held
//! request is answered at once (empty, same cursor), not cut, and the client
//! reconnects with the same cursor (to any server that shares the store).

use std::time::Duration;

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};

use chat_http::accounting::count_bytes;
use chat_http::api::page_answer;
use chat_http::presence;
use chat_http::{ApiError, AppState, Mount, Query, Transport};
use chat_protocol::limits::{DEFAULT_LONGPOLL_WAIT_S, LONGPOLL_WAIT_RANGE_S, MAX_PAGE};

/// This crate's transport.
pub const TRANSPORT: Transport = Transport::Longpoll;

/// Long polling's own flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "longpoll")]
#[command(next_help_heading = "Long polling")]
pub struct Settings {
    /// Seconds a long poll is held when the client names no `wait_s`.
    #[arg(long = "longpoll-wait", env = "CHAT_LONGPOLL_WAIT", default_value_t = DEFAULT_LONGPOLL_WAIT_S,
          value_parser = clap::value_parser!(u64).range(1..=55))]
    pub wait_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wait_s: DEFAULT_LONGPOLL_WAIT_S,
        }
    }
}

/// This transport with `settings`, for [`chat_http::start`] and `run_binary`.
pub fn mount(settings: Settings) -> Mount {
    let settings = Data::new(settings);
    Mount::new(TRANSPORT, move |cfg| routes(cfg, settings.clone()))
}

/// Adds `GET /longpoll/messages` to an app.
fn routes(cfg: &mut web::ServiceConfig, settings: Data<Settings>) {
    cfg.service(
        web::resource(TRANSPORT.route())
            .app_data(settings)
            .wrap(count_bytes(TRANSPORT))
            .route(web::get().to(messages)),
    );
}

/// `GET /longpoll/messages?since=N&wait_s=S`: everything after `N`, as soon
/// as there is something, or an empty list after `S` seconds.
async fn messages(
    req: HttpRequest,
    state: Data<AppState>,
    settings: Data<Settings>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let user = presence::user_of(&query)?;
    let since = query.since()?;
    let epoch = query.epoch()?;
    let limit = query.limit(MAX_PAGE)?;
    let wait = wait_time(&query, &settings)?;
    // Online while held, and for a while after (see `chat_http::presence`);
    // dropped with this future, however it ends.
    let _online = state.presence.open(user, TRANSPORT);

    let mut page = state.store.read_in(epoch.as_ref(), since, limit)?;
    if page.messages.is_empty() && page.missed == 0 && !page.reset {
        // Nothing yet: park until an append passes the cursor (or the ids
        // start again), the wait runs out, or the server shuts down. Dropping
        // this future (the client hung up) drops all three.
        let cursor = page.cursor;
        let held_in = page.epoch.clone();
        tokio::select! {
            _ = state.store.wait_beyond_in(&held_in, cursor) => {
                page = state.store.read_in(Some(&held_in), Some(cursor), limit)?;
            }
            _ = tokio::time::sleep(wait) => {}
            // Shutdown: answer now, with whatever was stored meanwhile (every
            // acknowledged send is stored by then).
            _ = state.shutdown.cancelled() => {
                page = state.store.read_in(Some(&held_in), Some(cursor), limit)?;
            }
        }
    }

    Ok(page_answer(state.stats.of(TRANSPORT), &page))
}

/// `wait_s`, clamped to [`LONGPOLL_WAIT_RANGE_S`]; the configured default
/// when absent.
fn wait_time(query: &Query, settings: &Settings) -> Result<Duration, ApiError> {
    let seconds = query
        .number::<u64>("wait_s")?
        .unwrap_or(settings.wait_s)
        .clamp(*LONGPOLL_WAIT_RANGE_S.start(), *LONGPOLL_WAIT_RANGE_S.end());
    Ok(Duration::from_secs(seconds))
}
