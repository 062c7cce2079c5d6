//! A streaming response that reads the store at its own cursor: the body of
//! every SSE and HTTP streaming response.
//!
//! A WebSocket's task writes each frame into actix-ws's channel, and actix
//! takes it from there: two tasks woken per delivery, one after the other.
//! SSE and streaming used to work the same way, through a mailbox of framed
//! chunks. A [`Feed`] does without the mailbox: it *is* the response body,
//! and when actix asks it for the next chunk it reads the store after the
//! last message it handed over, frames what it finds (each message's bytes
//! built once and shared by every connection, `chat_store::framing`), and
//! hands over everything pending as one chunk, within the byte bound. With
//! nothing to send it parks its waker in the store's list
//! ([`chat_store::Store::poll_beyond_in`]), so news wakes the connection
//! actix is serving directly, and a delivery is one task woken and one
//! `send` (and two reads of the store: the one that finds the message, and
//! the one that finds nothing more).
//!
//! What a body cannot do is act while it is not asked for anything, and a
//! client that stops reading is exactly that: actix stops polling a body
//! whose socket is full. So each connection keeps a small task
//! (`connection.rs` in each crate) with a [`FeedHandle`]: it cuts off a
//! client that falls too far behind or leaves bytes unread too long
//! ([`FeedHandle::too_slow`], the rules of [`crate::Backlog`]), hands the
//! body the rare items it does not read from the store (the presence list
//! and the keep-alive, [`FeedHandle::push`]), and on shutdown lets the body
//! finish what the store holds ([`FeedHandle::drain`]). While the client
//! keeps up the task does not wake at all, whatever the traffic: it waits
//! for the socket to report a write that left bytes behind
//! (`Wire::backed_up`), and only then checks every [`LAG_CHECK`]; over
//! HTTP/2, where a stream can stall on its own flow-control window while
//! the shared socket takes everything, it waits for news instead. (It used
//! to wait for news in the store, which woke every connection's task along
//! with its body, all on the same message, about once a second.)

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use chat_protocol::{Cursor, Epoch, Transport};
use chat_store::framing::coalesce;
use chat_store::{Framing, Page, Parking, StoredMessage};

use crate::AppState;
use crate::streaming::{Backlog, End, STALL_GRACE, await_last_acked, drain_deadline};
use crate::wire::{Socket, Wire};

/// While messages flow, how often a connection's task checks that its
/// client keeps within the bounds: a client is cut off at most this long
/// after it crosses one.
pub const LAG_CHECK: Duration = Duration::from_secs(1);

/// How a transport writes what a feed sends.
#[derive(Debug, Clone, Copy)]
pub struct Frames {
    /// The transport, whose counters the deliveries go to.
    pub transport: Transport,
    /// The slot of the store's framing cache its messages use.
    pub framing: Framing,
    /// A message, as written (built once per message, then shared).
    pub message: fn(&StoredMessage) -> Bytes,
    /// A gap notice for this many missed messages.
    pub gap: fn(u64) -> Bytes,
    /// A reset notice: the store's ids started again in this epoch.
    pub reset: fn(&Epoch) -> Bytes,
}

/// What a feed and its connection's task share (one worker thread).
#[derive(Debug)]
struct Shared {
    /// The epoch of the last page read.
    epoch: RefCell<Epoch>,
    /// The last message handed to actix.
    position: Cell<Cursor>,
    /// A control item the task gave the body, sent before any message.
    control: RefCell<Option<Bytes>>,
    /// The body's waker while it waits, for the task's pushes.
    waker: RefCell<Option<Waker>>,
    /// When the body last handed anything over, or the task last pushed.
    last_item: Cell<Instant>,
    /// Whether the next item waits for the byte bound.
    held: Cell<bool>,
    /// The socket's unwritten bytes, for the byte bound.
    wire: Rc<Wire>,
    /// Whether `wire` is the connection's (a test's own server has none).
    watched: bool,
    /// Whether the socket carries this response alone (HTTP/1.1): then a
    /// client that does not keep up shows first as a write that leaves
    /// bytes behind. Over HTTP/2 a stream can stall on its flow-control
    /// window while the shared socket writes everything it is given.
    own_socket: bool,
    /// On shutdown: the body ends once it has handed over this far.
    drain_to: Cell<Option<Cursor>>,
    /// The body ends at its next poll.
    end: Cell<bool>,
    /// The body was dropped: the response is over.
    gone: Cell<bool>,
    /// Told when it is.
    gone_notice: Notify,
}

