//! Long polling: holding, waking, timing out, hanging up, shutting down.

use chat_protocol::Transport;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PATIENCE, eventually, spawn_app};
use crate::kit::{RawSocket, get};

async fn open_longpolls(app: &crate::helpers::TestApp) -> u64 {
    app.counters(Transport::Longpoll).await.open
}

/// A held poll is answered by the send that passes its cursor, with that
/// message; every held poll is woken, not just one.
#[tokio::test]
async fn held_polls_wake_on_a_new_message() {
    let app = spawn_app().await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let request = app
            .http
            .get(app.url("/longpoll/messages?since=0&wait_s=55"))
            .send();
        held.push(tokio::spawn(request));
    }
    eventually("20 polls are held", || async {
        open_longpolls(&app).await == 20
    })
    .await;
    assert_eq!(app.server.state.store.waiting(), 20);

    let sent = app.say("ana", "wake up").await;
    for request in held {
        let response = tokio::time::timeout(PATIENCE, request)
            .await
            .expect("answered")
            .expect("task")
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.expect("json");
        assert_eq!(page["messages"][0]["id"], sent.id.0);
        assert_eq!(page["messages"][0]["text"], "wake up");
        assert_eq!(page["cursor"], sent.id.0);
    }
    eventually("nothing is held any more", || async {
        open_longpolls(&app).await == 0
    })
    .await;
    assert_eq!(app.server.state.store.waiting(), 0);
}

/// A poll with news waiting is answered at once, without holding.
#[tokio::test]
async fn news_is_answered_at_once() {
    let app = spawn_app().await;
    app.say("ana", "already here").await;
    let page: Value = tokio::time::timeout(
        PATIENCE,
        app.http
            .get(app.url("/longpoll/messages?since=0&wait_s=55"))
            .send(),
    )
    .await
    .expect("not held")
    .expect("request")
    .json()
    .await
    .expect("json");
    assert_eq!(page["messages"][0]["text"], "already here");
}

/// After `wait_s` with no news the answer is 200, an empty list and the same
/// cursor, counted as an empty response.
#[tokio::test]
async fn a_quiet_hold_times_out_empty() {
    let app = spawn_app().await;
    app.say("ana", "before").await;
    let response = app
        .http
        .get(app.url("/longpoll/messages?since=1&wait_s=1"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.expect("json");
    assert_eq!(page["messages"], serde_json::json!([]));
    assert_eq!(page["cursor"], 1);
    assert_eq!(app.counters(Transport::Longpoll).await.empty_responses, 1);
}

/// A client that hangs up while its poll is held costs nothing afterwards:
/// the `open` counter and the store's waiters drop back to zero.
#[tokio::test]
async fn a_client_that_hangs_up_is_forgotten() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    // Raw sockets, so that hanging up is exactly a close of the connection.
    let sockets: Vec<RawSocket> = (0..5)
        .map(|_| {
            let mut socket = RawSocket::connect(addr);
            socket.send(get("/longpoll/messages?since=0&wait_s=55", &[]));
            socket
        })
        .collect();
    eventually("5 polls are held", || async {
        open_longpolls(&app).await == 5
    })
    .await;
    assert_eq!(app.server.state.store.waiting(), 5);

    drop(sockets);
    eventually("the hung-up polls are released", || async {
        open_longpolls(&app).await == 0
    })
    .await;
    assert_eq!(app.server.state.store.waiting(), 0);
}

/// On shutdown, held polls are answered (200, empty, same cursor), not cut.
#[tokio::test]
async fn shutdown_answers_held_polls() {
    let app = spawn_app().await;
    app.say("ana", "before").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::spawn(
            app.http
                .get(app.url("/longpoll/messages?since=1&wait_s=55"))
                .send(),
        ));
    }
    eventually("3 polls are held", || async {
        open_longpolls(&app).await == 3
    })
    .await;

    let stopping = tokio::spawn(app.server.shutdown());
    for request in held {
        let response = tokio::time::timeout(PATIENCE, request)
            .await
            .expect("answered")
            .expect("task")
            .expect("an answer, not a cut connection");
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.expect("json");
        assert_eq!(page["messages"], serde_json::json!([]));
        assert_eq!(page["cursor"], 1);
    }
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("server stopped")
        .expect("task")
        .expect("clean stop");
}
