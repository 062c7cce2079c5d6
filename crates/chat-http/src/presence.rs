//! Who is online: the registry every transport reports to, and
//! `GET /api/presence`.
//!
//! A subscription may name its user (`user=ana`, checked like a message's
//! `user`). The registry counts, per user and transport, the subscriptions
//! open right now, and remembers when a poll last came:
//!
//! - **SSE, WebSocket, streaming**: online while the connection is open. The
//!   handler takes a [`Subscriber`] (a [`PresenceGuard`] inside) and moves it
//!   into the connection's task; whichever way the task ends (the client
//!   left, a slow reader was cut, shutdown, the worker stopped) the guard is
//!   dropped, and the user is off that transport at once.
//! - **long polling**: online while a request is held (a guard held by the
//!   handler's future, dropped when it answers or the client hangs up), and
//!   for [`SEEN_WINDOW`] after each request ends, which covers the moment
//!   between one answer and the next request.
//! - **polling**: online for [`SEEN_WINDOW`] after each poll. Nothing is
//!   open between polls, so "online" there means "asked recently", and
//!   `GET /api/presence` says how recently (`seen_ms_ago`).
//!
//! [`SEEN_WINDOW`] is two [`POLL_INTERVAL`]s, and [`POLL_INTERVAL`] is a
//! server constant: the slowest interval the page offers (5 s). The server
//! cannot know a client's interval; with the longest one the page can pick,
//! no polling pane ever blinks off between two of its polls.
//!
//! When the list changes, push transports tell their clients without a
//! channel per connection: the registry publishes the new list, serialized
//! once, on a `tokio::sync::watch`, and every connection's loop waits on its
//! receiver beside the store's news ([`Subscriber::changed`]). A connection
//! passes on at most one list per [`PUSH_GAP`], always the newest (a watch
//! keeps only that), so a thousand people joining at once costs each
//! subscriber a list a second, not a thousand. A connection opened while
//! anyone is online is sent the list once at the start. Only the list of
//! named users counts as a change: an anonymous connection coming and going
//! changes `connections` in `GET /api/presence` and sends nothing.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] users are remembered (one
//! entry each, freed once they are offline, by the sweep every
//! [`SWEEP_EVERY`] for polls that stopped), and a list names at most
//! [`MAX_LISTED`] of them, by name, with a count of the rest.
//!
//! The registry is this process's: with several instances on one shared
//! log, each knows only its own subscribers (docs/protocol.md, "Presence").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, Data};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use chat_protocol::presence::MAX_LISTED;
use chat_protocol::{Control, PresenceBody, PresenceList, Transport, UserPresence};

use crate::api::NOSNIFF;
use crate::{ApiError, AppState, Query};

/// The poll interval the server assumes: the slowest the page offers.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long a poll keeps its user online: two poll intervals.
pub const SEEN_WINDOW: Duration = Duration::from_secs(2 * POLL_INTERVAL.as_secs());
/// The most users the registry remembers; past it, new names are not listed
/// (their subscriptions work as usual and count in `connections`).
pub const MAX_TRACKED: usize = 10_000;
/// The shortest time between two presence items on one connection.
pub const PUSH_GAP: Duration = Duration::from_secs(1);
/// How often the sweep looks for polls that have aged out.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The transports, as bits of a mask (bit `Transport::index`).
type Mask = u8;

/// The registry: who is subscribed where, and the list as last published.
pub struct Presence {
    /// How long a poll keeps its user online ([`SEEN_WINDOW`] by default).
    window: Duration,
    /// The counts; held only for a few map operations, never across an await.
    inner: Mutex<Inner>,
    /// The list as last published, serialized for each framing.
    published: watch::Sender<Arc<Snapshot>>,
}

/// What the registry counts.
#[derive(Default)]
struct Inner {
    /// Per named user (at most [`MAX_TRACKED`]).
    users: BTreeMap<Arc<str>, Entry>,
    /// Subscriptions open now, named or not.
    connections: u64,
}

/// One user's subscriptions.
#[derive(Default)]
struct Entry {
    /// Open subscriptions per transport.
    open: [u32; Transport::ALL.len()],
    /// When a poll (or a held long poll) of the user's last ended.
    seen: [Option<Instant>; Transport::ALL.len()],
}

impl Entry {
    /// The transports the user is online through at `now`.
    fn mask(&self, now: Instant, window: Duration) -> Mask {
        Transport::ALL.iter().fold(0, |mask, t| {
            let i = t.index();
            let recent = self.seen[i].is_some_and(|at| now.saturating_duration_since(at) < window);
            if self.open[i] > 0 || recent {
                mask | 1 << i
            } else {
                mask
            }
        })
    }
}

