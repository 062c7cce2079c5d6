//! Production behaviour, items 3 to 9 of `defects.rs`'s list: what a
//! client may send (objects only, digits-only cursors, visible names, sized
//! heads and bodies), who may open a WebSocket, how sockets close, and how
//! much a stalled connection may hold.

use chat_protocol::Transport;
use serde_json::{Value, json};

use crate::defects::{assert_refused, json_body, stored};
use crate::helpers::{eventually, spawn_app, spawn_with};
use crate::kit::{
    CLOSE, RawSocket, Response, TEXT, get, header, masked_frame, off_thread, parse_frames,
    post_json, raw_request, ws_handshake, ws_upgrade,
};

// 3. Only an object is a message ------------------------------------------

/// A JSON array with the fields in order is not a message: 400
/// `malformed_json` over POST, an error frame over WebSocket; nothing stored.
#[tokio::test]
async fn a_json_array_is_not_a_message() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    for body in [r#"["m","x","k","sse"]"#, r#"["m","x"]"#, "42", r#""text""#] {
        let response =
            off_thread(move || raw_request(addr, &post_json("/api/messages", body))).await;
        assert_refused(&response, 400, "malformed_json");
    }
    let frames = off_thread(move || {
        let mut socket = ws_handshake(addr, "/ws?since=0", None);
        [r#"["send","ana","hi",null]"#, r#"["send","ana","hi"]"#].map(|frame| {
            socket.send_text(frame);
            socket.read_frame()
        })
    })
    .await;
    for frame in frames {
        let error: Value = serde_json::from_str(frame.text()).expect("json");
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], "malformed_json", "{error}");
    }
    assert_eq!(stored(&app), 0);
}

// 4. The origin check and forwarded hosts ---------------------------------

/// The answer to an upgrade from `origin` carrying `extra` headers.
fn upgrade_with(addr: std::net::SocketAddr, origin: &str, extra: &[&str]) -> Response {
    let mut request = ws_upgrade("/ws", Some(origin));
    request.truncate(request.len() - 2);
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut socket = RawSocket::connect(addr);
    socket.send(request);
    let head = socket.read_head();
    let body = if head.starts_with("HTTP/1.1 101") {
        Vec::new()
    } else {
        // The contract's error body, `{"error":{…}}`, ends with `}}`.
        socket.read_until("}}").into_bytes()
    };
    Response { head, body }
}

/// A client cannot name its own origin as the server's host through
/// `X-Forwarded-Host` or `Forwarded`: 403 `cross_origin`.
#[tokio::test]
async fn forwarded_hosts_do_not_pass_the_origin_check() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let cases: [&[&str]; 3] = [
        &["x-forwarded-host: evil.example"],
        &["forwarded: host=evil.example"],
        &["forwarded: for=1.2.3.4;host=evil.example;proto=http"],
    ];
    for extra in cases {
        let response = off_thread(move || upgrade_with(addr, "http://evil.example", extra)).await;
        assert_refused(&response, 403, "cross_origin");
    }
    // The host the request came to is still the server's own origin.
    let own = off_thread(move || upgrade_with(addr, "http://127.0.0.1", &[])).await;
    assert!(own.head.starts_with("HTTP/1.1 101"), "{}", own.head);
}

/// Behind a trusted proxy (`--trusted-proxies`), the forwarded host is the
/// public origin; from anyone else it is ignored.
#[tokio::test]
async fn a_trusted_proxy_may_name_the_public_host() {
    let app = spawn_with(chat_http::Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("an IP")],
        ..chat_http::Config::default()
    })
    .await;
    let addr = app.server.addr;
    for extra in [
        "x-forwarded-host: chat.example",
        "forwarded: for=1.2.3.4;host=chat.example;proto=https",
    ] {
        let response =
            off_thread(move || upgrade_with(addr, "https://chat.example", &[extra])).await;
        assert!(
            response.head.starts_with("HTTP/1.1 101"),
            "{}",
            response.head
        );
    }
    let untrusted = spawn_with(chat_http::Config {
        trusted_proxies: vec!["10.0.0.1".parse().expect("an IP")],
        ..chat_http::Config::default()
    })
    .await;
    let addr = untrusted.server.addr;
    let response = off_thread(move || {
        upgrade_with(
            addr,
            "https://chat.example",
            &["x-forwarded-host: chat.example"],
        )
    })
    .await;
    assert_refused(&response, 403, "cross_origin");
}

