//! # chat-store: the one source of truth behind every transport
//!
//! Every transport serves the same chat from this crate. What differs between
//! them is only how a message travels; what a message *is* is decided here,
//! once. The store knows no transport and no route: it speaks in the wire
//! contract's types (`chat-protocol`: [`MessageId`], [`Cursor`], [`Via`]).
//!
//! - [`message`]: the rules. [`NewMessage`] is what a sender hands in;
//!   [`StoredMessage`] is the id plus the message's JSON, serialized
//!   **once**, at append.
//! - [`store`]: the [`Store`]. It validates and numbers messages (1, 2, 3, …
//!   with no gaps), keeps the most recent `history` of them, makes a retried
//!   send with the same (`user`, `client_msg_id`) harmless, answers "what came
//!   after this cursor?", and lets a task wait for news without polling.
//!
//! ## Why the bytes are made once
//!
//! Each transport frames the same JSON differently (`data:` lines, a WebSocket
//! text frame, an element of a JSON array), but the JSON itself is the same
//! bytes for every reader. Serializing at append and handing out
//! [`bytes::Bytes`] (a reference-counted slice) means a message delivered to a
//! thousand subscribers is encoded once and copied zero times in the store.
//! It also makes the per-message overhead of the transports comparable: the
//! payload is identical, only the framing differs.
//!
//! ## Concurrency design
//!
//! One `std::sync::Mutex` guards the ring of messages, the newest id and the
//! idempotency keys. A std mutex rather than `tokio::sync::Mutex` because no
//! critical section awaits anything: an append validates *before* locking,
//! then pushes one entry and pops at most one; a read clones at most `limit`
//! `Bytes` handles (a counter increment each). Critical sections are a few
//! hundred nanoseconds to a few microseconds, far shorter than the cost of an
//! async lock's bookkeeping, and a std mutex cannot be held across an
//! `.await` by mistake (the guard is not `Send`).
//!
//! Waiting is separate from reading. The newest id is published on a
//! `tokio::sync::watch` channel. [`Store::wait_beyond`] parks until that value
//! passes a cursor: every waiter is woken by the append that passes it, no
//! task sleeps or polls, and a waiter that is dropped (its client hung up)
//! simply drops its receiver. The value is sent while the lock is held, so it
//! never moves backwards when two appends race. A response body, which is
//! polled rather than awaited, uses [`Store::poll_beyond_in`] instead: one
//! list of wakers for every waiting body, emptied by each change, so a wait
//! costs a body a clone of its waker and nothing that outlives it.
//!
//! What a slow reader can and cannot do to others: a reader holds the lock
//! only while it copies handles, never while it writes to a socket, so a
//! client that stops reading cannot delay a writer or another reader. It also
//! cannot make the store grow: history is bounded, and a reader that falls
//! further behind than `history` is told how many messages it missed (the gap
//! notice) instead of the store keeping them for it. Bounding what a slow
//! *connection* buffers is the transports' job; the store only guarantees that
//! everything within `history` can be read again from a cursor.
//!
//! ## Example
//!
//! ```
//! use chat_store::{Cursor, NewMessage, Store, StoreConfig, Via};
//!
//! let store = Store::new(StoreConfig::default());
//! let sent = store
//!     .append(NewMessage {
//!         user: "ana".into(),
//!         text: "hello".into(),
//!         client_msg_id: None,
//!         via: Via::Api,
//!     })
//!     .expect("valid message");
//! assert_eq!(sent.message().id.0, 1);
//!
//! let page = store.read(Some(Cursor(0)), 100).expect("cursor is valid");
//! assert_eq!(page.messages.len(), 1);
//! assert_eq!(page.cursor, Cursor(1));
//! ```

pub mod framing;
pub mod log;
pub mod message;
mod redis_log;
pub mod store;

pub use chat_protocol::Epoch;
pub use chat_protocol::limits::{DEFAULT_MAX_TEXT_CHARS, MAX_CLIENT_MSG_ID_CHARS, MAX_USER_CHARS};
pub use chat_protocol::{Cursor, Message, MessageId, Via};
pub use framing::{Framing, Framings};
pub use log::{Log, OpenError, SendFailure};
pub use message::{NewMessage, SendError, StoredMessage, validate_user};
pub use store::{
    Appended, CursorError, DEFAULT_BACKFILL, DEFAULT_HISTORY, Page, Parking, Store, StoreConfig,
    StoreStats, new_epoch,
};
