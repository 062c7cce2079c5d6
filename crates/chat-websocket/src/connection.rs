//! One WebSocket's task: deliver the pending page, then wait for news, the
//! client or the heartbeat, and repeat. The skeleton is the same in every
//! streaming transport (see `chat_http::streaming`); what is WebSocket's own
//! is the framing (text frames through the session), the client branch (sends,
//! pings, close) and the heartbeat (pings, and a close after silence).

use std::future::{Future, poll_fn};
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use bytestring::ByteString;
use tokio::time::{Instant, sleep_until};

use chat_http::api::parse_object;
use chat_http::presence::{Snapshot, Subscriber};
use chat_http::rate::admit_send;
use chat_http::streaming::{closing_page, hand_over, position_before};
use chat_http::{AppState, Backlog, Connection, End};
use chat_protocol::{ClientFrame, Control, Cursor};
use chat_store::{NewMessage, Page, SendFailure, StoredMessage, Via};

use crate::{BATCH, Settings, TRANSPORT};

/// A WebSocket closes with a code and a reason.
type Close = CloseReason;

/// How long a close frame may take to go out before the socket is reset.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs until the client goes away, falls too far behind, stops answering,
/// or the server shuts down; then closes the socket the way `end` says.
pub(crate) fn run(
    state: AppState,
    settings: Settings,
    first: Page,
    socket: (Session, AggregatedMessageStream),
    connection: Connection,
    presence: Subscriber,
) -> impl Future<Output = ()> + 'static {
    // Boxed, so the task holds its arguments once: an `async fn` keeps them
    // twice, as passed and as moved into its body (rust-lang/rust#62958).
    let args = Box::new((state, settings, first, socket, connection, presence));
    async move {
        let (state, settings, first, (mut session, mut frames), connection, mut presence) = {
            let args = args; // freed at the end of this block
            *args
        };
        let backlog = Backlog::new(&state, &connection);
        let mut epoch = first.epoch.clone();
        let mut cursor = Cursor(0);
        // Its place in the store's list of waiting tasks: kept across the
        // loop, so a frame from the client or a ping in between does not
        // park it twice; given back when the loop ends.
        let mut parked = None;
        let mut pending = Some(first);
        let mut last_heard = Instant::now();
        let mut next_ping = last_heard + settings.ping();

        // Every wait but the select's own is boxed below (SSE and streaming
        // box only the rare ones): what the task holds inline, every idle
        // socket holds, and a WebSocket also carries actix-ws's channel.
        let end = loop {
            if let Some(page) = pending.take() {
                if let Err(end) = Box::pin(deliver(&state, &mut session, &page, &backlog)).await {
                    break end;
                }
                epoch = page.epoch;
                cursor = page.cursor;
            }

            tokio::select! {
                _ = poll_fn(|cx| state.store.poll_beyond_in(&epoch, cursor, &mut parked, cx)) => {
                    match state.store.read_in(Some(&epoch), Some(cursor), BATCH) {
                        Ok(page) => pending = Some(page),
                        Err(_) => break End::Gone, // cannot happen: the cursor came from the store
                    }
                }
                // The client: sends, pings, pongs and its close.
                frame = frames.recv() => {
                    last_heard = Instant::now();
                    match Box::pin(from_client(&state, &connection, frame)).await {
                        Ok(None) => {}
                        Ok(Some(answer)) => {
                            let bytes = answer.frame_len();
                            let sent = answer.send(&mut session);
                            if let Err(end) = Box::pin(hand_over(sent, bytes, &state, &backlog, cursor)).await {
                                break end;
                            }
                        }
                        Err(end) => break end,
                    }
                }
                // Who is online changed: the list, as a presence frame.
                online = presence.changed() => {
                    let Some(frame) = presence_frame(&online) else { continue };
                    let bytes = frame_len(frame.len());
                    if let Err(end) = Box::pin(hand_over(session.text(frame), bytes, &state, &backlog, cursor)).await {
                        break end;
                    }
                }
                // The heartbeat: a ping every interval, a close after a silence,
                // on one timer (a second would be held by every idle socket).
                _ = sleep_until(next_ping.min(last_heard + settings.timeout())) => {
                    if Instant::now() >= last_heard + settings.timeout() {
                        break End::Close(reason(CloseCode::Policy, "no answer to pings"));
                    }
                    next_ping = Instant::now() + settings.ping();
                    let bytes = frame_len(0);
                    if let Err(end) = Box::pin(hand_over(session.ping(b""), bytes, &state, &backlog, cursor)).await {
                        break end;
                    }
                }
                // Shutdown: hand over what is stored (every acknowledged send),
                // then close with 1001.
                _ = state.shutdown.cancelled() => match Box::pin(closing_page(&state, &epoch, cursor, BATCH)).await {
                    Some(page) => pending = Some(page),
                    None => break End::ShuttingDown,
                },
            }
        };
        state.store.unpark(parked);
        Box::pin(finish(end, session, &connection)).await;
    }
}

