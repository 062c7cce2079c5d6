//! Auto: which transport to use here, when to give one up, and when to try
//! the better ones again. The rules are in the crate's essay; this file is
//! them as code.

use std::future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use chat_protocol::PageBody;

use crate::epoch::SharedEpoch;
use crate::feed::Feed;
use crate::{Client, ClientError, Cursor, Options, Transport};

/// The order Auto tries the transports in, best first. The last one,
/// polling, is the floor: used without a probe when all others failed.
pub const AUTO_ORDER: [Transport; 5] = [
    Transport::Websocket,
    Transport::Sse,
    Transport::Stream,
    Transport::Longpoll,
    Transport::Polling,
];

/// How long a probe waits for something to arrive before it gives the
/// transport up. Long enough for a slow network's handshake, short enough
/// that falling from WebSocket through two silent streams to long polling
/// takes seconds, not minutes.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// How long Auto stays on a transport below the first before it probes
/// the better ones again. A network that broke one (a captive portal, a
/// proxy being reconfigured) may have been fixed; a minute keeps the cost
/// of asking (a connection or two) small next to a long-lived subscription.
pub const UPGRADE_INTERVAL: Duration = Duration::from_secs(60);

/// The position of polling, the floor, in [`AUTO_ORDER`].
const FLOOR: usize = AUTO_ORDER.len() - 1;

/// Longest reason kept in [`Auto::fallbacks`] (a proxy's error page can be
/// long).
const REASON_MAX: usize = 240;

/// A feed whose probe succeeded: open (unless polling), with what arrived.
pub(crate) struct Probed {
    /// The feed, ready to be read on.
    pub(crate) feed: Feed,
    /// The batch that proved it works; `None` when an open was enough (an
    /// empty chat) or for the floor.
    pub(crate) first: Option<PageBody>,
}

/// What an upgrade task found.
struct Upgrade {
    /// The position and feed of the best transport that worked, if any.
    found: Option<(usize, Probed)>,
    /// The better transports that did not, and why.
    failed: Vec<(Transport, String)>,
}

/// An Auto subscription's choice and its history.
pub(crate) struct Auto {
    client: Client,
    options: Options,
    /// The subscription's epoch, shared with every feed it opens.
    epoch: SharedEpoch,
    /// The position in [`AUTO_ORDER`] of the transport in use.
    current: Option<usize>,
    /// Each transport given up (once, the latest reason), best first.
    fallbacks: Vec<(Transport, String)>,
    /// When to probe the better transports next; `None` on the first one
    /// or while an upgrade task runs.
    next_upgrade: Option<Instant>,
    /// The running upgrade task.
    task: Option<JoinHandle<Upgrade>>,
}

impl Auto {
    pub(crate) fn new(client: Client, options: Options, epoch: SharedEpoch) -> Self {
        Auto {
            client,
            options,
            epoch,
            current: None,
            fallbacks: Vec::new(),
            next_upgrade: None,
            task: None,
        }
    }

    /// Each transport given up, best first, with why.
    pub(crate) fn fallbacks(&self) -> &[(Transport, String)] {
        &self.fallbacks
    }

    /// Whether the transport in use is polling, the floor.
    pub(crate) fn on_floor(&self) -> bool {
        self.current == Some(FLOOR)
    }

    /// Probes the transports from position `from` on, after `cursor`, and
    /// returns the first that works, or polling.
    pub(crate) async fn choose(&mut self, from: usize, cursor: Option<Cursor>) -> Probed {
        let open_suffices = open_suffices(&self.client, cursor).await;
        for (at, &transport) in AUTO_ORDER.iter().enumerate().take(FLOOR).skip(from) {
            match probe(
                &self.client,
                transport,
                &self.options,
                &self.epoch,
                cursor,
                open_suffices,
            )
            .await
            {
                Ok(probed) => {
                    self.chose(at);
                    return probed;
                }
                Err(reason) => self.give_up(transport, reason),
            }
        }
        self.chose(FLOOR);
        Probed {
            feed: Feed::new(
                &self.client,
                AUTO_ORDER[FLOOR],
                &self.options,
                true,
                &self.epoch,
            ),
            first: None,
        }
    }

