//! The slow-reader rule shared by the streaming transports (SSE, WebSocket).
//!
//! A streaming connection hands messages to a bounded queue that drains only
//! as fast as its client reads. When the queue is full the connection's task
//! waits, and while it waits it watches how far the chat moves on. The rule:
//! a client may fall at most `backlog` messages behind the *live* chat.
//!
//! "Live" matters. A client that reconnects with an old cursor is behind by
//! however much history it asked for, but that history is read from the
//! store, not buffered for it, so catching up is never held against it: the
//! lag is counted from the newest message at the time it connected, or from
//! the last message it was handed, whichever is later. A client that stops
//! reading is cut off once `backlog` new messages have arrived that it could
//! not take, and resumes from its cursor; `backlog` stays below the history
//! bound, so the messages it needs are still there.

use chat_store::{Cursor, Store};

/// One connection's slow-reader bound.
#[derive(Debug, Clone, Copy)]
pub struct Backlog {
    /// The newest message when the connection opened.
    live_from: Cursor,
    /// How many messages behind the live chat the client may fall.
    bound: u64,
}

impl Backlog {
    /// The bound for a connection opening now.
    pub fn new(store: &Store, bound: u64) -> Self {
        Backlog {
            live_from: store.newest(),
            bound,
        }
    }

    /// Resolves once a client that has been handed everything up to
    /// `position` is more than the bound behind the live chat.
    pub async fn exceeded(&self, store: &Store, position: Cursor) {
        let floor = position.max(self.live_from);
        store
            .wait_beyond(Cursor(floor.0.saturating_add(self.bound)))
            .await;
    }
}
