//! Bytes per delivered message over HTTP/1.1, HTTPS with HTTP/1.1, and
//! HTTPS with HTTP/2 (`--tls`), for each transport: the section "HTTP/2
//! over TLS" of `docs/results.md`, written by `--bin tls`.
//!
//! One subscriber connects to an in-process demo server; messages are
//! stored in the same process (not sent over the network), one at a time,
//! each after the subscriber has the one before, so the only connection is
//! the subscriber's. Over TLS the bytes are the server's count at the
//! socket (`accounting.tls` in `/api/stats`: records, handshakes, HTTP/2
//! frames and HPACK-compressed heads), the one exact count there; over
//! plain HTTP/1.1 they are the transport's own counters, exact there (the
//! suite checks them against a raw socket). The transport's own count over
//! TLS is given beside it: the HTTP/1.1 bytes inside the records, or, over
//! HTTP/2, the bodies only.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use chat_client::{Transport, Via};
use chat_http::{Config, RunningServer};
use chat_loadgen::kept::KeptSection;
use chat_store::NewMessage;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The first line of the section (and what `restore` looks for).
pub const START: &str = "<!-- tls:begin -->";
/// The last line of the section.
pub const END: &str = "<!-- tls:end -->";
/// Where the section is kept, under the docs folder, for `compare` to put
/// back after it rewrites `results.md`.
pub const SAVED: &str = "results/tls.md";

/// How long any one step may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain TCP, HTTP/1.1.
    Plain,
    /// TLS, HTTP/1.1 (ALPN `http/1.1`).
    TlsH1,
    /// TLS, HTTP/2 (ALPN `h2`); WebSocket still upgrades over HTTP/1.1.
    TlsH2,
}

/// What one transport cost per message in one mode.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// The transport.
    pub transport: Transport,
    /// How it was reached.
    pub mode: Mode,
    /// Bytes from server to client per message, on the wire.
    pub down: f64,
    /// Bytes from client to server per message, on the wire.
    pub up: f64,
    /// The transport's own `bytes_out` per message.
    pub counted_down: f64,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the server in `mode`.
async fn connect(server: &RunningServer, mode: Mode, alpn_h2: bool) -> anyhow::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect(server.addr).await?;
    if mode == Mode::Plain {
        return Ok(Box::new(tcp));
    }
    let tls = server.tls.as_ref().context("the server has no TLS")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(tls.certificate_der().to_vec()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = if alpn_h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let name = ServerName::try_from("127.0.0.1")?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

/// An HTTP connection: HTTP/1.1 or HTTP/2.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn open(server: &RunningServer, mode: Mode) -> anyhow::Result<Sender> {
        let h2 = mode == Mode::TlsH2;
        let io = TokioIo::new(connect(server, mode, h2).await?);
        Ok(if h2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(connection);
            Sender::H2(sender)
        } else {
            let (sender, connection) = http1::handshake(io).await?;
            tokio::spawn(connection);
            Sender::H1(sender)
        })
    }

    /// Starts `GET path` (as a browser would send it: a `host`, an
    /// `accept`) and returns the answer's head with its body to read.
    async fn get(
        &mut self,
        server: &RunningServer,
        path: &str,
    ) -> anyhow::Result<Response<Incoming>> {
        let authority = format!("127.0.0.1:{}", server.addr.port());
        let request = Request::builder().header("accept", "*/*");
        let answer = match self {
            Sender::H2(sender) => {
                let request = request
                    .uri(format!("https://{authority}{path}"))
                    .body(Empty::new())?;
                sender.send_request(request).await?
            }
            Sender::H1(sender) => {
                sender.ready().await?;
                let request = request
                    .uri(path)
                    .header("host", authority)
                    .body(Empty::new())?;
                sender.send_request(request).await?
            }
        };
        Ok(answer)
    }
}

