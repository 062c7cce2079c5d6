//! The endpoints every server has, whatever transports it mounts:
//! `POST /api/messages` and `GET /api/stats`, plus the error type, query
//! parsing and JSON parsing the transports share.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use actix_web::http::{StatusCode, header};
use actix_web::web::{self, Data};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;

use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};

use chat_protocol::{ConfigBody, ErrorBody, SendRequest, StatsBody, StoreSnapshot, Transport};
use chat_store::{Appended, Cursor, CursorError, Epoch, NewMessage, SendError, SendFailure, Via};

use crate::AppState;
use crate::accounting::count_bytes_by_via;
use crate::forwarded::client_address;
use crate::limits;
use crate::rate::RateLimited;
use crate::stats::Refusals;

/// Every way a request can be refused. Each maps to a status and a JSON body
/// `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON of the expected shape.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The message breaks a rule of the store.
    #[error(transparent)]
    Invalid(#[from] SendError),
    /// `via` names a transport whose clients do not send with a POST.
    #[error("via {0} does not send with a POST: that transport sends over its own connection")]
    InvalidVia(&'static str),
    /// The body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request is not `Content-Type: application/json`.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The body could not be read.
    #[error("could not read the request body: {0}")]
    Payload(String),
    /// The body did not arrive within `--body-timeout`.
    #[error("the request body did not arrive within {seconds} s")]
    BodyTimeout {
        /// The timeout.
        seconds: u64,
    },
    /// The request head is larger than [`limits::MAX_REQUEST_HEAD`].
    #[error("the request head is larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The server is shutting down: nothing is stored any more.
    #[error("the server is shutting down; send again once it is back, or to another instance")]
    ShuttingDown,
    /// A query parameter is not what it must be.
    #[error("{name} {reason}")]
    BadQuery {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The cursor is ahead of the newest message.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The shared log cannot be reached: nothing was stored.
    #[error("the message store is unavailable; try again: {0}")]
    StoreUnavailable(String),
    /// A send over a rate limit (see [`crate::rate`]): nothing was stored.
    #[error("too many messages: try again in {} ms", .0.retry_after_ms())]
    RateLimited(RateLimited),
    /// The client's address holds `--max-connections-per-address` already.
    #[error("this address holds {limit} open connections already")]
    TooManyConnections {
        /// The cap.
        limit: usize,
    },
}

impl From<SendFailure> for ApiError {
    fn from(failure: SendFailure) -> Self {
        match failure {
            SendFailure::Invalid(e) => ApiError::Invalid(e),
            SendFailure::Unavailable(reason) => ApiError::StoreUnavailable(reason),
        }
    }
}

impl ApiError {
    /// The machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Invalid(e) => e.code(),
            ApiError::InvalidVia(_) => "invalid_via",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Payload(_) => "bad_body",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::HeadTooLarge { .. } => "head_too_large",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::BadQuery { .. } => "invalid_query",
            ApiError::Cursor(_) => "cursor_ahead",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::TooManyConnections { .. } => "too_many_connections",
        }
    }
}

/// The contract's error answer: `status` and `{"error":{"code","message"}}`,
/// never cached. Every error type of every transport answers through it.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .json(ErrorBody::new(code, message))
}

/// `X-Content-Type-Options: nosniff` on every JSON answer: a browser must
/// never read one as HTML or script, whatever text a user put in it.
pub const NOSNIFF: (header::HeaderName, &str) = (header::X_CONTENT_TYPE_OPTIONS, "nosniff");

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::StoreUnavailable(_) | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RateLimited(_) | ApiError::TooManyConnections { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = error_response(self.status_code(), self.code(), &self.to_string());
        if let ApiError::RateLimited(limited) = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(limited.retry_after_s()),
            );
        }
        response
    }
}

/// A `200` JSON answer that no cache may keep (a page of messages, a
/// count): every answer about the chat is stale a moment later.
pub fn fresh_json(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .body(body)
}

