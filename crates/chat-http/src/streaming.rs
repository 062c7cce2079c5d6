//! What only the streaming transports need: the slow-reader rule, the handle
//! that can cut a connection off, and the pieces of the loop every
//! connection task runs.
//!
//! A streaming transport (SSE, WebSocket) serves each client from one task,
//! spawned on the worker thread that owns the client's connection. Every such
//! task has the same shape, in its crate's `connection.rs`:
//!
//! ```text
//! loop {
//!     deliver the pending page (gap notice, then each message) → or End
//!     select! { news in the store → next page
//!               the client (gone, or a frame from it)
//!               the heartbeat
//!               shutdown → End::ShuttingDown }
//! }
//! finish(end)
//! ```
//!
//! Only three things differ between transports: how an item is framed, what
//! the client may send, and what the heartbeat is.

use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use chat_protocol::Cursor;
use chat_store::Store;

use crate::AppState;

/// Why a connection's loop ended, and so how it is closed.
#[derive(Debug)]
pub enum End<C> {
    /// The client went away: nothing left to say.
    Gone,
    /// The client fell more than the backlog behind the live chat: reset the
    /// connection, it resumes from its cursor.
    TooSlow,
    /// The server is shutting down: end cleanly so the client reconnects.
    ShuttingDown,
    /// A transport-specific close (a WebSocket close code and reason).
    Close(C),
}

/// One connection's slow-reader bound.
///
/// A streaming connection hands items to a bounded queue that drains only as
/// fast as its client reads. When the queue is full the connection's task
/// waits, and while it waits it watches how far the chat moves on. The rule:
/// a client may fall at most `backlog` messages behind the *live* chat.
///
/// "Live" matters. A client that reconnects with an old cursor is behind by
/// however much history it asked for, but that history is read from the
/// store, not buffered for it, so catching up is never held against it: the
/// lag is counted from the newest message at the time it connected, or from
/// the last message it was handed, whichever is later. A client that stops
/// reading is cut off once `backlog` new messages have arrived that it could
/// not take, and resumes from its cursor; `backlog` stays below the history
/// bound, so the messages it needs are still there.
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

/// Hands one item to a connection's outgoing queue (`send`), waiting as long
/// as the client reads, but no longer than the backlog rule allows or the
/// server runs. `position` is the last message the client was handed.
pub async fn hand_over<C, E>(
    send: impl Future<Output = Result<(), E>>,
    state: &AppState,
    backlog: &Backlog,
    position: Cursor,
) -> Result<(), End<C>> {
    tokio::select! {
        // Biased: the send is polled first, so reaching another branch means
        // the queue was still there and full.
        biased;
        sent = send => sent.map_err(|_| End::Gone),
        _ = backlog.exceeded(&state.store, position) => {
            tracing::warn!(%position, backlog = state.config.backlog, "client too slow; resetting");
            Err(End::TooSlow)
        }
        _ = state.shutdown.cancelled() => Err(End::ShuttingDown),
    }
}

/// The last message a client has been handed when a page is about to be
/// delivered: just before the page's first message.
pub fn position_before(page: &chat_store::Page) -> Cursor {
    page.messages
        .first()
        .map_or(page.cursor, |m| Cursor::before(m.id))
}

/// A handle on the connection a streaming response is served on, to cut it
/// off when actix cannot: a response whose client stops reading is never
/// polled again, so it cannot end itself. Resetting the socket wakes the
/// connection with an error and frees it.
///
/// It holds the socket's descriptor number (not a duplicate: a duplicate
/// would cost every connection a second descriptor) and a weak reference to a
/// token that lives inside the response body. While the token lives, the
/// response is being served, so the connection, and with it the descriptor,
/// is open. The handle is neither `Send` nor `Sync` (it holds an `Rc`): it can
/// only be used on the worker thread that owns the connection, which is what
/// makes the check and the use of the descriptor one uninterrupted step.
#[derive(Debug)]
pub struct Connection {
    fd: Option<RawFd>,
    response: Weak<()>,
}

impl Connection {
    /// Ties `response`, about to be served on the connection `req` arrived
    /// on, to a handle that can reset that connection while the response
    /// lives. Returns the handle and the response to send.
    pub fn serve<B: MessageBody + Unpin + 'static>(
        req: &HttpRequest,
        response: HttpResponse<B>,
    ) -> (Connection, HttpResponse) {
        let token = Rc::new(());
        let connection = Connection {
            fd: req.conn_data::<Socket>().map(|s| s.0),
            response: Rc::downgrade(&token),
        };
        let response = response
            .map_body(|_, body| Watched {
                inner: body,
                _token: token,
            })
            .map_into_boxed_body();
        (connection, response)
    }

    /// Whether the response is still being served.
    pub fn is_alive(&self) -> bool {
        self.response.strong_count() > 0
    }

    /// Resets the connection (RST, no FIN after unsent data, so a stalled
    /// client's kernel buffers are dropped too). Does nothing once the
    /// response is over.
    #[allow(unsafe_code)]
    pub fn reset(&self) {
        let Some(fd) = self.fd else { return };
        if !self.is_alive() {
            return;
        }
        // SAFETY: the response body holds the token, so the connection that
        // serves it, and its socket, are open. This handle cannot leave the
        // worker thread that owns that connection (it is `!Send`), and nothing
        // between the check above and these two system calls yields, so the
        // connection cannot be closed, nor the descriptor number reused, in
        // between.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        // Both calls fail only if the socket is already closed, which is the
        // outcome wanted.
        let _ = socket.set_linger(Some(Duration::ZERO));
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }

    /// The time a closing handshake (a WebSocket close frame) may take before
    /// the connection is reset instead.
    pub async fn close_within<F: Future>(&self, grace: Duration, close: F) {
        if tokio::time::timeout(grace, close).await.is_err() {
            self.reset();
        }
    }
}

/// The descriptor of an accepted connection, remembered in `on_connect`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Socket(RawFd);

/// Stores the descriptor of every accepted TCP connection in its extensions.
pub(crate) fn remember_socket(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        ext.insert(Socket(tcp.as_raw_fd()));
    }
}

/// A response body that carries the liveness token of its [`Connection`].
struct Watched<B> {
    inner: B,
    _token: Rc<()>,
}

impl<B: MessageBody + Unpin> MessageBody for Watched<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}