    /// The transport in use failed with `error`: records it and returns the
    /// position to go on from.
    pub(crate) fn give_up_current(&mut self, error: &ClientError) -> usize {
        let at = self.current.take().unwrap_or(0);
        self.give_up(AUTO_ORDER[at], describe(error));
        at + 1
    }

    /// Waits for the next upgrade: sleeps until it is due, starts the task
    /// that probes the better transports (from `cursor`), and returns a
    /// better feed if it found one. Never returns on the first transport.
    /// Cancel-safe: a started task is kept, and awaited again next time.
    pub(crate) async fn upgrade(&mut self, cursor: Option<Cursor>) -> Option<Probed> {
        if self.task.is_none() {
            let (Some(due), Some(current)) = (self.next_upgrade, self.current) else {
                return future::pending().await;
            };
            tokio::time::sleep_until(due).await;
            self.next_upgrade = None;
            self.task = Some(tokio::spawn(try_better(
                self.client.clone(),
                self.options.clone(),
                self.epoch.clone(),
                current,
                cursor,
            )));
        }
        let task = self.task.as_mut()?;
        let outcome = task.await;
        self.task = None;
        let upgrade = match outcome {
            Ok(upgrade) => upgrade,
            // The task panicked: try again later.
            Err(_) => Upgrade {
                found: None,
                failed: Vec::new(),
            },
        };
        for (transport, reason) in upgrade.failed {
            self.give_up(transport, reason);
        }
        match upgrade.found {
            Some((at, probed)) if self.current.is_some_and(|current| at < current) => {
                self.chose(at);
                Some(probed)
            }
            _ => {
                self.schedule_upgrade();
                None
            }
        }
    }

    /// Notes the transport at `at` as the one in use.
    fn chose(&mut self, at: usize) {
        self.current = Some(at);
        self.fallbacks.retain(|(t, _)| *t != AUTO_ORDER[at]);
        self.schedule_upgrade();
    }

    /// Sets when to probe the better transports next, if there are any.
    fn schedule_upgrade(&mut self) {
        self.next_upgrade = match self.current {
            Some(at) if at > 0 => Some(Instant::now() + self.options.upgrade_interval),
            _ => None,
        };
    }

    /// Records that `transport` was given up, and why.
    fn give_up(&mut self, transport: Transport, reason: String) {
        self.fallbacks.retain(|(t, _)| *t != transport);
        self.fallbacks.push((transport, reason));
        self.fallbacks.sort_by_key(|(t, _)| position(*t));
    }
}

