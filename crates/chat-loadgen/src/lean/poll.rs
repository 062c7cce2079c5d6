//! The lean long poll: one request after another on one kept-alive socket,
//! each answer read whole (it says its length) and decoded as a page.

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use chat_client::Event;
use chat_protocol::PageBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::sleep;

use super::{BACKOFF, Conn, LeanFeed, MAX_FAILURES, head, message};

/// How long the server may hold each poll, in seconds (the contract's
/// default).
pub const WAIT_S: u64 = 25;

impl LeanFeed {
    /// One long poll on the feed's kept-alive socket, its page queued;
    /// `true` when the connection must be opened again (a refusal, or a
    /// connection that broke: after a pause, until too many in a row).
    pub(super) async fn poll_once(&mut self) -> anyhow::Result<bool> {
        let target = self.target();
        let host = self.addr.to_string();
        let Some(Conn::Poll(socket)) = &mut self.socket else {
            return Ok(true);
        };
        match page(socket, &mut self.raw, &host, &target).await {
            Ok(page) => {
                self.failures = 0;
                self.queue(page)?;
                Ok(false)
            }
            Err(e) => {
                self.failures += 1;
                if self.failures >= MAX_FAILURES {
                    return Err(e.context(format!("{MAX_FAILURES} polls in a row")));
                }
                sleep(BACKOFF * self.failures).await;
                Ok(true)
            }
        }
    }

    /// A long poll's page as events (a reset, a gap, then its messages);
    /// the cursor moves to the page's at once, since no poll goes out
    /// before they are all handed out.
    fn queue(&mut self, page: PageBody) -> anyhow::Result<()> {
        if let Some(epoch) = page.epoch {
            if page.reset {
                self.polled.push_back(Event::Reset {
                    epoch: epoch.clone(),
                });
            }
            self.epoch = Some(epoch);
        }
        if page.missed > 0 {
            self.polled.push_back(Event::Gap {
                missed: page.missed,
            });
        }
        for raw in &page.messages {
            let raw = Bytes::copy_from_slice(raw.get().as_bytes());
            self.polled.push_back(message(raw)?);
        }
        self.cursor = page.cursor;
        Ok(())
    }
}

/// One long poll on `socket`: the request for `target`, then the whole
/// answer, which must be a `200` page.
pub(super) async fn page(
    socket: &mut TcpStream,
    raw: &mut BytesMut,
    host: &str,
    target: &str,
) -> anyhow::Result<PageBody> {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let head = loop {
        if let Some(head) = head::parse(raw)? {
            break head;
        }
        if socket.read_buf(raw).await? == 0 {
            bail!("the server closed the connection");
        }
    };
    let body_len = head
        .content_length
        .context("an answer without content-length")?;
    raw.advance(head.len);
    while raw.len() < body_len {
        if socket.read_buf(raw).await? == 0 {
            bail!("the server closed the connection in the middle of an answer");
        }
    }
    let body = raw.split_to(body_len);
    if head.status != 200 {
        bail!(
            "{target} answered {}: {}",
            head.status,
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).context("a page's JSON")
}
