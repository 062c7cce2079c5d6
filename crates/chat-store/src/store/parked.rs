//! Waiting for news while being polled: the store's one list of parked
//! wakers ([`Store::poll_beyond_in`]), for what waits many times over a
//! connection's life, a response body or a WebSocket's task.

use std::task::{Context, Poll, Waker};

use chat_protocol::{Cursor, Epoch};

use super::Store;

/// Places given back in the list of parked wakers past which, once they
/// are most of it, a new round starts without news.
const VACANT_BEFORE_NEW_ROUND: usize = 64;

/// The wakers of response bodies waiting for news: every change wakes them
/// all and starts a new round.
#[derive(Default)]
pub(super) struct Parked {
    /// How many changes have woken the parked so far.
    round: u64,
    /// The wakers parked in this round (`None` where a waiter left early).
    wakers: Vec<Option<Waker>>,
    /// The previous round's list, emptied, kept for its capacity.
    spare: Vec<Option<Waker>>,
    /// Places in this round given back ([`Store::unpark`]).
    vacant: usize,
}

/// A waiter's place in the store's list of parked wakers
/// ([`Store::poll_beyond_in`]), to give back with [`Store::unpark`] if it
/// goes away before the next change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parking {
    round: u64,
    slot: usize,
}

impl Store {
    /// [`Store::wait_beyond_in`] for what waits many times over a
    /// connection's life, a response body (polled, not awaited) or a task
    /// whose loop waits for news among other things: ready once a message
    /// newer than `cursor` exists in `epoch` (or the epoch changed);
    /// otherwise the task is woken by the next change. `parked` is the
    /// caller's own record of where it parked, so that one polled again
    /// before that change (a body its task pushed something to, a loop woken
    /// by another branch) is not parked twice, and so that one that goes
    /// away first can take its waker back ([`Store::unpark`]): a waker holds
    /// its task, and with it the whole connection's memory.
    ///
    /// One list of wakers for every body, emptied by each change, costs a
    /// body a clone of its waker per wait; a watch receiver per wait (what
    /// `wait_beyond_in` takes) costs an allocation that lives with the
    /// connection and a place in the channel's list of waiters.
    pub fn poll_beyond_in(
        &self,
        epoch: &Epoch,
        cursor: Cursor,
        parked: &mut Option<Parking>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let mut list = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = parked.filter(|p| p.round == list.round) {
            // Parked, and nothing has changed since (a change moves `news`
            // first, then the round, and wakes the list); the waker kept is
            // this poll's, should another task poll it now.
            if let Some(Some(kept)) = list.wakers.get_mut(p.slot)
                && !kept.will_wake(cx.waker())
            {
                *kept = cx.waker().clone();
            }
            return Poll::Pending;
        }
        // Before the check of `news`, which must be made under the same
        // hold of the lock as the parking.
        if list.vacant > VACANT_BEFORE_NEW_ROUND && list.vacant * 2 > list.wakers.len() {
            // Mostly places given back (clients that came and went while
            // nothing was sent): a new round, waking the few still parked,
            // which park again, so the list stays the size of its waiters.
            let stale = Self::next_round(&mut list);
            drop(list);
            stale.into_iter().flatten().for_each(Waker::wake);
            list = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        }
        let news = self.news.borrow();
        if news.epoch != *epoch || news.last > cursor.0 {
            *parked = None;
            return Poll::Ready(());
        }
        drop(news);
        list.wakers.push(Some(cx.waker().clone()));
        *parked = Some(Parking {
            round: list.round,
            slot: list.wakers.len() - 1,
        });
        Poll::Pending
    }

    /// Takes back the waker of a waiter that goes away while parked, so
    /// that its task (and the connection it served) is freed now rather
    /// than at the next change.
    pub fn unpark(&self, parked: Option<Parking>) {
        let Some(parking) = parked else { return };
        let mut list = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        if parking.round == list.round
            && let Some(waker) = list.wakers.get_mut(parking.slot)
            && waker.take().is_some()
        {
            list.vacant += 1;
        }
    }

    /// Starts a new round: the list of the one that ends.
    fn next_round(list: &mut Parked) -> Vec<Option<Waker>> {
        list.round += 1;
        list.vacant = 0;
        let spare = std::mem::take(&mut list.spare);
        std::mem::replace(&mut list.wakers, spare)
    }

    /// Wakes every parked body, after a change of `news`.
    pub(super) fn wake_parked(&self) {
        let mut wakers = {
            let mut list = self.parked.lock().unwrap_or_else(|e| e.into_inner());
            Self::next_round(&mut list)
        };
        wakers.drain(..).flatten().for_each(Waker::wake);
        let mut list = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        if list.spare.capacity() < wakers.capacity() {
            list.spare = wakers;
        }
    }
}
