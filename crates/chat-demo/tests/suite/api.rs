//! `POST /api/messages` and `GET /api/stats`: the contract and every refusal.

use chat_protocol::Transport;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_with};
use crate::kit::{off_thread, raw_request};

/// A new message answers 201 with exactly the stored message.
#[tokio::test]
async fn send_answers_201_with_the_stored_message() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/api/messages"))
        .json(&json!({"user": " ana ", "text": " hello ", "via": "polling"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], 1);
    assert_eq!(body["user"], "ana");
    assert_eq!(body["text"], "hello");
    assert_eq!(body["via"], "polling");
    assert!(body["sent_at_ms"].as_u64().expect("number") > 1_700_000_000_000);
    assert!(body.get("type").is_none());
    let stored = app
        .server
        .state
        .store
        .read(Some(chat_store::Cursor(0)), 10)
        .expect("valid");
    assert_eq!(
        serde_json::from_slice::<Value>(&stored.messages[0].json).expect("json"),
        body
    );
}

/// Without `via` a send is `api`; `via: websocket` is refused over HTTP.
#[tokio::test]
async fn via_defaults_to_api_and_websocket_is_refused() {
    let app = spawn_app().await;
    let m = app.say("ana", "hi").await;
    assert_eq!(m.via, chat_client::Via::Api);
    let response = app
        .http
        .post(app.url("/api/messages"))
        .json(&json!({"user": "ana", "text": "hi", "via": "websocket"}))
        .send()
        .await
        .expect("request");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_via").await;
}

/// Repeating a send with the same user and `client_msg_id` returns the first
/// message with 200 and stores nothing new.
#[tokio::test]
async fn client_msg_id_makes_retries_idempotent() {
    let app = spawn_app().await;
    let first = app
        .client
        .send("ana", "hello", Some("b3f1"), chat_client::Via::Api)
        .await
        .expect("sent");
    assert_eq!(first.created, Some(true));
    for _ in 0..3 {
        let again = app
            .client
            .send("ana", "hello", Some("b3f1"), chat_client::Via::Api)
            .await
            .expect("sent");
        assert_eq!(again.created, Some(false));
        assert_eq!(again.message, first.message);
    }
    let other = app
        .client
        .send("bob", "hello", Some("b3f1"), chat_client::Via::Api)
        .await
        .expect("sent");
    assert_eq!(other.created, Some(true));
    assert_eq!(app.server.state.store.stats().last_id, 2);
}

