//! One SSE connection's task: deliver the pending page, then wait for news,
//! the client or the heartbeat, and repeat. The skeleton is the same in every
//! streaming transport (see `chat_http::streaming`); what is SSE's own is the
//! framing (events into the mailbox), the client branch (it can only hang
//! up) and the heartbeat (a comment after a silence).

use std::convert::Infallible;

use actix_web_lab::sse::{Data, Event};
use bytestring::ByteString;
use tokio::sync::mpsc::Sender;
use tokio::time::sleep;

use chat_http::streaming::{hand_over, position_before};
use chat_http::{AppState, Backlog, Connection, End};
use chat_protocol::{Cursor, Epoch, Gap, Reset};
use chat_store::{Page, StoredMessage};

use crate::{BATCH, Settings, TRANSPORT};

/// SSE has no close of its own: a stream just ends.
type Close = Infallible;

/// Runs until the client goes away, falls too far behind, or the server
/// shuts down; then ends the stream the way `end` says.
pub(crate) async fn run(
    state: AppState,
    settings: Settings,
    first: Page,
    mailbox: Sender<Event>,
    connection: Connection,
) {
    let backlog = Backlog::new(&state.store, state.config.backlog);
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
            // The client: an SSE client never speaks, it can only hang up.
            _ = mailbox.closed() => break End::Gone,
            // The heartbeat: a comment line after a silence.
            _ = sleep(settings.keepalive()) => {
                let comment = Event::Comment("keep-alive".into());
                if let Err(end) = hand_over(mailbox.send(comment), &state, &backlog, cursor).await {
                    break end;
                }
            }
            _ = state.shutdown.cancelled() => break End::ShuttingDown,
        }
    };
    finish(end, mailbox, &connection);
}

/// Hands a page over: the reset and gap notices if any, then one event per message,
/// counting each as it goes.
async fn deliver(
    state: &AppState,
    mailbox: &Sender<Event>,
    page: &Page,
    backlog: &Backlog,
) -> Result<(), End<Close>> {
    let counters = state.stats.of(TRANSPORT);
    let mut position = position_before(page);
    if page.reset {
        let reset = reset_event(&page.epoch);
        hand_over(mailbox.send(reset), state, backlog, position).await?;
    }
    if page.missed > 0 {
        let gap = gap_event(page.missed);
        hand_over(mailbox.send(gap), state, backlog, position).await?;
    }
    for message in &page.messages {
        let Some(event) = message_event(message) else {
            continue;
        };
        hand_over(mailbox.send(event), state, backlog, position).await?;
        counters.delivered(1);
        position = Cursor::after(message.id);
    }
    Ok(())
}

/// Ends the connection: a stream that ends cleanly sends its final chunk when
/// the mailbox is dropped; a slow reader is reset instead.
fn finish(end: End<Close>, mailbox: Sender<Event>, connection: &Connection) {
    match end {
        End::Gone | End::ShuttingDown => drop(mailbox),
        End::TooSlow => connection.reset(),
        End::Close(never) => match never {},
    }
}

/// `id: 17` and `data:` the stored bytes.
fn message_event(message: &StoredMessage) -> Option<Event> {
    // The store's bytes are JSON, hence UTF-8; the check is a scan, not a copy.
    let json = ByteString::try_from(message.json.clone()).ok()?;
    Some(Data::new(json).id(message.id.to_string()).into())
}

/// `event: reset` with `data: {"epoch":"…"}`.
fn reset_event(epoch: &Epoch) -> Event {
    let reset = Reset {
        epoch: epoch.clone(),
    };
    Data::new(reset.to_json()).event("reset").into()
}

/// `event: gap` with `data: {"missed":K}`.
fn gap_event(missed: u64) -> Event {
    Data::new(Gap { missed }.to_json()).event("gap").into()
}