// 5. Cursors ----------------------------------------------------------------

/// A cursor is ASCII digits after percent-decoding, given once: `%2B1`,
/// `+1`, a repeated `since` (even with the same value) are 400
/// `invalid_query` on every transport, as is a repeated or signed `limit`;
/// `%30` is `0`, and `Last-Event-ID` follows the same rule.
#[tokio::test]
async fn cursors_are_ascii_digits_given_once() {
    let app = spawn_app().await;
    app.say("ana", "one").await;
    let addr = app.server.addr;
    let paths = [
        "/polling/messages",
        "/longpoll/messages",
        "/sse/events",
        "/stream/messages",
        "/ws",
    ];
    for path in paths {
        let paging = path.ends_with("/messages") && !path.starts_with("/stream");
        let limits: &[&str] = if paging { &["since=0&limit=%2B5"] } else { &[] };
        let queries = [
            "since=%2B1",
            "since=+1",
            "since=%201",
            "since=abc&since=0",
            "since=1&since=1",
            "since=0&limit=1&limit=2",
        ];
        for &query in queries.iter().chain(limits) {
            let target = format!("{path}?{query}");
            let response = off_thread(move || {
                let request = if path == "/ws" {
                    ws_upgrade(&target, None)
                } else {
                    get(&target, &[])
                };
                raw_request(addr, &request)
            })
            .await;
            assert_refused(&response, 400, "invalid_query");
        }
    }
    let ok = off_thread(move || raw_request(addr, &get("/polling/messages?since=%30", &[]))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(json_body(&ok)["messages"].as_array().map(Vec::len), Some(1));
    // `Last-Event-ID` follows the same rule.
    let response = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get("/sse/events", &["last-event-id: +0"]));
        socket.read_response()
    })
    .await;
    assert_refused(&response, 400, "invalid_query");
}

// 6. WebSocket close codes --------------------------------------------------

/// One masked client frame, final or not.
fn fragment(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = masked_frame(opcode, payload);
    if !fin {
        frame[0] &= 0x7F;
    }
    frame
}

/// The close code of the first close frame the server sends after `bytes`.
fn close_after(addr: std::net::SocketAddr, bytes: Vec<u8>) -> Option<u16> {
    let mut socket = ws_handshake(addr, "/ws?since=0", None);
    socket.send(bytes);
    let rest = socket.read_to_close();
    parse_frames(&rest)
        .iter()
        .find(|f| f.opcode == CLOSE)
        .and_then(|f| f.close_code())
}

/// A text frame that is not UTF-8 closes with 1007; a fragmented message
/// over `--ws-max-frame` closes with 1009, as a single frame does; nothing
/// is stored.
#[tokio::test]
async fn websocket_close_codes_follow_rfc_6455() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let invalid =
        off_thread(move || close_after(addr, masked_frame(TEXT, b"{\"a\":\"\xff\xfe\"}"))).await;
    assert_eq!(invalid, Some(1007), "invalid UTF-8");

    let part = vec![b'x'; 40 * 1024];
    let fragmented = {
        let mut bytes = fragment(false, TEXT, &part);
        bytes.extend(fragment(true, 0x0, &part));
        bytes
    };
    let too_large = off_thread(move || close_after(addr, fragmented)).await;
    assert_eq!(too_large, Some(1009), "fragmented message over the limit");

    let single = masked_frame(TEXT, &vec![b'x'; 80 * 1024]);
    let single = off_thread(move || close_after(addr, single)).await;
    assert_eq!(single, Some(1009), "single frame over the limit");
    assert_eq!(stored(&app), 0);
}

// 7. Expect: 100-continue ---------------------------------------------------

