//! Regular polling and long polling: the same request, held or not.

use std::time::Duration;

use chat_protocol::PageBody;
use chat_protocol::limits::MAX_PAGE;

use crate::{ClientError, Cursor, Options, Retry, Transport, refused};

/// Requests pages of messages after a cursor.
pub(crate) struct PollFeed {
    http: reqwest::Client,
    url: String,
    long: bool,
    options: Options,
    /// Whether the next request should wait `poll_interval` first.
    pause: bool,
}

impl PollFeed {
    pub(crate) fn new(http: reqwest::Client, base: &str, long: bool, options: Options) -> Self {
        let path = if long {
            Transport::Longpoll.route()
        } else {
            Transport::Polling.route()
        };
        PollFeed {
            http,
            url: format!("{base}{path}"),
            long,
            options,
            pause: false,
        }
    }

    /// One successful answer, retrying failures with backoff.
    pub(crate) async fn fetch(
        &mut self,
        cursor: Option<Cursor>,
        reconnects: &mut u64,
    ) -> Result<PageBody, ClientError> {
        if self.pause && !self.long {
            tokio::time::sleep(self.options.poll_interval).await;
        }
        let mut retry = Retry::new(&self.options, reconnects);
        loop {
            match self.request(cursor).await {
                Ok(batch) => {
                    // A full page means more is waiting: ask again at once.
                    self.pause = batch.messages.len() < MAX_PAGE;
                    return Ok(batch);
                }
                Err(error) => retry.after(error).await?,
            }
        }
    }

    async fn request(&self, cursor: Option<Cursor>) -> Result<PageBody, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(cursor) = cursor {
            query.push(("since", cursor.to_string()));
        }
        let mut request = self.http.get(&self.url);
        if self.long {
            query.push(("wait_s", self.options.wait_s.to_string()));
            // Allow the server its full hold, plus time to answer.
            request = request.timeout(Duration::from_secs(self.options.wait_s + 10));
        } else {
            request = request.timeout(Duration::from_secs(30));
        }
        let response = request.query(&query).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("page: {e}")))
    }
}
