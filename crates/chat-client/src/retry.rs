//! The retry rule every feed shares: 4xx is final, except `429 Too Many
//! Requests` (the server's per-client limits: try again later); anything else
//! is counted and waited out with exponential backoff and full jitter.

use crate::{ClientError, Options};

/// Failed attempts in a row within one fetch, and what to do after one:
/// the retry rule every feed shares.
pub(crate) struct Retry<'a> {
    options: &'a Options,
    reconnects: &'a mut u64,
    attempt: u32,
}

impl<'a> Retry<'a> {
    pub(crate) fn new(options: &'a Options, reconnects: &'a mut u64) -> Self {
        Retry {
            options,
            reconnects,
            attempt: 0,
        }
    }

    /// After a failed request or connection: a 4xx answer is the caller's to
    /// handle and is returned; anything else, `429` included (a place under
    /// the server's connection cap frees up later), is waited out
    /// ([`Retry::pause`]).
    pub(crate) async fn after(&mut self, error: ClientError) -> Result<(), ClientError> {
        if let ClientError::Refused { status, .. } = &error
            && *status < 500
            && *status != 429
        {
            return Err(error);
        }
        self.pause().await;
        Ok(())
    }

    /// Counts a reconnect and sleeps: exponential backoff with full jitter, a
    /// random pause up to `min_backoff * 2^attempt`, capped at `max_backoff`.
    pub(crate) async fn pause(&mut self) {
        *self.reconnects += 1;
        let ceiling = self
            .options
            .min_backoff
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.options.max_backoff);
        let pause = ceiling
            .mul_f64(rand::random::<f64>())
            .max(self.options.min_backoff / 2);
        self.attempt += 1;
        tokio::time::sleep(pause).await;
    }
}
