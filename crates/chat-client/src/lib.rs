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
//! that is down) are retried with exponential backoff and jitter; 4xx answers
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

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use chat_protocol::{ClientFrame, PageBody, SendRequest};
pub use chat_protocol::{Cursor, Message, MessageId, StatsBody, Transport, Via};

mod auto;
mod body;
mod poll;
mod sse;
mod stream;
mod ws;

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
}

/// How a subscription starts and retries.
#[derive(Debug, Clone)]
pub struct Options {
    /// Resume after this cursor; `None` starts with the server's backfill.
    pub since: Option<Cursor>,
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            since: None,
            poll_interval: Duration::from_secs(1),
            wait_s: 25,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            probe_timeout: PROBE_TIMEOUT,
            upgrade_interval: UPGRADE_INTERVAL,
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

    /// Opens a subscription on `transport`. Nothing is requested until
    /// the first [`Subscription::next`].
    pub fn subscribe(&self, transport: Transport, options: Options) -> Subscription {
        Subscription {
            feed: Some(Feed::new(self, transport, &options, false)),
            cursor: options.since,
            options,
            ready: VecDeque::new(),
            reconnects: 0,
            auto: None,
        }
    }

    /// Opens a subscription that chooses its transport by itself, in
    /// [`AUTO_ORDER`], falls back when one does not work here and moves back
    /// up later (the crate's essay has the rules). Nothing is requested
    /// until the first [`Subscription::next`] or [`Subscription::settle`].
    pub fn subscribe_auto(&self, options: Options) -> Subscription {
        Subscription {
            feed: None,
            cursor: options.since,
            auto: Some(Box::new(auto::Auto::new(self.clone(), options.clone()))),
            options,
            ready: VecDeque::new(),
            reconnects: 0,
        }
    }
}