/// A send announcing 10 GB with `Expect: 100-continue` gets its 413 at once,
/// with no `100 Continue` before it; nothing is stored.
#[tokio::test]
async fn expect_continue_over_the_limit_gets_413_without_100() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let response = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(
            "POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n\
             content-type: application/json\r\ncontent-length: 10000000000\r\n\
             expect: 100-continue\r\n\r\n",
        );
        socket.read_response()
    })
    .await;
    assert_refused(&response, 413, "body_too_large");
    assert_eq!(stored(&app), 0);
}

/// Within the limit, `Expect: 100-continue` still gets its `100 Continue`,
/// and the send is stored.
#[tokio::test]
async fn expect_continue_within_the_limit_gets_100_and_201() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let body = r#"{"user":"ana","text":"hi"}"#;
    let (interim, response) = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(format!(
            "POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\
             expect: 100-continue\r\n\r\n",
            body.len()
        ));
        let interim = socket.read_head();
        socket.send(body);
        (interim, socket.read_response())
    })
    .await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    assert_eq!(response.status(), 201, "{}", response.head);
    assert_eq!(stored(&app), 1);
}

// 8. Heads, names, headers ----------------------------------------------------

/// 100 KiB of request headers get 431 with the JSON error, on any path.
#[tokio::test]
async fn oversized_request_heads_get_431() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let big = format!("x-padding: {}", "a".repeat(10 * 1024));
    let headers: Vec<String> = (0..10).map(|_| big.clone()).collect();
    for path in ["/api/config", "/polling/messages?since=0"] {
        let headers = headers.clone();
        let response = off_thread(move || {
            let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            raw_request(addr, &get(path, &refs))
        })
        .await;
        assert_refused(&response, 431, "head_too_large");
    }
    let headers = headers.clone();
    let post = off_thread(move || {
        let mut request = post_json("/api/messages", r#"{"user":"ana","text":"hi"}"#);
        let at = request.find("\r\n\r\n").expect("a head");
        request.insert_str(at, &format!("\r\n{}", headers.join("\r\n")));
        raw_request(addr, &request)
    })
    .await;
    assert_refused(&post, 431, "head_too_large");
    assert_eq!(stored(&app), 0);
    // An ordinary head is fine.
    let ok = off_thread(move || raw_request(addr, &get("/api/config", &[]))).await;
    assert_eq!(ok.status(), 200);
}

/// User names made only of invisible characters, or holding bidi controls,
/// are 400 `invalid_user` over POST and WebSocket; nothing is stored.
#[tokio::test]
async fn invisible_and_bidi_user_names_are_refused() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let names = [
        "\u{200B}",
        "\u{FEFF}\u{200B} \u{2060}",
        "\u{200C}\u{200D}",
        "\u{00AD}",
        "ana\u{202E}",
        "\u{202A}bob",
        "c\u{2066}d\u{2069}",
    ];
    for user in names {
        let body = json!({"user": user, "text": "hi"}).to_string();
        let response =
            off_thread(move || raw_request(addr, &post_json("/api/messages", &body))).await;
        assert_refused(&response, 400, "invalid_user");
    }
    let frames = off_thread(move || {
        let mut socket = ws_handshake(addr, "/ws?since=0", None);
        names.map(|user| {
            socket.send_text(&json!({"type": "send", "user": user, "text": "hi"}).to_string());
            socket.read_frame()
        })
    })
    .await;
    for frame in frames {
        let error: Value = serde_json::from_str(frame.text()).expect("json");
        assert_eq!(error["code"], "invalid_user", "{error}");
    }
    assert_eq!(stored(&app), 0);
    // Invisible characters around a visible name are trimmed.
    let m = app.say("\u{200B}ana\u{FEFF}", "hi").await;
    assert_eq!(m.user, "ana");
}

