//! The lean long poll: one request after another on one kept-alive socket,
//! each answer read whole (it says its length) and decoded as a page.

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use chat_protocol::PageBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::head;

/// How long the server may hold each poll, in seconds (the contract's
/// default).
pub const WAIT_S: u64 = 25;

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
