//! The side-by-side page in a real browser: headless Chromium (Debian's
//! `chromium`), driven over the DevTools protocol with `chromiumoxide`,
//! against a real demo server on a loopback port.
//!
//! The browser is looked up at `CHROMIUM` if that variable is set (a path
//! to the binary), else at Debian's and Ubuntu's usual places. Without one
//! these tests fail, saying how to install it (`apt-get install chromium`).
//! With `CHAT_SKIP_BROWSER=1` they are skipped instead, and say so loudly on
//! stderr; under `CI=true` a missing browser always fails, skip or not.
//! `CHAT_SCREENSHOT=path.png` makes `counters_move` also save a screenshot
//! of the page in use (that is how `docs/screenshot.png` is made).
//!
//! The Automatic pane is tested on a direct connection (it must settle on
//! WebSocket), behind [`bad_proxy`] (a proxy that strips the WebSocket
//! upgrade and holds back never-ending responses: it must fall back to long
//! polling, saying why it left each better transport), and behind the three
//! real nginx setups of `tests/support/nginx.rs` (`browser/proxies.rs`).
//! `browser/scale.rs` runs the page against instances that share a Redis
//! log: a deleted log (a new epoch) and a round-robin balancer.
//!
//! `browser/installed.rs` copies a release build into an empty folder and
//! loads the page from it. `browser/tabs.rs` opens eight tabs over
//! HTTP/1.1 and over HTTP/2 (`--tls`): the six-connection limit. The browser half (finding Chromium, opening the
//! page, reading it) is in `browser/page.rs`.

#[allow(dead_code)]
#[path = "suite/helpers.rs"]
mod helpers;
#[path = "support/nginx.rs"]
mod nginx;
#[allow(dead_code)]
#[path = "support/redis.rs"]
mod redis_server;

#[path = "browser/bad_proxy.rs"]
mod bad_proxy;
#[path = "browser/installed.rs"]
mod installed;
#[path = "browser/page.rs"]
mod page;
#[path = "browser/presence.rs"]
mod presence;
#[path = "browser/proxies.rs"]
mod proxies;
#[path = "browser/scale.rs"]
mod scale;
#[path = "browser/tabs.rs"]
mod tabs;

use std::net::SocketAddr;
use std::time::Duration;

use chromiumoxide::page::ScreenshotParams;

use bad_proxy::bad_proxy;
use helpers::{PATIENCE, TestApp, spawn_app};
use page::{PANES, js_string, open_page, open_page_at, open_page_on};

/// The page loads with six panes, each connected, in order, and the
/// Automatic pane, on a direct connection, settles on WebSocket without
/// giving anything up.
#[tokio::test]
async fn page_loads_with_six_connected_panes() {
    let Some(session) = open_page().await else {
        return;
    };
    let panes: Vec<String> = session
        .js("[...document.querySelectorAll('.pane')].map(p => p.dataset.transport)")
        .await;
    assert_eq!(panes, PANES);
    for pane in PANES {
        let state: String = session
            .js(&format!(
                "document.querySelector('.pane[data-transport={pane}] [data-stat=state]').textContent.trim()"
            ))
            .await;
        assert_eq!(state, "connected", "{pane}");
    }
    let now: String = session
        .js("document.querySelector('.pane[data-transport=auto]').dataset.transportNow")
        .await;
    assert_eq!(now, "websocket", "Automatic on a direct connection");
    let left: u32 = session
        .js("document.querySelectorAll('.pane[data-transport=auto] [data-left]').length")
        .await;
    assert_eq!(left, 0, "Automatic gave nothing up");
    session.close().await;
}

/// A transport's own server serves the same page with only its pane: no
/// Automatic pane (nothing to choose from) and no comparison strip.
#[tokio::test]
async fn a_transport_server_shows_only_its_pane() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = chat_http::start(
        listener,
        chat_http::AppState::new(chat_http::Config::default()),
        &[chat_sse::mount(chat_sse::Settings::default())],
    )
    .expect("starts");
    let base = format!("http://{}", server.addr);
    let app = TestApp {
        client: chat_client::Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    };
    let Some(session) = open_page_on(app).await else {
        return;
    };
    let panes: Vec<String> = session
        .js("[...document.querySelectorAll('.pane')].map(p => p.dataset.transport)")
        .await;
    assert_eq!(panes, ["sse"]);
    let strip_hidden: bool = session
        .js("document.getElementById('compare').hidden")
        .await;
    assert!(strip_hidden, "one pane has nothing to compare");
    session.send_from("sse", "alone").await;
    session
        .wait_for(
            "the message shows",
            "[...document.querySelectorAll('.pane ol.messages li[data-id] .text')].some(t => t.textContent === 'alone')",
        )
        .await;
    session.close().await;
}

