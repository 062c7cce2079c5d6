//! The chaos subscribers' connections: one raw TCP socket each, owned here,
//! so that a forced disconnect is a real close or a real reset of a socket
//! the server is using.
//!
//! The project's client ([`chat_client`]) hides its sockets inside
//! `reqwest` and `tokio-tungstenite` and reconnects by itself; chaos needs
//! the opposite: to choose, before connecting, how the connection will
//! die ([`Cut`]), and to kill it at a moment of its own choosing. So each
//! connection is a [`TcpStream`] this module connects, with `SO_LINGER` set
//! to zero (through `socket2`) when it is to end in a reset, handed to
//! `hyper`'s HTTP/1.1 client (polling, long polling, SSE, streaming) or to
//! `tokio-tungstenite` (WebSocket). Dropping a [`Feed`] drops the socket at
//! once, with no `close` frame and no waiting for a response to finish:
//! the kernel sends a FIN, or, with a zero linger, an RST and discards
//! whatever was unsent.
//!
//! What comes over the wire is read with the contract's types
//! ([`PageBody`], [`Incoming`], [`Message`]), and nothing is filtered:
//! unlike [`chat_client`], a feed hands out every message the server sent,
//! even one at or below the cursor it asked with, so a server that repeated
//! or reordered a message on reconnect shows in the report.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use chat_client::{Message, Transport};
use chat_protocol::{Control, Incoming, PageBody};
use eventsource_stream::{Event as SseEvent, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyDataStream, BodyExt, Empty};
use hyper::body::Incoming as Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Largest page a poll asks for (the contract's maximum).
pub const PAGE_LIMIT: usize = 500;
/// How long a long poll may be held, in seconds (the contract's minimum):
/// short, so that most forced disconnects of a long poll find one held.
pub const LONGPOLL_WAIT_S: u64 = 1;

/// How a forced disconnect ends a connection, chosen before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The socket is closed: the kernel sends a FIN (or an RST, if the
    /// client had unread bytes, as Linux does).
    Close,
    /// `SO_LINGER` is zero, so closing the socket sends an RST and throws
    /// away anything unsent: what a crashed client or a NAT that forgot the
    /// connection looks like to the server.
    Reset,
}

/// Where the server is: its socket address and the `host` it is asked by.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address connected to.
    pub addr: SocketAddr,
    /// `HOST:PORT`, as it appears in the base URL.
    pub host: String,
}

impl Target {
    /// The target of `base` (`http://HOST:PORT`), resolved once.
    pub async fn resolve(base: &str) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base).with_context(|| format!("{base:?}"))?;
        let host = url.host_str().context("a URL with a host")?.to_owned();
        let port = url.port_or_known_default().context("a URL with a port")?;
        let host = format!("{host}:{port}");
        let addr = tokio::net::lookup_host(&host)
            .await?
            .next()
            .with_context(|| format!("{host} resolves to nothing"))?;
        Ok(Target { addr, host })
    }
}

/// One item a feed read, in arrival order.
#[derive(Debug)]
pub enum Item {
    /// A chat message.
    Message(Message),
    /// A gap notice: this many messages are gone from the server's history.
    Gap(u64),
    /// A reset notice: the server's ids started again.
    Reset,
}

/// An open connection of one transport, reading after a cursor. Dropping it
/// drops its socket (see [`Cut`]).
pub struct Feed {
    kind: Kind,
}

/// The task that drives a `hyper` connection; aborted (and so the socket
/// dropped) when the feed is.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<SseEvent, EventStreamError<hyper::Error>>> + Send>>;

enum Kind {
    /// Polling or long polling: requests one after another on one
    /// keep-alive connection.
    Poll {
        sender: SendRequest<Empty<Bytes>>,
        host: String,
        long: bool,
        cursor: u64,
        poll_interval: Duration,
        /// Items of the last page not handed out yet.
        pending: VecDeque<Item>,
        /// Whether the last page was empty (then the next poll waits).
        idle: bool,
        _driver: Driver,
    },
    /// Server-sent events.
    Sse { events: Events, _driver: Driver },
    /// HTTP streaming: JSON lines.
    Stream {
        body: BodyDataStream<Body>,
        partial: BytesMut,
        _driver: Driver,
    },
    /// WebSocket.
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// A TCP connection to `target` that will end as `cut` says.
async fn connect(target: &Target, cut: Cut) -> anyhow::Result<TcpStream> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    if cut == Cut::Reset {
        socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO))?;
    }
    Ok(tcp)
}

