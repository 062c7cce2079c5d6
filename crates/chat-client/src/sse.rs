//! Server-sent events: one long response, parsed event by event.

use std::pin::Pin;

use eventsource_stream::{Event as SseEvent, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;

use chat_protocol::{Gap, PageBody};

use crate::{ClientError, Cursor, Options, Retry, Transport, refused};

type Events =
    Pin<Box<dyn Stream<Item = Result<SseEvent, EventStreamError<reqwest::Error>>> + Send>>;

/// Reads `/sse/events`, reconnecting with `Last-Event-ID` like a browser.
pub(crate) struct SseFeed {
    http: reqwest::Client,
    url: String,
    options: Options,
    events: Option<Events>,
}

impl SseFeed {
    pub(crate) fn new(http: reqwest::Client, base: &str, options: Options) -> Self {
        SseFeed {
            http,
            url: format!("{base}{}", Transport::Sse.route()),
            options,
            events: None,
        }
    }

    /// Drops the connection; the next fetch reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.events = None;
    }

    /// The next gap notice or message.
    pub(crate) async fn fetch(
        &mut self,
        cursor: Option<Cursor>,
        reconnects: &mut u64,
    ) -> Result<PageBody, ClientError> {
        let mut retry = Retry::new(&self.options, reconnects);
        loop {
            let events = match &mut self.events {
                Some(events) => events,
                None => match connect(&self.http, &self.url, cursor).await {
                    Ok(events) => self.events.insert(events),
                    Err(error) => {
                        retry.after(error).await?;
                        continue;
                    }
                },
            };
            match events.next().await {
                Some(Ok(event)) => {
                    if let Some(batch) = to_batch(event)? {
                        return Ok(batch);
                    }
                }
                // The stream ended or broke: reconnect from the cursor.
                Some(Err(_)) | None => {
                    self.events = None;
                    retry.pause().await;
                }
            }
        }
    }
}

/// Opens the stream, resuming after `cursor`.
async fn connect(
    http: &reqwest::Client,
    url: &str,
    cursor: Option<Cursor>,
) -> Result<Events, ClientError> {
    {
        let mut request = http.get(url).header("accept", "text/event-stream");
        if let Some(cursor) = cursor {
            // What a browser's EventSource sends when it reconnects.
            request = request.header("last-event-id", cursor.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await?;
            return Err(refused(status, &body));
        }
        Ok(Box::pin(response.bytes_stream().eventsource()))
    }
}

/// A message or gap event as a batch; `None` for anything else.
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