fn refused(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    ClientError::Refused {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// The transport-specific half of a subscription.
enum Feed {
    Poll(poll::PollFeed),
    Sse(sse::SseFeed),
    Ws(ws::WsFeed),
    Stream(stream::StreamFeed),
}

impl Feed {
    /// A feed of `transport`, not connected yet; `gzip` makes its requests
    /// say `Accept-Encoding: gzip`.
    fn new(client: &Client, transport: Transport, options: &Options, gzip: bool) -> Self {
        let (http, base) = (client.http.clone(), client.base.as_str());
        match transport {
            Transport::Polling | Transport::Longpoll => Feed::Poll(poll::PollFeed::new(
                http,
                base,
                transport == Transport::Longpoll,
                options.clone(),
                gzip,
            )),
            Transport::Sse => Feed::Sse(sse::SseFeed::new(http, base, gzip)),
            Transport::Websocket => Feed::Ws(ws::WsFeed::new(base)),
            Transport::Stream => Feed::Stream(stream::StreamFeed::new(http, base, gzip)),
        }
    }

    /// One gap notice or page of messages after `cursor`. Connections are
    /// opened as needed and reopened after they end. Failures are retried
    /// with backoff (4xx answers returned), unless `strict`: then a failure
    /// to open is returned as it is, for Auto to move on.
    async fn fetch(
        &mut self,
        cursor: Option<Cursor>,
        reconnects: &mut u64,
        options: &Options,
        strict: bool,
    ) -> Result<PageBody, ClientError> {
        if let Feed::Poll(feed) = self {
            return feed.fetch(cursor, reconnects, strict).await;
        }
        let mut retry = Retry::new(options, reconnects);
        loop {
            if !self.is_open() {
                match self.open(cursor).await {
                    Ok(()) => {}
                    Err(error) if strict => return Err(error),
                    Err(error) => {
                        retry.after(error).await?;
                        continue;
                    }
                }
            }
            match self.read().await? {
                Some(batch) => return Ok(batch),
                // The connection ended or broke: reconnect from the cursor.
                None => retry.pause().await,
            }
        }
    }

    /// Whether a connection is open (never, for polling).
    fn is_open(&self) -> bool {
        match self {
            Feed::Poll(_) => false,
            Feed::Sse(feed) => feed.is_open(),
            Feed::Ws(feed) => feed.is_open(),
            Feed::Stream(feed) => feed.is_open(),
        }
    }

    /// Opens a connection after `cursor`: one attempt (nothing, for
    /// polling).
    async fn open(&mut self, cursor: Option<Cursor>) -> Result<(), ClientError> {
        match self {
            Feed::Poll(_) => Ok(()),
            Feed::Sse(feed) => feed.open(cursor).await,
            Feed::Ws(feed) => feed.open(cursor).await,
            Feed::Stream(feed) => feed.open(cursor).await,
        }
    }

    /// The next batch on the open connection; `None` once it has ended (and
    /// always, for polling).
    async fn read(&mut self) -> Result<Option<PageBody>, ClientError> {
        match self {
            Feed::Poll(_) => Ok(None),
            Feed::Sse(feed) => feed.read().await,
            Feed::Ws(feed) => feed.read().await,
            Feed::Stream(feed) => feed.read().await,
        }
    }

    /// Drops the connection, if any; returns whether there was one to drop.
    fn disconnect(&mut self) -> bool {
        match self {
            Feed::Poll(_) => return false,
            Feed::Sse(feed) => feed.disconnect(),
            Feed::Ws(feed) => feed.disconnect(),
            Feed::Stream(feed) => feed.disconnect(),
        }
        true
    }

    /// The transport this feed reads.
    fn transport(&self) -> Transport {
        match self {
            Feed::Poll(feed) if feed.is_long() => Transport::Longpoll,
            Feed::Poll(_) => Transport::Polling,
            Feed::Sse(_) => Transport::Sse,
            Feed::Ws(_) => Transport::Websocket,
            Feed::Stream(_) => Transport::Stream,
        }
    }
}

/// What woke an Auto subscription up.
enum Step {
    /// The current feed's next batch, or its failure.
    Fetched(Result<PageBody, ClientError>),
    /// The upgrade task finished: a better feed, if it found one.
    Upgraded(Option<auto::Probed>),
}

/// A live feed of the chat over one transport, fixed or chosen by Auto.
pub struct Subscription {
    /// The transport in use; `None` while Auto has not chosen one.
    feed: Option<Feed>,
    options: Options,
    /// The last id handed out (or the starting cursor).
    cursor: Option<Cursor>,
    ready: VecDeque<Event>,
    reconnects: u64,
    /// The choice and its history, for [`Client::subscribe_auto`].
    auto: Option<Box<auto::Auto>>,
}

impl Subscription {
    /// The next event. Waits as long as it takes (wrap it in a timeout);
    /// retries failures by itself, resuming from the cursor.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let Some(feed) = &mut self.feed else {
                self.settle().await?;
                continue;
            };
            let Some(auto) = &mut self.auto else {
                let batch = feed
                    .fetch(self.cursor, &mut self.reconnects, &self.options, false)
                    .await?;
                self.accept(batch)?;
                continue;
            };
            // Auto: read on, unless a better transport has been found
            // meanwhile. Both sides are cancel-safe: a fetch that loses
            // has handed nothing out, and the upgrade task keeps running.
            let strict = !auto.on_floor();
            let cursor = self.cursor;
            let step = tokio::select! {
                batch = feed.fetch(cursor, &mut self.reconnects, &self.options, strict) => {
                    Step::Fetched(batch)
                }
                probed = auto.upgrade(cursor) => Step::Upgraded(probed),
            };
            match step {
                Step::Fetched(Ok(batch)) => self.accept(batch)?,
                Step::Fetched(Err(error)) if strict => {
                    // The transport worked and now does not: on down.
                    let from = auto.give_up_current(&error);
                    self.feed = None;
                    self.settle_from(from).await?;
                }
                Step::Upgraded(Some(probed)) => self.install(probed)?,
                Step::Upgraded(None) => {}
                Step::Fetched(Err(error)) => return Err(error),
            }
        }
    }

    /// The transport in use: a fixed subscription's, or the one Auto chose
    /// (`None` until it has chosen, at the first [`Subscription::next`] or
    /// [`Subscription::settle`]).
    pub fn transport(&self) -> Option<Transport> {
        self.feed.as_ref().map(Feed::transport)
    }

    /// Auto only: every transport it gave up, best first, each with why
    /// (the latest reason, once per transport). Empty for a fixed
    /// subscription, and for Auto on its first choice.
    pub fn fallbacks(&self) -> &[(Transport, String)] {
        self.auto.as_ref().map_or(&[], |auto| auto.fallbacks())
    }

    /// Makes Auto choose now, instead of at the first
    /// [`Subscription::next`], and returns the transport in use. A fixed
    /// subscription returns its transport without a request.
    pub async fn settle(&mut self) -> Result<Transport, ClientError> {
        if self.feed.is_none() {
            self.settle_from(0).await?;
        }
        self.transport()
            .ok_or_else(|| ClientError::Protocol("no transport chosen".into()))
    }

    /// The id of the last message handed out, or the starting cursor.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    /// How many times a request or connection failed and was retried.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Drops the current connection (SSE, WebSocket, streaming) so that the
    /// next [`Subscription::next`] reconnects from the cursor, as after a
    /// network failure. Polling has no connection to drop.
    pub fn disconnect(&mut self) {
        if self.feed.as_mut().is_some_and(Feed::disconnect) {
            self.reconnects += 1;
        }
    }

    /// Auto: probes the transports from `AUTO_ORDER[from]` on and installs
    /// the first that works (polling, the last, without a probe).
    async fn settle_from(&mut self, from: usize) -> Result<(), ClientError> {
        let Some(auto) = &mut self.auto else {
            return Ok(());
        };
        let probed = auto.choose(from, self.cursor).await;
        self.install(probed)
    }

    /// Switches to a feed Auto found working, and takes its first batch.
    fn install(&mut self, probed: auto::Probed) -> Result<(), ClientError> {
        self.feed = Some(probed.feed);
        match probed.first {
            Some(batch) => self.accept(batch),
            None => Ok(()),
        }
    }

    /// Queues a batch in order, dropping anything already handed out.
    fn accept(&mut self, batch: PageBody) -> Result<(), ClientError> {
        if batch.missed > 0 {
            self.ready.push_back(Event::Gap {
                missed: batch.missed,
            });
        }
        for raw in batch.messages {
            let message: Message = serde_json::from_str(raw.get())
                .map_err(|e| ClientError::Protocol(format!("message: {e}")))?;
            if self.cursor.is_some_and(|c| !c.is_before(message.id)) {
                continue;
            }
            self.cursor = Some(Cursor::after(message.id));
            self.ready.push_back(Event::Message {
                message,
                raw: Bytes::copy_from_slice(raw.get().as_bytes()),
            });
        }
        if self.cursor.is_none() && batch.missed == 0 {
            self.cursor = Some(batch.cursor);
        }
        Ok(())
    }
}