/// An HTTP/1.1 connection over a fresh socket, driven by its own task.
async fn http(target: &Target, cut: Cut) -> anyhow::Result<(SendRequest<Empty<Bytes>>, Driver)> {
    let tcp = connect(target, cut).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let driver = Driver(tokio::spawn(async move {
        // An error here is the connection ending, which the feed sees.
        let _ = connection.await;
    }));
    Ok((sender, driver))
}

/// `GET path` on `sender`; the body of a `200`, an error for anything else.
async fn get(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
) -> anyhow::Result<Body> {
    let mut request = hyper::Request::get(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    sender.ready().await?;
    let response = sender.send_request(request.body(Empty::new())?).await?;
    let status = response.status();
    if status != hyper::StatusCode::OK {
        let body = response.into_body().collect().await?.to_bytes();
        bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(response.into_body())
}

impl Feed {
    /// Opens `transport` after `cursor`, on a socket that will end as `cut`
    /// says. Returns once the server has answered (its `200`, its `101`, or
    /// for polling, its first page).
    pub async fn open(
        target: &Target,
        transport: Transport,
        cursor: u64,
        cut: Cut,
        poll_interval: Duration,
    ) -> anyhow::Result<Feed> {
        let route = transport.route();
        let kind = match transport {
            Transport::Polling | Transport::Longpoll => {
                let (sender, driver) = http(target, cut).await?;
                let mut kind = Kind::Poll {
                    sender,
                    host: target.host.clone(),
                    long: transport == Transport::Longpoll,
                    cursor,
                    poll_interval,
                    pending: VecDeque::new(),
                    idle: false,
                    _driver: driver,
                };
                poll(&mut kind).await?;
                kind
            }
            Transport::Sse => {
                let (mut sender, driver) = http(target, cut).await?;
                let headers = [
                    ("accept", "text/event-stream".to_owned()),
                    // What a browser's EventSource sends when it reconnects.
                    ("last-event-id", cursor.to_string()),
                ];
                let body = get(&mut sender, &target.host, route, &headers).await?;
                Kind::Sse {
                    events: Box::pin(body.into_data_stream().eventsource()),
                    _driver: driver,
                }
            }
            Transport::Stream => {
                let (mut sender, driver) = http(target, cut).await?;
                let path = format!("{route}?since={cursor}");
                let body = get(&mut sender, &target.host, &path, &[]).await?;
                Kind::Stream {
                    body: body.into_data_stream(),
                    partial: BytesMut::new(),
                    _driver: driver,
                }
            }
            Transport::Websocket => {
                let tcp = connect(target, cut).await?;
                let url = format!("ws://{}{route}?since={cursor}", target.host);
                let (socket, _) = tokio_tungstenite::client_async(url, tcp).await?;
                Kind::Ws(Box::new(socket))
            }
        };
        Ok(Feed { kind })
    }

    /// The next item; `None` once the server ended or broke the connection.
    /// An answer that is not the contract is an error.
    pub async fn next(&mut self) -> anyhow::Result<Option<Item>> {
        match &mut self.kind {
            kind @ Kind::Poll { .. } => loop {
                if let Kind::Poll { pending, .. } = kind
                    && let Some(item) = pending.pop_front()
                {
                    return Ok(Some(item));
                }
                match poll(kind).await {
                    Ok(()) => {}
                    Err(e) if is_hang_up(&e) => return Ok(None),
                    Err(e) => return Err(e),
                }
            },
            Kind::Sse { events, .. } => loop {
                match events.next().await {
                    Some(Ok(event)) => {
                        if let Some(item) = sse_item(event)? {
                            return Ok(Some(item));
                        }
                    }
                    Some(Err(_)) | None => return Ok(None),
                }
            },
            Kind::Stream { body, partial, .. } => loop {
                if let Some(end) = partial.iter().position(|b| *b == b'\n') {
                    let line = partial.split_to(end).freeze();
                    partial.advance(1);
                    let text = std::str::from_utf8(&line).context("a line that is not UTF-8")?;
                    if let Some(item) = parse_item(text)? {
                        return Ok(Some(item));
                    }
                    continue;
                }
                match body.next().await {
                    Some(Ok(chunk)) => partial.extend_from_slice(&chunk),
                    Some(Err(_)) | None => return Ok(None),
                }
            },
            Kind::Ws(socket) => loop {
                match socket.next().await {
                    Some(Ok(WsMessage::Text(text))) => {
                        if let Some(item) = parse_item(text.as_str())? {
                            return Ok(Some(item));
                        }
                    }
                    // Pings are answered by tungstenite as it reads.
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return Ok(None),
                    Some(Ok(_)) => {}
                }
            },
        }
    }
}

/// Whether a poll failed because the connection went away (the server
/// closed an idle keep-alive connection, say), not because of what it said.
fn is_hang_up(e: &anyhow::Error) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(|e| e.is_closed() || e.is_incomplete_message() || e.is_canceled())
}

/// One poll on the connection of `kind` (after the poll interval if the
/// last page was empty), its items queued.
async fn poll(kind: &mut Kind) -> anyhow::Result<()> {
    let Kind::Poll {
        sender,
        host,
        long,
        cursor,
        poll_interval,
        pending,
        idle,
        ..
    } = kind
    else {
        return Ok(());
    };
    if *idle && !*long {
        tokio::time::sleep(*poll_interval).await;
    }
    let route = if *long {
        Transport::Longpoll.route()
    } else {
        Transport::Polling.route()
    };
    let mut path = format!("{route}?since={cursor}&limit={PAGE_LIMIT}");
    if *long {
        path.push_str(&format!("&wait_s={LONGPOLL_WAIT_S}"));
    }
    let body = get(sender, host, &path, &[]).await?;
    let bytes = body.collect().await?.to_bytes();
    let page: PageBody =
        serde_json::from_slice(&bytes).context("a page that is not the contract")?;
    if page.reset {
        pending.push_back(Item::Reset);
    }
    if page.missed > 0 {
        pending.push_back(Item::Gap(page.missed));
    }
    *idle = page.messages.is_empty();
    for raw in &page.messages {
        let message: Message = serde_json::from_str(raw.get()).context("a message")?;
        pending.push_back(Item::Message(message));
    }
    *cursor = page.cursor.0;
    Ok(())
}

/// An SSE event as an item; `None` for events with no news (presence, or
/// anything this load generator does not know).
fn sse_item(event: SseEvent) -> anyhow::Result<Option<Item>> {
    Ok(match event.event.as_str() {
        "message" => Some(Item::Message(
            serde_json::from_str(&event.data).context("an SSE message")?,
        )),
        "gap" => {
            let gap: chat_protocol::Gap = serde_json::from_str(&event.data)?;
            Some(Item::Gap(gap.missed))
        }
        "reset" => Some(Item::Reset),
        _ => None,
    })
}

/// A JSON line or WebSocket text frame as an item; `None` for control items
/// with no news (pings, presence, anything else with a `type`).
fn parse_item(text: &str) -> anyhow::Result<Option<Item>> {
    match Incoming::parse(text) {
        Ok(Incoming::Message { raw, .. }) => Ok(Some(Item::Message(
            serde_json::from_str(raw.get()).context("a message")?,
        ))),
        Ok(Incoming::Control(Control::Gap { missed })) => Ok(Some(Item::Gap(missed))),
        Ok(Incoming::Control(Control::Reset { .. })) => Ok(Some(Item::Reset)),
        Ok(Incoming::Control(_)) => Ok(None),
        Err(e) => {
            #[derive(serde::Deserialize)]
            struct Typed {
                #[serde(rename = "type")]
                _kind: serde::de::IgnoredAny,
            }
            // A control item of a kind the contract added later.
            if serde_json::from_str::<Typed>(text).is_ok() {
                Ok(None)
            } else {
                Err(e).with_context(|| format!("an item that is not the contract: {text:?}"))
            }
        }
    }
}