/// A published list, serialized once for every connection that sends it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The list itself.
    pub list: PresenceList,
    /// `{"users":[…]}`: the data of an SSE `presence` event.
    pub data: Bytes,
    /// `{"type":"presence","users":[…]}`: a WebSocket frame, a stream line.
    pub control: Bytes,
}

impl Snapshot {
    fn new(list: PresenceList) -> Self {
        let control = Control::Presence {
            users: list.users.clone(),
            more: list.more,
        }
        .to_json();
        Snapshot {
            data: list.to_json().into(),
            control: control.into(),
            list,
        }
    }
}

impl Default for Presence {
    fn default() -> Self {
        Presence::new(SEEN_WINDOW)
    }
}

impl Presence {
    /// A registry in which a poll keeps its user online for `window`.
    pub fn new(window: Duration) -> Self {
        Presence {
            window,
            inner: Mutex::default(),
            published: watch::Sender::new(Arc::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The counts stay consistent even if a holder panicked (every
        // change is a single step), so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscription open from now until the guard is dropped.
    pub fn open(self: &Arc<Self>, user: Option<String>, transport: Transport) -> PresenceGuard {
        let mut inner = self.lock();
        inner.connections += 1;
        let user = user.and_then(|user| {
            let user: Arc<str> = user.into();
            self.change(&mut inner, &user, |entry| {
                entry.open[transport.index()] += 1
            })
            .then_some(user)
        });
        PresenceGuard {
            registry: self.clone(),
            user,
            transport,
        }
    }

    /// A push subscription: registered like [`Presence::open`], plus the
    /// list's changes to pass on.
    pub fn subscribe(self: &Arc<Self>, user: Option<String>, transport: Transport) -> Subscriber {
        let guard = self.open(user, transport);
        let mut changes = self.published.subscribe();
        // Someone is online already: the list is the first thing to send.
        if !changes.borrow().list.users.is_empty() {
            changes.mark_changed();
        }
        Subscriber {
            changes,
            next_at: Instant::now(),
            _guard: guard,
        }
    }

    /// A regular poll by `user` just now.
    pub fn seen(&self, user: &str, transport: Transport) {
        let mut inner = self.lock();
        let now = Instant::now();
        self.change(&mut inner, &Arc::from(user), |entry| {
            entry.seen[transport.index()] = Some(now);
        });
    }

    /// Applies `f` to `user`'s entry (made if there is room), drops the
    /// entry if the user is offline after it, and publishes the list if the
    /// user's transports changed. Returns whether the user is tracked.
    fn change(&self, inner: &mut Inner, user: &Arc<str>, f: impl FnOnce(&mut Entry)) -> bool {
        let now = Instant::now();
        if !inner.users.contains_key(user) {
            if inner.users.len() >= MAX_TRACKED {
                return false;
            }
            inner.users.insert(user.clone(), Entry::default());
        }
        let Some(entry) = inner.users.get_mut(user) else {
            return false;
        };
        let before = entry.mask(now, self.window);
        f(entry);
        let after = entry.mask(now, self.window);
        if after == 0 {
            inner.users.remove(user);
        }
        if before != after {
            self.publish(inner, now);
        }
        true
    }

    /// Builds the list from `inner` and publishes it.
    fn publish(&self, inner: &Inner, now: Instant) {
        let list = self.list(inner, now, false);
        self.published.send_replace(Arc::new(Snapshot::new(list)));
    }

    /// The list at `now`; with `seen`, each poll-only transport's age too.
    fn list(&self, inner: &Inner, now: Instant, seen: bool) -> PresenceList {
        let mut list = PresenceList::default();
        for (user, entry) in &inner.users {
            let mask = entry.mask(now, self.window);
            if mask == 0 {
                continue;
            }
            if list.users.len() == MAX_LISTED {
                list.more += 1;
                continue;
            }
            let transports: Vec<Transport> = Transport::ALL
                .into_iter()
                .filter(|t| mask & 1 << t.index() != 0)
                .collect();
            let seen_ms_ago = transports
                .iter()
                .filter(|t| seen && entry.open[t.index()] == 0)
                .filter_map(|t| {
                    let at = entry.seen[t.index()]?;
                    let ms = now.saturating_duration_since(at).as_millis();
                    Some((*t, u64::try_from(ms).unwrap_or(u64::MAX)))
                })
                .collect();
            list.users.push(UserPresence {
                user: user.to_string(),
                transports,
                seen_ms_ago,
            });
        }
        list
    }

    /// Forgets polls older than the window and publishes the list if that
    /// took anyone off a transport.
    pub fn sweep(&self) {
        let mut inner = self.lock();
        let now = Instant::now();
        let window = self.window;
        inner.users.retain(|_, entry| {
            for at in &mut entry.seen {
                if at.is_some_and(|at| now.saturating_duration_since(at) >= window) {
                    *at = None;
                }
            }
            entry.mask(now, window) != 0
        });
        let list = self.list(&inner, now, false);
        if list != self.published.borrow().list {
            self.published.send_replace(Arc::new(Snapshot::new(list)));
        }
    }

    /// Sweeps every [`SWEEP_EVERY`] until `stop` is cancelled. [`crate::start`]
    /// spawns it.
    pub async fn sweep_until(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                _ = stop.cancelled() => return,
            }
        }
    }

    /// The answer of `GET /api/presence`.
    pub fn body(&self) -> PresenceBody {
        let inner = self.lock();
        let list = self.list(&inner, Instant::now(), true);
        PresenceBody {
            users: list.users,
            more: list.more,
            connections: inner.connections,
        }
    }

    /// How many users are remembered (online, or a poll not yet swept).
    pub fn tracked(&self) -> usize {
        self.lock().users.len()
    }
}

/// A subscription's place in the registry: dropped, it leaves.
pub struct PresenceGuard {
    registry: Arc<Presence>,
    /// The user, if named and tracked.
    user: Option<Arc<str>>,
    transport: Transport,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let registry = &self.registry;
        let mut inner = registry.lock();
        inner.connections = inner.connections.saturating_sub(1);
        let Some(user) = &self.user else { return };
        let i = self.transport.index();
        // A poll's user stays online for the window after its request ends.
        let polls = matches!(self.transport, Transport::Polling | Transport::Longpoll);
        let now = Instant::now();
        registry.change(&mut inner, user, |entry| {
            entry.open[i] = entry.open[i].saturating_sub(1);
            if polls {
                entry.seen[i] = Some(now);
            }
        });
    }
}

/// A push connection's presence: its guard, and the list's changes for its
/// loop to pass on.
pub struct Subscriber {
    changes: watch::Receiver<Arc<Snapshot>>,
    /// Not before then: at most one item per [`PUSH_GAP`].
    next_at: Instant,
    _guard: PresenceGuard,
}

impl Subscriber {
    /// Resolves with the newest list once it changed since the last one
    /// returned (and [`PUSH_GAP`] has passed since then). Cancel-safe: a
    /// `select!` may drop it and call it again without losing a change.
    pub async fn changed(&mut self) -> Arc<Snapshot> {
        sleep_until(self.next_at).await;
        if self.changes.changed().await.is_err() {
            // The registry is gone, so is the server: nothing will change.
            std::future::pending::<()>().await;
        }
        self.next_at = Instant::now() + PUSH_GAP;
        self.changes.borrow_and_update().clone()
    }
}

/// Adds `GET /api/presence` to an app.
pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/presence").route(web::get().to(answer)));
}

