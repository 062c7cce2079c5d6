//! Lean subscribers (`--lean`): SSE, HTTP streaming, WebSocket and long
//! polling read straight from their own socket, in one task each.
//!
//! The project's client ([`chat_client`]) reads a stream the way an
//! application would: `reqwest` and `hyper` behind it run the connection in
//! a task of its own, and each event goes through a general SSE parser and
//! a few allocations before the subscriber sees it. On the load generator's
//! one core that cost 8 to 10 µs per delivery, as much as the server spent:
//! at 1,000 subscribers and 100 messages a second the load generator was
//! the busier of the two, and its own queue was most of the latency it
//! reported (`docs/measurements.md`, "Send-to-deliver latency").
//!
//! A lean SSE or streaming feed writes its `GET` itself, checks the
//! response head with `httparse`, undoes the chunked transfer coding and
//! cuts the body into SSE events or lines; a WebSocket feed is
//! `tokio-tungstenite` on its own socket; a long poll sends its requests one
//! after another on one kept-alive socket (`poll.rs`). Each message is
//! decoded once
//! (the client decodes a line as [`Incoming`], then the message again).
//! Messages and notices are read with the contract's types ([`Message`],
//! [`Gap`], [`Reset`], [`Incoming`]) and
//! checked by the subscriber for loss, duplicates and order like any other.
//! It resumes from its cursor when the server closes or resets it (a slow
//! reader's cut, say), and, unlike the client, filters nothing: a message
//! the server repeats is reported.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use chat_client::{Event, Message, Transport};
use chat_protocol::{Control, Cursor, Epoch, Gap, Incoming, Reset};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::sleep;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod head;
mod poll;
/// Connection attempts in a row that may fail before the feed gives up.
pub const MAX_FAILURES: u32 = 20;
/// Pause before a reconnect, times the failures so far.
const BACKOFF: Duration = Duration::from_millis(50);
/// A WebSocket's read buffer: chat frames are small (tungstenite's default
/// is 128 KiB, times a thousand sockets).
const WS_READ_BUFFER: usize = 4096;

/// An open connection.
#[derive(Debug)]
enum Conn {
    /// An SSE or streaming response, read as bytes.
    Http(TcpStream),
    /// A WebSocket, read as frames.
    Ws(Box<WebSocketStream<TcpStream>>),
    /// A kept-alive connection for long polls, one after another.
    Poll(TcpStream),
}

/// One subscriber's SSE or streaming response, read from its own socket.
#[derive(Debug)]
pub struct LeanFeed {
    /// The server.
    addr: SocketAddr,
    /// `sse`, `stream` or `websocket`.
    transport: Transport,
    /// The last message id seen; a reconnect asks for what follows.
    cursor: Cursor,
    /// The store's epoch once a reset named it, for the reconnect's URL.
    epoch: Option<Epoch>,
    /// The open connection, if any.
    socket: Option<Conn>,
    /// Bytes read and not yet taken out of their chunks.
    raw: BytesMut,
    /// Body bytes not yet cut into events or lines.
    body: BytesMut,
    /// A long poll's page, as events not handed out yet.
    polled: VecDeque<Event>,
    /// Where the chunked decoding stands.
    chunk: Chunk,
    /// Whether a connection was ever opened.
    opened: bool,
    /// Connections opened after the first.
    reconnects: u64,
    /// Connection attempts that failed in a row.
    failures: u32,
}

/// The chunked transfer coding's state between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A size line comes next.
    Size,
    /// This many bytes of data come next.
    Data(usize),
    /// The CRLF after a chunk's data comes next.
    End,
    /// The body is not chunked: it runs until the connection closes.
    Unframed,
}

/// Whether a lean feed reads `transport` (every one but regular polling).
pub fn reads(transport: Transport) -> bool {
    matches!(
        transport,
        Transport::Sse | Transport::Stream | Transport::Websocket | Transport::Longpoll
    )
}

/// Where a lean feed connects, and for which transport: checked once,
/// before any subscriber starts.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The server.
    addr: SocketAddr,
    /// `sse`, `stream` or `websocket`.
    transport: Transport,
}

impl Target {
    /// The server at `base` (a loopback URL), read over `transport`, which
    /// must be SSE, streaming or WebSocket.
    pub fn new(base: &str, transport: Transport) -> anyhow::Result<Self> {
        anyhow::ensure!(
            reads(transport),
            "--lean reads SSE, streaming, WebSocket and long polling only, not {}",
            transport.as_str()
        );
        let url = reqwest::Url::parse(base).with_context(|| format!("server URL {base}"))?;
        let addr = url
            .socket_addrs(|| None)?
            .into_iter()
            .next()
            .with_context(|| format!("no address for {base}"))?;
        Ok(Target { addr, transport })
    }
}

