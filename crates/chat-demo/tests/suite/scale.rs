//! Several instances on one shared log (a real `redis-server` each test
//! starts), and what survives restarts: every transport sees one chat,
//! cursors work on any instance, ids stay gapless, retries stay idempotent,
//! and a deleted log is announced with a reset notice, never served as if
//! it were the old one.

use std::collections::BTreeSet;

use chat_client::{Cursor, Event, Options, Transport, Via};
use chat_protocol::{ConfigBody, PageBody};
use serde_json::json;

use crate::helpers::{PATIENCE, TestApp, eventually, next_messages, spawn_shared};
use crate::kit::{RawSocket, get, off_thread, raw_request, ws_handshake};
use crate::redis_server::RedisServer;

/// Options for a subscription that starts at `since`.
fn from(since: u64) -> Options {
    Options {
        since: Some(Cursor(since)),
        poll_interval: std::time::Duration::from_millis(50),
        ..Options::default()
    }
}

async fn config(app: &TestApp) -> ConfigBody {
    app.http
        .get(app.url("/api/config"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON")
}

/// A message sent through either instance, by POST or over a WebSocket,
/// reaches the subscribers of both instances on every transport, once and
/// in id order; both instances name the same epoch.
#[tokio::test]
async fn two_instances_share_one_chat_on_every_transport() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    let b = spawn_shared(&redis.url()).await;
    assert_eq!(config(&a).await.epoch, config(&b).await.epoch);
    assert_ne!(config(&a).await.instance, config(&b).await.instance);

    let mut subscriptions = Vec::new();
    for transport in Transport::ALL {
        for app in [&a, &b] {
            subscriptions.push((transport, app.client.subscribe(transport, from(0))));
        }
    }
    a.client
        .send("ana", "via A", None, Via::Api)
        .await
        .expect("sent");
    b.client
        .send("bob", "via B", None, Via::Sse)
        .await
        .expect("sent");
    b.client
        .send("cy", "over B's socket", None, Via::Websocket)
        .await
        .expect("sent");
    for (transport, sub) in &mut subscriptions {
        let got = next_messages(sub, 3).await;
        let ids: Vec<u64> = got.iter().map(|m| m.id.0).collect();
        assert_eq!(ids, [1, 2, 3], "{transport}");
        let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["via A", "via B", "over B's socket"], "{transport}");
    }
}

/// A subscriber that leaves instance A and comes back on instance B with
/// its cursor misses nothing and sees nothing twice, on every transport.
#[tokio::test]
async fn a_subscriber_moves_between_instances_without_loss() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    let b = spawn_shared(&redis.url()).await;
    let mut sent = 0;
    for transport in Transport::ALL {
        let mut on_a = a.client.subscribe(transport, from(sent));
        for i in 0..3 {
            a.say("ana", &format!("{transport} {i}")).await;
        }
        let first = next_messages(&mut on_a, 3).await;
        let cursor = on_a.cursor().expect("a cursor");
        drop(on_a);
        for i in 3..6 {
            let via = if i % 2 == 0 { &a } else { &b };
            via.say("bob", &format!("{transport} {i}")).await;
        }
        let mut on_b = b.client.subscribe(transport, from(cursor.0));
        let second = next_messages(&mut on_b, 3).await;
        let ids: Vec<u64> = first.iter().chain(&second).map(|m| m.id.0).collect();
        let expected: Vec<u64> = (sent + 1..=sent + 6).collect();
        assert_eq!(ids, expected, "{transport}");
        sent += 6;
    }
}

/// Senders on both instances at once get ids 1..=N without a gap or a
/// repeat, and subscribers on both instances see the same single order.
#[tokio::test]
async fn concurrent_senders_get_gapless_ids_in_one_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    let b = spawn_shared(&redis.url()).await;
    const SENDERS: usize = 4;
    const EACH: usize = 25;
    let mut watchers = vec![
        a.client.subscribe(Transport::Sse, from(0)),
        b.client.subscribe(Transport::Websocket, from(0)),
        b.client.subscribe(Transport::Stream, from(0)),
    ];
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let client = if s % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let sent = client
                    .send(&format!("s{s}"), &format!("{i}"), None, Via::Api)
                    .await
                    .expect("sent");
                ids.push(sent.message.id.0);
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for id in task.await.expect("sender") {
            assert!(all.insert(id), "id {id} handed out twice");
        }
    }
    let total = (SENDERS * EACH) as u64;
    assert_eq!(all, (1..=total).collect(), "gapless");
    let mut orders = Vec::new();
    for watcher in &mut watchers {
        let got = next_messages(watcher, SENDERS * EACH).await;
        let ids: Vec<u64> = got.iter().map(|m| m.id.0).collect();
        assert_eq!(ids, (1..=total).collect::<Vec<_>>());
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "one order everywhere"
    );
}

