//! One WebSocket's task: a single `select!` over the client's frames, the
//! store's news, the heartbeat and shutdown.

use std::time::Duration;

use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep_until};

use chat_http::{AppState, Backlog, ConnectionHandle, Transport};
use chat_store::{Appended, Cursor, NewMessage, Page, Via};

use crate::BATCH;

/// How long a close frame may take to go out before the socket is reset.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    /// Store a message, like `POST /api/messages`.
    Send {
        user: String,
        text: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
}

/// Control frames the server sends (messages go out as the stored bytes).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerFrame<'a> {
    /// The cursor predated the history.
    Gap { missed: u64 },
    /// A send from this socket was stored (or had been, for a retry).
    Ack {
        client_msg_id: Option<&'a str>,
        id: u64,
    },
    /// A send from this socket was refused; the socket stays open.
    Error { code: &'a str, message: &'a str },
}

/// Why the loop ended, and so how the socket is closed.
enum End {
    /// The client went away or the session broke: nothing left to say.
    Gone,
    /// Close with this reason (and reset the socket if the close frame
    /// cannot get out).
    Close(CloseReason),
    /// The client is too slow: reset the connection, no close frame.
    Reset,
}

/// Runs until the socket closes; every exit closes it properly.
pub(crate) async fn run(
    state: AppState,
    first: Page,
    mut session: Session,
    mut frames: AggregatedMessageStream,
    connection: Option<ConnectionHandle>,
) {
    let counters = state.stats.of(Transport::Websocket);
    let mut ping = tokio::time::interval(state.config.ws_ping());
    ping.reset(); // the first tick would fire at once
    let timeout = state.config.ws_timeout();
    let mut last_heard = Instant::now();
    let backlog = Backlog::new(&state.store, state.config.backlog);
    let mut pending = Some(first);
    let mut cursor = Cursor(0);

    let end = loop {
        if let Some(page) = pending.take() {
            if let Err(end) = deliver(&state, &mut session, &page, backlog).await {
                break end;
            }
            counters.delivered(page.messages.len());
            cursor = page.cursor;
        }

        tokio::select! {
            _ = state.store.wait_beyond(cursor) => {
                match state.store.read(Some(cursor), BATCH) {
                    Ok(page) => pending = Some(page),
                    Err(_) => break End::Gone, // cannot happen: the cursor came from the store
                }
            }
            frame = frames.recv() => {
                last_heard = Instant::now();
                match frame {
                    None => break End::Gone,
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if handle_send(&state, &mut session, &text).await.is_err() {
                            break End::Gone;
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let refused = refuse(&mut session, "binary_frame", "send JSON in text frames");
                        if refused.await.is_err() {
                            break End::Gone;
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        if session.pong(&payload).await.is_err() {
                            break End::Gone;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    // Echo the client's close, as the close handshake asks.
                    Some(Ok(AggregatedMessage::Close(reason))) => {
                        break End::Close(reason.unwrap_or_else(|| CloseCode::Normal.into()));
                    }
                    Some(Err(ProtocolError::Overflow)) => {
                        break End::Close(reason(CloseCode::Size, "frame too large"));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "WebSocket protocol error");
                        break End::Close(reason(CloseCode::Protocol, "protocol error"));
                    }
                }
            }
            _ = ping.tick() => {
                if session.ping(b"").await.is_err() {
                    break End::Gone;
                }
            }
            _ = sleep_until(last_heard + timeout) => {
                break End::Close(reason(CloseCode::Policy, "no answer to pings"));
            }
            _ = state.shutdown.cancelled() => {
                break End::Close(reason(CloseCode::Away, "server shutting down"));
            }
        }
    };

    match end {
        End::Gone => {}
        End::Close(reason) => {
            let closed = tokio::time::timeout(CLOSE_GRACE, session.close(Some(reason))).await;
            if closed.is_err()
                && let Some(connection) = &connection
            {
                // Timed out: the close frame was still waiting for room, so
                // the response body (the channel's receiver) is alive.
                connection.abort(true);
            }
        }
        End::Reset => {
            if let Some(connection) = &connection {
                // `deliver` found the frame still waiting for room in this
                // same poll, so the response body is alive.
                connection.abort(true);
            }
        }
    }
}

/// Sends a page: the gap notice if any, then each message's stored bytes as
/// a text frame. A client too far behind the live chat (see [`Backlog`]) is
/// reset.
async fn deliver(
    state: &AppState,
    session: &mut Session,
    page: &Page,
    backlog: Backlog,
) -> Result<(), End> {
    if page.missed > 0 {
        let gap = frame(&ServerFrame::Gap {
            missed: page.missed,
        });
        session.text(gap).await.map_err(|_| End::Gone)?;
    }
    // The last id handed to this client: just before the page's first.
    let mut position = page
        .messages
        .first()
        .map_or(page.cursor, |m| Cursor(m.id.0 - 1));
    for message in &page.messages {
        // The store's bytes are JSON, hence UTF-8.
        let Ok(text) = bytestring::ByteString::try_from(message.json.clone()) else {
            continue;
        };
        tokio::select! {
            // Biased: the send is polled first, so reaching the next branch
            // means the body was still there to receive it.
            biased;
            sent = session.text(text) => sent.map_err(|_| End::Gone)?,
            _ = backlog.exceeded(&state.store, position) => {
                tracing::warn!(%position, backlog = state.config.backlog, "WebSocket client too slow; resetting");
                return Err(End::Reset);
            }
            _ = state.shutdown.cancelled() => {
                return Err(End::Close(reason(CloseCode::Away, "server shutting down")));
            }
        }
        position = Cursor::after(message.id);
    }
    Ok(())
}

/// Handles one text frame from the client: a send, or an error frame.
async fn handle_send(
    state: &AppState,
    session: &mut Session,
    text: &str,
) -> Result<(), actix_ws::Closed> {
    let send = match serde_json::from_str::<ClientFrame>(text) {
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
        Err(e) => return refuse(session, "malformed_json", &e.to_string()).await,
    };
    let client_msg_id = send.client_msg_id.clone();
    match state.store.append(send) {
        Ok(Appended::Created(m) | Appended::Existing(m)) => {
            let ack = frame(&ServerFrame::Ack {
                client_msg_id: client_msg_id.as_deref(),
                id: m.id.0,
            });
            session.text(ack).await
        }
        Err(e) => refuse(session, e.code(), &e.to_string()).await,
    }
}

async fn refuse(session: &mut Session, code: &str, message: &str) -> Result<(), actix_ws::Closed> {
    session
        .text(frame(&ServerFrame::Error { code, message }))
        .await
}

fn frame(frame: &ServerFrame<'_>) -> String {
    // A struct of strings and integers always serializes.
    serde_json::to_string(frame).unwrap_or_default()
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}
