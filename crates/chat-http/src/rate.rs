//! # Per-client limits: how fast a client may send, how much it may hold open
//!
//! Two limits, both keyed on who the client is: its address
//! ([`crate::forwarded::client_address`]: the peer's, or the one a trusted
//! proxy forwards) and, for sends, the user name it sends as.
//!
//! - **Send rate** (`POST /api/messages` and WebSocket `send` frames): a
//!   token bucket per client address (`--send-rate` per second, up to
//!   `--send-burst` at once) and another per user (`--user-send-rate`,
//!   `--user-send-burst`), kept by `governor`'s keyed limiters. A send must
//!   get a token from both. Over either, nothing is stored: a POST is
//!   answered `429` with `Retry-After` (whole seconds, rounded up) and the
//!   code `rate_limited`; a WebSocket gets an error frame with the same code
//!   and `retry_after_ms`, and stays open.
//! - **Open connections per client address** (`--max-connections-per-address`):
//!   requests in progress (a held long poll, an SSE or HTTP stream, a
//!   WebSocket, any request whose answer is not over) from one address.
//!   Beyond the cap a request is answered `429` and a WebSocket upgrade
//!   completes and closes at once with 1013 (try again later). Off by
//!   default: see [`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`].
//!
//! The defaults let the page's own controls through with room to spare:
//! every pane's `Burst 100` at once (600 sends from one address, as one
//! user) plus auto-send at 20 per second. `--no-client-limits` turns both
//! limits off, for load tests, whose thousands of clients all come from
//! 127.0.0.1 (the load generator's own servers start that way).
//!
//! The bookkeeping stays bounded: a bucket is only kept while it is not full
//! again (`retain_recent`, swept every [`SWEEP_EVERY`]), and an address's
//! connection count is removed when it drops to zero.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage, ResponseError};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use chat_protocol::Transport;

use crate::AppState;
use crate::api::ApiError;
use crate::forwarded::client_address;
use crate::stats::Refusals;

/// Sends per second one client address may make, sustained. Above what the
/// page makes (auto-send at 20 per second), with room for a few people
/// behind one address (a household, an office NAT).
pub const DEFAULT_SEND_RATE: u32 = 200;
/// Sends one client address may make at once. Every pane's `Burst 100`
/// pressed together is 600.
pub const DEFAULT_SEND_BURST: u32 = 2_000;
/// Sends per second one user name may make, sustained.
pub const DEFAULT_USER_SEND_RATE: u32 = 50;
/// Sends one user name may make at once: the page sends every pane's burst
/// as the same user, 600 in all.
pub const DEFAULT_USER_SEND_BURST: u32 = 1_000;
/// No cap on open connections per address by default: the server cannot
/// tell one client from a NAT of a hundred browsers (each page holds up to
/// six streams), and load tests open thousands from 127.0.0.1. The head and
/// body timeouts bound what a connection that sends nothing can hold; set a
/// cap where you know your clients.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 0;
/// How often buckets that are full again are forgotten.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The per-client limits' flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Per-client limits")]
pub struct LimitSettings {
    /// Sends per second one client address may make, sustained.
    #[arg(long, env = "CHAT_SEND_RATE", default_value_t = DEFAULT_SEND_RATE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub send_rate: u32,
    /// Sends one client address may make at once (the bucket's size).
    #[arg(long, env = "CHAT_SEND_BURST", default_value_t = DEFAULT_SEND_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub send_burst: u32,
    /// Sends per second one user name may make, sustained.
    #[arg(long, env = "CHAT_USER_SEND_RATE", default_value_t = DEFAULT_USER_SEND_RATE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub user_send_rate: u32,
    /// Sends one user name may make at once.
    #[arg(long, env = "CHAT_USER_SEND_BURST", default_value_t = DEFAULT_USER_SEND_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub user_send_burst: u32,
    /// Requests and streams one client address may hold open at once
    /// (then: 429, or WebSocket close 1013); 0: no cap.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    /// Turn every per-client limit off (send rates and the connection cap):
    /// for load tests, whose clients all share one address.
    #[arg(long, env = "CHAT_NO_CLIENT_LIMITS")]
    pub no_client_limits: bool,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            send_rate: DEFAULT_SEND_RATE,
            send_burst: DEFAULT_SEND_BURST,
            user_send_rate: DEFAULT_USER_SEND_RATE,
            user_send_burst: DEFAULT_USER_SEND_BURST,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            no_client_limits: false,
        }
    }
}

/// A send refused by a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// How long until a send would get a token.
    pub retry_after: Duration,
}

impl RateLimited {
    /// `Retry-After`'s value: whole seconds, rounded up, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }

    /// The WebSocket error frame's `retry_after_ms`: rounded up, at least 1.
    pub fn retry_after_ms(&self) -> u64 {
        self.retry_after.as_micros().div_ceil(1000).max(1) as u64
    }
}

