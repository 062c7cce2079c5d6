//! # chat-client: the chat's transports from Rust, behind one interface
//!
//! The tests, the benches and the load generator talk to the servers through
//! this crate, so every one of them exercises the same client logic the page
//! has in JavaScript:
//!
//! - [`Client::send`] sends a message: `POST /api/messages`, or a `send`
//!   frame over a WebSocket when `via` is `websocket`. With a
//!   `client_msg_id`, a retried send is stored once.
//! - [`Client::subscribe`] opens a [`Subscription`] on any [`Transport`];
//!   [`Subscription::next`] yields [`Event`]s in id order.
//! - [`Client::subscribe_auto`] opens one that chooses its transport by
//!   itself and falls back when a network in between breaks one (below).
//!
//! ## Resuming without loss
//!
//! A subscription keeps a [`Cursor`]: the id of the last message it handed
//! out. Every request (or reconnect) asks for what came after it, and any
//! message at or below it is dropped, so a retry can neither skip nor repeat
//! a message. Network errors and 5xx answers (a proxy's 502 or 504, a server
//! that is down) are retried with exponential backoff and jitter, and so is
//! `429` (a server's per-client limits: try again later); other 4xx answers
//! are returned as errors. One of them deserves a mention: a server restarted
//! with an empty store answers a cursor it has not reached yet with
//! `400 cursor_ahead`, and the subscription ends with that error.
//!
//! ## Choosing a transport by itself: `subscribe_auto`
//!
//! [`Transport`] is the wire contract's enum: every variant is something a
//! server mounts at a route. "Whichever works here" is no such thing, so it
//! is not a variant; it is a way of subscribing, [`Client::subscribe_auto`],
//! and [`Subscription::transport`] says which transport it settled on.
//!
//! It tries the transports in [`AUTO_ORDER`]: WebSocket, server-sent events,
//! HTTP streaming, long polling, polling (cheapest per message first). A
//! try, a *probe*, opens the transport once, without retries, and waits for
//! something to arrive. The transport is given up, and the reason recorded
//! in [`Subscription::fallbacks`], when:
//!
//! - **it cannot be opened**: the connection fails, or the answer is not a
//!   success: a WebSocket upgrade answered with anything but `101` (the 400
//!   a server gives a GET whose `Upgrade` a proxy stripped, a 426, a
//!   proxy's 502), any 4xx or 5xx on the others;
//! - **nothing arrives within [`PROBE_TIMEOUT`]** (4 s): a buffering or
//!   compressing proxy holds a stream's bytes back, so the stream opens and
//!   then stays silent. Silence is only telling if something had to come,
//!   so the probe makes sure something has to:
//!   - with a cursor `c > 0`, the probe asks for `since = c - 1`, and the
//!     server must send message `c` at once; the cursor drops it like any
//!     repeat. (Should `c` be gone from the server's history, the gap notice
//!     counts one message too many, and Auto takes it off.)
//!   - with no cursor or cursor 0, the probe asks what the subscription
//!     asks (the backfill, or all history). If the store holds a message
//!     (`GET /api/stats`, `store.last_id`), it must arrive. On an empty
//!     store nothing can be made to come, and a successful open is accepted:
//!     a `200` with its head, a `101`. A proxy that holds heads back as well
//!     (nginx's gzip does) is still caught; one that passes heads and holds
//!     bodies is caught only once the chat has a message.
//!   - a poll probe is one request (a long poll held at most 1 s): its
//!     answer, even an empty one, has arrived.
//! - **it breaks later**: once chosen, a transport is kept while it works,
//!   and a dropped connection is reopened from the cursor at once. If the
//!   reopening fails, Auto gives the transport up and probes the ones after
//!   it.
//!
//! Polling is the floor: never probed or given up. When everything above it
//! failed (the server is down, say), Auto polls, retrying like a fixed
//! subscription, and a 4xx (`cursor_ahead`) ends the subscription there.
//!
//! **Moving back up.** On any transport but the first, every
//! [`UPGRADE_INTERVAL`] (60 s) Auto probes the better ones again, in order,
//! in a task of its own while the current transport keeps delivering. It
//! switches only to one whose probe succeeded, that is, that has delivered
//! (or opened, on an empty chat); the old connection is closed then. The
//! cursor is the subscription's across every switch, so nothing is lost or
//! repeated: the new connection starts at or before it, and the cursor drops
//! what was already handed out.
//!
//! **Compression.** Auto's requests say `Accept-Encoding: gzip`, as every
//! browser's do: the proxies Auto must notice are the ones the page meets,
//! and a compressing proxy only compresses for clients that ask. It gunzips
//! what comes back. A fixed subscription asks for nothing, so the load
//! generator's byte counts stay those of the bare protocol.
//!
//! The timings are [`Options::probe_timeout`] and
//! [`Options::upgrade_interval`], which default to the constants.

use std::time::Duration;

use bytes::Bytes;

use chat_protocol::{ClientFrame, SendRequest};

use crate::feed::Feed;
pub use chat_protocol::{
    ConfigBody, Cursor, Epoch, Message, MessageId, PresenceBody, PresenceList, StatsBody,
    Transport, UserPresence, Via,
};

use crate::epoch::SharedEpoch;

mod auto;
mod body;
mod epoch;
mod feed;
mod poll;
mod retry;
mod sse;
mod stream;
mod subscription;
mod ws;

pub use subscription::Subscription;

