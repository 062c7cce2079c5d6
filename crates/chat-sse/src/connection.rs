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

use chat_http::presence::{Snapshot, Subscriber};
use chat_http::streaming::{closing_page, hand_over, position_before};
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
    mut presence: Subscriber,
) {
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
            // The client: an SSE client never speaks, it can only hang up.
            _ = mailbox.closed() => break End::Gone,
            // Who is online changed: the list, as a `presence` event.
            online = presence.changed() => {
                let Some((event, bytes)) = presence_event(&online) else { continue };
                if let Err(end) = hand_over(mailbox.send(event), bytes, &state, &backlog, cursor).await {
                    break end;
                }
            }
            // The heartbeat: a comment line after a silence.
            _ = sleep(settings.keepalive()) => {
                let (comment, bytes) = comment_event(KEEP_ALIVE);
                if let Err(end) = hand_over(mailbox.send(comment), bytes, &state, &backlog, cursor).await {
                    break end;
                }
            }
            // Shutdown: hand over what is stored (every acknowledged send),
            // then end.
            _ = state.shutdown.cancelled() => match closing_page(&state, &epoch, cursor, BATCH).await {
                Some(page) => pending = Some(page),
                None => break End::ShuttingDown,
            },
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
        let (reset, bytes) = reset_event(&page.epoch);
        hand_over(mailbox.send(reset), bytes, state, backlog, position).await?;
    }
    if page.missed > 0 {
        let (gap, bytes) = gap_event(page.missed);
        hand_over(mailbox.send(gap), bytes, state, backlog, position).await?;
    }
    for message in &page.messages {
        let Some((event, bytes)) = message_event(message) else {
            continue;
        };
        hand_over(mailbox.send(event), bytes, state, backlog, position).await?;
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

/// The keep-alive comment.
const KEEP_ALIVE: &str = "keep-alive";

/// `id: 17` and `data:` the stored bytes, and its size on the wire.
fn message_event(message: &StoredMessage) -> Option<(Event, usize)> {
    // The store's bytes are JSON, hence UTF-8; the check is a scan, not a copy.
    let json = ByteString::try_from(message.json.clone()).ok()?;
    let id = message.id.to_string();
    let bytes = event_len(Some(&id), None, &json);
    Some((Data::new(json).id(id).into(), bytes))
}

/// `event: reset` with `data: {"epoch":"…"}`, and its size.
fn reset_event(epoch: &Epoch) -> (Event, usize) {
    let reset = Reset {
        epoch: epoch.clone(),
    }
    .to_json();
    let bytes = event_len(None, Some("reset"), &reset);
    (Data::new(reset).event("reset").into(), bytes)
}

/// `event: gap` with `data: {"missed":K}`, and its size.
fn gap_event(missed: u64) -> (Event, usize) {
    let gap = Gap { missed }.to_json();
    let bytes = event_len(None, Some("gap"), &gap);
    (Data::new(gap).event("gap").into(), bytes)
}

/// `event: presence` with `data: {"users":[…]}`, and its size.
fn presence_event(online: &Snapshot) -> Option<(Event, usize)> {
    // Serialized JSON, hence UTF-8; the check is a scan, not a copy.
    let data = ByteString::try_from(online.data.clone()).ok()?;
    let bytes = event_len(None, Some("presence"), &data);
    Some((Data::new(data).event("presence").into(), bytes))
}

/// `: text`, and its size.
fn comment_event(text: &'static str) -> (Event, usize) {
    (Event::Comment(text.into()), text.len() + ": \n\n".len())
}

/// The bytes of a data event as written: `id: …\n`, `event: …\n`,
/// `data: …\n` and the blank line. `data` is JSON, so one line. The byte
/// bound of the connection (`chat_http::Backlog`) counts items by it.
fn event_len(id: Option<&str>, event: Option<&str>, data: &str) -> usize {
    id.map_or(0, |id| "id: \n".len() + id.len())
        + event.map_or(0, |event| "event: \n".len() + event.len())
        + "data: \n\n".len()
        + data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web_lab::sse::Sse;
    use chat_protocol::MessageId;

    /// The sizes the byte bound counts are the sizes the response writes.
    #[actix_web::test]
    async fn event_sizes_match_the_encoding() {
        let message = StoredMessage {
            id: MessageId(1234),
            json: bytes::Bytes::from_static(br#"{"id":1234,"user":"ana","text":"h\u00e9"}"#),
        };
        let epoch = Epoch::parse("abc").expect("an epoch");
        let events = [
            message_event(&message).expect("UTF-8"),
            reset_event(&epoch),
            gap_event(17),
            comment_event(KEEP_ALIVE),
            presence_event(&Snapshot::default()).expect("UTF-8"),
        ];
        for (event, bytes) in events {
            let body = Sse::from_infallible_stream(futures_util::stream::iter([event]));
            let written = actix_web::body::to_bytes(body).await.expect("encodes");
            assert_eq!(bytes, written.len(), "{written:?}");
        }
    }
}