impl LeanFeed {
    /// A feed from `target`, starting after `since`. Nothing connects until
    /// the first read.
    pub fn new(target: Target, since: Cursor) -> Self {
        LeanFeed {
            addr: target.addr,
            transport: target.transport,
            cursor: since,
            epoch: None,
            socket: None,
            raw: BytesMut::with_capacity(4096),
            body: BytesMut::new(),
            polled: VecDeque::new(),
            chunk: Chunk::Size,
            opened: false,
            reconnects: 0,
            failures: 0,
        }
    }

    /// Connections opened after the first (a reset, a closed stream).
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The next message, gap or reset; reconnects when the server ends or
    /// breaks the stream, and fails after [`MAX_FAILURES`] attempts in a row.
    pub async fn next(&mut self) -> anyhow::Result<Event> {
        loop {
            if let Some(event) = self.polled.pop_front() {
                return Ok(event);
            }
            if let Some(event) = self.take_event()? {
                return Ok(event);
            }
            let ended = match &mut self.socket {
                None => {
                    self.open().await?;
                    continue;
                }
                Some(Conn::Http(socket)) => match socket.read_buf(&mut self.raw).await {
                    Ok(0) | Err(_) => true,
                    Ok(_) => self.dechunk()?,
                },
                // Pings are answered by tungstenite as it reads.
                Some(Conn::Ws(socket)) => match socket.next().await {
                    Some(Ok(Frame::Text(text))) => {
                        if let Some(event) = self.note(stream_line(text.into())?) {
                            return Ok(event);
                        }
                        false
                    }
                    Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => true,
                    Some(Ok(_)) => false,
                },
                Some(Conn::Poll(_)) => self.poll_once().await?,
            };
            if ended {
                // What was cut in half is asked for again from the cursor.
                self.socket = None;
                self.raw.clear();
                self.body.clear();
            }
        }
    }

    /// Connects and reads the response head, retrying with a growing pause.
    async fn open(&mut self) -> anyhow::Result<()> {
        loop {
            match self.try_open().await {
                Ok(socket) => {
                    if self.opened {
                        self.reconnects += 1;
                    }
                    self.opened = true;
                    // A long poll's connection says nothing yet: its first
                    // answer does.
                    if !matches!(socket, Conn::Poll(_)) {
                        self.failures = 0;
                    }
                    self.socket = Some(socket);
                    return Ok(());
                }
                Err(e) => {
                    self.failures += 1;
                    if self.failures >= MAX_FAILURES {
                        return Err(e.context(format!("{MAX_FAILURES} attempts in a row")));
                    }
                    sleep(BACKOFF * self.failures).await;
                }
            }
        }
    }

