//! What only the streaming transports need: the slow-reader rule, the handle
//! that can cut a connection off, and the pieces of the loop a WebSocket's
//! task runs.
//!
//! A WebSocket is served by one task, spawned on the worker thread that owns
//! the client's connection, in `chat-websocket`'s `connection.rs`:
//!
//! ```text
//! loop {
//!     deliver the pending page (gap notice, then each message) → or End
//!     select! { news in the store → next page
//!               the client (gone, or a frame from it)
//!               who is online changed → the presence list
//!               the heartbeat
//!               shutdown → End::ShuttingDown }
//! }
//! finish(end)
//! ```
//!
//! It hands each item to actix-ws's channel with [`hand_over`], which keeps
//! the bounds below while it waits. SSE and HTTP streaming need no such
//! loop: their response body reads the store itself ([`crate::feed`]), and
//! their task only keeps the same bounds ([`crate::feed::FeedHandle::too_slow`]),
//! the presence list, the heartbeat and the shutdown drain. The presence
//! list comes from the registry ([`crate::presence::Subscriber`], whose guard
//! the task owns, so the user goes offline however the connection ends) and
//! is framed like any other control item.
//!
//! Two bounds keep a client that reads slowly, or not at all, from costing
//! the server without limit, and both end in a reset (`End::TooSlow`) the
//! client resumes from:
//!
//! - in **messages** ([`Backlog`], `--backlog`): how far behind the live chat
//!   it may fall;
//! - in **bytes** (`--max-unsent`): how much it may leave unread in the
//!   server's memory, queued for it or in actix's write buffer. At the bound
//!   nothing more is handed over until it reads; if it does not within
//!   [`STALL_GRACE`] (a feed: if the socket takes none of its bytes for that
//!   long while more waits), it is cut off.
//!
//! On shutdown a connection first hands its client everything the store
//! holds (every acknowledged send: see `shutdown.rs`), for at most
//! [`DRAIN_GRACE`], and then ends.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::{Pin, pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use tokio::time::{Instant, sleep_until, timeout_at};

use chat_protocol::{Cursor, Epoch, MessageId, Transport};
use chat_store::{Page, Store};

use crate::AppState;
use crate::stats::Refusals;
use crate::wire::{Socket, Wire};

/// How long a connection holding `--max-unsent` bytes may go without its
/// client taking enough of them to make room for the next item, before it
/// is cut off. A client that reads at all, however slowly, makes room well
/// within it (an 8 KB message on a 2 KB/s link); one that has stopped never
/// does.
pub const STALL_GRACE: Duration = Duration::from_secs(5);

/// How long, once shutdown has begun, a connection may take to hand its
/// client the messages stored before it, before it ends regardless.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

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

/// One connection's slow-reader bounds, in messages and in bytes.
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
///
/// The queue's bound is in items, and items may be large, so the bytes a
/// connection holds are bounded too (`--max-unsent`): the bytes handed over
/// and not yet taken by actix, plus those actix took and could not write to
/// the socket yet. An item that would take the connection past the bound
/// waits until the client reads (one item alone always fits); if no room
/// comes within [`STALL_GRACE`], the client has stopped, and is cut off.
#[derive(Debug)]
pub struct Backlog {
    /// The newest message when the connection opened.
    live_from: Cursor,
    /// How many messages behind the live chat the client may fall.
    bound: u64,
    /// How many bytes the connection may hold for its client.
    max_unsent: usize,
    /// The connection's bytes on their way to the client.
    flow: Rc<Flow>,
    /// The transport serving it, whose slow-reader count a reset adds to.
    transport: Option<Transport>,
}

impl Backlog {
    /// The bounds for `connection`, opening now, from the server's settings.
    pub fn new(state: &AppState, connection: &Connection) -> Self {
        Backlog {
            live_from: state.store.newest(),
            bound: state.config.backlog,
            max_unsent: state.config.max_unsent,
            flow: connection.flow.clone(),
            transport: connection.transport,
        }
    }

    /// Counts a reset of this connection as a slow reader, under its
    /// transport.
    fn count_reset(&self, state: &AppState) {
        if let Some(transport) = self.transport {
            Refusals::count(&state.stats.of(transport).slow_reader_disconnects);
        }
    }

    /// The newest message a client that has been handed everything up to
    /// `position` may see stored without being too far behind.
    fn limit(&self, position: Cursor) -> Cursor {
        let floor = position.max(self.live_from);
        Cursor(floor.0.saturating_add(self.bound))
    }

