//! The per-client limits (`chat_http::rate`): send rates per address and
//! per user, over POST and WebSocket, the cap on open connections per
//! address, the defaults the page's own controls never trip, and the switch
//! that turns them off. Clients come from real loopback addresses
//! (127.0.0.1 and 127.0.0.2 are two clients to the server).

use std::net::IpAddr;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use chat_http::Config;
use chat_http::rate::LimitSettings;

use crate::helpers::{PATIENCE, TestApp, eventually, spawn_app, spawn_with};
use crate::kit::{get, off_thread, raw_request, ws_handshake};

/// A client whose requests come from `address` (any of 127.0.0.0/8).
fn client_from(address: &str) -> reqwest::Client {
    let address: IpAddr = address.parse().expect("an address");
    reqwest::Client::builder()
        .local_address(address)
        .build()
        .expect("a client")
}

/// Limits tight enough to meet in a test: a few sends at once, one a second.
fn tight(limits: LimitSettings) -> Config {
    Config {
        limits,
        ..Config::default()
    }
}

/// A POST of one message as `user`, from `client`.
async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    user: &str,
    text: &str,
) -> reqwest::Response {
    client
        .post(app.url("/api/messages"))
        .json(&json!({"user": user, "text": text}))
        .send()
        .await
        .expect("answered")
}

/// `/api/stats` as JSON.
async fn stats(app: &TestApp) -> Value {
    app.http
        .get(app.url("/api/stats"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON")
}

/// A flood from one address (as many users, so only the address limit
/// applies) gets `429` with `Retry-After` and `rate_limited` past its
/// bucket; nothing beyond the limit is stored, and every refusal is counted.
/// Another address is not affected.
#[tokio::test]
async fn a_flood_from_one_address_is_refused_and_not_stored() {
    let app = spawn_with(tight(LimitSettings {
        send_rate: 1,
        send_burst: 5,
        ..LimitSettings::default()
    }))
    .await;
    let flooder = client_from("127.0.0.1");
    let (mut accepted, mut refused) = (0u64, 0u64);
    for i in 0..20 {
        let answer = post(&app, &flooder, &format!("user{i}"), "flood").await;
        match answer.status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let retry: u64 = answer.headers()["retry-after"]
                    .to_str()
                    .expect("ASCII")
                    .parse()
                    .expect("whole seconds");
                assert!(retry >= 1, "Retry-After is rounded up: {retry}");
                let body: Value = answer.json().await.expect("the contract's error body");
                assert_eq!(body["error"]["code"], "rate_limited");
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The bucket holds 5; at one a second, the loop may have earned a few.
    assert!(accepted >= 5, "the burst passes: {accepted}");
    assert!(refused >= 1, "the flood meets the limit");
    let stats = stats(&app).await;
    assert_eq!(
        stats["store"]["last_id"], accepted,
        "only what was accepted is stored"
    );
    assert_eq!(
        stats["refused"]["rate_limited"], refused,
        "every refusal counted"
    );

    // A second client, on another address, has its own bucket.
    let other = client_from("127.0.0.2");
    let answer = post(&app, &other, "bob", "I am not flooding").await;
    assert_eq!(answer.status(), StatusCode::CREATED);
}

/// One user sending from several addresses meets the per-user bucket;
/// another user from the same addresses does not.
#[tokio::test]
async fn one_user_is_limited_across_addresses() {
    let app = spawn_with(tight(LimitSettings {
        user_send_rate: 1,
        user_send_burst: 3,
        ..LimitSettings::default()
    }))
    .await;
    let clients = ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"].map(client_from);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        for client in &clients {
            statuses.push(post(&app, client, " ana ", "hi").await.status());
        }
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The name is keyed as stored: " ana ", "ana" and "ana" with a
    // zero-width space share a bucket.
    let answer = post(&app, &clients[0], "ana", "again").await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    let answer = post(&app, &clients[1], "ana\u{200B}", "again").await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    let answer = post(&app, &clients[0], "bob", "hello").await;
    assert_eq!(answer.status(), StatusCode::CREATED);
}

/// Behind a trusted proxy, each forwarded client has its own bucket; from
/// anyone else, `X-Forwarded-For` changes nothing (a flooder cannot dodge
/// the limit by naming a new address each time).
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let limits = LimitSettings {
        send_rate: 1,
        send_burst: 2,
        ..LimitSettings::default()
    };
    let app = spawn_with(Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("an address")],
        ..tight(limits.clone())
    })
    .await;
    let send = |client: reqwest::Client, forwarded: &'static str, user: String| {
        let url = app.url("/api/messages");
        async move {
            client
                .post(url)
                .header("x-forwarded-for", forwarded)
                .json(&json!({"user": user, "text": "hi"}))
                .send()
                .await
                .expect("answered")
                .status()
        }
    };
    let proxy = client_from("127.0.0.1");
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(send(proxy.clone(), "192.0.2.1", format!("u{i}")).await);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Another client behind the same proxy.
    let status = send(proxy.clone(), "203.0.113.9, 192.0.2.2", "v".into()).await;
    assert_eq!(status, StatusCode::CREATED);

    // Not a trusted proxy: the header is ignored, the peer is the client.
    let spoofer = client_from("127.0.0.7");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let forwarded = ["198.51.100.1", "198.51.100.2", "198.51.100.3"][i % 3];
        statuses.push(send(spoofer.clone(), forwarded, format!("w{i}")).await);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// A WebSocket flood gets error frames with `rate_limited` and
