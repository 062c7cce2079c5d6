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

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use chat_protocol::{ClientFrame, PageBody, SendRequest};
pub use chat_protocol::{Cursor, Message, MessageId, StatsBody, Transport, Via};

mod poll;
mod sse;
mod stream;
mod ws;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            since: None,
            poll_interval: Duration::from_secs(1),
            wait_s: 25,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
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

    /// Opens a subscription. Nothing is requested until the first
    /// [`Subscription::next`].
    pub fn subscribe(&self, transport: Transport, options: Options) -> Subscription {
        Subscription {
            cursor: options.since,
            feed: match transport {
                Transport::Polling | Transport::Longpoll => Feed::Poll(poll::PollFeed::new(
                    self.http.clone(),
                    &self.base,
                    transport == Transport::Longpoll,
                    options,
                )),
                Transport::Sse => {
                    Feed::Sse(sse::SseFeed::new(self.http.clone(), &self.base, options))
                }
                Transport::Websocket => Feed::Ws(ws::WsFeed::new(&self.base, options)),
                Transport::Stream => Feed::Stream(stream::StreamFeed::new(
                    self.http.clone(),
                    &self.base,
                    options,
                )),
            },
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

/// A live feed of the chat over one transport.
pub struct Subscription {
    feed: Feed,
    /// The last id handed out (or the starting cursor).
    cursor: Option<Cursor>,
    ready: VecDeque<Event>,
    reconnects: u64,
}

impl Subscription {
    /// The next event. Waits as long as it takes (wrap it in a timeout);
    /// retries failures by itself, resuming from the cursor.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let (cursor, reconnects) = (self.cursor, &mut self.reconnects);
            let batch = match &mut self.feed {
                Feed::Poll(feed) => feed.fetch(cursor, reconnects).await?,
                Feed::Sse(feed) => feed.fetch(cursor, reconnects).await?,
                Feed::Ws(feed) => feed.fetch(cursor, reconnects).await?,
                Feed::Stream(feed) => feed.fetch(cursor, reconnects).await?,
            };
            self.accept(batch)?;
        }
    }

    /// The id of the last message handed out, or the starting cursor.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    /// How many times a request or connection failed and was retried.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Drops the current connection (SSE, WebSocket) so that the next
    /// [`Subscription::next`] reconnects from the cursor, as after a network
    /// failure. Polling has no connection to drop.
    pub fn disconnect(&mut self) {
        match &mut self.feed {
            Feed::Poll(_) => return,
            Feed::Sse(feed) => feed.disconnect(),
            Feed::Ws(feed) => feed.disconnect(),
            Feed::Stream(feed) => feed.disconnect(),
        }
        self.reconnects += 1;
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