impl Shared {
    /// Keeps the body's waker for the task's pushes (a clone only when it
    /// is another task's: actix polls a body from the same task each time).
    fn keep_waker(&self, waker: &Waker) {
        let mut kept = self.waker.borrow_mut();
        if !kept.as_ref().is_some_and(|k| k.will_wake(waker)) {
            *kept = Some(waker.clone());
        }
    }

    /// Wakes the body if it waits.
    fn wake_body(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// One item ready for actix: framed bytes and the page's messages in them.
#[derive(Debug)]
struct Item {
    bytes: Bytes,
    messages: Range<usize>,
}

/// The future a feed waits on for room in the socket.
type Wait = Pin<Box<dyn Future<Output = ()>>>;

/// A streaming response's body: the store's messages after its cursor,
/// framed, as actix asks for them. See the module's docs.
pub struct Feed {
    state: AppState,
    frames: Frames,
    /// Largest page read at once.
    batch: usize,
    shared: Rc<Shared>,
    /// The first bytes of the body (SSE's `retry:`).
    opening: Option<Bytes>,
    /// The first page, read by the handler (so a bad cursor was a 400).
    first: Option<Page>,
    /// The page being handed over, and its items left.
    page: Option<Page>,
    items: VecDeque<Item>,
    /// An item held back by the byte bound.
    ready: Option<Item>,
    /// Its place in the store's list of waiting bodies, while it waits for
    /// news ([`chat_store::Store::poll_beyond_in`]).
    parked: Option<Parking>,
    /// Waiting for the socket to take bytes (rare: a slow client).
    moved: Option<Wait>,
}

impl Feed {
    /// A body for the response to `req`, starting with `opening` and then
    /// `first`, and the handle its connection's task keeps.
    pub fn new(
        req: &HttpRequest,
        state: AppState,
        frames: Frames,
        first: Page,
        batch: usize,
        opening: Option<Bytes>,
    ) -> (Feed, FeedHandle) {
        // A server started without `start` (a test's own) has no watched
        // socket: the byte bound then never holds anything.
        let watched = req.conn_data::<Rc<Wire>>().cloned();
        let wire = watched.clone().unwrap_or_default();
        let shared = Rc::new(Shared {
            epoch: RefCell::new(first.epoch.clone()),
            position: Cell::new(crate::streaming::position_before(&first)),
            control: RefCell::new(None),
            waker: RefCell::new(None),
            last_item: Cell::new(Instant::now()),
            held: Cell::new(false),
            wire,
            watched: watched.is_some(),
            own_socket: watched.is_some() && req.conn_data::<Socket>().is_some(),
            drain_to: Cell::new(None),
            end: Cell::new(false),
            gone: Cell::new(false),
            gone_notice: Notify::new(),
        });
        let feed = Feed {
            state,
            frames,
            batch,
            shared: shared.clone(),
            opening,
            first: Some(first),
            page: None,
            items: VecDeque::new(),
            ready: None,
            parked: None,
            moved: None,
        };
        (feed, FeedHandle { shared })
    }

    /// The next item to hand over, if any: the task's control item, then
    /// the rest of the page, then a new page from the store.
    fn next_item(&mut self) -> Option<Item> {
        if let Some(control) = self.shared.control.borrow_mut().take() {
            return Some(Item {
                bytes: control,
                messages: 0..0,
            });
        }
        if self.items.is_empty() {
            if let Some(page) = self.page.take() {
                self.shared.position.set(page.cursor);
            }
            let page = match self.first.take() {
                Some(first) => first,
                None => {
                    let epoch = self.shared.epoch.borrow().clone();
                    let at = self.shared.position.get();
                    // Cannot fail: the cursor came from the store.
                    self.state
                        .store
                        .read_in(Some(&epoch), Some(at), self.batch)
                        .ok()?
                }
            };
            if page.messages.is_empty() && page.missed == 0 && !page.reset {
                self.shared.position.set(page.cursor);
                return None;
            }
            fill(
                &mut self.items,
                &page,
                &self.frames,
                self.state.config.max_unsent,
            );
            *self.shared.epoch.borrow_mut() = page.epoch.clone();
            self.page = Some(page);
        }
        self.items.pop_front()
    }

    /// Counts the messages in `item` as delivered and moves the cursor.
    fn handed(&self, item: &Item) {
        if let Some(page) = &self.page {
            let counters = self.state.stats.of(self.frames.transport);
            for message in &page.messages[item.messages.clone()] {
                counters.delivered_message(page, message);
                self.shared.position.set(Cursor::after(message.id));
            }
        }
        self.shared.last_item.set(Instant::now());
    }

    /// Whether a draining feed has handed over all it owes.
    fn drained(&self) -> bool {
        self.shared.end.get()
            || self
                .shared
                .drain_to
                .get()
                .is_some_and(|to| self.shared.position.get() >= to)
    }
}

/// Fills `items` (empty) with a page's: the reset and gap notices if any,
/// then its messages, several to an item, each item within `max_bytes` (one
/// message alone always makes one).
fn fill(items: &mut VecDeque<Item>, page: &Page, frames: &Frames, max_bytes: usize) {
    if page.reset {
        items.push_back(Item {
            bytes: (frames.reset)(&page.epoch),
            messages: 0..0,
        });
    }
    if page.missed > 0 {
        items.push_back(Item {
            bytes: (frames.gap)(page.missed),
            messages: 0..0,
        });
    }
    let mut start = 0;
    for chunk in coalesce(&page.messages, frames.framing, frames.message, max_bytes) {
        let end = start + chunk.messages.len();
        items.push_back(Item {
            bytes: chunk.bytes,
            messages: start..end,
        });
        start = end;
    }
}

impl MessageBody for Feed {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(opening) = this.opening.take() {
            return Poll::Ready(Some(Ok(opening)));
        }
        loop {
            if this.shared.end.get() {
                return Poll::Ready(None);
            }
            if this.ready.is_none() {
                this.ready = this.next_item();
            }
            let Some(item) = &this.ready else {
                if this.drained() {
                    return Poll::Ready(None);
                }
                // Nothing to send: wait for news, or for the task.
                this.shared.keep_waker(cx.waker());
                let news = this.state.store.poll_beyond_in(
                    &this.shared.epoch.borrow(),
                    this.shared.position.get(),
                    &mut this.parked,
                    cx,
                );
                match news {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => continue,
                }
            };
            // The byte bound: while the client leaves bytes unread, nothing
            // more that would take it past `--max-unsent`.
            let unsent = this.shared.wire.unflushed.get();
            if unsent > 0 && unsent + item.bytes.len() > this.state.config.max_unsent {
                this.shared.held.set(true);
                this.shared.keep_waker(cx.waker());
                // Registered before this poll returns, and nothing runs in
                // between: a move of the socket's bytes is not missed.
                let moved = this.moved.get_or_insert_with(|| {
                    let wire = this.shared.wire.clone();
                    Box::pin(async move {
                        let _awaiting = wire.awaiting_moves();
                        wire.moved.notified().await;
                    })
                });
                match moved.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        this.moved = None;
                        continue;
                    }
                }
            }
            this.shared.held.set(false);
            this.moved = None;
            if let Some(item) = this.ready.take() {
                this.handed(&item);
                // actix may ask for more before it writes: until its next
                // write says what is left, what it was handed counts too.
                if this.shared.watched {
                    let wire = &this.shared.wire;
                    wire.unflushed.set(wire.unflushed.get() + item.bytes.len());
                }
                return Poll::Ready(Some(Ok(item.bytes)));
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.state.store.unpark(self.parked.take());
        self.shared.gone.set(true);
        self.shared.gone_notice.notify_one();
    }
}

/// A connection task's hold on its feed.
#[derive(Debug)]
pub struct FeedHandle {
    shared: Rc<Shared>,
}

impl FeedHandle {
    /// Gives the body a control item to send before any message: the newest
    /// replaces one not sent yet (a presence list is only worth its latest).
    pub fn push(&self, item: Bytes) {
        *self.shared.control.borrow_mut() = Some(item);
        self.shared.last_item.set(Instant::now());
        self.shared.wake_body();
    }

