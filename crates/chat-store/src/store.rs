//! The store itself: one lock around a ring of recent messages, a watch
//! channel that tells waiters the newest id, and (`parked.rs`) a list of the
//! wakers of what is polled rather than awaited.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use chat_protocol::limits::DEFAULT_MAX_TEXT_CHARS;
use chat_protocol::{Cursor, Epoch, MessageId};

use crate::message::{NewMessage, SendError, StoredMessage, validate};

mod parked;

use parked::Parked;
pub use parked::Parking;

/// Default number of messages the store keeps.
pub const DEFAULT_HISTORY: usize = 10_000;
/// Default number of messages a reader without a cursor starts with.
pub const DEFAULT_BACKFILL: usize = 50;

/// The store's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// How many of the most recent messages are retained (at least 1).
    pub history: usize,
    /// How many recent messages a reader without a cursor is given.
    pub backfill: usize,
    /// Longest `text` in characters after trimming.
    pub max_text_chars: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: DEFAULT_HISTORY,
            backfill: DEFAULT_BACKFILL,
            max_text_chars: DEFAULT_MAX_TEXT_CHARS,
        }
    }
}

/// The outcome of an accepted append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new message was stored.
    Created(StoredMessage),
    /// The same (`user`, `client_msg_id`) was sent before: this is the message
    /// stored then, and nothing new was stored.
    Existing(StoredMessage),
}

impl Appended {
    /// The stored message, new or not.
    pub fn message(&self) -> &StoredMessage {
        match self {
            Appended::Created(m) | Appended::Existing(m) => m,
        }
    }
}

/// A read that the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// The cursor names a message that does not exist yet. Waiting for it
    /// would hang a client that has, for example, talked to another server.
    #[error("since={since} is ahead of the newest message id {newest}")]
    AheadOfNewest {
        /// The cursor asked for.
        since: Cursor,
        /// The newest id there is.
        newest: Cursor,
    },
}

/// What a read returns: messages in id order after the cursor, and a gap
/// notice when the cursor predates the retained history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// How many messages the reader missed because they are no longer
    /// retained (0 almost always).
    pub missed: u64,
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// Where the reader stands after this page: the last message's id, or the
    /// cursor it asked with when the page is empty.
    pub cursor: Cursor,
    /// The epoch the page was read in: the numbering `cursor` belongs to.
    pub epoch: Epoch,
    /// The reader's epoch was another: its cursor was ignored and the page
    /// starts from the beginning of what is retained (a reset notice first).
    pub reset: bool,
    /// The reader gave no cursor: the page is the recent backfill, history
    /// rather than news (delivery timings leave it out).
    pub backfill: bool,
}

/// Counters about the store for `/api/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// The newest id (0 before the first message).
    pub last_id: u64,
    /// How many messages are retained.
    pub retained: usize,
    /// The current epoch.
    pub epoch: Epoch,
}

/// What the watch channel tells waiters: the epoch and its newest id.
#[derive(Debug, Clone)]
struct News {
    epoch: Epoch,
    last: u64,
}

struct Entry {
    message: StoredMessage,
    /// The idempotency key this message was stored under, to forget it when
    /// the message leaves the history.
    key: Option<(String, String)>,
}

struct Inner {
    /// The most recent messages, oldest first, with consecutive ids.
    ring: VecDeque<Entry>,
    /// The newest id handed out (0 before the first).
    last_id: u64,
    /// (`user`, `client_msg_id`) of every retained message sent with one.
    keys: HashMap<(String, String), MessageId>,
    /// The numbering the ids belong to.
    epoch: Epoch,
}

/// The message store shared by every transport.
///
/// Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Store {
    config: StoreConfig,
    inner: Mutex<Inner>,
    /// The epoch and newest id, for waiters. Sent while the lock is held so
    /// that, within an epoch, it only ever moves forward.
    news: watch::Sender<News>,
    /// Response bodies waiting for news ([`Store::poll_beyond_in`]).
    parked: Mutex<Parked>,
}

impl Store {
    /// An empty store with a new epoch. A `history` of 0 is raised to 1.
    pub fn new(config: StoreConfig) -> Self {
        Store::with_epoch(config, new_epoch())
    }