    /// One connection attempt: the request, then the head of the answer.
    async fn try_open(&mut self) -> anyhow::Result<Conn> {
        let mut socket = TcpStream::connect(self.addr).await?;
        socket.set_nodelay(true)?;
        let target = self.target();
        if self.transport == Transport::Longpoll {
            return Ok(Conn::Poll(socket));
        }
        if self.transport == Transport::Websocket {
            let url = format!("ws://{}{target}", self.addr);
            let config = WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER);
            let (socket, _) =
                tokio_tungstenite::client_async_with_config(url, socket, Some(config)).await?;
            return Ok(Conn::Ws(Box::new(socket)));
        }
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: {}\r\n\r\n",
            self.addr,
            if self.transport == Transport::Sse {
                "text/event-stream"
            } else {
                "*/*"
            }
        );
        socket.write_all(request.as_bytes()).await?;
        self.raw.clear();
        self.body.clear();
        loop {
            if socket.read_buf(&mut self.raw).await? == 0 {
                bail!("the server closed the connection before answering");
            }
            let Some(head) = head::parse(&self.raw)? else {
                continue;
            };
            if head.status != 200 {
                bail!(
                    "{} answered {}: {}",
                    self.transport.route(),
                    head.status,
                    String::from_utf8_lossy(&self.raw[head.len..])
                );
            }
            self.chunk = if head.chunked {
                Chunk::Size
            } else {
                Chunk::Unframed
            };
            self.raw.advance(head.len);
            if self.dechunk()? {
                bail!("the stream ended as it opened");
            }
            return Ok(Conn::Http(socket));
        }
    }

    /// The request's target: the route, the cursor, the epoch once known,
    /// and for a long poll how long it may be held.
    fn target(&self) -> String {
        let mut target = format!("{}?since={}", self.transport.route(), self.cursor.0);
        if let Some(epoch) = &self.epoch {
            target.push_str(&format!("&epoch={epoch}"));
        }
        if self.transport == Transport::Longpoll {
            target.push_str(&format!("&wait_s={}", poll::WAIT_S));
        }
        target
    }

    /// Moves what has arrived of the body from `raw` to `body`; `true` once
    /// the last chunk has come.
    fn dechunk(&mut self) -> anyhow::Result<bool> {
        loop {
            match self.chunk {
                Chunk::Unframed => {
                    let all = self.raw.split();
                    self.body.unsplit(all);
                    return Ok(false);
                }
                Chunk::Size => {
                    let Some(eol) = find(&self.raw, b"\r\n") else {
                        return Ok(false);
                    };
                    let line = std::str::from_utf8(&self.raw[..eol])?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .with_context(|| format!("chunk size line {line:?}"))?;
                    self.raw.advance(eol + 2);
                    if size == 0 {
                        return Ok(true);
                    }
                    self.chunk = Chunk::Data(size);
                }
                Chunk::Data(left) => {
                    if self.raw.is_empty() {
                        return Ok(false);
                    }
                    let take = left.min(self.raw.len());
                    let data = self.raw.split_to(take);
                    self.body.unsplit(data);
                    self.chunk = if take == left {
                        Chunk::End
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::End => {
                    if self.raw.len() < 2 {
                        return Ok(false);
                    }
                    anyhow::ensure!(&self.raw[..2] == b"\r\n", "no CRLF after a chunk");
                    self.raw.advance(2);
                    self.chunk = Chunk::Size;
                }
            }
        }
    }

    /// The next message or notice already in `body`, if a whole one is.
    fn take_event(&mut self) -> anyhow::Result<Option<Event>> {
        loop {
            let separator: &[u8] = if self.transport == Transport::Sse {
                b"\n\n"
            } else {
                b"\n"
            };
            let Some(end) = find(&self.body, separator) else {
                return Ok(None);
            };
            let item = self.body.split_to(end).freeze();
            self.body.advance(separator.len());
            let event = match self.transport {
                Transport::Sse => sse_event(item)?,
                _ => stream_line(item)?,
            };
            if let Some(event) = self.note(event) {
                return Ok(Some(event));
            }
        }
    }

    /// Moves the cursor past a message, or to a reset's new log.
    fn note(&mut self, event: Option<Event>) -> Option<Event> {
        match &event {
            Some(Event::Message { message, .. }) => self.cursor = Cursor(message.id.0),
            Some(Event::Reset { epoch }) => {
                self.epoch = Some(epoch.clone());
                self.cursor = Cursor(0);
            }
            _ => {}
        }
        event
    }
}

/// Where `needle` first starts in `haystack` (`memchr`'s search: a
/// window-by-window comparison cost a call to `memcmp` per byte read).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// One SSE event (its lines, without the blank line) as a message or
/// notice; `None` for comments, `retry:` and presence.
fn sse_event(block: Bytes) -> anyhow::Result<Option<Event>> {
    let mut kind: &[u8] = b"message";
    let mut data: Option<&[u8]> = None;
    for line in block.split(|b| *b == b'\n') {
        if let Some(value) = line.strip_prefix(b"event: ") {
            kind = value;
        } else if let Some(value) = line.strip_prefix(b"data: ") {
            anyhow::ensure!(data.is_none(), "an event with two data lines");
            data = Some(value);
        }
    }
    let Some(data) = data else { return Ok(None) };
    Ok(match kind {
        b"message" => Some(message(block.slice_ref(data))?),
        b"gap" => Some(Event::Gap {
            missed: serde_json::from_slice::<Gap>(data)?.missed,
        }),
        b"reset" => Some(Event::Reset {
            epoch: serde_json::from_slice::<Reset>(data)?.epoch,
        }),
        _ => None,
    })
}

/// One line of an HTTP stream (or a WebSocket's text frame) as a message
/// or notice; `None` for pings, acks and presence. Most lines are messages, so that is tried first: one
/// decoding each instead of [`Incoming::parse`]'s two.
fn stream_line(line: Bytes) -> anyhow::Result<Option<Event>> {
    if let Ok(message) = serde_json::from_slice::<Message>(&line) {
        return Ok(Some(Event::Message { message, raw: line }));
    }
    let text = std::str::from_utf8(&line)?;
    Ok(match Incoming::parse(text)? {
        Incoming::Message { .. } => Some(message(line)?),
        Incoming::Control(Control::Gap { missed }) => Some(Event::Gap { missed }),
        Incoming::Control(Control::Reset { epoch }) => Some(Event::Reset { epoch }),
        Incoming::Control(_) => None,
    })
}

/// A message's JSON, decoded.
fn message(raw: Bytes) -> anyhow::Result<Event> {
    let message: Message = serde_json::from_slice(&raw).context("a message's JSON")?;
    Ok(Event::Message { message, raw })
}

#[cfg(test)]
mod tests;
