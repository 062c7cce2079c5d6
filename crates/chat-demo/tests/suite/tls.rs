//! `--tls`: HTTP/2 and HTTP/1.1 over TLS, chosen by ALPN, with a
//! certificate made at start or read from `--cert` and `--key`; every
//! transport over it; what `/api/stats` says it counts; SIGTERM over
//! HTTP/2; a bad certificate path at start-up.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use chat_http::{AppState, Config};
use chat_protocol::{ClientFrame, StatsBody};
use futures_util::{SinkExt, StreamExt};
use hyper::{Method, StatusCode, Version};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::{PATIENCE, TestApp};
use crate::https::{Https, client_config, read_until, tls_connect, whole};

/// The demo server with `--tls` (a certificate made at start) on a free
/// port.
pub async fn spawn_tls() -> TestApp {
    let config = Config {
        tls: true,
        workers: 2,
        ..Config::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(
        listener,
        AppState::new(config),
        &chat_demo::mounts(chat_demo::Settings::default()),
    )
    .expect("server starts");
    assert!(
        server
            .tls
            .as_ref()
            .expect("--tls sets TLS up")
            .is_generated()
    );
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    TestApp {
        client: chat_client::Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    }
}

fn certificate(app: &TestApp) -> Vec<u8> {
    let tls = app.server.tls.as_ref().expect("TLS");
    tls.certificate_der().to_vec()
}

/// `/api/stats`, read over `conn`.
async fn stats(conn: &mut Https) -> StatsBody {
    let (_, body) = conn.get("/api/stats").await;
    serde_json::from_str(&body).expect("stats JSON")
}

/// A made certificate serves HTTP/2 to a client that offers it and
/// HTTP/1.1 to one that does not; the TLS sockets' bytes are counted.
#[tokio::test]
async fn tls_speaks_http2_and_http1_by_alpn() {
    let app = spawn_tls().await;
    let mut h2 = Https::connect(app.server.addr, &certificate(&app), true).await;
    let (head, _) = h2.get("/api/config").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.version(), Version::HTTP_2);
    let mut h1 = Https::connect(app.server.addr, &certificate(&app), false).await;
    let (head, page) = h1.get("/").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.version(), Version::HTTP_11);
    assert!(page.contains("<html"), "the page over HTTP/1.1");

    let stats = stats(&mut h2).await;
    let tls = stats.accounting.tls;
    assert_eq!(tls.connections, 2, "{tls:?}");
    assert_eq!(tls.h2_connections, 1, "{tls:?}");
    assert!(
        tls.bytes_in > 0 && tls.bytes_out > page.len() as u64,
        "{tls:?}"
    );
    // No transport's request was counted over HTTP/2 yet.
    assert_eq!(stats.accounting.transports, "exact");
}

/// A plain server reports exact accounting and no TLS at all.
#[tokio::test]
async fn plain_http_reports_exact_accounting() {
    let app = crate::helpers::spawn_app().await;
    app.say("ana", "plain").await;
    let stats = app.client.stats().await.expect("stats");
    assert_eq!(stats.accounting.transports, "exact");
    assert_eq!(stats.accounting.tls, Default::default());
    assert!(app.server.tls.is_none());
}