pub use auto::{AUTO_ORDER, PROBE_TIMEOUT, UPGRADE_INTERVAL};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chat message, decoded, with the exact bytes the server sent for it.
    Message {
        /// The decoded message.
        message: Message,
        /// Its JSON as it came over the wire.
        raw: Bytes,
    },
    /// The cursor predated the server's history: this many messages are gone.
    Gap {
        /// How many.
        missed: u64,
    },
    /// The server's ids started again (a restarted in-memory store, a
    /// deleted shared log): forget every message so far; what follows is
    /// the new log from its start. The subscription's cursor restarts too.
    Reset {
        /// The server's epoch now.
        epoch: Epoch,
    },
}

/// How a subscription starts and retries.
#[derive(Debug, Clone)]
pub struct Options {
    /// Resume after this cursor; `None` starts with the server's backfill.
    pub since: Option<Cursor>,
    /// The epoch `since` belongs to (from an earlier subscription's
    /// [`Subscription::epoch`]). `None`: asked of the server
    /// (`GET /api/config`) before the first request.
    pub epoch: Option<Epoch>,
    /// Pause between regular polls (a full page is followed at once).
    pub poll_interval: Duration,
    /// How long a long poll may be held.
    pub wait_s: u64,
    /// First pause after a failure; doubled up to `max_backoff`, with jitter.
    pub min_backoff: Duration,
    /// Longest pause after failures.
    pub max_backoff: Duration,
    /// Auto only: how long a probe waits for something to arrive before it
    /// gives the transport up.
    pub probe_timeout: Duration,
    /// Auto only: how long it stays on a transport below the first before
    /// it tries the better ones again.
    pub upgrade_interval: Duration,
    /// Who subscribes (`user=NAME` on every request), for presence: while
    /// subscribed, the user is listed by `GET /api/presence` and in the
    /// lists push transports send. `None`: an anonymous subscription.
    pub user: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            since: None,
            epoch: None,
            poll_interval: Duration::from_secs(1),
            wait_s: 25,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            probe_timeout: PROBE_TIMEOUT,
            upgrade_interval: UPGRADE_INTERVAL,
            user: None,
        }
    }
}

/// Why a call failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request (4xx) with its JSON error.
    #[error("refused with {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: String,
    },
    /// The request could not be made or answered.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The server sent something that is not the contract.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// What a send returns.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The stored message.
    pub message: Message,
    /// `Some(true)` for 201 (stored now), `Some(false)` for 200 (stored
    /// before); `None` over WebSocket, whose ack does not say.
    pub created: Option<bool>,
}

/// A client for one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a message: over a fresh WebSocket (waiting for the ack) when
    /// `via` is `websocket`, with `POST /api/messages` otherwise.
    pub async fn send(
        &self,
        user: &str,
        text: &str,
        client_msg_id: Option<&str>,
        via: Via,
    ) -> Result<Sent, ClientError> {
        if via == Via::Websocket {
            let frame = ClientFrame::Send {
                user: user.to_owned(),
                text: text.to_owned(),
                client_msg_id: client_msg_id.map(str::to_owned),
            };
            let json = ws::send_once(&self.base, frame).await?;
            let message = serde_json::from_str(&json)
                .map_err(|e| ClientError::Protocol(format!("message frame: {e}")))?;
            return Ok(Sent {
                message,
                created: None,
            });
        }
        let response = self
            .http
            .post(format!("{}/api/messages", self.base))
            .json(&SendRequest {
                user: user.to_owned(),
                text: text.to_owned(),
                client_msg_id: client_msg_id.map(str::to_owned),
                via: Some(via),
            })
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        let message = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("send answer: {e}")))?;
        Ok(Sent {
            message,
            created: Some(status == reqwest::StatusCode::CREATED),
        })
    }

    /// `GET /api/stats`: every transport's counters and the store's.
    pub async fn stats(&self) -> Result<StatsBody, ClientError> {
        let response = self
            .http
            .get(format!("{}/api/stats", self.base))
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// `GET /api/config`: what the server mounts, its epoch and limits.
    pub async fn config(&self) -> Result<ConfigBody, ClientError> {
        let response = self
            .http
            .get(format!("{}/api/config", self.base))
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// `GET /api/presence`: who is online on this server, through which
    /// transports.
    pub async fn presence(&self) -> Result<PresenceBody, ClientError> {
        let response = self
            .http
            .get(format!("{}/api/presence", self.base))
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// Opens a subscription on `transport`. Nothing is requested until
    /// the first [`Subscription::next`].
    pub fn subscribe(&self, transport: Transport, options: Options) -> Subscription {
        let epoch = SharedEpoch::new(options.epoch.clone());
        let feed = Feed::new(self, transport, &options, false, &epoch);
        Subscription::new(self.clone(), Some(feed), options, epoch, None)
    }

    /// Opens a subscription that chooses its transport by itself, in
    /// [`AUTO_ORDER`], falls back when one does not work here and moves back
    /// up later (the crate's essay has the rules). Nothing is requested
    /// until the first [`Subscription::next`] or [`Subscription::settle`].
    pub fn subscribe_auto(&self, options: Options) -> Subscription {
        let epoch = SharedEpoch::new(options.epoch.clone());
        let auto = auto::Auto::new(self.clone(), options.clone(), epoch.clone());
        Subscription::new(self.clone(), None, options, epoch, Some(Box::new(auto)))
    }
}

fn refused(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    ClientError::Refused {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}