impl Drop for Auto {
    /// A probe in flight is no use to anyone once the subscription is gone.
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The upgrade task: probes the transports better than the one at
/// `current`, best first, and stops at the first that works.
async fn try_better(
    client: Client,
    options: Options,
    epoch: SharedEpoch,
    current: usize,
    cursor: Option<Cursor>,
) -> Upgrade {
    let open_suffices = open_suffices(&client, cursor).await;
    let mut failed = Vec::new();
    for (at, &transport) in AUTO_ORDER.iter().enumerate().take(current) {
        match probe(&client, transport, &options, &epoch, cursor, open_suffices).await {
            Ok(probed) => {
                return Upgrade {
                    found: Some((at, probed)),
                    failed,
                };
            }
            Err(reason) => failed.push((transport, reason)),
        }
    }
    Upgrade {
        found: None,
        failed,
    }
}

/// Opens `transport` once and waits up to `probe_timeout` for proof that
/// it delivers (the rule is in the crate's essay); the reason it does not
/// otherwise.
async fn probe(
    client: &Client,
    transport: Transport,
    options: &Options,
    epoch: &SharedEpoch,
    cursor: Option<Cursor>,
    open_suffices: bool,
) -> Result<Probed, String> {
    // With a cursor past 0, ask for one message more than needed: the
    // server must send it at once, so silence means something holds it.
    let lowered = cursor.filter(|c| c.0 > 0).map(|c| Cursor(c.0 - 1));
    let ask = lowered.or(cursor);
    let mut feed = Feed::new(client, transport, options, true, epoch);
    // Whether the head came: a silent proxy may hold it back too.
    let mut opened = false;
    let attempt = async {
        if let Feed::Poll(poll) = &mut feed {
            return poll.probe(ask).await.map(Some);
        }
        feed.open(ask).await?;
        opened = true;
        if open_suffices {
            return Ok(None);
        }
        match feed.read().await? {
            Some(batch) => Ok(Some(batch)),
            None => Err(ClientError::Protocol(
                "the connection ended before anything arrived".into(),
            )),
        }
    };
    let mut first = match tokio::time::timeout(options.probe_timeout, attempt).await {
        Ok(Ok(first)) => first,
        Ok(Err(error)) => return Err(describe(&error)),
        Err(_) if opened => {
            return Err(format!(
                "opened, but nothing arrived within {:?}",
                options.probe_timeout
            ));
        }
        Err(_) => {
            return Err(format!("no answer within {:?}", options.probe_timeout));
        }
    };
    if lowered.is_some()
        && let Some(batch) = &mut first
    {
        // The gap notice counted the extra message asked for.
        batch.missed = batch.missed.saturating_sub(1);
    }
    Ok(Probed { feed, first })
}

/// Whether a successful open is proof enough: only when the subscription
/// asks from the start (no cursor, or 0) and the store is empty, since then
/// nothing can be made to arrive. If the store cannot be asked, it is not.
async fn open_suffices(client: &Client, cursor: Option<Cursor>) -> bool {
    if cursor.is_some_and(|c| c.0 > 0) {
        return false;
    }
    client
        .stats()
        .await
        .is_ok_and(|stats| stats.store.last_id == 0)
}

/// The position of `transport` in [`AUTO_ORDER`].
fn position(transport: Transport) -> usize {
    AUTO_ORDER
        .iter()
        .position(|t| *t == transport)
        .unwrap_or(AUTO_ORDER.len())
}

/// A failure as a reason: the error and its causes, on one line, cut to
/// [`REASON_MAX`] characters.
fn describe(error: &ClientError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    let text = text.replace(['\n', '\r'], " ");
    match text.char_indices().nth(REASON_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transport is in the order once, WebSocket first, polling last.
    #[test]
    fn the_order_covers_every_transport_once() {
        let mut sorted = AUTO_ORDER;
        sorted.sort();
        let mut all = Transport::ALL;
        all.sort();
        assert_eq!(sorted, all);
        assert_eq!(AUTO_ORDER[0], Transport::Websocket);
        assert_eq!(AUTO_ORDER[FLOOR], Transport::Polling);
    }

    /// A reason keeps the status and is cut when a proxy's page is long.
    #[test]
    fn reasons_are_short_and_keep_the_status() {
        let error = ClientError::Refused {
            status: 502,
            body: "<html>\n".repeat(100),
        };
        let reason = describe(&error);
        assert!(reason.starts_with("refused with 502"), "{reason}");
        assert!(reason.chars().count() <= REASON_MAX + 1, "{reason}");
        assert!(!reason.contains('\n'));
    }

    /// Giving a transport up twice keeps one entry, the latest, in order.
    #[test]
    fn fallbacks_keep_one_entry_per_transport_best_first() {
        let mut auto = Auto::new(
            Client::new("http://127.0.0.1:9"),
            Options::default(),
            SharedEpoch::default(),
        );
        auto.give_up(Transport::Stream, "first".into());
        auto.give_up(Transport::Websocket, "ws".into());
        auto.give_up(Transport::Stream, "second".into());
        assert_eq!(
            auto.fallbacks(),
            &[
                (Transport::Websocket, "ws".to_owned()),
                (Transport::Stream, "second".to_owned())
            ]
        );
        auto.chose(2);
        assert_eq!(auto.fallbacks(), &[(Transport::Websocket, "ws".to_owned())]);
    }
}