/// Polling, long polling, SSE and HTTP streaming send and receive as
/// streams of one HTTP/2 connection, and `/api/stats` then says that their
/// counts hold bodies only.
#[tokio::test]
async fn http_transports_send_and_receive_over_http2() {
    let app = spawn_tls().await;
    let mut conn = Https::connect(app.server.addr, &certificate(&app), true).await;
    let held = |path: &'static str| {
        let mut stream = conn.stream().expect("HTTP/2");
        tokio::spawn(async move { stream.request(Method::GET, path, None).await })
    };
    let longpoll = held("/longpoll/messages?since=0&wait_s=20");
    let sse = held("/sse/events?since=0");
    let stream = held("/stream/messages?since=0");
    let mut sse = sse.await.expect("task");
    let mut stream = stream.await.expect("task");
    for response in [&sse, &stream] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_2);
    }

    let texts = [
        "over h2 via polling",
        "over h2 via longpoll",
        "over h2 via sse",
        "over h2 via stream",
    ];
    for (text, via) in texts.iter().zip(["polling", "longpoll", "sse", "stream"]) {
        let sent = conn.send(text, via).await;
        assert_eq!(sent.status(), StatusCode::CREATED, "{via}");
        assert_eq!(sent.version(), Version::HTTP_2);
    }
    read_until(sse.body_mut(), &texts).await;
    read_until(stream.body_mut(), &texts).await;
    let (head, held_answer) = whole(longpoll.await.expect("task")).await;
    assert_eq!(head.version(), Version::HTTP_2);
    assert!(held_answer.contains(texts[0]), "{held_answer}");
    let (head, polled) = conn.get("/polling/messages?since=0").await;
    assert_eq!(head.version(), Version::HTTP_2);
    assert!(texts.iter().all(|t| polled.contains(t)), "{polled}");

    let stats = stats(&mut conn).await;
    assert_eq!(stats.accounting.transports, "h2-bodies-only");
    assert_eq!(stats.accounting.tls.h2_connections, 1, "one connection");
    // Three held requests, four sends, one poll (`/api/stats` is nobody's).
    assert_eq!(
        stats.accounting.tls.h2_requests, 8,
        "{:?}",
        stats.accounting
    );
    for transport in chat_protocol::Transport::ALL {
        if transport == chat_protocol::Transport::Websocket {
            continue;
        }
        let counters = stats.transports.of(transport);
        assert!(counters.messages_delivered >= 1, "{transport:?}");
        assert!(counters.bytes_out > 0, "{transport:?}: bodies are counted");
    }
}

/// A WebSocket over TLS (HTTP/1.1, as browsers open one next to an HTTP/2
/// connection: actix offers no WebSocket over HTTP/2) sends and receives.
#[tokio::test]
async fn websocket_sends_and_receives_over_tls() {
    let app = spawn_tls().await;
    let config = client_config(&certificate(&app), &[b"http/1.1"]);
    let tls = tls_connect(app.server.addr, config).await;
    let url = format!("wss://127.0.0.1:{}/ws?since=0", app.server.addr.port());
    let (mut socket, response) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("upgrade over TLS");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    let mut api = Https::connect(app.server.addr, &certificate(&app), true).await;
    let said = api.send("to the socket", "api").await;
    assert_eq!(said.status(), StatusCode::CREATED);
    let frame = ClientFrame::Send {
        user: "bo".into(),
        text: "from the socket".into(),
        client_msg_id: None,
    };
    socket
        .send(WsMessage::text(frame.to_json()))
        .await
        .expect("send");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !(seen.iter().any(|t: &String| t.contains("to the socket"))
        && seen.iter().any(|t| t.contains("from the socket")))
    {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("frames within the patience")
            .expect("open")
            .expect("a frame");
        if let WsMessage::Text(text) = next {
            seen.push(text.to_string());
        }
    }
    assert_eq!(app.server.state.store.stats().last_id, 2);
    let stats = app.server.state.stats.tls.snapshot();
    assert_eq!(stats.tls.connections, 2, "{stats:?}");
    assert_eq!(
        stats.tls.h2_connections, 1,
        "the socket is HTTP/1.1: {stats:?}"
    );
    // The send with `via: api` is nobody's: no transport counted HTTP/2.
    assert_eq!(
        stats.transports, "exact",
        "HTTP/1.1 inside TLS is counted exactly"
    );
}

