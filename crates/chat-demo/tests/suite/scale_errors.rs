//! Bad input and errors around epochs and the shared log: a malformed epoch,
//! and a Redis that answers a send with an error.

use serde_json::json;

use chat_client::{Transport, Via};

use crate::helpers::spawn_shared;
use crate::kit::{get, off_thread, raw_request};
use crate::redis_server::RedisServer;

/// An epoch outside the alphabet is a clear 400 on every transport, before
/// anything is held or streamed.
#[tokio::test]
async fn a_malformed_epoch_is_a_400_on_every_transport() {
    let app = crate::helpers::spawn_app().await;
    for transport in Transport::ALL {
        let target = format!("{}?since=0&epoch=not%20an%20epoch", transport.route());
        let addr = app.server.addr;
        let answer = off_thread(move || raw_request(addr, &get(&target, &[]))).await;
        assert_eq!(answer.status(), 400, "{transport}");
        assert!(
            answer.text().contains("invalid_query"),
            "{transport}: {}",
            answer.text()
        );
    }
}

/// A Redis that answers a send with an error (here the log's key holds
/// something that is not a stream) refuses the send with 503 and stores
/// nothing; once the key is fixed, sends go through again.
#[tokio::test]
async fn a_redis_error_refuses_the_send_and_acknowledges_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    a.say("ana", "before").await;
    redis.run(&["DEL", "chat:log"]);
    redis.run(&["SET", "chat:log", "not a stream"]);
    let refused = a
        .http
        .post(a.url("/api/messages"))
        .json(&json!({"user": "ana", "text": "into the error", "via": "api"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("WRONGTYPE"),
        "{body}"
    );
    redis.run(&["DEL", "chat:log"]);
    let after = a
        .client
        .send("ana", "after", None, Via::Api)
        .await
        .expect("sent");
    assert_eq!(
        after.message.id.0, 2,
        "the refused send used up no id: ids stay gapless"
    );
}
