//! The endpoints every server has, whatever transports it mounts:
//! `POST /api/messages` and `GET /api/stats`, plus the error type and query
//! parsing the transports share.

use std::collections::HashMap;
use std::str::FromStr;

use actix_web::http::{StatusCode, header};
use actix_web::web::{self, Data};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;

use chat_protocol::{ConfigBody, ErrorBody, SendRequest, StatsBody, StoreSnapshot, Transport};
use chat_store::{Appended, Cursor, CursorError, Epoch, NewMessage, SendError, SendFailure, Via};

use crate::AppState;
use crate::accounting::count_bytes_by_via;

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
            ApiError::BadQuery { .. } => "invalid_query",
            ApiError::Cursor(_) => "cursor_ahead",
            ApiError::StoreUnavailable(_) => "store_unavailable",
        }
    }
}

/// The contract's error answer: `status` and `{"error":{"code","message"}}`,
/// never cached. Every error type of every transport answers through it.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .json(ErrorBody::new(code, message))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        error_response(self.status_code(), self.code(), &self.to_string())
    }
}

/// A `200` JSON answer that no cache may keep (a page of messages, a
/// count): every answer about the chat is stale a moment later.
pub fn fresh_json(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(body)
}

/// Mounts `POST /api/messages` and `GET /api/stats`.
pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/messages")
            .wrap(count_bytes_by_via())
            .route(web::post().to(send)),
    )
    .service(web::resource("/api/stats").route(web::get().to(stats)))
    .service(web::resource("/api/config").route(web::get().to(config)))
    .service(web::scope("/api").default_service(web::to(not_found)));
}

/// Any other path under `/api`: a JSON 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody::new(
        "not_found",
        &format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// `POST /api/messages`: store a message, answer 201 with it (or 200 with the
/// one stored before under the same `client_msg_id`).
async fn send(
    req: HttpRequest,
    state: Data<AppState>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.config.max_body;
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // Refuse from the head alone when the client announces too much, so the
    // answer goes out while it is still sending.
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|len| len > limit as u64)
    {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Payload(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    let parsed: SendRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let via = parsed.via.unwrap_or(Via::Api);
    // Tell the byte counter which transport this send belongs to.
    if let Some(transport) = Transport::from_via(via) {
        if !transport.sends_by_post() {
            return Err(ApiError::InvalidVia(transport.as_str()));
        }
        req.extensions_mut().insert(transport);
    }

    let appended = state
        .log
        .send(NewMessage {
            user: parsed.user,
            text: parsed.text,
            client_msg_id: parsed.client_msg_id,
            via,
        })
        .await?;
    let status = match appended {
        Appended::Created(_) => StatusCode::CREATED,
        Appended::Existing(_) => StatusCode::OK,
    };
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(appended.message().json.clone()))
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
        .json(StatsBody {
            transports: state.stats.snapshot(),
            store: StoreSnapshot {
                last_id: store.last_id,
                retained: store.retained as u64,
                epoch: store.epoch,
                backend: state.log.backend().to_owned(),
            },
        })
}

/// `GET /api/config`: what the page needs to know about this server: which
/// transports it mounts (a transport's own binary mounts one) and the longest
/// text it accepts.
async fn config(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .json(ConfigBody {
            transports: state.transports.to_vec(),
            epoch: state.store.epoch(),
            instance: state.instance.to_string(),
            max_text: state.config.max_text,
            max_body: state.config.max_body,
        })
}

/// A request's query parameters, parsed strictly: a parameter that is present
/// but malformed is an error, never silently ignored.
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses the query string of `req`.
    pub fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(req.query_string())
            .map(Query)
            .map_err(|e| ApiError::BadQuery {
                name: "query",
                reason: format!("is not a valid query string: {e}"),
            })
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

    /// `since`, the cursor every transport takes.
    pub fn since(&self) -> Result<Option<Cursor>, ApiError> {
        Ok(self.number::<u64>("since")?.map(Cursor))
    }

    /// A whole-number parameter, if present.
    pub fn number<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(raw) => raw.parse::<T>().map(Some).map_err(|_| ApiError::BadQuery {
                name,
                reason: format!("must be a whole number that fits in 64 bits, got {raw:?}"),
            }),
        }
    }
}
