//! The gate every send passes, and why a graceful shutdown closes it first.
//!
//! A send is acknowledged (201, or a WebSocket ack) only once it is stored,
//! and an acknowledged message must reach every subscriber still connected.
//! Streams end on shutdown, so the order matters:
//!
//! 1. close the gate: from now on every send is refused (`503
//!    shutting_down`, or an error frame), and closing waits for the sends
//!    already under way to be stored;
//! 2. only then cancel `AppState::shutdown`: every stream hands its client
//!    what the store holds (so every acknowledged message) and ends, held
//!    long polls answer;
//! 3. stop actix, which waits for the responses in flight.
//!
//! Without the gate a send could be stored, and acknowledged, after the
//! streams it should have reached had ended.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::{RwLock, RwLockReadGuard};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use chat_protocol::{Cursor, MessageId};

/// Whether sends are still taken, and the sends under way.
#[derive(Debug, Default)]
pub struct SendGate {
    /// Cancelled when the gate starts closing: a send that has not entered
    /// is refused, and a body still arriving is cut short.
    closing: CancellationToken,
    /// `true` while open. A send holds a read guard while it is stored;
    /// closing takes the write guard, so it waits for every send under way
    /// (tokio's lock is fair: sends that come later queue behind it, and
    /// then find it closed).
    open: RwLock<Open>,
    /// The newest id this process acknowledged, so that a stream knows what
    /// it still owes its client when the store is a shared log that reaches
    /// this process a moment after the acknowledgement.
    last_acked: AtomicU64,
    /// When the gate closed: the drain of the streams is timed from here.
    closed_at: OnceLock<Instant>,
}

/// The gate's state behind its lock.
#[derive(Debug)]
struct Open(bool);

impl Default for Open {
    fn default() -> Self {
        Open(true)
    }
}

/// A send's pass through the gate: while it lives, the gate cannot close.
#[derive(Debug)]
pub struct Permit<'a> {
    gate: &'a SendGate,
    _open: RwLockReadGuard<'a, Open>,
}

impl Permit<'_> {
    /// Records that the send was stored as `id` and is being acknowledged.
    pub fn acked(&self, id: MessageId) {
        self.gate.last_acked.fetch_max(id.0, Relaxed);
    }
}

impl SendGate {
    /// A pass for one send, or `None` once the gate is closing.
    pub async fn enter(&self) -> Option<Permit<'_>> {
        if self.closing.is_cancelled() {
            return None;
        }
        let open = self.open.read().await;
        open.0.then_some(Permit {
            gate: self,
            _open: open,
        })
    }

    /// Whether the gate is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Resolves when the gate starts closing (a body still arriving stops
    /// being waited for).
    pub fn closing(&self) -> WaitForCancellationFuture<'_> {
        self.closing.cancelled()
    }

    /// Refuses every send from now on and resolves once the sends under way
    /// are stored: step 1 of a graceful shutdown.
    pub async fn close(&self) {
        self.closing.cancel();
        self.open.write().await.0 = false;
        let _ = self.closed_at.set(Instant::now());
    }

    /// When the gate closed, if it did.
    pub fn closed_at(&self) -> Option<Instant> {
        self.closed_at.get().copied()
    }

    /// The newest message this process acknowledged.
    pub fn last_acked(&self) -> Cursor {
        Cursor(self.last_acked.load(Relaxed))
    }
}
