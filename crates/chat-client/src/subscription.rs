//! A subscription: the cursor and epoch that make resuming lossless, the
//! feed in use, and Auto's choice when it has one.

use std::collections::VecDeque;

use bytes::Bytes;

use chat_protocol::{Epoch, PageBody, PresenceList};

use crate::epoch::SharedEpoch;
use crate::feed::Feed;
use crate::{Client, ClientError, Cursor, Event, Message, Options, Transport, auto};

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
    /// For `GET /api/config`, to learn the epoch.
    client: Client,
    /// The epoch the cursor belongs to, named by every request.
    epoch: SharedEpoch,
    /// Whether `epoch` holds one. Once known an epoch is only ever replaced,
    /// so this spares `next` a lock on every event.
    epoch_known: bool,
    options: Options,
    /// The last id handed out (or the starting cursor).
    cursor: Option<Cursor>,
    ready: VecDeque<Event>,
    reconnects: u64,
    /// The choice and its history, for [`Client::subscribe_auto`].
    auto: Option<Box<auto::Auto>>,
    /// The last presence list a push transport sent.
    presence: Option<PresenceList>,
}

impl Subscription {
    pub(crate) fn new(
        client: Client,
        feed: Option<Feed>,
        options: Options,
        epoch: SharedEpoch,
        auto: Option<Box<auto::Auto>>,
    ) -> Self {
        Subscription {
            feed,
            client,
            epoch_known: epoch.get().is_some(),
            epoch,
            cursor: options.since,
            options,
            ready: VecDeque::new(),
            reconnects: 0,
            auto,
            presence: None,
        }
    }

    /// The next event. Waits as long as it takes (wrap it in a timeout);
    /// retries failures by itself, resuming from the cursor.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            if !self.epoch_known {
                self.learn_epoch().await;
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

    /// The epoch the cursor belongs to, once known: keep it with the cursor
    /// to resume later ([`Options::epoch`]).
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch.get()
    }

    /// Asks the server its epoch if the subscription does not know one yet.
    /// A failure is left for the first request to meet (and retry).
    async fn learn_epoch(&mut self) {
        if let Ok(config) = self.client.config().await {
            self.epoch.set(config.epoch);
            self.epoch_known = true;
        }
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

    /// The last presence list the server pushed (SSE, WebSocket, streaming;
    /// a subscription with [`Options::user`](crate::Options::user) is sent
    /// one as soon as it opens), as far as [`Subscription::next`] has read.
    /// Polling subscriptions ask [`Client::presence`] instead.
    pub fn presence(&self) -> Option<&PresenceList> {
        self.presence.as_ref()
    }

    /// Queues a batch in order, dropping anything already handed out.
    fn accept(&mut self, batch: PageBody) -> Result<(), ClientError> {
        if let Some(list) = batch.presence {
            // A presence item carries nothing else, and moves no cursor.
            self.presence = Some(list);
            return Ok(());
        }
        if batch.reset
            && let Some(epoch) = batch.epoch
        {
            // A new numbering: the old cursor means nothing in it.
            self.epoch.set(epoch.clone());
            self.epoch_known = true;
            self.cursor = Some(Cursor(0));
            self.ready.push_back(Event::Reset { epoch });
        }
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
