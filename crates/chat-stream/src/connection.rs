//! One stream's task: deliver the pending page, then wait for news, the
//! client or the heartbeat, and repeat. The skeleton is the same in every
//! streaming transport (see `chat_http::streaming`); what is streaming's own
//! is the framing (JSON lines into the mailbox), the client branch (it can
//! only hang up) and the heartbeat (a ping line after a silence).

use std::convert::Infallible;
use std::future::Future;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc::Sender;
use tokio::time::sleep;

use chat_http::presence::{Snapshot, Subscriber};
use chat_http::streaming::{closing_page, hand_over, position_before};
use chat_http::{AppState, Backlog, Connection, End};
use chat_protocol::{Control, Cursor};
use chat_store::framing::coalesce;
use chat_store::{Framing, Page, StoredMessage};

use crate::{BATCH, Settings, TRANSPORT};

/// A stream has no close of its own: it just ends.
type Close = Infallible;

/// Runs until the client goes away, falls too far behind, or the server
/// shuts down; then ends the stream the way `end` says.
pub(crate) fn run(
    state: AppState,
    settings: Settings,
    first: Page,
    mailbox: Sender<Bytes>,
    connection: Connection,
    presence: Subscriber,
) -> impl Future<Output = ()> + 'static {
    // Boxed, so the task holds its arguments once: an `async fn` keeps them
    // twice, as passed and as moved into its body (rust-lang/rust#62958).
    let args = Box::new((state, settings, first, mailbox, connection, presence));
    async move {
        let (state, settings, first, mailbox, connection, mut presence) = {
            let args = args; // freed at the end of this block
            *args
        };
        let backlog = Backlog::new(&state, &connection);
        let mut epoch = first.epoch.clone();
        let mut cursor = Cursor(0);
        let mut pending = Some(first);

        let end = loop {
            if let Some(page) = pending.take() {
                if let Err(end) = deliver(&state, &mailbox, &page, &backlog).await {
                    break end;
                }
                epoch = page.epoch;
                cursor = page.cursor;
            }

            tokio::select! {
                _ = state.store.wait_beyond_in(&epoch, cursor) => {
                    match state.store.read_in(Some(&epoch), Some(cursor), BATCH) {
                        Ok(page) => pending = Some(page),
                        Err(_) => break End::Gone, // cannot happen: the cursor came from the store
                    }
                }
                // The client: a streaming client never speaks, it can only hang up.
                _ = mailbox.closed() => break End::Gone,
                // Who is online changed: the list, as a presence line.
                online = presence.changed() => {
                    let line = presence_line(&online);
                    let bytes = line.len();
                    if let Err(end) = hand_over(mailbox.send(line), bytes, &state, &backlog, cursor).await {
                        break end;
                    }
                }
                // The heartbeat: a ping line after a silence.
                _ = sleep(settings.keepalive()) => {
                    let ping = control_line(&Control::Ping);
                    let bytes = ping.len();
                    if let Err(end) = hand_over(mailbox.send(ping), bytes, &state, &backlog, cursor).await {
                        break end;
                    }
                }
                // Shutdown: hand over what is stored (every acknowledged send),
                // then end.
                _ = state.shutdown.cancelled() => match Box::pin(closing_page(&state, &epoch, cursor, BATCH)).await {
                    Some(page) => pending = Some(page),
                    None => break End::ShuttingDown,
                },
            }
        };
        finish(end, mailbox, &connection);
    }
}

/// Hands a page over: the reset and gap notices if any, then its messages'
/// lines, several to a chunk when several are pending, counting each as it
/// goes.
async fn deliver(
    state: &AppState,
    mailbox: &Sender<Bytes>,
    page: &Page,
    backlog: &Backlog,
) -> Result<(), End<Close>> {
    let counters = state.stats.of(TRANSPORT);
    let mut position = position_before(page);
    if page.reset {
        let reset = control_line(&Control::Reset {
            epoch: page.epoch.clone(),
        });
        let bytes = reset.len();
        hand_over(mailbox.send(reset), bytes, state, backlog, position).await?;
    }
    if page.missed > 0 {
        let gap = control_line(&Control::Gap {
            missed: page.missed,
        });
        let bytes = gap.len();
        hand_over(mailbox.send(gap), bytes, state, backlog, position).await?;
    }
    // Each message's line is built once, by the first connection to need
    // it; consecutive ones go over as one piece, within the byte bound.
    let max = state.config.max_unsent;
    for chunk in coalesce(&page.messages, Framing::JsonLine, message_line, max) {
        let bytes = chunk.bytes.len();
        hand_over(mailbox.send(chunk.bytes), bytes, state, backlog, position).await?;
        for message in chunk.messages {
            counters.delivered_message(page, message);
            position = Cursor::after(message.id);
        }
    }
    Ok(())
}

/// Ends the connection: a stream that ends cleanly sends its final chunk when
/// the mailbox is dropped; a slow reader is reset instead.
fn finish(end: End<Close>, mailbox: Sender<Bytes>, connection: &Connection) {
    match end {
        End::Gone | End::ShuttingDown => drop(mailbox),
        End::TooSlow => connection.reset(),
        End::Close(never) => match never {},
    }
}

/// The stored bytes and a newline.
fn message_line(message: &StoredMessage) -> Bytes {
    let mut line = BytesMut::with_capacity(message.json.len() + 1);
    line.put_slice(&message.json);
    line.put_u8(b'\n');
    line.freeze()
}

/// `{"type":"presence","users":[…]}` and a newline.
fn presence_line(online: &Snapshot) -> Bytes {
    let mut line = BytesMut::with_capacity(online.control.len() + 1);
    line.put_slice(&online.control);
    line.put_u8(b'\n');
    line.freeze()
}

/// A control item and a newline.
fn control_line(control: &Control) -> Bytes {
    let mut line = control.to_json().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}
