//! Regular polling and long polling: the same request, held or not.

use std::time::Duration;

use chat_protocol::PageBody;
use chat_protocol::limits::MAX_PAGE;

use crate::epoch::SharedEpoch;
use crate::retry::Retry;
use crate::{ClientError, Cursor, Options, Transport, body, refused};

/// How long a probe's long poll may be held (the contract's minimum): when
/// there is nothing to send, an empty answer is an answer too.
const PROBE_WAIT_S: u64 = 1;

/// How long a regular poll may take to be answered.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a held long poll is allowed beyond its hold, to be answered.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// Requests pages of messages after a cursor.
pub(crate) struct PollFeed {
    http: reqwest::Client,
    url: String,
    long: bool,
    options: Options,
    /// Whether requests say `Accept-Encoding: gzip`.
    gzip: bool,
    /// Whether the next request should wait `poll_interval` first.
    pause: bool,
    /// The epoch every request names.
    epoch: SharedEpoch,
}

impl PollFeed {
    pub(crate) fn new(
        http: reqwest::Client,
        base: &str,
        long: bool,
        options: Options,
        gzip: bool,
        epoch: SharedEpoch,
    ) -> Self {
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
            gzip,
            pause: false,
            epoch,
        }
    }

    /// Whether this is long polling.
    pub(crate) fn is_long(&self) -> bool {
        self.long
    }

    /// One successful answer. Failures are retried with backoff, unless
    /// `strict` (an Auto subscription's transport above the last), where any
    /// failure is returned so that Auto can move on.
    pub(crate) async fn fetch(
        &mut self,
        cursor: Option<Cursor>,
        reconnects: &mut u64,
        strict: bool,
    ) -> Result<PageBody, ClientError> {
        if self.pause && !self.long {
            tokio::time::sleep(self.options.poll_interval).await;
        }
        let mut retry = Retry::new(&self.options, reconnects);
        loop {
            match self.request(cursor, self.options.wait_s).await {
                Ok(batch) => return Ok(self.answered(batch)),
                Err(error) if strict => return Err(error),
                Err(error) => retry.after(error).await?,
            }
        }
    }

    /// One request, not retried, held at most [`PROBE_WAIT_S`]: how Auto
    /// tries this transport.
    pub(crate) async fn probe(&mut self, cursor: Option<Cursor>) -> Result<PageBody, ClientError> {
        let batch = self.request(cursor, PROBE_WAIT_S).await?;
        Ok(self.answered(batch))
    }

    /// Notes whether to pause before the next request.
    fn answered(&mut self, batch: PageBody) -> PageBody {
        // A full page means more is waiting: ask again at once.
        self.pause = batch.messages.len() < MAX_PAGE;
        batch
    }

    async fn request(&self, cursor: Option<Cursor>, wait_s: u64) -> Result<PageBody, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(cursor) = cursor {
            query.push(("since", cursor.to_string()));
        }
        query.extend(self.epoch.query());
        query.extend(crate::feed::user(&self.options));
        let mut request = body::accept(self.http.get(&self.url), self.gzip);
        if self.long {
            query.push(("wait_s", wait_s.to_string()));
            // Allow the server its full hold, plus time to answer.
            request = request.timeout(Duration::from_secs(wait_s) + ANSWER_MARGIN);
        } else {
            request = request.timeout(POLL_TIMEOUT);
        }
        let response = request.query(&query).send().await?;
        let status = response.status();
        let body = body::whole(response).await?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("page: {e}")))
    }
}