/// The binary with `--tls --cert --key` serves that certificate (its
/// fingerprint printed) over HTTP/2, and SIGTERM answers a long poll held
/// over HTTP/2 and ends the process.
#[tokio::test]
async fn binary_serves_cert_files_and_stops_on_sigterm_over_h2() {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let dir = tempfile::tempdir().expect("dir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, made.cert.pem()).expect("write cert");
    std::fs::write(&key_path, made.signing_key.serialize_pem()).expect("write key");

    let mut child = demo()
        .args(["--addr", "127.0.0.1:0", "--workers", "1", "--tls", "--cert"])
        .arg(&cert_path)
        .arg("--key")
        .arg(&key_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let lines = first_lines(&mut child, 3).await;
    let addr: std::net::SocketAddr = lines[0]
        .strip_prefix("chat-demo listening on https://")
        .unwrap_or_else(|| panic!("unexpected first line {lines:?}"))
        .parse()
        .expect("an address");
    assert!(lines[1].starts_with("certificate sha256 "), "{lines:?}");
    assert!(
        lines[2].starts_with("chromium --ignore-certificate-errors-spki-list="),
        "{lines:?}"
    );

    let conn = Https::connect(addr, made.cert.der(), true).await;
    let mut poll = conn.stream().expect("HTTP/2");
    let held = tokio::spawn(async move {
        poll.request(Method::GET, "/longpoll/messages?since=0&wait_s=55", None)
            .await
    });
    crate::helpers::eventually("the poll is held", || {
        let mut conn = conn.stream().expect("HTTP/2");
        async move {
            let stats = stats(&mut conn).await;
            stats.transports.of(chat_protocol::Transport::Longpoll).open == 1
        }
    })
    .await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let (head, body) = whole(held.await.expect("task")).await;
    assert_eq!(head.version(), Version::HTTP_2);
    assert_eq!(head.status(), StatusCode::OK, "{body}");
    let status = tokio::time::timeout(PATIENCE, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("the process ends within the patience")
        .expect("task")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

/// A client that connects and never starts the TLS handshake is dropped
/// after the handshake timeout (5 s), and one that speaks plain HTTP to the
/// TLS port gets no answer, only a closed connection.
#[tokio::test]
async fn silent_and_plain_clients_are_dropped_by_the_tls_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_tls().await;
    let mut silent = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .expect("connect");
    let mut plain = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .expect("connect");
    plain
        .write_all(b"GET /api/stats HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    for (what, stream) in [("silent", &mut silent), ("plain", &mut plain)] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("the {what} client is still connected"));
        assert!(
            !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
            "{what}: no HTTP answer ({read:?})"
        );
    }
    assert_eq!(app.server.state.stats.tls.snapshot().tls.connections, 0);
}

/// A `--cert` that does not exist is one clear line and exit code 6; a
/// `--cert` without `--tls` is a usage error (2).
#[tokio::test]
async fn a_bad_certificate_path_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.pem");
    let output = demo()
        .args(["--addr", "127.0.0.1:0", "--tls", "--cert"])
        .arg(&missing)
        .arg("--key")
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("chat-demo: error:"))
        .unwrap_or_else(|| panic!("an error line in {stderr}"));
    assert!(error.contains("certificate"), "{error}");
    assert!(error.contains("missing.pem"), "{error}");
    assert!(output.stdout.is_empty(), "the port was never announced");

    let output = demo()
        .args(["--addr", "127.0.0.1:0", "--cert"])
        .arg(&missing)
        .arg("--key")
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

fn demo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-demo"));
    for var in [
        "CHAT_ADDR",
        "CHAT_WEB_DIR",
        "CHAT_TLS",
        "CHAT_CERT",
        "CHAT_KEY",
    ] {
        command.env_remove(var);
    }
    command.env("RUST_LOG", "warn");
    command
}

/// The first `n` lines the child prints on stdout.
async fn first_lines(child: &mut Child, n: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout");
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        (0..n)
            .map(|_| {
                let mut line = String::new();
                reader.read_line(&mut line).expect("a line");
                line.trim().to_owned()
            })
            .collect::<Vec<_>>()
    });
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("lines within the patience")
        .expect("thread")
}
