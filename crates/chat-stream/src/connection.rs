//! One stream's task. The response body reads the store itself
//! (`chat_http::feed`), exactly as SSE's does, and this task has SSE's
//! skeleton (see `chat_sse`'s `connection.rs`): it keeps the slow-reader
//! bounds, pushes the presence list and the heartbeat, and drains on
//! shutdown. What is streaming's own is the framing ([`FRAMES`]: JSON lines,
//! each message's built once and shared) and the heartbeat (a ping line
//! after a silence).

use std::convert::Infallible;
use std::future::Future;

use bytes::{BufMut, Bytes, BytesMut};

use chat_http::feed::{FeedHandle, Frames};
use chat_http::presence::{Snapshot, Subscriber};
use chat_http::{AppState, Backlog, Connection, End};
use chat_protocol::{Control, Epoch};
use chat_store::{Framing, StoredMessage};

use crate::{Settings, TRANSPORT};

/// A stream has no close of its own: it just ends.
type Close = Infallible;

/// How streaming writes what a feed sends.
pub(crate) const FRAMES: Frames = Frames {
    transport: TRANSPORT,
    framing: Framing::JsonLine,
    message: message_line,
    gap: gap_line,
    reset: reset_line,
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
                // Who is online changed: the list, as a presence line.
                online = presence.changed() => feed.push(presence_line(&online)),
                // The heartbeat: a ping line after a silence.
                _ = feed.silent_for(settings.keepalive()) => feed.keep_alive(control_line(&Control::Ping)),
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

/// `{"type":"gap","missed":K}` and a newline.
fn gap_line(missed: u64) -> Bytes {
    control_line(&Control::Gap { missed })
}

/// `{"type":"reset","epoch":"…"}` and a newline.
fn reset_line(epoch: &Epoch) -> Bytes {
    control_line(&Control::Reset {
        epoch: epoch.clone(),
    })
}

/// A control item and a newline.
fn control_line(control: &Control) -> Bytes {
    let mut line = control.to_json().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}
