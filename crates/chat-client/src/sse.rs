//! Server-sent events: one long response, parsed event by event.

use std::io;
use std::pin::Pin;

use eventsource_stream::{Event as SseEvent, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;

use chat_protocol::{Gap, PageBody, PresenceList, Reset};

use crate::epoch::SharedEpoch;
use crate::{ClientError, Cursor, Transport, body, refused};

type Events = Pin<Box<dyn Stream<Item = Result<SseEvent, EventStreamError<io::Error>>> + Send>>;

/// Reads `/sse/events`, reconnecting with `Last-Event-ID` like a browser.
pub(crate) struct SseFeed {
    http: reqwest::Client,
    url: String,
    /// Whether requests say `Accept-Encoding: gzip`.
    gzip: bool,
    events: Option<Events>,
    /// The epoch the stream is opened in (in its URL, like a browser's).
    epoch: SharedEpoch,
    /// `user=NAME` for presence, if named.
    user: Option<(&'static str, String)>,
}

impl SseFeed {
    pub(crate) fn new(
        http: reqwest::Client,
        base: &str,
        gzip: bool,
        epoch: SharedEpoch,
        user: Option<(&'static str, String)>,
    ) -> Self {
        SseFeed {
            http,
            url: format!("{base}{}", Transport::Sse.route()),
            gzip,
            events: None,
            epoch,
            user,
        }
    }

    /// Whether a stream is open.
    pub(crate) fn is_open(&self) -> bool {
        self.events.is_some()
    }

    /// Drops the connection; the next fetch reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.events = None;
    }

    /// Opens the stream, resuming after `cursor`: one attempt.
    pub(crate) async fn open(&mut self, cursor: Option<Cursor>) -> Result<(), ClientError> {
        let mut request =
            body::accept(self.http.get(&self.url), self.gzip).header("accept", "text/event-stream");
        if let Some(cursor) = cursor {
            // What a browser's EventSource sends when it reconnects.
            request = request.header("last-event-id", cursor.to_string());
        }
        if let Some(epoch) = self.epoch.query() {
            request = request.query(&[epoch]);
        }
        if let Some(user) = &self.user {
            request = request.query(&[user]);
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = body::whole(response).await?;
            return Err(refused(status, &body));
        }
        self.events = Some(Box::pin(body::chunks(response).eventsource()));
        Ok(())
    }

    /// The next gap notice or message on the open stream; `None` once the
    /// stream has ended or broken (it is then closed).
    pub(crate) async fn read(&mut self) -> Result<Option<PageBody>, ClientError> {
        let Some(events) = &mut self.events else {
            return Ok(None);
        };
        loop {
            match events.next().await {
                Some(Ok(event)) => {
                    if let Some(batch) = to_batch(event)? {
                        return Ok(Some(batch));
                    }
                }
                Some(Err(_)) | None => {
                    self.events = None;
                    return Ok(None);
                }
            }
        }
    }
}

/// A message, gap, reset or presence event as a batch; `None` for anything
/// else.
fn to_batch(event: SseEvent) -> Result<Option<PageBody>, ClientError> {
    match event.event.as_str() {
        "gap" => {
            let gap: Gap = serde_json::from_str(&event.data)
                .map_err(|e| ClientError::Protocol(format!("gap event: {e}")))?;
            Ok(Some(PageBody {
                messages: Vec::new(),
                cursor: Cursor(0),
                missed: gap.missed,
                ..PageBody::default()
            }))
        }
        "presence" => {
            let list: PresenceList = serde_json::from_str(&event.data)
                .map_err(|e| ClientError::Protocol(format!("presence event: {e}")))?;
            Ok(Some(PageBody::presence_notice(list)))
        }
        "reset" => {
            let reset: Reset = serde_json::from_str(&event.data)
                .map_err(|e| ClientError::Protocol(format!("reset event: {e}")))?;
            Ok(Some(PageBody::reset_notice(reset.epoch)))
        }
        "message" => {
            let id: u64 = event
                .id
                .parse()
                .map_err(|_| ClientError::Protocol(format!("event id {:?}", event.id)))?;
            let raw = RawValue::from_string(event.data)
                .map_err(|e| ClientError::Protocol(format!("event data: {e}")))?;
            Ok(Some(PageBody {
                messages: vec![raw],
                cursor: Cursor(id),
                missed: 0,
                ..PageBody::default()
            }))
        }
        _ => Ok(None),
    }
}