/// A retry with the same `client_msg_id` is stored once, whichever instance
/// gets it, and answers the first message's bytes.
#[tokio::test]
async fn idempotent_retries_across_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    let b = spawn_shared(&redis.url()).await;
    let first = a
        .client
        .send("ana", "once", Some("k1"), Via::Api)
        .await
        .expect("sent");
    assert_eq!(first.created, Some(true));
    let again = b
        .client
        .send("ana", "once, retried", Some("k1"), Via::Api)
        .await
        .expect("sent");
    assert_eq!(again.created, Some(false));
    assert_eq!(again.message, first.message);
    let over_socket = b
        .client
        .send("ana", "once more", Some("k1"), Via::Websocket)
        .await
        .expect("sent");
    assert_eq!(over_socket.message, first.message);
    let other = a
        .client
        .send("bob", "once", Some("k1"), Via::Api)
        .await
        .expect("sent");
    assert_eq!(other.message.id.0, 2, "another user's key is another send");
}

/// While Redis is down a send is refused with 503 `store_unavailable` (an
/// error frame on a WebSocket) and nothing is acknowledged; subscribers stay
/// connected, and once Redis is back (from its append-only file) everything
/// acknowledged before and after arrives once, in order.
#[tokio::test]
async fn redis_down_refuses_sends_and_loses_nothing_acknowledged() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    let mut sse = a.client.subscribe(Transport::Sse, from(0));
    let mut ws = a.client.subscribe(Transport::Websocket, from(0));
    for i in 0..5 {
        a.say("ana", &format!("before {i}")).await;
    }
    next_messages(&mut sse, 5).await;
    next_messages(&mut ws, 5).await;

    redis.kill();
    let refused = a
        .http
        .post(a.url("/api/messages"))
        .json(&json!({"user": "ana", "text": "lost?", "via": "api"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "store_unavailable");
    let over_socket = a.client.send("ana", "lost?", None, Via::Websocket).await;
    assert!(
        matches!(&over_socket, Err(chat_client::ClientError::Refused { body, .. }) if body.contains("store_unavailable")),
        "{over_socket:?}"
    );
    assert_eq!(a.counters(Transport::Sse).await.open, 1, "still connected");

    redis.restart();
    eventually("sends are accepted again", || async {
        a.client
            .send("ana", "after 0", None, Via::Api)
            .await
            .is_ok()
    })
    .await;
    for i in 1..5 {
        a.say("ana", &format!("after {i}")).await;
    }
    for sub in [&mut sse, &mut ws] {
        let got = next_messages(sub, 5).await;
        let ids: Vec<u64> = got.iter().map(|m| m.id.0).collect();
        assert_eq!(ids, [6, 7, 8, 9, 10]);
        assert_eq!(got[0].text, "after 0");
    }
    assert_eq!(sse.reconnects(), 0, "the stream was never cut");
}

/// Deleting the log starts a new epoch: a client that names the old epoch
/// is told so (a reset notice) on every transport and served the new log
/// from the start, live connections included; without an epoch the old
/// cursor is simply ahead (400), as before.
#[tokio::test]
async fn a_deleted_log_is_announced_by_a_reset_on_every_transport() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    for i in 0..3 {
        a.say("ana", &format!("old {i}")).await;
    }
    let old = config(&a).await.epoch;
    let addr = a.server.addr;
    let target = |path: &str| format!("{path}?since=3&epoch={old}");

    // Live connections opened in the old epoch.
    let (sse_target, stream_target, ws_target) = (
        target("/sse/events"),
        target("/stream/messages"),
        target("/ws"),
    );
    let mut sse = off_thread(move || {
        let mut s = RawSocket::connect(addr);
        s.send(get(&sse_target, &["accept: text/event-stream"]));
        s.read_head();
        s.read_chunks_until("retry: ");
        s
    })
    .await;
    let mut stream = off_thread(move || {
        let mut s = RawSocket::connect(addr);
        s.send(get(&stream_target, &[]));
        s.read_head();
        s
    })
    .await;
    let mut ws = off_thread(move || ws_handshake(addr, &ws_target, None)).await;

    redis.run(&["FLUSHALL"]);
    eventually("the instance sees the new epoch", || async {
        config(&a).await.epoch != old
    })
    .await;
    let new = config(&a).await.epoch;
    let first = a.say("bob", "new log").await;
    assert_eq!(first.id.0, 1, "ids start again");

    let reset_data = format!(r#"{{"epoch":"{new}"}}"#);
    sse = off_thread(move || {
        let seen = sse.read_chunks_until("new log");
        assert!(
            seen.contains(&format!("event: reset\ndata: {reset_data}\n\n")),
            "{seen}"
        );
        assert!(seen.contains("id: 1\n"), "{seen}");
        sse
    })
    .await;
    let reset_line = format!(r#"{{"type":"reset","epoch":"{new}"}}"#);
    let line = reset_line.clone();
    stream = off_thread(move || {
        let seen = stream.read_chunks_until("new log");
        let reset_at = seen.find(&line).expect("a reset line");
        assert!(
            reset_at < seen.find("new log").expect("the message"),
            "{seen}"
        );
        stream
    })
    .await;
    let frames = off_thread(move || {
        let mut texts = Vec::new();
        while !texts.iter().any(|t: &String| t.contains("new log")) {
            texts.push(ws.read_frame().text().to_owned());
        }
        texts
    })
    .await;
    assert_eq!(frames.first(), Some(&reset_line), "{frames:?}");
    drop((sse, stream));

    // Requests that name the old epoch.
    for path in ["/polling/messages", "/longpoll/messages"] {
        let answer = off_thread({
            let target = target(path);
            move || raw_request(addr, &get(&target, &[]))
        })
        .await;
        assert_eq!(answer.status(), 200, "{path}");
        let page: PageBody = serde_json::from_str(&answer.text()).expect("a page");
        assert!(page.reset, "{path}");
        assert_eq!(page.epoch.as_ref(), Some(&new), "{path}");
        assert_eq!(page.messages.len(), 1, "{path}");
    }
    let no_epoch =
        off_thread(move || raw_request(addr, &get("/polling/messages?since=3", &[]))).await;
    assert_eq!(
        no_epoch.status(),
        400,
        "without an epoch the cursor is ahead"
    );
}

/// The subscriptions of the Rust client keep working across all of it.
#[tokio::test]
async fn a_shared_log_is_read_back_after_a_fresh_instance_starts() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    for i in 0..4 {
        a.say("ana", &format!("{i}")).await;
    }
    let epoch = config(&a).await.epoch;
    a.server.shutdown().await.expect("stops");
    let b = spawn_shared(&redis.url()).await;
    assert_eq!(config(&b).await.epoch, epoch, "same log, same epoch");
    let mut sub = b.client.subscribe(Transport::Polling, from(0));
    let got = next_messages(&mut sub, 4).await;
    assert_eq!(got.iter().map(|m| m.id.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(matches!(
        tokio::time::timeout(std::time::Duration::from_millis(300), sub.next()).await,
        Err(_) | Ok(Ok(Event::Message { .. }))
    ));
    let _ = PATIENCE;
}

/// The restart the issue describes: a client of a server that restarted
/// with an empty store (here: a second in-memory server) comes back with
/// its old cursor and epoch. It is told so (`Event::Reset`) and served the
/// new history from the start, on every transport, instead of the new
/// server's messages under ids it believes it has seen.
#[tokio::test]
async fn a_cursor_from_a_dead_store_is_reset_not_misread() {
    let before = crate::helpers::spawn_app().await;
    for i in 0..5 {
        before.say("ana", &format!("old {i}")).await;
    }
    let old_epoch = config(&before).await.epoch;
    let restarted = crate::helpers::spawn_app().await;
    for i in 0..7 {
        restarted.say("bob", &format!("new {i}")).await;
    }
    for transport in Transport::ALL {
        let mut sub = restarted.client.subscribe(
            transport,
            Options {
                epoch: Some(old_epoch.clone()),
                ..from(5)
            },
        );
        let first = crate::helpers::next_event(&mut sub).await;
        assert!(
            matches!(&first, Event::Reset { epoch } if *epoch != old_epoch),
            "{transport}: {first:?}"
        );
        let got = next_messages(&mut sub, 7).await;
        assert_eq!(
            got.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            (1..=7).collect::<Vec<_>>(),
            "{transport}"
        );
        assert!(got.iter().all(|m| m.text.starts_with("new")), "{transport}");
        assert_eq!(sub.epoch(), Some(config(&restarted).await.epoch));
    }
}

/// A live subscription of the Rust client, on every transport, when the
/// shared log is deleted: a reset event, then the new log from id 1.
#[tokio::test]
async fn live_subscriptions_report_a_deleted_log_and_carry_on() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    a.say("ana", "old").await;
    let mut subs = Vec::new();
    for transport in Transport::ALL {
        let mut sub = a.client.subscribe(transport, from(0));
        next_messages(&mut sub, 1).await;
        subs.push((transport, sub));
    }
    let old = config(&a).await.epoch;
    redis.run(&["FLUSHALL"]);
    eventually("the instance sees the new epoch", || async {
        config(&a).await.epoch != old
    })
    .await;
    a.say("bob", "new").await;
    for (transport, sub) in &mut subs {
        let event = crate::helpers::next_event(sub).await;
        assert!(
            matches!(event, Event::Reset { .. }),
            "{transport}: {event:?}"
        );
        let got = next_messages(sub, 1).await;
        assert_eq!(
            (got[0].id.0, got[0].text.as_str()),
            (1, "new"),
            "{transport}"
        );
    }
}
