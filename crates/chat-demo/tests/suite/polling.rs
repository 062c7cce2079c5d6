//! Regular polling, and the cursor rules that polling and long polling share.

use chat_protocol::Transport;
use reqwest::StatusCode;
use serde_json::Value;

use crate::api::assert_error;
use crate::helpers::{spawn_app, spawn_with};

async fn get_json(app: &crate::helpers::TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert_eq!(
        response.headers()["cache-control"].to_str().expect("ascii"),
        "no-store"
    );
    response.json().await.expect("json")
}

fn ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect()
}

/// A poll answers at once with everything after the cursor and the new
/// cursor; an empty answer keeps the cursor and counts as empty.
#[tokio::test]
async fn poll_answers_at_once_with_the_cursor() {
    let app = spawn_app().await;
    let empty = get_json(&app, "/polling/messages?since=0").await;
    assert_eq!(ids(&empty), Vec::<u64>::new());
    assert_eq!(empty["cursor"], 0);
    assert!(empty.get("missed").is_none());
    for i in 0..3 {
        app.say("ana", &format!("m{i}")).await;
    }
    let page = get_json(&app, "/polling/messages?since=1").await;
    assert_eq!(ids(&page), vec![2, 3]);
    assert_eq!(page["cursor"], 3);
    let counters = app.counters(Transport::Polling).await;
    assert_eq!(counters.requests, 2);
    assert_eq!(counters.empty_responses, 1);
    assert_eq!(counters.messages_delivered, 2);
    crate::helpers::eventually("no poll is open", || async {
        app.counters(Transport::Polling).await.open == 0
    })
    .await;
}

/// `limit` pages the answer; larger than 500 is clamped; 0 is refused.
#[tokio::test]
async fn limit_pages_the_answer() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.say("ana", &format!("m{i}")).await;
    }
    let page = get_json(&app, "/polling/messages?since=0&limit=2").await;
    assert_eq!(ids(&page), vec![1, 2]);
    assert_eq!(page["cursor"], 2);
    let big = get_json(&app, "/polling/messages?since=0&limit=100000").await;
    assert_eq!(ids(&big), vec![1, 2, 3, 4, 5]);
    let zero = app
        .http
        .get(app.url("/polling/messages?since=0&limit=0"))
        .send()
        .await
        .expect("request");
    assert_error(zero, StatusCode::BAD_REQUEST, "invalid_query").await;
}

/// Without `since`, the most recent `backfill` messages.
#[tokio::test]
async fn no_since_gives_the_backfill() {
    let app = spawn_with(chat_http::Config {
        backfill: 3,
        ..chat_http::Config::default()
    })
    .await;
    for i in 0..5 {
        app.say("ana", &format!("m{i}")).await;
    }
    for transport in ["polling", "longpoll"] {
        let page = get_json(&app, &format!("/{transport}/messages")).await;
        assert_eq!(ids(&page), vec![3, 4, 5], "{transport}");
        assert_eq!(page["cursor"], 5);
    }
}

/// A cursor older than the history gets `missed` and then all retained.
#[tokio::test]
async fn cursor_before_history_gets_a_gap_notice() {
    let app = spawn_with(chat_http::Config {
        history: 5,
        ..chat_http::Config::default()
    })
    .await;
    for i in 0..10 {
        app.say("ana", &format!("m{i}")).await;
    }
    for transport in ["polling", "longpoll"] {
        let page = get_json(&app, &format!("/{transport}/messages?since=1")).await;
        assert_eq!(page["missed"], 4, "{transport}: ids 2..=5 are gone");
        assert_eq!(ids(&page), vec![6, 7, 8, 9, 10]);
        assert_eq!(page["cursor"], 10);
    }
}

/// Cursors that are not numbers, negative, beyond 64 bits or ahead of the
/// newest id are 400s with a JSON error, on both polling transports, and
/// none of them hangs.
#[tokio::test]
async fn bogus_cursors_are_400() {
    let app = spawn_app().await;
    app.say("ana", "hi").await;
    let cases = [
        ("abc", "invalid_query"),
        ("-1", "invalid_query"),
        ("1.5", "invalid_query"),
        ("", "invalid_query"),
        ("18446744073709551616", "invalid_query"),
        ("18446744073709551615", "cursor_ahead"),
        ("2", "cursor_ahead"),
    ];
    for transport in ["polling", "longpoll"] {
        for (since, code) in cases {
            let response = tokio::time::timeout(
                crate::helpers::PATIENCE,
                app.http
                    .get(app.url(&format!("/{transport}/messages?since={since}&wait_s=55")))
                    .send(),
            )
            .await
            .expect("answered, not held")
            .expect("request");
            assert_error(response, StatusCode::BAD_REQUEST, code).await;
        }
    }
    let bad_wait = app
        .http
        .get(app.url("/longpoll/messages?since=0&wait_s=soon"))
        .send()
        .await
        .expect("request");
    assert_error(bad_wait, StatusCode::BAD_REQUEST, "invalid_query").await;
}