/// Hands a page over: the reset and gap notices if any, then one text frame per
/// message, counting each as it goes.
async fn deliver(
    state: &AppState,
    session: &mut Session,
    page: &Page,
    backlog: &Backlog,
) -> Result<(), End<Close>> {
    let counters = state.stats.of(TRANSPORT);
    let mut position = position_before(page);
    if page.reset {
        let reset = Control::Reset {
            epoch: page.epoch.clone(),
        }
        .to_json();
        let bytes = frame_len(reset.len());
        hand_over(session.text(reset), bytes, state, backlog, position).await?;
    }
    if page.missed > 0 {
        let gap = Control::Gap {
            missed: page.missed,
        }
        .to_json();
        let bytes = frame_len(gap.len());
        hand_over(session.text(gap), bytes, state, backlog, position).await?;
    }
    for message in &page.messages {
        let Some(frame) = message_frame(message) else {
            continue;
        };
        let bytes = frame_len(frame.len());
        hand_over(session.text(frame), bytes, state, backlog, position).await?;
        counters.delivered_message(page, message);
        position = Cursor::after(message.id);
    }
    Ok(())
}

/// Closes the socket: with a close frame (reset if it cannot get out in
/// time), or at once for a slow reader.
async fn finish(end: End<Close>, session: Session, connection: &Connection) {
    let reason = match end {
        End::Gone => return,
        End::TooSlow => return connection.reset(),
        End::ShuttingDown => reason(CloseCode::Away, "server shutting down"),
        End::Close(reason) => reason,
    };
    connection
        .close_within(CLOSE_GRACE, session.close(Some(reason)))
        .await;
}

/// A message frame is exactly the stored bytes.
fn message_frame(message: &StoredMessage) -> Option<ByteString> {
    // The store's bytes are JSON, hence UTF-8; the check is a scan, not a copy.
    ByteString::try_from(message.json.clone()).ok()
}

/// `{"type":"presence","users":[…]}`.
fn presence_frame(online: &Snapshot) -> Option<ByteString> {
    // Serialized JSON, hence UTF-8; the check is a scan, not a copy.
    ByteString::try_from(online.control.clone()).ok()
}

/// What the server answers a client's frame with.
enum Answer {
    /// An ack or an error frame.
    Text(String),
    /// A pong with the ping's payload.
    Pong(bytes::Bytes),
}

impl Answer {
    /// Its frame's size on the wire.
    fn frame_len(&self) -> usize {
        match self {
            Answer::Text(text) => frame_len(text.len()),
            Answer::Pong(payload) => frame_len(payload.len()),
        }
    }

    async fn send(self, session: &mut Session) -> Result<(), actix_ws::Closed> {
        match self {
            Answer::Text(text) => session.text(text).await,
            Answer::Pong(payload) => session.pong(&payload).await,
        }
    }
}

/// Handles what the client sent: a send is stored and acknowledged (or
/// refused with an error frame), a ping answered, a close echoed.
async fn from_client(
    state: &AppState,
    connection: &Connection,
    frame: Option<Result<AggregatedMessage, ProtocolError>>,
) -> Result<Option<Answer>, End<Close>> {
    match frame {
        None => Err(End::Gone),
        Some(Ok(AggregatedMessage::Text(text))) => {
            Ok(Some(store_send(state, connection.client(), &text).await))
        }
        Some(Ok(AggregatedMessage::Binary(_))) => {
            Ok(Some(refusal("binary_frame", "send JSON in text frames")))
        }
        Some(Ok(AggregatedMessage::Ping(payload))) => Ok(Some(Answer::Pong(payload))),
        Some(Ok(AggregatedMessage::Pong(_))) => Ok(None),
        // Echo the client's close, as the close handshake asks.
        Some(Ok(AggregatedMessage::Close(close))) => Err(End::Close(
            close.unwrap_or_else(|| CloseCode::Normal.into()),
        )),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "WebSocket protocol error");
            Err(End::Close(close_for(&e)))
        }
    }
}