/// `GET /api/presence`: who is online on this server, and how many
/// subscriptions it holds.
async fn answer(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .json(state.presence.body())
}

/// `user=NAME` of a subscription, checked like a message's `user` and
/// trimmed; `None` when absent.
pub fn user_of(query: &Query) -> Result<Option<String>, ApiError> {
    query
        .text("user")
        .map(|raw| chat_store::validate_user(raw).map_err(ApiError::Invalid))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard's drop takes its user off, and the published list follows.
    #[tokio::test]
    async fn guards_and_the_list() {
        let presence = Arc::new(Presence::default());
        let ana = presence.open(Some("ana".into()), Transport::Sse);
        let anon = presence.open(None, Transport::Websocket);
        assert_eq!(presence.body().connections, 2);
        assert_eq!(
            &presence.published.borrow().data[..],
            br#"{"users":[{"user":"ana","transports":["sse"]}]}"#
        );
        drop(ana);
        drop(anon);
        assert_eq!(presence.body(), PresenceBody::default());
        assert_eq!(presence.tracked(), 0);
    }

    /// Past the cap a list names the first users by name and counts the rest.
    #[tokio::test]
    async fn the_list_is_capped() {
        let presence = Arc::new(Presence::default());
        let guards: Vec<_> = (0..MAX_LISTED + 5)
            .map(|i| presence.open(Some(format!("u{i:04}")), Transport::Stream))
            .collect();
        let body = presence.body();
        assert_eq!(body.users.len(), MAX_LISTED);
        assert_eq!(body.more, 5);
        assert_eq!(body.users[0].user, "u0000");
        drop(guards);
        assert_eq!(presence.tracked(), 0);
    }
}