/// A message typed into each pane, the Automatic one included, appears once
/// in all six, marked with the transport that sent it.
#[tokio::test]
async fn a_message_from_each_pane_appears_once_in_all() {
    let Some(session) = open_page().await else {
        return;
    };
    for sender in PANES {
        let text = format!("hello from the {sender} pane");
        session.send_from(sender, &text).await;
        session.every_pane_shows_once(sender, &text).await;
    }
    let stored = session.app.server.state.store.stats().last_id;
    assert_eq!(stored, 6, "one message per pane, no duplicates stored");
    session.close().await;
}

/// Hostile text is shown as text and runs nothing.
#[tokio::test]
async fn hostile_text_is_shown_as_text_and_runs_nothing() {
    let Some(session) = open_page().await else {
        return;
    };
    let hostile = [
        "<img src=x onerror=\"window.__pwned = 'img'\">",
        "<script>window.__pwned = 'script'</script>",
        "<b onmouseover=\"window.__pwned = 'b'\">bold?</b>",
    ];
    for text in hostile {
        session.app.say("mallory", text).await;
    }
    for pane in PANES {
        session
            .wait_for(
                &format!("{pane} shows the three messages"),
                &format!(
                    "document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]').length >= 3"
                ),
            )
            .await;
        let texts: Vec<String> = session
            .js(&format!(
                "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id] .text')]\
                 .map(t => t.textContent)"
            ))
            .await;
        for text in hostile {
            assert!(
                texts.iter().any(|t| t == text),
                "{pane} shows {text:?} as text"
            );
        }
    }
    let injected: u32 = session
        .js("document.querySelectorAll('ol.messages img, ol.messages script, ol.messages b').length")
        .await;
    assert_eq!(injected, 0, "no element was made from user text");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pwned: bool = session.js("window.__pwned !== undefined").await;
    assert!(!pwned, "no user text ran");
    session.close().await;
}