/// The limits' state, shared by every worker.
#[derive(Debug)]
pub struct ClientLimits {
    /// Send buckets per client address (`None`: limits off).
    by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Send buckets per user name (`None`: limits off).
    by_user: Option<DefaultKeyedRateLimiter<String>>,
    /// The cap on open connections per address (0: none).
    max_open: usize,
    /// Open connections per address; an address leaves when its count is 0.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientLimits {
    /// The limits `settings` set.
    pub fn new(settings: &LimitSettings) -> Self {
        let on = !settings.no_client_limits;
        let quota = |rate: u32, burst: u32| {
            Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        ClientLimits {
            by_address: on
                .then(|| RateLimiter::keyed(quota(settings.send_rate, settings.send_burst))),
            by_user: on.then(|| {
                RateLimiter::keyed(quota(settings.user_send_rate, settings.user_send_burst))
            }),
            max_open: if on {
                settings.max_connections_per_address
            } else {
                0
            },
            open: Mutex::default(),
        }
    }

    /// Takes a token for one send from `address` as `user` (the name as
    /// sent; it is keyed as the store will store it), or says how long to
    /// wait. A name the store will refuse is limited by address only.
    pub fn check_send(&self, address: Option<IpAddr>, user: &str) -> Result<(), RateLimited> {
        if let (Some(limiter), Some(address)) = (&self.by_address, address) {
            limiter
                .check_key(&address)
                .map_err(|not_until| RateLimited {
                    retry_after: not_until.wait_time_from(limiter.clock().now()),
                })?;
        }
        if let (Some(limiter), Some(user)) = (&self.by_user, user_key(user)) {
            limiter.check_key(&user).map_err(|not_until| RateLimited {
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            })?;
        }
        Ok(())
    }

    /// Counts one more open connection from `address`, or refuses it when
    /// the address already holds the cap. The count drops when the returned
    /// slot is dropped.
    fn open(self: &Arc<Self>, address: IpAddr) -> Result<OpenSlot, ()> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_default();
        if *count >= self.max_open {
            if *count == 0 {
                open.remove(&address);
            }
            return Err(());
        }
        *count += 1;
        Ok(OpenSlot {
            limits: self.clone(),
            address,
        })
    }

    /// Forgets the buckets that are full again (a client that comes back
    /// starts with a full one, as if it had been remembered) and gives their
    /// memory back.
    pub fn sweep(&self) {
        if let Some(limiter) = &self.by_address {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.by_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many addresses and user names have a bucket, and how many
    /// addresses hold an open connection (with a cap set): the limits'
    /// memory, in entries.
    pub fn tracked(&self) -> (usize, usize, usize) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        (
            self.by_address.as_ref().map_or(0, |l| l.len()),
            self.by_user.as_ref().map_or(0, |l| l.len()),
            open.len(),
        )
    }
}

/// Takes a token for one send from `address` as `user` from `state`'s
/// limits, counting a refusal in `/api/stats`. `POST /api/messages` and
/// the WebSocket's `send` frames both ask here.
pub fn admit_send(
    state: &AppState,
    address: Option<IpAddr>,
    user: &str,
) -> Result<(), RateLimited> {
    state
        .limits
        .check_send(address, user)
        .inspect_err(|limited| {
            Refusals::count(&state.stats.refused.rate_limited);
            tracing::debug!(
                ?address,
                retry_after_ms = limited.retry_after_ms(),
                "send over the rate limit"
            );
        })
}

/// The name a user's bucket is kept under: the name as the store will
/// store it (trimmed of spaces and of characters that show nothing), so that
/// `ana` and ` ana\u{200B}` share one; `None` for a name the store refuses.
fn user_key(user: &str) -> Option<String> {
    chat_store::validate_user(user).ok()
}

/// Until the server shuts down: sweeps `state`'s limits every
/// [`SWEEP_EVERY`], and folds the metrics' histogram samples every
/// [`crate::metrics::UPKEEP_EVERY`] (so they hold no memory between scrapes).
pub(crate) async fn upkeep_until_shutdown(state: AppState) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut fold = tokio::time::interval(crate::metrics::UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = sweep.tick() => state.limits.sweep(),
            _ = fold.tick() => state.metrics.upkeep(),
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// One open connection of an address, counted until dropped.
#[derive(Debug)]
struct OpenSlot {
    limits: Arc<ClientLimits>,
    address: IpAddr,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Put in a WebSocket upgrade's extensions when its address is over the cap:
/// the transport completes the handshake and closes with 1013 at once.
#[derive(Debug, Clone, Copy)]
pub struct OverConnectionCap;

/// The middleware around the whole app that holds each request's place
/// under `--max-connections-per-address` until its answer is over (the end
/// of a stream's body, the close of a WebSocket), and refuses a request
/// beyond it: `429`, or, for a WebSocket upgrade, [`OverConnectionCap`].
/// Without a cap it only passes the request on.
pub(crate) async fn cap_connections(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let state = req.app_data::<Data<AppState>>().cloned();
    let Some(state) = state.filter(|state| state.limits.max_open > 0) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let Some(address) = client_address(req.request(), &state.config) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let slot = match state.limits.open(address) {
        Ok(slot) => Some(slot),
        Err(()) => {
            Refusals::count(&state.stats.refused.connections_capped);
            let upgrade = req.path() == Transport::Websocket.route()
                && req
                    .headers()
                    .get(header::UPGRADE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            tracing::info!(%address, upgrade, "over the connection cap");
            if !upgrade {
                let limit = state.limits.max_open;
                let refusal = ApiError::TooManyConnections { limit }.error_response();
                return Ok(req.into_response(refusal).map_into_right_body());
            }
            req.extensions_mut().insert(OverConnectionCap);
            None
        }
    };
    let res = next.call(req).await?;
    Ok(res
        .map_body(|_, body| {
            BoxBody::new(Slotted {
                body: body.boxed(),
                _slot: slot,
            })
        })
        .map_into_right_body())
}

/// A response body that holds its request's place under the connection cap
/// until it is over (sent, or dropped with its connection).
struct Slotted {
    body: BoxBody,
    _slot: Option<OpenSlot>,
}

impl MessageBody for Slotted {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