    /// Resolves once a client that has been handed everything up to
    /// `position` is more than the bound behind the live chat.
    pub async fn exceeded(&self, store: &Store, position: Cursor) {
        store.wait_beyond(self.limit(position)).await;
    }

    /// Whether a client that has been handed everything up to `position` is
    /// more than the bound behind the live chat now.
    pub(crate) fn fell_behind(&self, store: &Store, position: Cursor) -> bool {
        store.newest() > self.limit(position)
    }

    /// The end of a client more than the bound behind: counted and logged.
    pub(crate) fn too_far_behind<C>(&self, state: &AppState, position: Cursor) -> End<C> {
        self.count_reset(state);
        tracing::warn!(%position, backlog = self.bound, "client too slow; resetting");
        End::TooSlow
    }

    /// The end of a client that left `unsent` bytes unread past the byte
    /// bound for [`STALL_GRACE`]: counted and logged.
    pub(crate) fn stalled<C>(&self, state: &AppState, position: Cursor, unsent: usize) -> End<C> {
        Refusals::count(&state.stats.refused.stalled);
        self.count_reset(state);
        tracing::warn!(%position, unsent, max_unsent = self.max_unsent, "client stalled; resetting");
        End::TooSlow
    }

    /// Waits until `bytes` more fit within the byte bound; `Err` after
    /// [`STALL_GRACE`] without room.
    async fn room_for(&self, bytes: usize) -> Result<(), Stalled> {
        let deadline = Instant::now() + STALL_GRACE;
        let _awaiting = self.flow.wire.awaiting_moves();
        loop {
            // Registered before the check, so a move in between is not missed.
            let moved = self.flow.wire.moved.notified();
            if self.has_room(bytes) {
                return Ok(());
            }
            if timeout_at(deadline, moved).await.is_err() {
                let unsent = self.flow.unsent();
                return Err(Stalled { unsent });
            }
        }
    }

    /// Whether `bytes` more fit within the byte bound now.
    fn has_room(&self, bytes: usize) -> bool {
        let unsent = self.flow.unsent();
        unsent == 0 || unsent + bytes <= self.max_unsent
    }
}

/// A connection that held its byte bound for [`STALL_GRACE`].
struct Stalled {
    unsent: usize,
}

/// Hands one item of `bytes` bytes (as the response body will carry it) to a
/// connection's outgoing queue (`send`), waiting as long as the client
/// reads, but no longer than the backlog rules allow or the server runs.
/// `position` is the last message the client was handed.
pub async fn hand_over<C, E>(
    send: impl Future<Output = Result<(), E>>,
    bytes: usize,
    state: &AppState,
    backlog: &Backlog,
    position: Cursor,
) -> Result<(), End<C>> {
    let mut send = pin!(send);
    // The usual case: the item fits within the byte bound and the queue has
    // room, so the send is done the first time it is polled.
    if backlog.has_room(bytes) {
        let first = poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
        if let Poll::Ready(sent) = first {
            sent.map_err(|_| End::Gone)?;
            backlog.flow.handed(bytes);
            return Ok(());
        }
    }
    // Otherwise wait under the backlog's rules. Boxed: a connection seldom
    // waits, and the waiting inline would make every connection's task
    // larger by a kilobyte for as long as it lives.
    Box::pin(wait_to_hand_over(send, bytes, state, backlog, position)).await
}

/// [`hand_over`] once the item has to wait: for room within the byte bound
/// and in the queue, while the client falls no further behind than the
/// backlog allows and the server runs.
async fn wait_to_hand_over<C, E>(
    send: Pin<&mut impl Future<Output = Result<(), E>>>,
    bytes: usize,
    state: &AppState,
    backlog: &Backlog,
    position: Cursor,
) -> Result<(), End<C>> {
    let queued = async {
        if let Err(Stalled { unsent }) = backlog.room_for(bytes).await {
            return Err(backlog.stalled(state, position, unsent));
        }
        send.await.map_err(|_| End::Gone)?;
        backlog.flow.handed(bytes);
        Ok(())
    };
    tokio::select! {
        // Biased: the send is polled first, so reaching another branch means
        // the queue was still there and full.
        biased;
        queued = queued => queued,
        _ = backlog.exceeded(&state.store, position) => Err(backlog.too_far_behind(state, position)),
        _ = drain_over(state) => Err(End::ShuttingDown),
    }
}

