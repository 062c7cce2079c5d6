//! WebSocket: frames, sends, refusals, limits, origins, heartbeats, shutdown.

use std::time::Duration;

use chat_protocol::Transport;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as Frame, client::IntoClientRequest};

use crate::helpers::{PATIENCE, TestApp, eventually, spawn_app};
use crate::kit::{CLOSE, off_thread, parse_frames, ws_handshake};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, query: &str) -> Socket {
    let url = format!("ws://{}/ws{query}", app.server.addr);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade")
        .0
}

/// The next text frame as JSON (pings are answered by tungstenite).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("valid frame");
        if let Frame::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("json");
        }
    }
}

/// The close frame the server sends next, skipping anything before it.
async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        match tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame")
        {
            Some(Ok(Frame::Close(Some(CloseFrame { code, .. })))) => return code,
            Some(Ok(Frame::Close(None))) => panic!("close without a code"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Message frames are exactly the stored bytes; a send gets an ack and comes
/// back as a message with `via: websocket`.
#[tokio::test]
async fn frames_are_stored_bytes_and_sends_are_acked() {
    let app = spawn_app().await;
    app.say("ana", "before").await;
    let mut socket = connect(&app, "?since=0").await;
    let frame = tokio::time::timeout(PATIENCE, socket.next())
        .await
        .expect("frame")
        .expect("open")
        .expect("valid");
    let stored = app.stored_json(1);
    assert_eq!(frame.into_data(), stored);

    socket
        .send(Frame::text(
            json!({"type": "send", "user": "bob", "text": "hi", "client_msg_id": "c1"}).to_string(),
        ))
        .await
        .expect("send");
    let mut ack = None;
    let mut echoed = None;
    while ack.is_none() || echoed.is_none() {
        let value = next_json(&mut socket).await;
        match value["type"].as_str() {
            Some("ack") => ack = Some(value),
            None => echoed = Some(value),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        ack.expect("ack"),
        json!({"type": "ack", "client_msg_id": "c1", "id": 2})
    );
    let echoed = echoed.expect("message");
    assert_eq!(echoed["via"], "websocket");
    assert_eq!(echoed["text"], "hi");

    // A retry with the same key is acked with the same id and stores nothing.
    socket
        .send(Frame::text(
            json!({"type": "send", "user": "bob", "text": "hi", "client_msg_id": "c1"}).to_string(),
        ))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "ack", "client_msg_id": "c1", "id": 2})
    );
    assert_eq!(app.server.state.store.stats().last_id, 2);
}

/// Malformed and refused frames get an error frame and the socket stays open.
#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "?since=0").await;
    let cases = [
        ("not json".to_owned(), "malformed_json"),
        (
            json!({"type": "shout", "text": "hi"}).to_string(),
            "malformed_json",
        ),
        (
            json!({"type": "send", "user": "ana"}).to_string(),
            "malformed_json",
        ),
        (
            json!({"type": "send", "user": "", "text": "hi"}).to_string(),
            "invalid_user",
        ),
        (
            json!({"type": "send", "user": "ana", "text": "  "}).to_string(),
            "invalid_text",
        ),
        (
            json!({"type": "send", "user": "ana", "text": "a\u{7}"}).to_string(),
            "control_character",
        ),
    ];
    for (frame, code) in cases {
        socket.send(Frame::text(frame)).await.expect("send");
        let error = next_json(&mut socket).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    socket
        .send(Frame::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(next_json(&mut socket).await["code"], "binary_frame");
    assert_eq!(app.server.state.store.stats().last_id, 0, "nothing stored");
    socket
        .send(Frame::text(
            json!({"type": "send", "user": "ana", "text": "still here"}).to_string(),
        ))
        .await
        .expect("send");
    loop {
        let value = next_json(&mut socket).await;
        if value["type"] == "ack" {
            assert_eq!(value["id"], 1);
            break;
        }
    }
}

/// A frame over the size limit closes the socket with 1009.
#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let app = spawn_with_websocket(chat_websocket::Settings {
        max_frame: 1_024,
        ..chat_websocket::Settings::default()
    })
    .await;
    let mut socket = connect(&app, "?since=0").await;
    let big = json!({"type": "send", "user": "ana", "text": "x".repeat(2_000)}).to_string();
    socket.send(Frame::text(big)).await.expect("send");
    assert_eq!(close_code(&mut socket).await, CloseCode::Size);
    assert_eq!(app.server.state.store.stats().last_id, 0);
    eventually("the socket is closed", || async {
        app.counters(Transport::Websocket).await.open == 0
    })
    .await;
}

