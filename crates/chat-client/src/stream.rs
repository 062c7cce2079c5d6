//! HTTP streaming: one long response, split into JSON lines.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;

use chat_protocol::{Incoming, PageBody};

use crate::body::{self, Chunks};
use crate::epoch::SharedEpoch;
use crate::{ClientError, Cursor, Transport, refused};

/// Reads `/stream/messages`, reconnecting with `since` from the last id seen.
pub(crate) struct StreamFeed {
    http: reqwest::Client,
    url: String,
    /// Whether requests say `Accept-Encoding: gzip`.
    gzip: bool,
    body: Option<Chunks>,
    /// Bytes after the last complete line.
    partial: BytesMut,
    /// The epoch every request names.
    epoch: SharedEpoch,
    /// `user=NAME` for presence, if named.
    user: Option<(&'static str, String)>,
}

impl StreamFeed {
    pub(crate) fn new(
        http: reqwest::Client,
        base: &str,
        gzip: bool,
        epoch: SharedEpoch,
        user: Option<(&'static str, String)>,
    ) -> Self {
        StreamFeed {
            http,
            url: format!("{base}{}", Transport::Stream.route()),
            gzip,
            body: None,
            partial: BytesMut::new(),
            epoch,
            user,
        }
    }

    /// Whether a stream is open.
    pub(crate) fn is_open(&self) -> bool {
        self.body.is_some()
    }

    /// Drops the connection; the next fetch reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.body = None;
        self.partial.clear();
    }

    /// Opens the stream, resuming after `cursor`: one attempt.
    pub(crate) async fn open(&mut self, cursor: Option<Cursor>) -> Result<(), ClientError> {
        let mut request = body::accept(self.http.get(&self.url), self.gzip);
        if let Some(cursor) = cursor {
            request = request.query(&[("since", cursor.0)]);
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
        self.partial.clear();
        self.body = Some(body::chunks(response));
        Ok(())
    }

    /// The next gap notice or message on the open stream; `None` once the
    /// stream has ended or broken (it is then closed, and a line cut in half
    /// is dropped: the reconnect asks again from the cursor).
    pub(crate) async fn read(&mut self) -> Result<Option<PageBody>, ClientError> {
        loop {
            if let Some(line) = next_line(&mut self.partial) {
                if let Some(batch) = to_batch(&line)? {
                    return Ok(Some(batch));
                }
                continue;
            }
            let Some(body) = &mut self.body else {
                return Ok(None);
            };
            match body.next().await {
                Some(Ok(chunk)) => self.partial.extend_from_slice(&chunk),
                Some(Err(_)) | None => {
                    self.disconnect();
                    return Ok(None);
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

/// A message, gap, reset or presence line as a batch; `None` for pings and
/// anything else.
fn to_batch(line: &[u8]) -> Result<Option<PageBody>, ClientError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| ClientError::Protocol(format!("line is not UTF-8: {e}")))?;
    let incoming =
        Incoming::parse(text).map_err(|e| ClientError::Protocol(format!("line: {e}")))?;
    Ok(PageBody::from_incoming(incoming))
}