/// Every malformed or out-of-bounds send is a 400 with a JSON error, and
/// nothing is stored.
#[tokio::test]
async fn invalid_sends_are_400_and_store_nothing() {
    let app = spawn_app().await;
    let long_text = "x".repeat(2_001);
    let long_user = "u".repeat(33);
    let long_key = "k".repeat(65);
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "malformed_json"),
        ("[]".into(), "malformed_json"),
        (r#"{"user":"ana"}"#.into(), "malformed_json"),
        (r#"{"user":"ana","text":7}"#.into(), "malformed_json"),
        (
            r#"{"user":"ana","text":"hi","via":"carrier-pigeon"}"#.into(),
            "malformed_json",
        ),
        (
            json!({"user": "ana", "text": "   "}).to_string(),
            "invalid_text",
        ),
        (
            json!({"user": "ana", "text": long_text}).to_string(),
            "invalid_text",
        ),
        (
            json!({"user": "", "text": "hi"}).to_string(),
            "invalid_user",
        ),
        (
            json!({"user": long_user, "text": "hi"}).to_string(),
            "invalid_user",
        ),
        (
            json!({"user": "a\u{1b}[31m", "text": "hi"}).to_string(),
            "control_character",
        ),
        (
            json!({"user": "ana", "text": "bell\u{7}"}).to_string(),
            "control_character",
        ),
        (
            json!({"user": "ana", "text": "hi", "client_msg_id": long_key}).to_string(),
            "invalid_client_msg_id",
        ),
    ];
    for (body, code) in cases {
        let response = app
            .http
            .post(app.url("/api/messages"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("request");
        assert_error(response, StatusCode::BAD_REQUEST, code).await;
    }
    assert_eq!(app.server.state.store.stats().last_id, 0, "nothing stored");
}

/// A body that is not declared JSON is 415, whatever it contains.
#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .http
            .post(app.url("/api/messages"))
            .body(json!({"user": "ana", "text": "hi"}).to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.expect("request");
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let with_charset = app
        .http
        .post(app.url("/api/messages"))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"user": "ana", "text": "hi"}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(with_charset.status(), StatusCode::CREATED);
    assert_eq!(app.server.state.store.stats().last_id, 1);
}

/// A body over the limit is 413, also when it is sent chunked (no length
/// announced) and the limit is a configured one.
#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_with(chat_http::Config {
        max_body: 1_000,
        ..chat_http::Config::default()
    })
    .await;
    let big = json!({"user": "ana", "text": "x".repeat(1_500)}).to_string();
    let response = app
        .http
        .post(app.url("/api/messages"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("request");
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;

    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let response = app
        .http
        .post(app.url("/api/messages"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("request");
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert_eq!(app.server.state.store.stats().last_id, 0, "nothing stored");
}

/// The 413 is sent as soon as the head announces too much, while the client
/// is still sending: a raw client that sends only the head gets it.
#[tokio::test]
async fn oversized_body_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    // A head that announces ten megabytes, and the start of the body only.
    let request = "POST /api/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                   content-length: 10000000\r\n\r\n{\"user\":\"ana\",\"text\":\"";
    let answer = off_thread(move || raw_request(addr, request)).await;
    assert_eq!(answer.status(), 413, "{}", answer.head);
    assert!(
        answer.text().contains("body_too_large"),
        "{}",
        answer.text()
    );
}

/// `/api/stats` has every counter of the contract for all four transports.
#[tokio::test]
async fn stats_have_every_counter() {
    let app = spawn_app().await;
    app.say("ana", "hi").await;
    let stats: serde_json::Value = app
        .http
        .get(app.url("/api/stats"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    for transport in Transport::ALL.map(Transport::as_str) {
        for counter in [
            "requests",
            "open",
            "bytes_in",
            "bytes_out",
            "messages_delivered",
            "empty_responses",
        ] {
            assert!(
                stats["transports"][transport][counter].is_u64(),
                "{transport}.{counter} in {stats}"
            );
        }
    }
    assert_eq!(stats["store"]["last_id"], 1);
    assert_eq!(stats["store"]["retained"], 1);
}

/// Unknown paths are a JSON 404; the page is served at `/` with a CSP that
/// forbids inline script.
#[tokio::test]
async fn page_and_unknown_paths() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/")).send().await.expect("request");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text().await.expect("body").contains("<html"));

    let missing = app
        .http
        .post(app.url("/api/nothing"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// Asserts a JSON error answer with `status` and `code`.
pub async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// `/api/config` lists the mounted transports: all four on the demo server,
/// one on a transport's own server.
#[tokio::test]
async fn config_lists_the_mounted_transports() {
    let app = spawn_app().await;
    let config: Value = app
        .http
        .get(app.url("/api/config"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let epoch = app.server.state.store.epoch().to_string();
    let instance = app.server.state.instance.to_string();
    assert_eq!(
        config,
        json!({
            "transports": ["polling", "longpoll", "sse", "websocket", "stream"],
            "epoch": epoch,
            "instance": instance,
            "max_text": 2000,
            "max_body": 65536,
        })
    );
    assert_ne!(
        spawn_app().await.server.state.store.epoch().to_string(),
        epoch,
        "a new in-memory store is a new epoch"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let alone = chat_http::start(
        listener,
        chat_http::AppState::new(chat_http::Config::default()),
        &[chat_sse::mount(chat_sse::Settings::default())],
    )
    .expect("starts");
    let base = format!("http://{}", alone.addr);
    let config: Value = app
        .http
        .get(format!("{base}/api/config"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(config["transports"], json!(["sse"]));
    let polling = app
        .http
        .get(format!("{base}/polling/messages"))
        .send()
        .await
        .expect("request");
    assert_eq!(polling.status(), StatusCode::NOT_FOUND);
    alone.shutdown().await.expect("clean stop");
}