/// What actix-ws 0.4 reports when the fragments of one message add up to
/// more than `max_continuation_size` (an `io::Error` of kind `Other`).
const CONTINUATION_OVERFLOW: &str = "Exceeded maximum continuation size";

/// What actix-http 3.19 reports for a frame with a reserved bit set: an
/// `io::Error` of kind `InvalidData`, the kind it also gives text that is
/// not UTF-8, so the message is what tells a protocol error (1002) from
/// invalid payload data (1007).
const RESERVED_BITS: &str = "Received a frame with non-zero reserved bits";

/// The close RFC 6455 asks for after a protocol error from the client
/// (section 7.4.1), from the way actix-ws and actix-http report each one:
/// a frame over `--ws-max-frame` is `Overflow`, a message whose fragments
/// add up to more is an `io::Error` with [`CONTINUATION_OVERFLOW`] (both
/// 1009, message too big), a text message that is not UTF-8 an `io::Error`
/// of kind `InvalidData` (1007, invalid payload data), unless it is the
/// one for reserved bits; anything else (reserved bits, an unmasked frame,
/// a bad opcode, a stray continuation, a bad close code) is 1002.
fn close_for(error: &ProtocolError) -> CloseReason {
    match error {
        ProtocolError::Overflow => reason(CloseCode::Size, "frame too large"),
        ProtocolError::Io(e) if e.to_string() == RESERVED_BITS => {
            reason(CloseCode::Protocol, "reserved bits set")
        }
        ProtocolError::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            reason(CloseCode::Invalid, "text is not valid UTF-8")
        }
        ProtocolError::Io(e) if e.to_string() == CONTINUATION_OVERFLOW => {
            reason(CloseCode::Size, "message too large")
        }
        _ => reason(CloseCode::Protocol, "protocol error"),
    }
}

/// The size of a server frame (unmasked) carrying `payload` bytes: a 2-byte
/// header, plus 2 length bytes past 125 and 8 past 65,535. The connection's
/// byte bound (`chat_http::Backlog`) counts frames by it.
fn frame_len(payload: usize) -> usize {
    let length_bytes = match payload {
        0..=125 => 0,
        126..=65_535 => 2,
        _ => 8,
    };
    2 + length_bytes + payload
}

/// Stores a `send` frame from the client at `address`: its ack, or an error
/// frame (over a rate limit: `rate_limited`, with `retry_after_ms`).
async fn store_send(state: &AppState, address: Option<IpAddr>, text: &str) -> Answer {
    // A frame must be a JSON object, as a POST body must.
    let send = match parse_object::<ClientFrame>(text.as_bytes()) {
        Ok(ClientFrame::Send {
            user,
            text,
            client_msg_id,
        }) => NewMessage {
            user,
            text,
            client_msg_id,
            via: Via::Websocket,
        },
        Err(e) => return refusal(e.code(), &e.to_string()),
    };
    if let Err(limited) = admit_send(state, address, &send.user) {
        let e = chat_http::ApiError::RateLimited(limited);
        return Answer::Text(
            Control::Error {
                code: e.code().to_owned(),
                message: e.to_string(),
                retry_after_ms: Some(limited.retry_after_ms()),
            }
            .to_json(),
        );
    }
    // Stored and acknowledged only while the gate is open (see
    // `chat_http::shutdown`).
    let Some(permit) = state.sends.enter().await else {
        let e = chat_http::ApiError::ShuttingDown;
        return refusal(e.code(), &e.to_string());
    };
    let client_msg_id = send.client_msg_id.clone();
    match state.log.send(send).await {
        Ok(appended) => {
            permit.acked(appended.message().id);
            Answer::Text(
                Control::Ack {
                    client_msg_id,
                    id: appended.message().id,
                }
                .to_json(),
            )
        }
        Err(SendFailure::Invalid(e)) => refusal(e.code(), &e.to_string()),
        Err(e @ SendFailure::Unavailable(_)) => refusal("store_unavailable", &e.to_string()),
    }
}

fn refusal(code: &str, message: &str) -> Answer {
    let error = Control::Error {
        code: code.to_owned(),
        message: message.to_owned(),
        retry_after_ms: None,
    };
    Answer::Text(error.to_json())
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::frame_len;

    /// RFC 6455's three length encodings.
    #[test]
    fn frame_sizes() {
        assert_eq!(frame_len(0), 2);
        assert_eq!(frame_len(125), 127);
        assert_eq!(frame_len(126), 130);
        assert_eq!(frame_len(65_535), 65_539);
        assert_eq!(frame_len(65_536), 65_546);
    }
}