/// `retry_after_ms`, nothing past the limit is stored, and the socket stays
/// open: it still receives what others send.
#[tokio::test]
async fn a_websocket_flood_gets_error_frames_and_the_socket_stays() {
    let app = spawn_with(tight(LimitSettings {
        send_rate: 1,
        send_burst: 3,
        ..LimitSettings::default()
    }))
    .await;
    let url = format!("ws://{}/ws", app.server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    const FLOOD: usize = 10;
    for i in 0..FLOOD {
        let frame = json!({"type":"send","user":format!("u{i}"),"text":"flood","client_msg_id":format!("c{i}")});
        socket
            .send(Frame::text(frame.to_string()))
            .await
            .expect("sent");
    }
    // One answer per send, in order; the stored messages come too.
    let (mut acks, mut limited) = (0u64, 0u64);
    while acks + limited < FLOOD as u64 {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("a frame");
        let Frame::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(&text).expect("JSON");
        match value["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => {
                assert_eq!(value["code"], "rate_limited", "{value}");
                assert!(
                    value["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1),
                    "{value}"
                );
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(acks >= 3 && limited >= 1, "acks {acks}, limited {limited}");
    let stats = stats(&app).await;
    assert_eq!(stats["store"]["last_id"], acks);
    assert_eq!(stats["refused"]["rate_limited"], limited);

    // Still open: a message from another client arrives on it.
    let other = client_from("127.0.0.2");
    let sent = post(&app, &other, "bob", "still there?").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the message in time")
            .expect("open")
            .expect("a frame");
        if let Frame::Text(text) = frame
            && text.contains("still there?")
        {
            break;
        }
    }
}

/// Past `--max-connections-per-address`, a request is a `429` and a
/// WebSocket closes with 1013 at once; another address is served, and a
/// place frees up when a stream ends.
#[tokio::test]
async fn the_connection_cap_answers_429_and_1013() {
    let app = spawn_with(tight(LimitSettings {
        max_connections_per_address: 2,
        ..LimitSettings::default()
    }))
    .await;
    let addr = app.server.addr;
    let streams = off_thread(move || {
        let mut streams = Vec::new();
        for _ in 0..2 {
            let mut stream = crate::kit::RawSocket::connect(addr);
            stream.send(get("/sse/events", &[]));
            stream.read_head();
            streams.push(stream);
        }
        streams
    })
    .await;

    let refused = off_thread(move || raw_request(addr, &get("/polling/messages", &[]))).await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused.text().contains("too_many_connections"),
        "{}",
        refused.text()
    );

    let mut socket = off_thread(move || ws_handshake(addr, "/ws", None)).await;
    let close = off_thread(move || socket.read_frame()).await;
    assert_eq!(close.close_code(), Some(1013));

    let other = client_from("127.0.0.2");
    let answer = other
        .get(app.url("/polling/messages"))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::OK);

    drop(streams);
    eventually("a place frees up", || async {
        app.http
            .get(app.url("/polling/messages"))
            .send()
            .await
            .is_ok_and(|answer| answer.status() == StatusCode::OK)
    })
    .await;
    let stats = stats(&app).await;
    assert!(
        stats["refused"]["connections_capped"].as_u64() >= Some(2),
        "{stats}"
    );
}

/// With the defaults, the page's own controls never meet a limit: every
/// pane's `Burst 100` pressed at once (five panes sending by POST, one over
/// its WebSocket: 600 sends from one address, as one user), all accepted.
#[tokio::test]
async fn the_pages_bursts_pass_the_default_limits() {
    const PANES: usize = 5;
    const BURST: usize = 100;
    let app = spawn_app().await;
    let mut panes = Vec::new();
    for pane in 0..PANES {
        let client = app.http.clone();
        let url = app.url("/api/messages");
        panes.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..BURST {
                let body = json!({"user":"ana","text":format!("burst {i}/{BURST} from {pane}")});
                let answer = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .expect("answered");
                statuses.push(answer.status());
            }
            statuses
        }));
    }
    let url = format!("ws://{}/ws", app.server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    for i in 0..BURST {
        let frame = json!({"type":"send","user":"ana","text":format!("ws burst {i}")});
        socket
            .send(Frame::text(frame.to_string()))
            .await
            .expect("sent");
    }
    let mut acks = 0;
    while acks < BURST {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("a frame");
        let Frame::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_ne!(value["type"], "error", "{value}");
        if value["type"] == "ack" {
            acks += 1;
        }
    }
    for pane in panes {
        let statuses = pane.await.expect("the pane's burst");
        assert!(
            statuses.iter().all(|s| *s == StatusCode::CREATED),
            "{statuses:?}"
        );
    }
    let stats = stats(&app).await;
    assert_eq!(stats["store"]["last_id"], (PANES + 1) * BURST);
    assert_eq!(stats["refused"]["rate_limited"], 0);
}

