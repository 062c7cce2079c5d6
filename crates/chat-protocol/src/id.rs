//! Ids and cursors: two numbers that mean different things, so two types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a stored message: 1 for the first, then +1 each time, no gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A reader's position: "I have seen every message up to and including this
/// id". `Cursor(0)` has seen nothing. Every transport resumes from one: it is
/// the `since` of every request and the `Last-Event-ID` of SSE.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cursor(pub u64);

impl Cursor {
    /// The cursor that has seen everything up to and including `id`.
    pub fn after(id: MessageId) -> Self {
        Cursor(id.0)
    }

    /// The cursor just before `id`: it has seen everything older.
    pub fn before(id: MessageId) -> Self {
        Cursor(id.0.saturating_sub(1))
    }

    /// Whether a message with this id is news to this cursor.
    pub fn is_before(self, id: MessageId) -> bool {
        id.0 > self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
