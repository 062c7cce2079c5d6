//! HTTP streaming: one long response, split into JSON lines.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use chat_protocol::{Control, Incoming, PageBody};

use crate::{ClientError, Cursor, Options, Retry, Transport, refused};

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// Reads `/stream/messages`, reconnecting with `since` from the last id seen.
pub(crate) struct StreamFeed {
    http: reqwest::Client,
    url: String,
    options: Options,
    body: Option<Body>,
    /// Bytes after the last complete line.
    partial: BytesMut,
}

impl StreamFeed {
    pub(crate) fn new(http: reqwest::Client, base: &str, options: Options) -> Self {
        StreamFeed {
            http,
            url: format!("{base}{}", Transport::Stream.route()),
            options,
            body: None,
            partial: BytesMut::new(),
        }
    }

    /// Drops the connection; the next fetch reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.body = None;
        self.partial.clear();
    }

    /// The next gap notice or message.
    pub(crate) async fn fetch(
        &mut self,
        cursor: Option<Cursor>,
        reconnects: &mut u64,
    ) -> Result<PageBody, ClientError> {
        let mut retry = Retry::new(&self.options, reconnects);
        loop {
            if let Some(line) = next_line(&mut self.partial) {
                if let Some(batch) = to_batch(&line)? {
                    return Ok(batch);
                }
                continue;
            }
            let body = match &mut self.body {
                Some(body) => body,
                None => match connect(&self.http, &self.url, cursor).await {
                    Ok(body) => self.body.insert(body),
                    Err(error) => {
                        retry.after(error).await?;
                        continue;
                    }
                },
            };
            let next = body.next().await;
            match next {
                Some(Ok(chunk)) => self.partial.extend_from_slice(&chunk),
                // The stream ended or broke: a line cut in half is dropped,
                // and the reconnect asks again from the cursor.
                Some(Err(_)) | None => {
                    self.body = None;
                    self.partial.clear();
                    retry.pause().await;
                }
            }
        }
    }
}

/// The next complete line in `partial`, if one has arrived.
fn next_line(partial: &mut BytesMut) -> Option<Bytes> {
    let end = partial.iter().position(|b| *b == b'\n')?;
    let line = partial.split_to(end).freeze();
    partial.advance(1);
    Some(line)
}

/// Opens the stream, resuming after `cursor`.
async fn connect(
    http: &reqwest::Client,
    url: &str,
    cursor: Option<Cursor>,
) -> Result<Body, ClientError> {
    let mut request = http.get(url);
    if let Some(cursor) = cursor {
        request = request.query(&[("since", cursor.0)]);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await?;
        return Err(refused(status, &body));
    }
    Ok(Box::pin(response.bytes_stream()))
}

/// A message or gap line as a batch; `None` for pings and anything else.
fn to_batch(line: &[u8]) -> Result<Option<PageBody>, ClientError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| ClientError::Protocol(format!("line is not UTF-8: {e}")))?;
    let incoming =
        Incoming::parse(text).map_err(|e| ClientError::Protocol(format!("line: {e}")))?;
    Ok(match incoming {
        Incoming::Control(Control::Gap { missed }) => Some(PageBody {
            messages: Vec::new(),
            cursor: Cursor(0),
            missed,
            ..PageBody::default()
        }),
        Incoming::Control(_) => None,
        Incoming::Message { id, raw } => Some(PageBody {
            messages: vec![raw],
            cursor: Cursor::after(id),
            missed: 0,
            ..PageBody::default()
        }),
    })
}
