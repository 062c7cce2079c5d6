//! The epoch a subscription's cursor belongs to, shared by every feed it
//! opens (Auto opens several).
//!
//! A cursor alone is ambiguous: ids start again at 1 when a server's store
//! starts empty. Every request carries `epoch=E` once the subscription knows
//! its epoch (from [`Options::epoch`](crate::Options::epoch), else from
//! `GET /api/config` before its first request), and a server whose epoch is
//! another answers with a reset notice and everything from the start: the
//! subscription yields [`Event::Reset`](crate::Event::Reset), forgets its
//! cursor, and carries the new epoch from then on.

use std::sync::{Arc, Mutex};

use chat_protocol::Epoch;

/// One subscription's epoch, read by its feeds as they build requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedEpoch(Arc<Mutex<Option<Epoch>>>);

impl SharedEpoch {
    pub(crate) fn new(epoch: Option<Epoch>) -> Self {
        SharedEpoch(Arc::new(Mutex::new(epoch)))
    }

    /// The epoch, if known.
    pub(crate) fn get(&self) -> Option<Epoch> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set(&self, epoch: Epoch) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(epoch);
    }

    /// `("epoch", E)` for a query string, when known.
    pub(crate) fn query(&self) -> Option<(&'static str, String)> {
        self.get().map(|e| ("epoch", e.to_string()))
    }
}