    /// An empty store whose ids belong to `epoch` (a shared log's).
    pub fn with_epoch(mut config: StoreConfig, epoch: Epoch) -> Self {
        config.history = config.history.max(1);
        Store {
            config,
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(config.history.min(4_096)),
                last_id: 0,
                keys: HashMap::new(),
                epoch: epoch.clone(),
            }),
            news: watch::Sender::new(News { epoch, last: 0 }),
            parked: Mutex::default(),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.news.borrow().epoch.clone()
    }

    /// The limits this store was built with.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Validates and stores a message, or returns the one already stored
    /// under the same (`user`, `client_msg_id`).
    pub fn append(&self, new: NewMessage) -> Result<Appended, SendError> {
        // Validation and trimming happen before the lock is taken.
        let valid = validate(new, self.config.max_text_chars)?;
        let key = valid
            .client_msg_id
            .as_ref()
            .map(|id| (valid.user.clone(), id.clone()));

        let mut inner = self.lock();
        if let Some(id) = key.as_ref().and_then(|k| inner.keys.get(k)) {
            let existing = inner.get(*id).map(|e| e.message.clone());
            // A key is forgotten when its message leaves the ring, so the
            // lookup always finds it.
            if let Some(message) = existing {
                return Ok(Appended::Existing(message));
            }
        }

        let id = MessageId(inner.last_id + 1);
        let message = StoredMessage::encode(id, &valid, now_ms());
        if let Some(k) = &key {
            inner.keys.insert(k.clone(), id);
        }
        inner.ring.push_back(Entry {
            message: message.clone(),
            key,
        });
        inner.last_id = id.0;
        while inner.ring.len() > self.config.history {
            if let Some(old) = inner.ring.pop_front()
                && let Some(k) = old.key
            {
                inner.keys.remove(&k);
            }
        }
        // Wake every waiter. Inside the lock, so the watched value never goes
        // backwards when two appends race; `send_modify` never blocks.
        self.news.send_modify(|news| news.last = id.0);
        drop(inner);
        self.wake_parked();
        Ok(Appended::Created(message))
    }

    /// Adds a message numbered elsewhere (a shared log's tailer): the next id
    /// is appended; an id past the next one means messages were lost to this
    /// process (trimmed from the log while it was away), so the ring starts
    /// over there and readers behind it get a gap notice; an id already held
    /// is ignored.
    pub fn push(&self, message: StoredMessage) {
        let mut inner = self.lock();
        let id = message.id.0;
        if id <= inner.last_id {
            return;
        }
        if id != inner.last_id + 1 {
            inner.ring.clear();
            inner.keys.clear();
        }
        inner.ring.push_back(Entry { message, key: None });
        inner.last_id = id;
        while inner.ring.len() > self.config.history {
            inner.ring.pop_front();
        }
        self.news.send_modify(|news| news.last = id);
        drop(inner);
        self.wake_parked();
    }

    /// Starts a new numbering: the shared log was deleted and ids start
    /// again. Everything held is dropped, and every waiter wakes to find its
    /// epoch gone.
    pub fn reset(&self, epoch: Epoch) {
        let mut inner = self.lock();
        inner.ring.clear();
        inner.keys.clear();
        inner.last_id = 0;
        inner.epoch = epoch.clone();
        self.news.send_replace(News { epoch, last: 0 });
        drop(inner);
        self.wake_parked();
    }

    /// Up to `limit` messages after `since`, oldest first. Without a cursor,
    /// the most recent `backfill` messages.
    pub fn read(&self, since: Option<Cursor>, limit: usize) -> Result<Page, CursorError> {
        self.read_in(None, since, limit)
    }

    /// Like [`Store::read`], for a reader whose cursor belongs to `epoch`:
    /// if that is not the store's epoch, the cursor means nothing here, and
    /// the page starts from the oldest retained message, marked `reset`.
    pub fn read_in(
        &self,
        epoch: Option<&Epoch>,
        since: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, CursorError> {
        let inner = self.lock();
        let reset = epoch.is_some_and(|e| *e != inner.epoch);
        let since = if reset { Some(Cursor(0)) } else { since };
        let newest = Cursor(inner.last_id);
        // The id of the oldest retained message (newest + 1 when empty).
        let first = inner
            .ring
            .front()
            .map_or(inner.last_id + 1, |e| e.message.id.0);

        let (start, missed, empty_cursor) = match since {
            None => {
                let skip = inner.ring.len().saturating_sub(self.config.backfill);
                (skip, 0, newest)
            }
            Some(since) if since > newest => {
                return Err(CursorError::AheadOfNewest { since, newest });
            }
            Some(since) if since.0 + 1 < first => (0, first - 1 - since.0, since),
            Some(since) => ((since.0 + 1 - first) as usize, 0, since),
        };

        let messages: Vec<StoredMessage> = inner
            .ring
            .range(start..)
            .take(limit)
            .map(|e| e.message.clone())
            .collect();
        let cursor = messages
            .last()
            .map_or(empty_cursor, |m| Cursor::after(m.id));
        Ok(Page {
            missed: if reset { 0 } else { missed },
            messages,
            cursor,
            epoch: inner.epoch.clone(),
            reset,
            backfill: since.is_none(),
        })
    }

    /// Resolves once a message newer than `cursor` exists.
    ///
    /// No sleeping and no polling: it parks on the watch channel and is woken
    /// by the append that passes the cursor. Cancel-safe: dropping the future
    /// drops its receiver and leaves nothing behind in the store.
    pub async fn wait_beyond(&self, cursor: Cursor) {
        let epoch = self.epoch();
        self.wait_beyond_in(&epoch, cursor).await;
    }

    /// Resolves once a message newer than `cursor` exists in `epoch`, or the
    /// store's epoch is no longer `epoch` (ids started again: the reader's
    /// next read gets a reset).
    pub async fn wait_beyond_in(&self, epoch: &Epoch, cursor: Cursor) {
        let mut news = self.news.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = news
            .wait_for(|news| news.epoch != *epoch || news.last > cursor.0)
            .await;
    }

    /// The newest id as a cursor that has seen everything.
    pub fn newest(&self) -> Cursor {
        Cursor(self.news.borrow().last)
    }

    /// How many tasks are waiting in [`Store::wait_beyond`] right now.
    pub fn waiting(&self) -> usize {
        self.news.receiver_count()
    }

    /// Numbers for `/api/stats`.
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            last_id: inner.last_id,
            retained: inner.ring.len(),
            epoch: inner.epoch.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the ring half-updated in
        // a way readers would misread (every mutation is a push or pop), so a
        // poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn get(&self, id: MessageId) -> Option<&Entry> {
        let first = self.ring.front()?.message.id.0;
        let index = id.0.checked_sub(first)?;
        self.ring.get(usize::try_from(index).ok()?)
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh epoch: 16 random characters from the epoch alphabet.
pub fn new_epoch() -> Epoch {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let text: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    Epoch::parse(&text).expect("built from the epoch alphabet")
}