/// `--no-client-limits` turns every per-client limit off, whatever the
/// other flags say.
#[tokio::test]
async fn the_off_switch_lifts_every_limit() {
    let app = spawn_with(tight(LimitSettings {
        send_rate: 1,
        send_burst: 1,
        user_send_rate: 1,
        user_send_burst: 1,
        max_connections_per_address: 1,
        no_client_limits: true,
    }))
    .await;
    let addr = app.server.addr;
    // Held open while the sends go: over the cap of 1 were it on.
    let _stream = off_thread(move || {
        let mut stream = crate::kit::RawSocket::connect(addr);
        stream.send(get("/sse/events", &[]));
        stream.read_head();
        stream
    })
    .await;
    for i in 0..50 {
        let answer = post(&app, &app.http, "ana", &format!("m{i}")).await;
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    let stats = stats(&app).await;
    assert_eq!(stats["store"]["last_id"], 50);
    assert_eq!(stats["refused"]["rate_limited"], 0);
    assert_eq!(stats["refused"]["connections_capped"], 0);
}

/// The limits forget a bucket once it is full again: their memory follows
/// the clients sending now, not every client ever seen.
#[tokio::test]
async fn idle_buckets_are_forgotten() {
    // Buckets of one that refill in a millisecond.
    let app = spawn_with(tight(LimitSettings {
        send_rate: 1_000,
        send_burst: 1,
        user_send_rate: 1_000,
        user_send_burst: 1,
        ..LimitSettings::default()
    }))
    .await;
    for (i, address) in ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
        .into_iter()
        .enumerate()
    {
        let answer = post(&app, &client_from(address), &format!("u{i}"), "hi").await;
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    let limits = app.server.state.limits.clone();
    let (addresses, users, _) = limits.tracked();
    assert_eq!((addresses, users), (3, 3));
    eventually("the full buckets are swept", || {
        limits.sweep();
        let (addresses, users, _) = limits.tracked();
        std::future::ready(addresses == 0 && users == 0)
    })
    .await;
}

/// The project's client waits out a `429` (the connection cap) with its
/// backoff instead of giving up: once a place frees up, its subscription
/// delivers.
#[tokio::test]
async fn the_client_waits_out_the_connection_cap() {
    let app = spawn_with(tight(LimitSettings {
        max_connections_per_address: 1,
        ..LimitSettings::default()
    }))
    .await;
    let addr = app.server.addr;
    let held = off_thread(move || {
        let mut stream = crate::kit::RawSocket::connect(addr);
        stream.send(get("/sse/events", &[]));
        stream.read_head();
        stream
    })
    .await;
    let mut sub = app.client.subscribe(
        chat_protocol::Transport::Polling,
        chat_client::Options {
            since: Some(chat_protocol::Cursor(0)),
            epoch: Some(app.server.state.store.epoch()),
            poll_interval: std::time::Duration::from_millis(50),
            min_backoff: std::time::Duration::from_millis(50),
            max_backoff: std::time::Duration::from_millis(200),
            ..chat_client::Options::default()
        },
    );
    let reading = tokio::spawn(async move { crate::helpers::next_messages(&mut sub, 1).await });
    eventually("the subscription is refused at least once", || async {
        app.server.state.stats.refused.connections_capped() >= 1
    })
    .await;
    drop(held);
    let sent = post(&app, &client_from("127.0.0.2"), "bob", "a place is free").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let got = tokio::time::timeout(PATIENCE, reading)
        .await
        .expect("delivered once a place is free")
        .expect("the reader");
    assert_eq!(got[0].text, "a place is free");
}