/// The answer to a poll: the page's body around the stored bytes
/// (`{"messages":[…],"cursor":C}`, with the gap and reset notices), counted
/// under `counters` as messages delivered or an empty answer.
pub fn page_answer(counters: &crate::Counters, page: &chat_store::Page) -> HttpResponse {
    counters.delivered_page(page);
    let messages = page.messages.iter().map(|m| &m.json[..]);
    let reset = page.reset.then_some(&page.epoch);
    fresh_json(chat_protocol::PageBody::write(
        messages,
        page.cursor,
        page.missed,
        reset,
    ))
}

/// Mounts `POST /api/messages`, `GET /api/stats`, `GET /api/config` and
/// `GET /metrics` (counted under no transport).
pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/messages")
            .wrap(count_bytes_by_via())
            .route(web::post().to(send)),
    )
    .service(web::resource("/api/stats").route(web::get().to(stats)))
    .service(web::resource("/api/config").route(web::get().to(config)))
    .service(web::resource("/metrics").route(web::get().to(crate::metrics::scrape)))
    .service(web::scope("/api").default_service(web::to(not_found)));
}

/// Any other path under `/api`: a JSON 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header(NOSNIFF)
        .json(ErrorBody::new(
            "not_found",
            &format!("no route for {} {}", req.method(), req.path()),
        ))
}

/// `POST /api/messages`: store a message, answer 201 with it (or 200 with the
/// one stored before under the same `client_msg_id`).
async fn send(
    req: HttpRequest,
    state: Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if state.sends.is_closing() {
        return Err(ApiError::ShuttingDown);
    }
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // Refuse from the head alone when the client announces too much, so the
    // answer goes out while it is still sending (the server's guard does
    // this for every route; an app without it still gets it here).
    limits::refuse_from_head(req.head(), &state)?;
    // The body must arrive within the timeout, and is not waited for once
    // shutdown has begun.
    let body = tokio::select! {
        read = read_body(payload, state.config.max_body) => read,
        _ = tokio::time::sleep(state.config.body_timeout()) => {
            Refusals::count(&state.stats.refused.body_timeouts);
            tracing::info!(timeout_s = state.config.body_timeout, "request body timed out");
            Err(ApiError::BodyTimeout { seconds: state.config.body_timeout })
        }
        _ = state.sends.closing() => Err(ApiError::ShuttingDown),
    }?;
    let parsed: SendRequest = parse_object(&body)?;
    let via = parsed.via.unwrap_or(Via::Api);
    // Tell the byte counter which transport this send belongs to.
    if let Some(transport) = Transport::from_via(via) {
        if !transport.sends_by_post() {
            return Err(ApiError::InvalidVia(transport.as_str()));
        }
        req.extensions_mut().insert(transport);
    }
    // Counted under its transport (above) even when refused here.
    let address = client_address(&req, &state.config);
    crate::rate::admit_send(&state, address, &parsed.user).map_err(ApiError::RateLimited)?;

    // Stored and acknowledged only while the gate is open (see `shutdown`).
    let permit = state.sends.enter().await.ok_or(ApiError::ShuttingDown)?;
    let appended = state
        .log
        .send(NewMessage {
            user: parsed.user,
            text: parsed.text,
            client_msg_id: parsed.client_msg_id,
            via,
        })
        .await?;
    permit.acked(appended.message().id);
    let status = match appended {
        Appended::Created(_) => StatusCode::CREATED,
        Appended::Existing(_) => StatusCode::OK,
    };
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .body(appended.message().json.clone()))
}

/// Reads a request body of at most `limit` bytes.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Payload(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses `json` as a `T` that must be written as a JSON *object*.
///
/// serde lets a struct be read from a sequence of its fields in order, so
/// `["ana","hi"]` would otherwise pass for `{"user":"ana","text":"hi"}`; the
/// contract's messages and frames are objects, and nothing else is one.
pub fn parse_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<Object<T>>(json)
        .map(|object| object.0)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// A `T` read only from a JSON object.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(OnlyMaps(PhantomData))
            .map(Object)
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.type_() == "application" && m.subtype() == "json")
}

