//! One SSE connection's task. The response body reads the store itself
//! (`chat_http::feed`): news wakes the connection actix serves, and the body
//! hands over every pending event as one chunk. What is left for this task is
//! what a body that is not being polled cannot do. Its skeleton is the same
//! in every transport whose body is a feed (streaming has it too):
//!
//! ```text
//! loop select! { the response is over          → End::Gone
//!                the client broke a bound      → End::TooSlow
//!                who is online changed         → push the presence list
//!                a silence                     → push the heartbeat
//!                shutdown                      → drain, End::ShuttingDown }
//! finish(end)
//! ```
//!
//! What is SSE's own is the framing ([`FRAMES`]: events, each message's built
//! once and shared by every stream through `chat_store::framing`) and the
//! heartbeat (a comment after a silence).

use std::convert::Infallible;
use std::future::Future;

use actix_web_lab::sse::{Data, Event, Sse};
use bytes::Bytes;
use futures_util::FutureExt;

use chat_http::feed::{FeedHandle, Frames};
use chat_http::presence::{Snapshot, Subscriber};
use chat_http::{AppState, Backlog, Connection, End};
use chat_protocol::{Epoch, Gap, Reset};
use chat_store::{Framing, StoredMessage};

use crate::{Settings, TRANSPORT};

/// SSE has no close of its own: a stream just ends.
type Close = Infallible;

/// How SSE writes what a feed sends.
pub(crate) const FRAMES: Frames = Frames {
    transport: TRANSPORT,
    framing: Framing::SseEvent,
    message: message_event,
    gap: gap_event,
    reset: reset_event,
};

/// Runs until the response is over, the client falls too far behind, or the
/// server shuts down; then ends the stream the way `end` says.
pub(crate) fn run(
    state: AppState,
    settings: Settings,
    feed: FeedHandle,
    connection: Connection,
    presence: Subscriber,
) -> impl Future<Output = ()> + 'static {
    // Boxed, so the task holds its arguments once: an `async fn` keeps them
    // twice, as passed and as moved into its body (rust-lang/rust#62958).
    let args = Box::new((state, settings, feed, connection, presence));
    async move {
        let (state, settings, feed, connection, mut presence) = {
            let args = args; // freed at the end of this block
            *args
        };
        let backlog = Backlog::new(&state, &connection);
        // Kept across the loop: a presence list or a heartbeat must not
        // restart the slow-reader check's clock.
        let gone = feed.gone();
        let too_slow = feed.too_slow(&state, &backlog);
        tokio::pin!(gone, too_slow);

        let end: End<Close> = loop {
            tokio::select! {
                // The client went away, or the stream ended.
                _ = &mut gone => break End::Gone,
                // The client fell too far behind, or stopped reading.
                end = &mut too_slow => break end,
                // Who is online changed: the list, as a `presence` event.
                online = presence.changed() => feed.push(presence_event(&online)),
                // The heartbeat: a comment line after a silence.
                _ = feed.silent_for(settings.keepalive()) => feed.keep_alive(comment_event(KEEP_ALIVE)),
                // Shutdown: the body hands over what is stored (every
                // acknowledged send), then ends.
                _ = state.shutdown.cancelled() => break Box::pin(feed.drain(&state)).await,
            }
        };
        finish(end, &feed, &connection);
    }
}

/// Ends the connection: a stream that ends cleanly sends its final chunk; a
/// slow reader is reset instead.
fn finish(end: End<Close>, feed: &FeedHandle, connection: &Connection) {
    match end {
        End::Gone => {}
        End::ShuttingDown => feed.end(),
        // Over HTTP/2 there is no socket of its own to reset: the body ends
        // the next time it is asked for anything.
        End::TooSlow => {
            connection.reset();
            feed.end();
        }
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

/// `event: reset` with `data: {"epoch":"…"}`.
fn reset_event(epoch: &Epoch) -> Bytes {
    let reset = Reset {
        epoch: epoch.clone(),
    }
    .to_json();
    data_event(None, Some("reset"), reset.as_bytes())
}

/// `event: gap` with `data: {"missed":K}`.
fn gap_event(missed: u64) -> Bytes {
    let gap = Gap { missed }.to_json();
    data_event(None, Some("gap"), gap.as_bytes())
}

/// `event: presence` with `data: {"users":[…]}`.
fn presence_event(online: &Snapshot) -> Bytes {
    data_event(None, Some("presence"), &online.data)
}

/// `: text`.
fn comment_event(text: &'static str) -> Bytes {
    encode(Event::Comment(text.into()))
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
    /// in data included.
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
                reset_event(&epoch),
                "event: reset\ndata: {\"epoch\":\"abc\"}\n\n".to_owned(),
            ),
            (
                gap_event(17),
                "event: gap\ndata: {\"missed\":17}\n\n".to_owned(),
            ),
            (comment_event(KEEP_ALIVE), ": keep-alive\n\n".to_owned()),
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
    }
}
