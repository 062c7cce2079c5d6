//! One SSE connection's task: read from the store, hand events to the
//! response body through the mailbox, wait for news, repeat.

use actix_web_lab::sse::{Data, Event};
use bytestring::ByteString;
use tokio::sync::mpsc::Sender;

use chat_http::{AppState, Backlog, ConnectionHandle, Transport};
use chat_store::{Cursor, Page};

use crate::BATCH;

/// Runs until the client goes away, falls too far behind, or the server
/// shuts down. Dropping `mailbox` on return ends the response.
pub(crate) async fn run(
    state: AppState,
    first: Page,
    mailbox: Sender<Event>,
    connection: Option<ConnectionHandle>,
) {
    let counters = state.stats.of(Transport::Sse);
    let keep_alive = state.config.sse_keepalive();
    let backlog = Backlog::new(&state.store, state.config.backlog);
    let mut page = first;
    loop {
        if page.missed > 0 {
            let gap = Data::new(format!("{{\"missed\":{}}}", page.missed)).event("gap");
            if !deliver(
                &state,
                &mailbox,
                gap.into(),
                (page.cursor, backlog),
                &connection,
            )
            .await
            {
                return;
            }
        }
        // The last id handed to this client: just before the page's first.
        let mut position = page
            .messages
            .first()
            .map_or(page.cursor, |m| Cursor(m.id.0 - 1));
        for message in &page.messages {
            // The store's bytes are JSON, hence UTF-8; the check is a scan,
            // not a copy.
            let Ok(json) = ByteString::try_from(message.json.clone()) else {
                continue;
            };
            let event = Data::new(json).id(message.id.to_string());
            if !deliver(
                &state,
                &mailbox,
                event.into(),
                (position, backlog),
                &connection,
            )
            .await
            {
                return;
            }
            counters.delivered(1);
            position = Cursor::after(message.id);
        }

        let cursor = page.cursor;
        tokio::select! {
            _ = state.store.wait_beyond(cursor) => {}
            _ = tokio::time::sleep(keep_alive) => {
                let comment = Event::Comment("keep-alive".into());
                if !deliver(&state, &mailbox, comment, (cursor, backlog), &connection).await {
                    return;
                }
            }
            _ = mailbox.closed() => return,
            _ = state.shutdown.cancelled() => return,
        }
        page = match state.store.read(Some(cursor), BATCH) {
            Ok(page) => page,
            // Cannot happen: the cursor came from the store.
            Err(_) => return,
        };
    }
}

/// Hands one event to the response body. Returns `false` when the connection
/// is over: the client went away, the server is shutting down, or the client,
/// handed everything up to `position`, fell too far behind the live chat
/// (see [`Backlog`]), in which case the connection is reset.
async fn deliver(
    state: &AppState,
    mailbox: &Sender<Event>,
    event: Event,
    (position, backlog): (Cursor, Backlog),
    connection: &Option<ConnectionHandle>,
) -> bool {
    tokio::select! {
        sent = mailbox.send(event) => sent.is_ok(),
        _ = backlog.exceeded(&state.store, position) => {
            tracing::warn!(%position, backlog = state.config.backlog, "SSE client too slow; resetting");
            if let Some(connection) = connection {
                // The mailbox is open while the response body lives.
                connection.abort(!mailbox.is_closed());
            }
            false
        }
        _ = state.shutdown.cancelled() => false,
    }
}
