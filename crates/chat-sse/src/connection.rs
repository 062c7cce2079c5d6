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
use std::future::Future;

use actix_web_lab::sse::{Data, Event, Sse};
use bytes::Bytes;
use futures_util::FutureExt;
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
    sized(encode(Event::Comment(text.into())))
}

/// An event and its size on the wire, which the byte bound of the
/// connection (`chat_http::Backlog`) counts.
fn sized(event: Bytes) -> (Bytes, usize) {
    let len = event.len();
    (event, len)
}

/// A data event as written: `id: …\n`, `event: …\n`, `data: …\n` and the
/// blank line, encoded by actix-web-lab's SSE encoder (see [`encode`]).
pub(crate) fn data_event(id: Option<&str>, event: Option<&str>, data: &[u8]) -> Bytes {
    // The store's bytes and the control items are JSON, so UTF-8; were they
    // not, the lossy copy would still make one well-formed event.
    let mut data = Data::new(String::from_utf8_lossy(data).into_owned());
    if let Some(id) = id {
        data = data.id(id.to_owned());
    }
    if let Some(event) = event {
        data = data.event(event.to_owned());
    }
    encode(data.into())
}

/// One event in the event-stream format, as actix-web-lab's [`Sse`] body
/// writes it (a data line per line of data, whatever its line breaks, so
/// that no line can pass for another field).
///
/// The encoder runs once per event, not once per connection: a message's
/// event is kept beside it in the store ([`Framing::SseEvent`]) and every
/// connection sends the same bytes. The body is a one-event stream with no
/// keep-alive timer, so it is ready at once and never waits.
pub(crate) fn encode(event: Event) -> Bytes {
    let body = Sse::from_infallible_stream(futures_util::stream::iter([event]));
    match actix_web::body::to_bytes(body).now_or_never() {
        Some(Ok(bytes)) => bytes,
        // Cannot happen: the stream is ready and encoding text cannot fail.
        _ => Bytes::new(),
    }
}

/// The first item of every stream: how long the client waits before it
/// reconnects, in actix-web-lab's encoding (`retry: N` and a blank line).
pub(crate) fn retry_field(retry: std::time::Duration) -> Bytes {
    let body = Sse::from_infallible_stream(futures_util::stream::empty::<Event>())
        .with_retry_duration(retry);
    match actix_web::body::to_bytes(body).now_or_never() {
        Some(Ok(bytes)) => bytes,
        _ => Bytes::from(format!("retry: {}\n\n", retry.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chat_protocol::MessageId;

    /// Every event is written as the event-stream format says, line breaks
    /// in data included; the size the byte bound counts is its length.
    #[test]
    fn events_are_written_as_the_format_says() {
        let json = r#"{"id":1234,"user":"ana","text":"h\u00e9"}"#;
        let message = StoredMessage {
            id: MessageId(1234),
            json: Bytes::from_static(json.as_bytes()),
            sent_at_ms: 0,
            framings: Default::default(),
        };
        let epoch = Epoch::parse("abc").expect("an epoch");
        let cases: [(Bytes, String); 6] = [
            (
                message_event(&message),
                format!("id: 1234\ndata: {json}\n\n"),
            ),
            (
                reset_event(&epoch).0,
                "event: reset\ndata: {\"epoch\":\"abc\"}\n\n".to_owned(),
            ),
            (
                gap_event(17).0,
                "event: gap\ndata: {\"missed\":17}\n\n".to_owned(),
            ),
            (comment_event(KEEP_ALIVE).0, ": keep-alive\n\n".to_owned()),
            (
                data_event(None, None, b"one\ntwo\r\nthree\rfour"),
                "data: one\ndata: two\ndata: three\ndata: four\n\n".to_owned(),
            ),
            (
                retry_field(std::time::Duration::from_millis(2500)),
                "retry: 2500\n\n".to_owned(),
            ),
        ];
        for (ours, expected) in cases {
            assert_eq!(ours, expected.as_bytes());
        }
        let (gap, bytes) = gap_event(17);
        assert_eq!(bytes, gap.len());
    }
}
