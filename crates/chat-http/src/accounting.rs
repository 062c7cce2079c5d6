//! Counting what each transport puts on the wire.
//!
//! The contract counts request and response *heads* as well as bodies,
//! chunked-encoding framing and WebSocket frame headers, because that is
//! where the transports differ: a 100-byte message costs a few bytes of
//! framing on a WebSocket and a few hundred bytes of headers on a poll.
//!
//! actix-web does not report how many bytes it wrote, so this middleware
//! computes them from what it sees, following actix-http 3's HTTP/1.1
//! encoder line by line ([`response_head_len`]). A test in `chat-demo`
//! compares these counts with the bytes a raw TCP client actually reads.
//!
//! - Request head: `METHOD target HTTP/1.1\r\n`, one `name: value\r\n` per
//!   header, `\r\n`. Exact when the client writes `": "` between name and
//!   value, as browsers, curl and the Rust clients do.
//! - Request body: counted as the handler reads it, which also counts the
//!   WebSocket frames a client sends (headers and masks included).
//! - Response head: status line, the framing header actix adds, any
//!   `connection:` line, the handler's headers, `date:`, `\r\n`.
//! - Response body: every chunk, plus `{len:x}\r\n…\r\n` around each chunk
//!   and `0\r\n\r\n` at the end when the body is chunked. A WebSocket body is
//!   the raw frames after the 101, so it is counted as is.
//!
//! Over TLS, HTTP/1.1 is counted the same way: the bytes of HTTP/1.1 inside
//! the TLS records. Over HTTP/2 only bodies are counted (DATA frames'
//! payloads): heads are HPACK-compressed against what the connection sent
//! before, and frames interleave several transports' requests, so neither
//! can be known exactly from here. `/api/stats` says which applies
//! (`accounting.transports`) and gives the TLS sockets' exact totals beside
//! it ([`crate::stats::TlsCounters`]).

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{
    Payload, RequestHead, ResponseHead, Service, ServiceRequest, ServiceResponse, Transform,
};
use actix_web::http::ConnectionType;
use actix_web::http::{StatusCode, Version, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage};
use futures_util::Stream;

use crate::AppState;
use crate::stats::Stats;
use chat_protocol::Transport;

/// Middleware that counts a scope's traffic under `transport`. Mount it on
/// each transport's scope.
pub fn count_bytes<S>(
    transport: Transport,
) -> impl Transform<
    S,
    ServiceRequest,
    Response = ServiceResponse<Counted>,
    Error = Error,
    InitError = (),
> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    from_fn(move |req, next| count(Some(transport), req, next))
}

/// Middleware for `POST /api/messages`: the handler names the transport (from
/// the message's `via`) by inserting a [`Transport`] into the request's
/// extensions; requests that name none (`via: api`, refused bodies) are not
/// counted under any transport.
pub fn count_bytes_by_via<S>()
-> impl Transform<S, ServiceRequest, Response = ServiceResponse<Counted>, Error = Error, InitError = ()>
+ 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    from_fn(move |req, next| count(None, req, next))
}

async fn count(
    fixed: Option<Transport>,
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<Counted>, Error> {
    let Some(stats) = req.app_data::<Data<AppState>>().map(|s| s.stats.clone()) else {
        return Ok(next.call(req).await?.map_body(|_, b| Counted::uncounted(b)));
    };
    let version = req.version();
    // An HTTP/2 head travels HPACK-compressed, in a size that depends on what
    // the connection sent before: it is not counted at all, rather than
    // guessed (`accounting.transports` in `/api/stats` says so).
    let h2 = version == Version::HTTP_2;
    let head_in = if h2 { 0 } else { request_head_len(req.head()) };
    let request_conn = req.head().connection_type();

    // Count the body as the handler (or the WebSocket reader) pulls it.
    let body_in = Rc::new(Cell::new(0u64));
    let live = fixed.map(|t| (stats.clone(), t));
    let payload = req.take_payload();
    req.set_payload(Payload::Stream {
        payload: Box::pin(CountedPayload {
            inner: payload,
            read: body_in.clone(),
            live,
        }),
    });

    // A fixed transport's request is open from now until its body is sent
    // or the client goes away (the future, and with it the guard, is dropped).
    let open = fixed.map(|t| {
        let counters = stats.of(t);
        counters.requests.fetch_add(1, Relaxed);
        counters.open.fetch_add(1, Relaxed);
        counters.add_in(head_in);
        OpenGuard {
            stats: stats.clone(),
            transport: t,
        }
    });

    let res = next.call(req).await?;
    if h2 && (fixed.is_some() || res.request().extensions().contains::<Transport>()) {
        stats.tls.h2_requests.fetch_add(1, Relaxed);
    }
    let named = res.request().extensions().get::<Transport>().copied();
    let transport = match fixed {
        Some(t) => t,
        None => match named {
            Some(t) => {
                let counters = stats.of(t);
                counters.requests.fetch_add(1, Relaxed);
                counters.add_in(head_in + body_in.get() as usize);
                t
            }
            None => return Ok(res.map_body(|_, b| Counted::uncounted(b))),
        },
    };

    let chunked = version == Version::HTTP_11
        && res.status() != StatusCode::SWITCHING_PROTOCOLS
        && res.response().body().size() == BodySize::Stream;
    let head_out = if h2 {
        0
    } else {
        response_head_len(
            res.response().head(),
            res.response().body().size(),
            request_conn,
        )
    };
    stats.of(transport).add_out(head_out);
    Ok(res.map_body(|_, body| Counted {
        inner: body,
        chunked,
        target: Some((stats, transport)),
        _open: open,
    }))
}

/// Decrements a transport's `open` counter when dropped.
struct OpenGuard {
    stats: Arc<Stats>,
    transport: Transport,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.stats.of(self.transport).open.fetch_sub(1, Relaxed);
    }
}