/// The page gets `Referrer-Policy: no-referrer`; every JSON answer (pages of
/// messages, sends, stats, config, errors) gets `X-Content-Type-Options:
/// nosniff`.
#[tokio::test]
async fn the_page_and_json_answers_carry_security_headers() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let page = off_thread(move || raw_request(addr, &get("/", &[]))).await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page.head, "referrer-policy"), Some("no-referrer"));
    let requests = [
        get("/polling/messages?since=0", &[]),
        get("/longpoll/messages?since=0&wait_s=1", &[]),
        get("/api/stats", &[]),
        get("/api/config", &[]),
        get("/api/nope", &[]),
        get("/polling/messages?since=abc", &[]),
        post_json("/api/messages", r#"{"user":"ana","text":"hi"}"#),
        post_json("/api/messages", "{"),
    ];
    for request in requests {
        let response = off_thread(move || raw_request(addr, &request)).await;
        assert_eq!(
            header(&response.head, "x-content-type-options"),
            Some("nosniff"),
            "{}",
            response.head
        );
        assert!(
            header(&response.head, "content-type").is_some_and(|t| t.contains("json")),
            "{}",
            response.head
        );
    }
}

// 9. Bytes held for a stalled reader ------------------------------------------

/// A raw client with a 4 KiB receive buffer that sends its request and then
/// never reads.
fn stalled_client(addr: std::net::SocketAddr, request: String) -> RawSocket {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4_096).expect("rcvbuf");
    socket.connect(&addr.into()).expect("connect");
    let mut client = RawSocket::from(std::net::TcpStream::from(socket));
    client.send(request);
    client
}

/// On every streaming transport, a client that stops reading while large
/// messages flow is reset once it leaves more than `--max-unsent` bytes
/// unread for the stall grace, long before the backlog (in messages) would
/// cut it; a reading client gets every message meanwhile.
#[tokio::test]
async fn a_stalled_reader_is_cut_off_by_bytes_before_the_backlog() {
    const MESSAGES: u64 = 250;
    // 8,000 four-byte characters: 32 KB of JSON per message, 8 MB in all,
    // more than the kernel's socket buffers take on loopback (up to 4 MiB
    // for the sender).
    const TEXT_CHARS: usize = 8_000;
    let app = spawn_with(chat_http::Config {
        max_text: TEXT_CHARS,
        ..chat_http::Config::default()
    })
    .await;
    let addr = app.server.addr;
    let text = "\u{1F600}".repeat(TEXT_CHARS);
    for (cut, transport) in [Transport::Sse, Transport::Websocket, Transport::Stream]
        .into_iter()
        .enumerate()
    {
        let request = match transport {
            Transport::Sse => get("/sse/events", &[]),
            Transport::Stream => get("/stream/messages", &[]),
            _ => ws_upgrade("/ws", None),
        };
        let stalled = off_thread(move || stalled_client(addr, request)).await;
        let first = app.server.state.store.newest();
        let mut reader = app.client.subscribe(
            transport,
            chat_client::Options {
                since: Some(first),
                ..chat_client::Options::default()
            },
        );
        let reading = tokio::spawn(async move {
            let got = crate::helpers::next_messages(&mut reader, MESSAGES as usize).await;
            (reader, got)
        });
        eventually("both are connected", || async {
            app.counters(transport).await.open == 2
        })
        .await;
        for _ in 0..MESSAGES {
            app.server
                .state
                .log
                .send(chat_store::NewMessage {
                    user: "w".into(),
                    text: text.clone(),
                    client_msg_id: None,
                    via: chat_store::Via::Api,
                })
                .await
                .expect("stored");
        }
        let (reader, got) = reading.await.expect("the reader");
        assert_eq!(got.last().map(|m| m.id.0), Some(first.0 + MESSAGES));
        assert!(MESSAGES < app.server.state.config.backlog);
        eventually("the stalled reader is cut off", || async {
            app.counters(transport).await.open == 1
        })
        .await;
        assert_eq!(
            app.server.state.stats.refused.stalled(),
            cut as u64 + 1,
            "{transport:?}: cut by the byte bound"
        );
        drop(reader);
        drop(stalled);
        eventually("all closed", || async {
            app.counters(transport).await.open == 0
        })
        .await;
    }
}