/// Reads `body` until what was read holds `needle`.
async fn read_until(body: &mut Incoming, needle: &str, seen: &mut String) -> anyhow::Result<()> {
    while !seen.contains(needle) {
        let frame = tokio::time::timeout(PATIENCE, body.frame())
            .await?
            .context("the stream ended")??;
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    Ok(())
}

/// The text of message `i`: 22 characters, a stored message of about 100
/// bytes of JSON.
fn text(i: u64) -> String {
    format!("tls-bytes message {i:04}")
}

async fn store(server: &RunningServer, i: u64) -> anyhow::Result<()> {
    let new = NewMessage {
        user: "bench".into(),
        text: text(i),
        client_msg_id: None,
        via: Via::Api,
    };
    server
        .state
        .log
        .send(new)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// The bytes that count in `mode`: the TLS sockets', or the transport's.
fn wire(server: &RunningServer, transport: Transport, mode: Mode) -> (u64, u64, u64) {
    let counters = server.state.stats.of(transport);
    let counted = counters.bytes_out.load(Relaxed);
    if mode == Mode::Plain {
        return (counted, counters.bytes_in.load(Relaxed), counted);
    }
    let tls = &server.state.stats.tls;
    (
        tls.bytes_out.load(Relaxed),
        tls.bytes_in.load(Relaxed),
        counted,
    )
}

/// Waits until `transport` has `n` requests open on the server.
async fn open_reaches(server: &RunningServer, transport: Transport, n: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.state.stats.of(transport).open.load(Relaxed) < n {
        if tokio::time::Instant::now() > deadline {
            bail!("{} never held its request", transport.as_str());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Measures one transport in one mode over `n` messages, on a server of
/// its own.
pub async fn measure(transport: Transport, mode: Mode, n: u64) -> anyhow::Result<Cost> {
    let config = Config {
        tls: mode != Mode::Plain,
        workers: 1,
        ..Config::default()
    };
    let server = crate::start_server(config)?;
    // Message 1 is delivered before counting starts (connection set-up is
    // not counted).
    store(&server, 1).await?;
    let mut before = (0, 0, 0);
    let route = transport.route();
    match transport {
        Transport::Polling | Transport::Longpoll => {
            let mut sender = Sender::open(&server, mode).await?;
            let wait = if transport == Transport::Longpoll {
                "&wait_s=25"
            } else {
                ""
            };
            for i in 1..=n + 1 {
                if i == 2 {
                    before = wire(&server, transport, mode);
                }
                let path = format!("{route}?since={}{wait}", i - 1);
                if transport == Transport::Polling || i == 1 {
                    if i > 1 {
                        store(&server, i).await?;
                    }
                    let answer = sender.get(&server, &path).await?;
                    let body = answer.into_body().collect().await?.to_bytes();
                    anyhow::ensure!(String::from_utf8_lossy(&body).contains(&text(i)));
                } else {
                    // Held first, then answered by the message.
                    let answer = sender.get(&server, &path);
                    let store_when_held = async {
                        open_reaches(&server, transport, 1).await?;
                        store(&server, i).await
                    };
                    let (answer, stored) = tokio::join!(answer, store_when_held);
                    stored?;
                    let body = answer?.into_body().collect().await?.to_bytes();
                    anyhow::ensure!(String::from_utf8_lossy(&body).contains(&text(i)));
                }
            }
        }
        Transport::Sse | Transport::Stream => {
            let mut sender = Sender::open(&server, mode).await?;
            let mut body = sender
                .get(&server, &format!("{route}?since=0"))
                .await?
                .into_body();
            let mut seen = String::new();
            read_until(&mut body, &text(1), &mut seen).await?;
            before = wire(&server, transport, mode);
            for i in 2..=n + 1 {
                store(&server, i).await?;
                read_until(&mut body, &text(i), &mut seen).await?;
            }
        }
        Transport::Websocket => {
            let io = connect(&server, mode, false).await?;
            let url = format!("ws://127.0.0.1:{}{route}?since=0", server.addr.port());
            let (mut socket, _) = tokio_tungstenite::client_async(url, io).await?;
            for i in 1..=n + 1 {
                if i == 2 {
                    before = wire(&server, transport, mode);
                }
                if i > 1 {
                    store(&server, i).await?;
                }
                loop {
                    let frame = tokio::time::timeout(PATIENCE, socket.next())
                        .await?
                        .context("the socket closed")??;
                    if frame.to_text().is_ok_and(|t| t.contains(&text(i))) {
                        break;
                    }
                }
            }
        }
    }
    let after = wire(&server, transport, mode);
    let per = |a: u64, b: u64| (a - b) as f64 / n as f64;
    let cost = Cost {
        transport,
        mode,
        down: per(after.0, before.0),
        up: per(after.1, before.1),
        counted_down: per(after.2, before.2),
    };
    server.shutdown().await?;
    Ok(cost)
}

fn cell(costs: &[Cost], transport: Transport, mode: Mode, pick: fn(&Cost) -> f64) -> String {
    costs
        .iter()
        .find(|c| c.transport == transport && c.mode == mode)
        .map_or("–".to_owned(), |c| format!("{:.1}", pick(c)))
}

/// The section, from `costs`, run as `command` on `machine` at `when`.
pub fn markdown(costs: &[Cost], n: u64, command: &str, machine: &str, when: &str) -> String {
    let mut md = format!(
        "{START}\n## HTTP/2 over TLS\n\nMeasured by `{command}` on {machine}, {when} UTC.\n\n\
         Bytes per delivered message for one subscriber, {n} messages of about 100 bytes of \
         JSON stored one at a time, each after the subscriber had the one before (the first \
         message, and the connection's set-up with its TLS handshake, are not counted). \
         *HTTP/1.1* is plain TCP, counted by the transport's own counters (exact); *HTTPS \
         h1* and *HTTPS h2* are TLS with ALPN `http/1.1` and `h2`, counted at the server's \
         TLS sockets (`accounting.tls` of `/api/stats`: TLS records, HTTP/2 frames and \
         HPACK-compressed heads included; TCP/IP excluded). *counted h2* is what the \
         transport's own `bytes_out` holds over HTTP/2: the bodies only \
         (`accounting.transports` is `h2-bodies-only`). WebSocket has no HTTP/2 column: \
         actix offers no WebSocket over HTTP/2, and browsers open it over HTTP/1.1 inside TLS. \
         Long polls are held, then answered by the message; polls are sent once the message \
         is stored (one request per message).\n\n\
         | transport | bytes down/msg HTTP/1.1 | bytes down/msg HTTPS h1 | bytes down/msg HTTPS h2 \
         | counted h2 | bytes up/msg HTTP/1.1 | bytes up/msg HTTPS h1 | bytes up/msg HTTPS h2 |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    );
    for transport in Transport::ALL {
        let down = |c: &Cost| c.down;
        let up = |c: &Cost| c.up;
        let counted = |c: &Cost| c.counted_down;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            transport.as_str(),
            cell(costs, transport, Mode::Plain, down),
            cell(costs, transport, Mode::TlsH1, down),
            cell(costs, transport, Mode::TlsH2, down),
            cell(costs, transport, Mode::TlsH2, counted),
            cell(costs, transport, Mode::Plain, up),
            cell(costs, transport, Mode::TlsH1, up),
            cell(costs, transport, Mode::TlsH2, up),
        ));
    }
    md.push_str(
        "\nEight tabs of the page in Chromium (proven by \
         `eight_tabs_wait_for_connections_over_http1_but_not_over_http2` in \
         `crates/chat-demo/tests/browser/tabs.rs`, which asserts it on every run): over \
         HTTP/1.1 the first two tabs hold the six connections Chromium allows one server, \
         later tabs cannot even fetch the page (tabs 3 to 8 in the run it printed), and a \
         pane of tab 1 that reconnects says \"waiting for a connection\"; over HTTP/2 every pane of all eight \
         tabs connects, on one HTTP/2 connection plus one HTTP/1.1 TLS connection per \
         WebSocket. `docs/pitfalls.md`, item 2, has the table the test printed.\n",
    );
    md.push_str(END);
    md.push('\n');
    md
}

/// The section, kept beside results.md so that `compare` puts it back.
pub const SECTION: KeptSection = KeptSection {
    start: START,
    end: END,
    saved: SAVED,
};
