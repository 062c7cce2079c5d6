//! The transport-specific half of a subscription: one feed per transport,
//! behind one interface (open, read, reconnect with backoff).

use chat_protocol::PageBody;

use crate::epoch::SharedEpoch;
use crate::retry::Retry;
use crate::{Client, ClientError, Cursor, Options, Transport, poll, sse, stream, ws};

/// The transport-specific half of a subscription.
pub(crate) enum Feed {
    Poll(poll::PollFeed),
    Sse(sse::SseFeed),
    Ws(ws::WsFeed),
    Stream(stream::StreamFeed),
}

impl Feed {
    /// A feed of `transport`, not connected yet; `gzip` makes its requests
    /// say `Accept-Encoding: gzip`.
    pub(crate) fn new(
        client: &Client,
        transport: Transport,
        options: &Options,
        gzip: bool,
        epoch: &SharedEpoch,
    ) -> Self {
        let (http, base) = (client.http.clone(), client.base.as_str());
        let epoch = epoch.clone();
        match transport {
            Transport::Polling | Transport::Longpoll => Feed::Poll(poll::PollFeed::new(
                http,
                base,
                transport == Transport::Longpoll,
                options.clone(),
                gzip,
                epoch,
            )),
            Transport::Sse => Feed::Sse(sse::SseFeed::new(http, base, gzip, epoch, user(options))),
            Transport::Websocket => Feed::Ws(ws::WsFeed::new(base, epoch, user(options))),
            Transport::Stream => Feed::Stream(stream::StreamFeed::new(
                http,
                base,
                gzip,
                epoch,
                user(options),
            )),
        }
    }

    /// One gap notice or page of messages after `cursor`. Connections are
    /// opened as needed and reopened after they end. Failures are retried
    /// with backoff (4xx answers returned), unless `strict`: then a failure
    /// to open is returned as it is, for Auto to move on.
    pub(crate) async fn fetch(
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
    pub(crate) fn is_open(&self) -> bool {
        match self {
            Feed::Poll(_) => false,
            Feed::Sse(feed) => feed.is_open(),
            Feed::Ws(feed) => feed.is_open(),
            Feed::Stream(feed) => feed.is_open(),
        }
    }

    /// Opens a connection after `cursor`: one attempt (nothing, for
    /// polling).
    pub(crate) async fn open(&mut self, cursor: Option<Cursor>) -> Result<(), ClientError> {
        match self {
            Feed::Poll(_) => Ok(()),
            Feed::Sse(feed) => feed.open(cursor).await,
            Feed::Ws(feed) => feed.open(cursor).await,
            Feed::Stream(feed) => feed.open(cursor).await,
        }
    }

    /// The next batch on the open connection; `None` once it has ended (and
    /// always, for polling).
    pub(crate) async fn read(&mut self) -> Result<Option<PageBody>, ClientError> {
        match self {
            Feed::Poll(_) => Ok(None),
            Feed::Sse(feed) => feed.read().await,
            Feed::Ws(feed) => feed.read().await,
            Feed::Stream(feed) => feed.read().await,
        }
    }

    /// Drops the connection, if any; returns whether there was one to drop.
    pub(crate) fn disconnect(&mut self) -> bool {
        match self {
            Feed::Poll(_) => return false,
            Feed::Sse(feed) => feed.disconnect(),
            Feed::Ws(feed) => feed.disconnect(),
            Feed::Stream(feed) => feed.disconnect(),
        }
        true
    }

    /// The transport this feed reads.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Feed::Poll(feed) if feed.is_long() => Transport::Longpoll,
            Feed::Poll(_) => Transport::Polling,
            Feed::Sse(_) => Transport::Sse,
            Feed::Ws(_) => Transport::Websocket,
            Feed::Stream(_) => Transport::Stream,
        }
    }
}

/// `("user", NAME)` for a query string, when the subscription names one
/// (presence: `GET /api/presence` lists it while it is subscribed).
pub(crate) fn user(options: &Options) -> Option<(&'static str, String)> {
    options.user.clone().map(|user| ("user", user))
}
