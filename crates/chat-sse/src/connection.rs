//! One SSE connection's task: deliver the pending page, then wait for news,
//! the client or the heartbeat, and repeat. The skeleton is the same in every
//! streaming transport (see `chat_http::streaming`); what is SSE's own is the
//! framing (events, written as bytes, into the mailbox), the client branch
//! (it can only hang up) and the heartbeat (a comment after a silence).
//!
//! A message's event is built once, by the first stream that needs it, and
//! shared by every stream (`chat_store::framing`); messages pending together
//! go into the mailbox as one chunk.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc::Sender;
use tokio::time::sleep;

use chat_http::presence::{Snapshot, Subscriber};
use chat_http::streaming::{closing_page, hand_over, position_before};
use chat_http::{AppState, Backlog, Connection, End};
use chat_protocol::{Cursor, Epoch, Gap, Reset};
use chat_store::framing::coalesce;
use chat_store::{Framing, Page, StoredMessage};

use crate::{BATCH, Settings, TRANSPORT};

/// SSE has no close of its own: a stream just ends.
type Close = Infallible;

/// Runs until the client goes away, falls too far behind, or the server
/// shuts down; then ends the stream the way `end` says.
pub(crate) async fn run(
    state: AppState,
    settings: Settings,
    first: Page,
    mailbox: Sender<Bytes>,
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

/// Hands a page over: the reset and gap notices if any, then its messages'
/// events, several to a chunk when several are pending, counting each as it
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
        let (reset, bytes) = reset_event(&page.epoch);
        hand_over(mailbox.send(reset), bytes, state, backlog, position).await?;
    }
    if page.missed > 0 {
        let (gap, bytes) = gap_event(page.missed);
        hand_over(mailbox.send(gap), bytes, state, backlog, position).await?;
    }
    // Each message's event is built once, by the first stream to need it;
    // consecutive ones go over as one piece, within the byte bound.
    let max = state.config.max_unsent;
    for chunk in coalesce(&page.messages, Framing::SseEvent, message_event, max) {
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

/// The keep-alive comment.
const KEEP_ALIVE: &str = "keep-alive";

/// `id: 17` and `data:` the stored bytes: the framing
/// [`chat_store::StoredMessage::framed`] keeps.
fn message_event(message: &StoredMessage) -> Bytes {
    data_event(Some(&message.id.to_string()), None, &message.json)
}

/// `event: reset` with `data: {"epoch":"…"}`, and its size.
fn reset_event(epoch: &Epoch) -> (Bytes, usize) {
    let reset = Reset {
        epoch: epoch.clone(),
    }
    .to_json();
    sized(data_event(None, Some("reset"), reset.as_bytes()))
}

/// `event: gap` with `data: {"missed":K}`, and its size.
fn gap_event(missed: u64) -> (Bytes, usize) {
    let gap = Gap { missed }.to_json();
    sized(data_event(None, Some("gap"), gap.as_bytes()))
}

/// `event: presence` with `data: {"users":[…]}`, and its size.
fn presence_event(online: &Snapshot) -> Option<(Bytes, usize)> {
    Some(sized(data_event(None, Some("presence"), &online.data)))
}

/// `: text`, and its size.
fn comment_event(text: &'static str) -> (Bytes, usize) {
    sized(Bytes::from(format!(": {text}\n\n")))
}

/// An event and its size on the wire, which the byte bound of the
/// connection (`chat_http::Backlog`) counts.
fn sized(event: Bytes) -> (Bytes, usize) {
    let len = event.len();
    (event, len)
}

/// A data event as written: `id: …\n`, `event: …\n`, `data: …\n` and the
/// blank line. `data` is JSON, which never holds a raw line break; were it
/// to hold one, each line would be a `data:` line of its own (line breaks
/// in any of the three forms), so that no line can pass for another field.
pub(crate) fn data_event(id: Option<&str>, event: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(
        id.map_or(0, |id| "id: \n".len() + id.len())
            + event.map_or(0, |event| "event: \n".len() + event.len())
            + "data: \n\n".len()
            + data.len(),
    );
    for (field, value) in [("id: ", id), ("event: ", event)] {
        if let Some(value) = value {
            out.put_slice(field.as_bytes());
            out.put_slice(value.as_bytes());
            out.put_u8(b'\n');
        }
    }
    let mut rest = data;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.put_slice(b"data: ");
        out.put_slice(&rest[..end.unwrap_or(rest.len())]);
        out.put_u8(b'\n');
        let Some(end) = end else { break };
        let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
        rest = &rest[end + if crlf { 2 } else { 1 }..];
    }
    out.put_u8(b'\n');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web_lab::sse::{Data, Event, Sse};
    use chat_protocol::MessageId;

    /// Every event is written byte for byte as actix-web-lab's SSE encoder
    /// (another implementation of the format) writes the same event, line
    /// breaks in data included; the size the byte bound counts is its length.
    #[actix_web::test]
    async fn events_match_an_independent_encoder() {
        let json = r#"{"id":1234,"user":"ana","text":"h\u00e9"}"#;
        let message = StoredMessage {
            id: MessageId(1234),
            json: Bytes::from_static(json.as_bytes()),
            sent_at_ms: 0,
            framings: Default::default(),
        };
        let epoch = Epoch::parse("abc").expect("an epoch");
        let reset = Reset {
            epoch: epoch.clone(),
        }
        .to_json();
        let online = Snapshot::default();
        let online_json = String::from_utf8(online.data.to_vec()).expect("UTF-8");
        let broken = "one\ntwo\r\nthree\rfour";
        let cases: [(Bytes, Event); 6] = [
            (message_event(&message), Data::new(json).id("1234").into()),
            (
                reset_event(&epoch).0,
                Data::new(reset).event("reset").into(),
            ),
            (
                gap_event(17).0,
                Data::new(Gap { missed: 17 }.to_json()).event("gap").into(),
            ),
            (
                comment_event(KEEP_ALIVE).0,
                Event::Comment(KEEP_ALIVE.into()),
            ),
            (
                presence_event(&online).expect("an event").0,
                Data::new(online_json).event("presence").into(),
            ),
            (
                data_event(None, None, broken.as_bytes()),
                Data::new(broken).into(),
            ),
        ];
        for (ours, theirs) in cases {
            let body = Sse::from_infallible_stream(futures_util::stream::iter([theirs]));
            let written = actix_web::body::to_bytes(body).await.expect("encodes");
            assert_eq!(ours, written);
        }
        let (gap, bytes) = gap_event(17);
        assert_eq!(bytes, gap.len());
    }
}