    /// Gives the body a keep-alive, unless a control item already waits
    /// (which keeps the connection alive as well).
    pub fn keep_alive(&self, item: Bytes) {
        if self.shared.control.borrow().is_none() {
            self.push(item);
        } else {
            self.shared.last_item.set(Instant::now());
        }
    }

    /// Resolves once nothing has been handed over, nor pushed, for `quiet`.
    pub async fn silent_for(&self, quiet: Duration) {
        loop {
            let due = self.shared.last_item.get() + quiet;
            // Awaited even when due: a task never loops here without yielding.
            sleep_until(due).await;
            if Instant::now() >= self.shared.last_item.get() + quiet {
                return;
            }
        }
    }

    /// Resolves once the response is over (the client went away, or actix
    /// finished with the body).
    pub async fn gone(&self) {
        while !self.shared.gone.get() {
            self.shared.gone_notice.notified().await;
        }
    }

    /// Resolves, counted and logged, once the client has broken a bound of
    /// `backlog`: more than its messages behind the live chat, or bytes
    /// left unread for [`STALL_GRACE`] while more wait to go (the socket
    /// took none of them, and actix's write buffer or the byte bound held
    /// the rest). Checked every [`LAG_CHECK`] while the client has something
    /// it has not taken; not at all while it has everything.
    pub async fn too_slow<C>(&self, state: &AppState, backlog: &Backlog) -> End<C> {
        let wire = &self.shared.wire;
        let mut stalled_since = None;
        loop {
            if wire.unflushed.get() == 0 {
                stalled_since = None;
                if self.shared.own_socket {
                    // Bytes left behind by a write come before any lag:
                    // while the client keeps up, this task sleeps.
                    while wire.unflushed.get() == 0 {
                        wire.backed_up.notified().await;
                    }
                } else {
                    // No socket of its own to watch (an HTTP/2 stream, or
                    // a test's own server): every message is a reason to
                    // look.
                    let epoch = self.shared.epoch.borrow().clone();
                    let position = self.shared.position.get();
                    state.store.wait_beyond_in(&epoch, position).await;
                }
            }
            let checked = Instant::now();
            let written = wire.written.get();
            sleep(LAG_CHECK).await;
            let position = self.shared.position.get();
            if backlog.fell_behind(&state.store, position) {
                return backlog.too_far_behind(state, position);
            }
            let more = self.shared.held.get() || position < state.store.newest();
            let stuck = wire.unflushed.get() > 0 && wire.written.get() == written && more;
            if !stuck {
                stalled_since = None;
                continue;
            }
            let since = *stalled_since.get_or_insert(checked);
            if since.elapsed() >= STALL_GRACE {
                return backlog.stalled(state, position, wire.unflushed.get());
            }
        }
    }

    /// Once shutdown has begun: lets the body hand over everything the
    /// store holds (every acknowledged send), then end; returns once it
    /// has, or [`DRAIN_GRACE`](crate::streaming::DRAIN_GRACE) after the send gate closed.
    pub async fn drain<C>(&self, state: &AppState) -> End<C> {
        let deadline = drain_deadline(state);
        let epoch = self.shared.epoch.borrow().clone();
        await_last_acked(state, &epoch, self.shared.position.get(), deadline).await;
        self.shared.drain_to.set(Some(state.store.newest()));
        self.shared.wake_body();
        let _ = timeout_at(deadline, self.gone()).await;
        End::ShuttingDown
    }

    /// Ends the body at its next poll.
    pub fn end(&self) {
        self.shared.end.set(true);
        self.shared.wake_body();
    }
}