/// The client's close is echoed, and the server's state for it is gone.
#[tokio::test]
async fn a_client_close_is_echoed() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "").await;
    socket
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("close");
    assert_eq!(close_code(&mut socket).await, CloseCode::Normal);
    eventually("the socket is forgotten", || async {
        app.counters(Transport::Websocket).await.open == 0
    })
    .await;
}

/// A cross-origin upgrade is refused with 403; the server's own origin and
/// configured origins are let in; a client without `Origin` too.
#[tokio::test]
async fn cross_origin_upgrades_are_refused() {
    let app = spawn_with_websocket(chat_websocket::Settings {
        allowed_origins: vec!["https://chat.example".into()],
        ..chat_websocket::Settings::default()
    })
    .await;
    let addr = app.server.addr;
    let with_origin = |origin: &str| {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
        request
    };
    match tokio_tungstenite::connect_async(with_origin("http://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().expect("body")).expect("json");
            assert_eq!(body["error"]["code"], "cross_origin");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    for origin in [format!("http://{addr}"), "https://chat.example".to_owned()] {
        tokio_tungstenite::connect_async(with_origin(&origin))
            .await
            .unwrap_or_else(|e| panic!("{origin} refused: {e}"));
    }
    connect(&app, "").await;
}

/// A plain GET on the WebSocket path is a 400, not a hang.
#[tokio::test]
async fn a_plain_get_is_not_an_upgrade() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/ws")).send().await.expect("request");
    crate::api::assert_error(response, reqwest::StatusCode::BAD_REQUEST, "not_websocket").await;
}

/// On shutdown every socket is closed with 1001.
#[tokio::test]
async fn shutdown_closes_with_1001() {
    let app = spawn_app().await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(connect(&app, "?since=0").await);
    }
    eventually("3 sockets are open", || async {
        app.counters(Transport::Websocket).await.open == 3
    })
    .await;
    let stopping = tokio::spawn(app.server.shutdown());
    for socket in &mut sockets {
        assert_eq!(close_code(socket).await, CloseCode::Away);
    }
    drop(sockets);
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("stopped")
        .expect("task")
        .expect("clean");
}

/// A client that never answers pings is closed after the timeout; one that
/// does (tungstenite answers as it reads) stays.
#[tokio::test]
async fn a_silent_client_is_closed_after_the_timeout() {
    let app = spawn_with_websocket(chat_websocket::Settings {
        ping_s: 1,
        timeout_s: 2,
        ..chat_websocket::Settings::default()
    })
    .await;
    let mut live = connect(&app, "").await;
    // A raw client that completes the handshake and then never reads.
    let addr = app.server.addr;
    let mut silent = off_thread(move || ws_handshake(addr, "/ws", None)).await;
    eventually("both sockets are open", || async {
        app.counters(Transport::Websocket).await.open == 2
    })
    .await;
    // The live client keeps reading (and so answering pings) meanwhile.
    let reader = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(200), live.next()).await;
        }
        live
    });
    eventually("the silent socket is closed", || async {
        app.counters(Transport::Websocket).await.open == 1
    })
    .await;
    let mut live = reader.await.expect("reader");
    live.send(Frame::text(
        json!({"type": "send", "user": "ana", "text": "alive"}).to_string(),
    ))
    .await
    .expect("the live socket is still open");
    let rest = off_thread(move || silent.read_to_close()).await;
    let frames = parse_frames(&rest);
    assert!(
        frames
            .iter()
            .any(|f| f.fin && f.opcode == CLOSE && f.close_code() == Some(1008)),
        "a 1008 close frame after the 101: {frames:?}"
    );
}

/// The demo server with these WebSocket settings.
async fn spawn_with_websocket(websocket: chat_websocket::Settings) -> crate::helpers::TestApp {
    let settings = chat_demo::Settings {
        websocket,
        ..chat_demo::Settings::default()
    };
    crate::helpers::spawn_with_settings(chat_http::Config::default(), settings).await
}