/// Failed attempts in a row within one fetch, and what to do after one:
/// the retry rule every feed shares.
struct Retry<'a> {
    options: &'a Options,
    reconnects: &'a mut u64,
    attempt: u32,
}

impl<'a> Retry<'a> {
    fn new(options: &'a Options, reconnects: &'a mut u64) -> Self {
        Retry {
            options,
            reconnects,
            attempt: 0,
        }
    }

    /// After a failed request or connection: a 4xx answer is the caller's to
    /// handle and is returned; anything else is waited out ([`Retry::pause`]).
    async fn after(&mut self, error: ClientError) -> Result<(), ClientError> {
        if let ClientError::Refused { status, .. } = &error
            && *status < 500
        {
            return Err(error);
        }
        self.pause().await;
        Ok(())
    }

    /// Counts a reconnect and sleeps: exponential backoff with full jitter, a
    /// random pause up to `min_backoff * 2^attempt`, capped at `max_backoff`.
    async fn pause(&mut self) {
        *self.reconnects += 1;
        let ceiling = self
            .options
            .min_backoff
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.options.max_backoff);
        let pause = ceiling
            .mul_f64(rand::random::<f64>())
            .max(self.options.min_backoff / 2);
        self.attempt += 1;
        tokio::time::sleep(pause).await;
    }
}
