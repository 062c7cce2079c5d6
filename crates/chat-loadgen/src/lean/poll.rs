//! The lean long poll: one request after another on one kept-alive socket,
//! each answer read whole (it says its length) and decoded as a page.

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use chat_protocol::PageBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::MAX_HEAD;

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
    let (head_len, status, body_len) = loop {
        if let Some(head) = head(raw)? {
            break head;
        }
        if socket.read_buf(raw).await? == 0 {
            bail!("the server closed the connection");
        }
    };
    raw.advance(head_len);
    while raw.len() < body_len {
        if socket.read_buf(raw).await? == 0 {
            bail!("the server closed the connection in the middle of an answer");
        }
    }
    let body = raw.split_to(body_len);
    if status != 200 {
        bail!(
            "{target} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).context("a page's JSON")
}

/// The length of a complete response head at the start of `raw`, its status
/// and its body's length; `None` while the head is incomplete.
fn head(raw: &[u8]) -> anyhow::Result<Option<(usize, u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = response.parse(raw)? else {
        anyhow::ensure!(raw.len() < MAX_HEAD, "response head over {MAX_HEAD} bytes");
        return Ok(None);
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .context("an answer without content-length")?;
    let length = std::str::from_utf8(length.value)?
        .trim()
        .parse()
        .context("content-length")?;
    Ok(Some((len, response.code.unwrap_or(0), length)))
}