/// Each pane, disconnected and reconnected while messages flow, ends with
/// every message once, in order.
#[tokio::test]
async fn a_pane_reconnects_without_loss_or_duplicates() {
    let Some(session) = open_page().await else {
        return;
    };
    let mut total = 0u64;
    for pane in PANES {
        let toggle = format!(".pane[data-transport={pane}] button[data-action=toggle-connection]");
        session
            .js::<bool>(&format!(
                "(document.querySelector('{toggle}').click(), true)"
            ))
            .await;
        session
            .wait_for(
                &format!("{pane} disconnected"),
                &format!(
                    "document.querySelector('.pane[data-transport={pane}] [data-stat=state]').textContent.trim() === 'disconnected'"
                ),
            )
            .await;
        for i in 0..15 {
            session.app.say("flow", &format!("{pane} gap {i}")).await;
        }
        session
            .js::<bool>(&format!(
                "(document.querySelector('{toggle}').click(), true)"
            ))
            .await;
        for i in 0..15 {
            session.app.say("flow", &format!("{pane} after {i}")).await;
        }
        total += 30;
        for shown in PANES {
            let expected: Vec<u64> = (1..=total).collect();
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let ids = session.ids(shown).await;
                if ids == expected {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{shown} after {pane} reconnected: {ids:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    session.close().await;
}

/// The counters in every pane move as messages flow: received, requests,
/// bytes per message from the server, latency.
#[tokio::test]
async fn counters_move() {
    let Some(session) = open_page().await else {
        return;
    };
    for i in 0..10 {
        session
            .app
            .say(
                "ana",
                &format!("message {i} from a script, through the API"),
            )
            .await;
    }
    for pane in PANES {
        session
            .send_from(pane, &format!("hello from the {pane} pane"))
            .await;
    }
    for pane in PANES {
        let stat = |name: &str| {
            format!(
                "document.querySelector('.pane[data-transport={pane}] [data-stat={name}]').textContent.trim()"
            )
        };
        session
            .wait_for(
                &format!("{pane} counts 10 received"),
                &format!("parseInt({}) >= 10", stat("received")),
            )
            .await;
        session
            .wait_for(
                &format!("{pane} shows bytes per message"),
                &format!("/\\d/.test({})", stat("bytes_per_msg")),
            )
            .await;
        session
            .wait_for(
                &format!("{pane} shows a latency"),
                &format!("/\\d/.test({})", stat("p50")),
            )
            .await;
        session
            .wait_for(
                &format!("{pane} counts requests"),
                &format!("parseInt({}) >= 1", stat("requests")),
            )
            .await;
    }
    if let Ok(path) = std::env::var("CHAT_SCREENSHOT") {
        // Let the charts' bars finish their transition.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        session
            .page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
            .await
            .expect("screenshot");
    }
    session.close().await;
}

/// The strip on top compares the panes: three charts with one bar per pane,
/// empty before anything was delivered, and growing and changing as
/// messages flow.
#[tokio::test]
async fn the_comparison_strip_bars_move() {
    let Some(session) = open_page().await else {
        return;
    };
    const METRICS: [&str; 3] = ["bytes_per_msg", "requests_per_msg", "p50"];
    let rows = |metric: &str| {
        format!("[...document.querySelectorAll('#compare [data-metric={metric}] .bar-row')]")
    };
    for metric in METRICS {
        let order: Vec<String> = session
            .js(&format!("{}.map(r => r.dataset.transport)", rows(metric)))
            .await;
        assert_eq!(order, PANES, "{metric}: one bar per pane, in page order");
    }
    let before: Vec<String> = session
        .js(&format!("{}.map(r => r.dataset.value)", rows("p50")))
        .await;
    assert!(
        before.iter().all(String::is_empty),
        "no latency before any live message: {before:?}"
    );
    for i in 0..5 {
        session.app.say("ana", &format!("chart {i}")).await;
    }
    for metric in METRICS {
        session
            .wait_for(
                &format!("every {metric} bar has a value and a width"),
                &format!(
                    "{}.every(r => r.dataset.value !== '' \
                        && r.querySelector('.bar').getBoundingClientRect().width > 0 \
                        && /\\d/.test(r.querySelector('.bar-value').textContent))",
                    rows(metric)
                ),
            )
            .await;
    }
    // Polling keeps asking while nothing happens: its requests per message
    // climb, and the bars follow.
    let polling = |metric: &str| {
        format!(
            "document.querySelector('#compare [data-metric={metric}] .bar-row[data-transport=polling]').dataset.value"
        )
    };
    let first: String = session.js(&polling("requests_per_msg")).await;
    session
        .wait_for(
            "polling's requests per message move",
            &format!("{} !== {}", polling("requests_per_msg"), js_string(&first)),
        )
        .await;
    session.close().await;
}

/// Behind a proxy that strips the WebSocket upgrade and holds back
/// never-ending responses, the Automatic pane ends on long polling: the
/// upgrade is refused; SSE, taken when it opened on an empty chat, is given
/// up once a message it should have carried does not come; streaming,
/// tried once the chat has a message, delivers nothing. The message sent
/// meanwhile shows once. A reload starts on long polling, remembered for the
/// tab's session.
#[tokio::test]
async fn automatic_falls_back_behind_a_bad_proxy() {
    let app = spawn_app().await;
    let upstream: SocketAddr = app.server.addr;
    let proxy = bad_proxy(upstream).await;
    let now = "document.querySelector('.pane[data-transport=auto]').dataset.transportNow";
    let left = |transport: &str| {
        format!(
            "document.querySelector('.pane[data-transport=auto] [data-left][data-transport={transport}]')?.dataset.reason"
        )
    };
    let Some(session) = open_page_at(
        app,
        &format!("http://{proxy}/"),
        "Automatic on SSE, taken as it opened on an empty chat",
        &format!("{now} === 'sse'"),
    )
    .await
    else {
        return;
    };
    let reason: String = session.js(&left("websocket")).await;
    assert_eq!(reason, "refused", "the stripped upgrade");

    session.send_from("auto", "through a bad proxy").await;
    session
        .wait_for(
            "Automatic on long polling",
            &format!("{now} === 'longpoll'"),
        )
        .await;
    let reasons: Vec<(String, String)> = session
        .js(
            "[...document.querySelectorAll('.pane[data-transport=auto] [data-left]')]\
             .map(li => [li.dataset.transport, li.dataset.reason])",
        )
        .await;
    let expected = [
        ("websocket", "refused"),
        ("sse", "silent"),
        ("stream", "silent"),
    ]
    .map(|(t, r)| (t.to_owned(), r.to_owned()));
    assert_eq!(reasons, expected);
    session
        .wait_for(
            "the message shows once, sent through SSE's POST",
            "[...document.querySelectorAll('.pane[data-transport=auto] ol.messages li[data-id]')]\
             .filter(li => li.querySelector('.text').textContent === 'through a bad proxy' \
                      && li.dataset.via === 'sse').length === 1",
        )
        .await;
    let ids = session.ids("auto").await;
    assert_eq!(ids, [1]);

    session.js::<bool>("(location.reload(), true)").await;
    session
        .wait_for(
            "after a reload, Automatic starts on long polling",
            &format!(
                "document.readyState === 'complete' && {now} === 'longpoll' \
                 && document.querySelectorAll('.pane[data-transport=auto] [data-left]').length === 0"
            ),
        )
        .await;
    session.close().await;
}
