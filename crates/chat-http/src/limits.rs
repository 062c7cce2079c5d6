//! What a request may be, decided from its head alone, before a byte of its
//! body is read: how large its head is, how large a body it announces.
//!
//! Two places ask, with the same function ([`refuse_from_head`]):
//!
//! - the **guard** wrapped around the whole app, for every request;
//! - the **`Expect: 100-continue` service**. A client that sends
//!   `Expect: 100-continue` waits for `100 Continue` before it sends its
//!   body. actix-http writes that `100` *before* it calls the app, as soon as
//!   its expect service lets the request through, so an app that refuses
//!   the body (413) is too late: the client has been told to go ahead and
//!   may already be sending 10 GB. This service refuses from the head
//!   instead, and then no `100` is sent at all.
//!
//! The body's own limits (its size as it arrives, its timeout) are in
//! `api.rs`, where the one route that takes a body reads it.

use actix_http::{Request, Response};
use actix_service::{ServiceFactory, fn_service};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, ResponseError};

use crate::AppState;
use crate::accounting::request_head_len;
use crate::api::ApiError;
use crate::stats::Refusals;

/// Largest request head, in bytes (request line and headers), answered with
/// 431 beyond. Browsers send 1 to 2 KB, cookies included; nginx's default
/// is 8 KiB per header line. actix-http itself refuses only past 128 KiB,
/// and with 96 headers at most, so a client could make every request carry
/// 100 KiB the server parses, keeps and logs.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Refuses a request from its head alone: 431 if the head is larger than
/// [`MAX_REQUEST_HEAD`], 413 if it announces a body (`Content-Length`)
/// larger than `--max-body`. No route of the server takes a larger body, so
/// the rule holds for every path.
pub fn refuse_from_head(head: &RequestHead, state: &AppState) -> Result<(), ApiError> {
    if request_head_len(head) > MAX_REQUEST_HEAD {
        Refusals::count(&state.stats.refused.heads_too_large);
        return Err(ApiError::HeadTooLarge {
            limit: MAX_REQUEST_HEAD,
        });
    }
    let limit = state.config.max_body;
    let announced = head
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(())
}

/// The guard around the whole app: [`refuse_from_head`] for every request.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let refused = match req.app_data::<Data<AppState>>() {
        Some(state) => refuse_from_head(req.head(), state).err(),
        None => None,
    };
    match refused {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

/// The `Expect: 100-continue` service: lets a request through (and so gets
/// it its `100 Continue`) only if [`refuse_from_head`] would, and while sends
/// are taken; otherwise its refusal is the answer, with no `100` before it.
pub(crate) fn expect_continue(
    state: AppState,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = Request,
    Error = Response<BoxBody>,
    InitError = (),
> + Clone {
    fn_service(move |req: Request| {
        let refused = refuse_from_head(req.head(), &state)
            .err()
            .or_else(|| state.sends.is_closing().then_some(ApiError::ShuttingDown));
        async move {
            match refused {
                None => Ok(req),
                Some(e) => Err(Response::from(e.error_response())),
            }
        }
    })
}
