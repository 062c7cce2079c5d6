//! The page against instances that share one Redis log (`--store
//! redis://…`, a real `redis-server` each test starts): a deleted log, which
//! starts a new epoch, and a round-robin load balancer in front of two
//! instances (nginx with `docs/nginx-balancer.conf`).

use std::collections::BTreeSet;

use crate::helpers::{TestApp, eventually, spawn_shared};
use crate::nginx::Nginx;
use crate::page::{PANES, js_string, open_page_at, open_page_on};
use crate::redis_server::RedisServer;

/// The store's epoch, as `GET /api/config` names it.
async fn epoch(app: &TestApp) -> String {
    let config: serde_json::Value = app
        .http
        .get(app.url("/api/config"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    config["epoch"].as_str().expect("an epoch").to_owned()
}

/// The page open on an instance whose log is deleted (FLUSHALL), as a
/// restart with an empty store would do: every pane, the Automatic one
/// included, clears its list, says that the history started again under the
/// new epoch, and shows the one message sent since, as id 1, once.
#[tokio::test]
async fn a_deleted_log_starts_every_pane_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(session) = open_page_on(spawn_shared(&redis.url()).await).await else {
        return;
    };
    for i in 0..3 {
        session.app.say("ana", &format!("old {i}")).await;
    }
    for pane in PANES {
        session
            .wait_for(
                &format!("{pane} shows the three old messages"),
                &format!(
                    "document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]').length === 3"
                ),
            )
            .await;
    }
    let old = epoch(&session.app).await;
    redis.run(&["FLUSHALL"]);
    eventually("the instance sees the new epoch", || async {
        epoch(&session.app).await != old
    })
    .await;
    let new = epoch(&session.app).await;
    let first = session.app.say("bob", "the first of the new log").await;
    assert_eq!(first.id.0, 1, "ids start again");

    let notice = format!("the server's history started again (new epoch {new})");
    for pane in PANES {
        session
            .wait_for(
                &format!("{pane} shows one reset notice, then message 1 alone"),
                &format!(
                    "(p => {{ \
                        const notices = [...p.querySelectorAll('ol.messages li[data-notice=reset]')]; \
                        const ids = [...p.querySelectorAll('ol.messages li[data-id]')].map(li => li.dataset.id); \
                        return notices.length === 1 \
                            && notices[0].textContent.toLowerCase().includes({notice}) \
                            && ids.join() === '1' \
                            && p.querySelector('li[data-id] .text').textContent === 'the first of the new log'; \
                     }})(document.querySelector('.pane[data-transport={pane}]'))",
                    notice = js_string(&notice.to_lowercase()),
                ),
            )
            .await;
    }
    // The panes carry on in the new epoch: no second reset, no repeat.
    session.app.say("bob", "the second").await;
    for pane in PANES {
        session
            .wait_for(
                &format!("{pane} shows message 2"),
                &format!(
                    "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]')]\
                     .map(li => li.dataset.id).join() === '1,2'"
                ),
            )
            .await;
        let resets: u32 = session
            .js(&format!(
                "document.querySelectorAll('.pane[data-transport={pane}] li[data-notice=reset]').length"
            ))
            .await;
        assert_eq!(resets, 1, "{pane}: one reset");
    }
    session.close().await;
}

/// The page through nginx balancing two instances round robin, without
/// sticky sessions: every pane connects, Automatic takes WebSocket, a
/// message from each pane appears once in all six, and the panes show that
/// both instances answered them (SSE and WebSocket say theirs is hidden
/// from the browser).
#[tokio::test]
async fn the_page_works_through_a_round_robin_balancer() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_shared(&redis.url()).await;
    let b = spawn_shared(&redis.url()).await;
    let instances: BTreeSet<String> = [&a, &b]
        .map(|app| app.server.state.instance.to_string())
        .into();
    let Some(nginx) = Nginx::start_balancer(a.server.addr, b.server.addr).await else {
        return;
    };
    let Some(session) = open_page_at(
        a,
        &nginx.url("/"),
        "every pane connected",
        "document.body.dataset.ready === 'true'",
    )
    .await
    else {
        return;
    };
    session.auto_settles_on("websocket").await;
    for sender in PANES {
        let text = format!("hello from the {sender} pane, through the balancer");
        session.send_from(sender, &text).await;
        session.every_pane_shows_once(sender, &text).await;
    }
    for pane in PANES {
        let ids = session.ids(pane).await;
        assert_eq!(ids, [1, 2, 3, 4, 5, 6], "{pane}");
    }
    let shown: Vec<(String, String, String)> = session
        .js(
            "[...document.querySelectorAll('.pane')].map(p => [p.dataset.transport, \
             p.dataset.instance ?? '', p.dataset.instanceReceive ?? ''])",
        )
        .await;
    let named: BTreeSet<String> = shown
        .iter()
        .filter(|(_, instance, _)| !instance.is_empty())
        .map(|(_, instance, _)| instance.clone())
        .collect();
    assert!(named.is_subset(&instances), "{shown:?} vs {instances:?}");
    assert_eq!(named.len(), 2, "both instances shown: {shown:?}");
    let lines: Vec<String> = session
        .js("[...document.querySelectorAll('[data-instance-line]')].map(e => e.textContent)")
        .await;
    eprintln!("[page instances] {lines:?}");
    for (pane, _, receive) in &shown {
        let hidden = matches!(pane.as_str(), "sse" | "websocket" | "auto");
        assert_eq!(receive == "hidden", hidden, "{pane}: {shown:?}");
    }
    session.close().await;
    drop((b, nginx, redis));
}
