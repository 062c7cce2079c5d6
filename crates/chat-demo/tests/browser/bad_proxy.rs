//! A badly set-up proxy written in a few lines, for the Automatic pane's
//! fallback test: it strips the WebSocket upgrade and holds back the bytes of
//! never-ending responses (the real nginx setups are in `proxies.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A badly set-up proxy in front of `upstream`, like an nginx without the
/// WebSocket lines and with buffering forced on: it drops the `Upgrade` and
/// `Connection` headers of every request, and of a response to
/// `/sse/` or `/stream/` it passes the head but holds the body back until
/// 64 KiB have gathered. One request per connection (`connection: close`).
pub async fn bad_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("the proxy's address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                // A connection that breaks is the browser's to retry.
                let _ = relay(client, upstream).await;
            });
        }
    });
    addr
}

/// What the proxy holds back from a never-ending response.
const PROXY_BUFFER: usize = 64 * 1024;

/// One request through [`bad_proxy`].
async fn relay(mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut client).await?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let held = path.starts_with("/sse/") || path.starts_with("/stream/");
    let mut forwarded = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(name.as_str(), "connection" | "upgrade" | "keep-alive") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("connection: close\r\n\r\n");

    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(forwarded.as_bytes()).await?;
    server.write_all(&rest).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // The request's body, if any, and the client's hang-up.
    let mut up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
    });
    let down = async {
        if held {
            let (head, mut body) = read_head(&mut from_server).await?;
            to_client.write_all(&head).await?;
            let mut chunk = [0u8; 4096];
            loop {
                let n = from_server.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
                if body.len() >= PROXY_BUFFER {
                    to_client.write_all(&body).await?;
                    body.clear();
                }
            }
            to_client.write_all(&body).await?;
        } else {
            tokio::io::copy(&mut from_server, &mut to_client).await?;
        }
        to_client.shutdown().await
    };
    tokio::select! {
        // The browser hung up (say, it aborted a held stream).
        _ = &mut up => Ok(()),
        done = down => {
            // Answered: let the browser read it all and hang up, rather than
            // closing under it (which could reset the connection).
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut up).await;
            up.abort();
            done
        }
    }
}

/// Reads up to the end of an HTTP head: the head (blank line included) and
/// whatever came after it.
async fn read_head<R: AsyncReadExt + Unpin>(reader: &mut R) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = bytes.split_off(end + 4);
            return Ok((bytes, rest));
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}