/// `GET /api/stats`: every transport's counters and the store's.
async fn stats(state: Data<AppState>) -> HttpResponse {
    let store = state.store.stats();
    HttpResponse::Ok()
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .json(StatsBody {
            transports: state.stats.snapshot(),
            store: StoreSnapshot {
                last_id: store.last_id,
                retained: store.retained as u64,
                epoch: store.epoch,
                backend: state.log.backend().to_owned(),
            },
            accounting: state.stats.tls.snapshot(),
            refused: state.stats.refusals(),
        })
}

/// `GET /api/config`: what the page needs to know about this server: which
/// transports it mounts (a transport's own binary mounts one) and the longest
/// text it accepts.
async fn config(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .json(ConfigBody {
            transports: state.transports.to_vec(),
            epoch: state.store.epoch(),
            instance: state.instance.to_string(),
            max_text: state.config.max_text,
            max_body: state.config.max_body,
        })
}

/// A request's query parameters, parsed strictly: a parameter that is present
/// but malformed, or given twice, is an error, never silently ignored (nor
/// silently the last of two).
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses the query string of `req` (percent-decoded, `+` as a space);
    /// a name or value whose decoded bytes are not UTF-8 is refused.
    pub fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        // serde_urlencoded decodes lossily: `user=a%FF` would be `a\u{FFFD}`,
        // a name nobody typed. Bytes that are not UTF-8 are refused instead.
        for pair in req.query_string().split('&') {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(pair).collect();
            if std::str::from_utf8(&bytes).is_err() {
                return Err(ApiError::BadQuery {
                    name: "query",
                    reason: format!("{pair:?} is not UTF-8 once percent-decoded"),
                });
            }
        }
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::BadQuery {
                name: "query",
                reason: format!("is not a valid query string: {e}"),
            })?;
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(ApiError::BadQuery {
                    name: "query",
                    reason: format!("gives {name:?} more than once"),
                });
            }
            params.insert(name, value);
        }
        Ok(Query(params))
    }

    /// `limit`, the size of a page: 1 to `max`, larger values clamped, `max`
    /// when absent.
    pub fn limit(&self, max: usize) -> Result<usize, ApiError> {
        match self.number::<usize>("limit")? {
            None => Ok(max),
            Some(0) => Err(ApiError::BadQuery {
                name: "limit",
                reason: format!("must be 1 to {max}, got 0"),
            }),
            Some(n) => Ok(n.min(max)),
        }
    }

    /// `epoch`, the numbering the client's cursor belongs to, if given.
    pub fn epoch(&self) -> Result<Option<Epoch>, ApiError> {
        match self.0.get("epoch") {
            None => Ok(None),
            Some(raw) => Epoch::parse(raw).map(Some).map_err(|e| ApiError::BadQuery {
                name: "epoch",
                reason: e.to_string(),
            }),
        }
    }

    /// A parameter's text, if present (percent-decoded).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `since`, the cursor every transport takes.
    pub fn since(&self) -> Result<Option<Cursor>, ApiError> {
        Ok(self.number::<u64>("since")?.map(Cursor))
    }

    /// A whole-number parameter, if present (see [`whole_number`]).
    pub fn number<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(raw) => whole_number(raw)
                .map(Some)
                .ok_or_else(|| ApiError::BadQuery {
                    name,
                    reason: format!(
                        "must be a whole number (ASCII digits) that fits in 64 bits, got {raw:?}"
                    ),
                }),
        }
    }
}

/// `raw` as a whole number if it is one or more ASCII digits and fits in a
/// `T`. Rust's own parsing also takes a leading `+` (`%2B1` in a query),
/// which the contract does not.
pub fn whole_number<T: FromStr>(raw: &str) -> Option<T> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}