/// Resolves [`DRAIN_GRACE`] after the gate closed on shutdown (or after now,
/// if the shutdown token was cancelled alone).
async fn drain_over(state: &AppState) {
    state.shutdown.cancelled().await;
    sleep_until(drain_deadline(state)).await;
}

/// Once shutdown has begun: when draining is over, [`DRAIN_GRACE`] after the
/// send gate closed (or after now, if the shutdown token was cancelled alone).
pub(crate) fn drain_deadline(state: &AppState) -> Instant {
    state.sends.closed_at().unwrap_or_else(Instant::now) + DRAIN_GRACE
}

/// Once shutdown has begun, for a connection that has handed over up to
/// `cursor`: waits, until `deadline` at most, for the last acknowledged send
/// to reach this process's store (a shared log delivers it a moment after the
/// send was answered).
pub(crate) async fn await_last_acked(
    state: &AppState,
    epoch: &Epoch,
    cursor: Cursor,
    deadline: Instant,
) {
    let acked = state.sends.last_acked();
    if acked > cursor {
        let last = Cursor::before(MessageId(acked.0));
        let _ = timeout_at(deadline, state.store.wait_beyond_in(epoch, last)).await;
    }
}

/// Once shutdown has begun: the next page of at most `limit` messages that a
/// connection at `cursor` still owes its client (everything the store holds
/// by now, so every acknowledged send), or `None` once it has it all. A
/// connection's loop calls it from its shutdown branch, delivers the page and
/// comes round again, until `None` ends it.
pub async fn closing_page(
    state: &AppState,
    epoch: &Epoch,
    cursor: Cursor,
    limit: usize,
) -> Option<Page> {
    await_last_acked(state, epoch, cursor, Instant::now() + DRAIN_GRACE).await;
    let page = state.store.read_in(Some(epoch), Some(cursor), limit).ok()?;
    (!page.messages.is_empty() || page.missed > 0 || page.reset).then_some(page)
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
    /// The response's bytes on their way to the client.
    flow: Rc<Flow>,
    /// The transport whose route the request came to.
    transport: Option<Transport>,
    /// The client's address (see [`crate::forwarded::client_address`]).
    client: Option<IpAddr>,
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
        let flow = Rc::new(Flow {
            handed: Cell::new(0),
            taken: Cell::new(0),
            // A server started without `start` (a test's own) has no watched
            // socket: only the queue is counted then.
            wire: req.conn_data::<Rc<Wire>>().cloned().unwrap_or_default(),
        });
        let connection = Connection {
            fd: req.conn_data::<Socket>().map(|s| s.0),
            response: Rc::downgrade(&token),
            flow: flow.clone(),
            transport: Transport::ALL.into_iter().find(|t| t.route() == req.path()),
            client: req
                .app_data::<actix_web::web::Data<AppState>>()
                .and_then(|state| crate::forwarded::client_address(req, &state.config)),
        };
        let response = response
            .map_body(|_, body| Watched {
                inner: body,
                flow,
                _token: token,
            })
            .map_into_boxed_body();
        (connection, response)
    }

    /// The address of the client it serves, for the per-client limits.
    pub fn client(&self) -> Option<IpAddr> {
        self.client
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

/// One streaming response's bytes between its task and its client.
#[derive(Debug)]
struct Flow {
    /// Bytes the task handed to the queue.
    handed: Cell<u64>,
    /// Bytes actix took from the response body.
    taken: Cell<u64>,
    /// The socket the response is written to.
    wire: Rc<Wire>,
}

impl Flow {
    /// Records an item of `bytes` handed to the queue.
    fn handed(&self, bytes: usize) {
        self.handed.set(self.handed.get() + bytes as u64);
    }

    /// Bytes held for the client: queued, or taken by actix and not written.
    /// (A body's own opening bytes, such as SSE's `retry:`, are taken without
    /// having been handed; the subtraction saturates.)
    fn unsent(&self) -> usize {
        let queued = self.handed.get().saturating_sub(self.taken.get());
        usize::try_from(queued)
            .unwrap_or(usize::MAX)
            .saturating_add(self.wire.unflushed.get())
    }
}

/// A response body that carries the liveness token of its [`Connection`]
/// and counts what actix takes from it.
struct Watched<B> {
    inner: B,
    flow: Rc<Flow>,
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
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            let flow = &this.flow;
            flow.taken.set(flow.taken.get() + chunk.len() as u64);
            flow.wire.tell_moved();
        }
        polled
    }
}