/// A response body that counts the bytes it yields, with chunk framing.
pub struct Counted {
    inner: BoxBody,
    chunked: bool,
    target: Option<(Arc<Stats>, Transport)>,
    _open: Option<OpenGuard>,
}

impl Counted {
    fn uncounted(inner: BoxBody) -> Self {
        Counted {
            inner,
            chunked: false,
            target: None,
            _open: None,
        }
    }
}

impl MessageBody for Counted {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        if let Some((stats, transport)) = &this.target {
            let sent = match &polled {
                Poll::Ready(Some(Ok(chunk))) if this.chunked => chunk_len(chunk.len()),
                Poll::Ready(Some(Ok(chunk))) => chunk.len(),
                // The last chunk of a chunked body: `0\r\n\r\n`.
                Poll::Ready(None) if this.chunked => 5,
                _ => 0,
            };
            stats.of(*transport).add_out(sent);
        }
        polled
    }
}

/// Bytes a chunk of `n > 0` bytes takes in chunked encoding.
fn chunk_len(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let hex_digits = (usize::BITS - n.leading_zeros()).div_ceil(4) as usize;
    hex_digits + 2 + n + 2
}

/// A request body stream that counts the bytes read from it.
struct CountedPayload {
    inner: Payload,
    read: Rc<Cell<u64>>,
    live: Option<(Arc<Stats>, Transport)>,
}

impl Stream for CountedPayload {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.read.set(self.read.get() + chunk.len() as u64);
            if let Some((stats, transport)) = &self.live {
                stats.of(*transport).add_in(chunk.len());
            }
        }
        polled
    }
}

/// Bytes of a request head as an HTTP/1.1 client sends it.
pub fn request_head_len(head: &RequestHead) -> usize {
    let target = head
        .uri
        .path_and_query()
        .map_or(head.uri.path().len(), |pq| pq.as_str().len());
    let request_line = head.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = head
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line + headers + 2
}

/// Bytes of the response head actix-http 3 writes for `head` with a body of
/// `size`, on a connection whose request asked for `request_conn`. Mirrors
/// `actix_http::h1::encoder::MessageType::encode_headers`.
pub fn response_head_len(
    head: &ResponseHead,
    size: BodySize,
    request_conn: ConnectionType,
) -> usize {
    let status = head.status;
    let status_line = "HTTP/1.1 ".len() + 3 + 1 + head.reason().len();

    // Statuses that carry no body get no framing header at all.
    let no_body = matches!(
        status,
        StatusCode::CONTINUE
            | StatusCode::SWITCHING_PROTOCOLS
            | StatusCode::PROCESSING
            | StatusCode::NO_CONTENT
    );
    let size = if no_body { BodySize::None } else { size };
    // Headers a handler set for the framing are replaced by actix's own.
    let drop_framing_headers = no_body || size != BodySize::Stream || head.chunked();
    let framing = match size {
        BodySize::Stream if head.chunked() => "\r\ntransfer-encoding: chunked\r\n".len(),
        BodySize::Stream | BodySize::None => 2,
        BodySize::Sized(n) => "\r\ncontent-length: ".len() + n.to_string().len() + 2,
    };

    // A response that sets no connection type (or keep-alive) follows the
    // request's.
    let conn = match head.connection_type() {
        ConnectionType::KeepAlive => request_conn,
        other => other,
    };
    let advertises_upgrade = head.headers().contains_key(header::UPGRADE);
    let connection = match (conn, advertises_upgrade) {
        (ConnectionType::Close, true) => "connection: close, upgrade\r\n".len(),
        (ConnectionType::Upgrade, _) | (_, true) => "connection: upgrade\r\n".len(),
        (ConnectionType::Close, false) => "connection: close\r\n".len(),
        (ConnectionType::KeepAlive, false) => 0,
    };

    let mut has_date = false;
    let headers: usize = head
        .headers()
        .iter()
        .filter(|(name, _)| {
            *name != header::CONNECTION
                && !(drop_framing_headers
                    && (*name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING))
        })
        .map(|(name, value)| {
            has_date |= name == header::DATE;
            name.as_str().len() + 2 + value.len() + 2
        })
        .sum();
    // `date: Sat, 21 Nov 2026 04:48:27 GMT\r\n`
    let date = if has_date { 0 } else { "date: ".len() + 29 + 2 };

    status_line + framing + connection + headers + date + 2
}

#[cfg(test)]
mod tests {
    use super::chunk_len;

    #[test]
    fn chunk_framing_uses_hex_lengths() {
        assert_eq!(chunk_len(1), 1 + 2 + 1 + 2);
        assert_eq!(chunk_len(15), 1 + 2 + 15 + 2);
        assert_eq!(chunk_len(16), 2 + 2 + 16 + 2);
        assert_eq!(chunk_len(255), 2 + 2 + 255 + 2);
        assert_eq!(chunk_len(256), 3 + 2 + 256 + 2);
    }
}
