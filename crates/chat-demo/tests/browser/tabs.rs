//! The six-connection limit, reproduced and lifted: eight tabs of the page
//! in one Chromium, over plain HTTP/1.1 and then over HTTP/2 (`--tls`).
//!
//! Over HTTP/1.1 Chromium opens at most six connections to one server for
//! all its tabs together, and each tab holds three for as long as it is
//! open (long poll, SSE, streaming fetch; the WebSockets have a pool of
//! their own). What cannot get a connection waits without failing: a pane
//! says "waiting for a connection" after five seconds (`web/pane-lines.js`),
//! a tab whose page cannot even be fetched stays blank. Over HTTP/2 every
//! request of every tab is a stream on one connection, and all eight tabs
//! connect all their panes.
//!
//! Run with `--nocapture` to see the table of what each tab showed.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chat_protocol::Transport;
use chromiumoxide::Page;
use chromiumoxide::browser::Browser;

use crate::helpers::{PATIENCE, TestApp, spawn_app};
use crate::page::{PANES, js_string, launch};

/// Tabs opened, one after the other.
const TABS: usize = 8;
/// Between one tab and the next, as a person opening them would.
const TAB_PACE: Duration = Duration::from_millis(500);

/// What a tab shows: `None` while it has no page (its document was never
/// fetched), else each pane's state badge, in page order.
async fn tab_state(page: &Page) -> Option<Vec<String>> {
    let expression = "document.querySelector('.pane') === null ? null : \
         [...document.querySelectorAll('.pane')].map(p => \
           p.dataset.transport + '=' + p.querySelector('[data-stat=state]').textContent.trim())";
    page.evaluate(expression)
        .await
        .ok()
        .and_then(|r| r.into_value::<Option<Vec<String>>>().ok())
        .flatten()
}

/// Opens [`TABS`] tabs on `url`, [`TAB_PACE`] apart, without waiting for
/// any of them to load (a tab whose page is queued would never finish).
async fn open_tabs(browser: &Browser, url: &str) -> Vec<Page> {
    let mut tabs = Vec::new();
    for _ in 0..TABS {
        let page = browser.new_page("about:blank").await.expect("a tab");
        page.evaluate(format!("location.href = {}", js_string(url)))
            .await
            .expect("navigation starts");
        tabs.push(page);
        tokio::time::sleep(TAB_PACE).await;
    }
    tabs
}

/// One line per tab: its number and what it shows.
fn report(label: &str, states: &[Option<Vec<String>>]) -> String {
    let mut lines = vec![format!("{label}:")];
    for (i, state) in states.iter().enumerate() {
        let shown = match state {
            None => "no page (its document is still queued)".to_owned(),
            Some(panes) => panes.join(", "),
        };
        lines.push(format!("  tab {}: {shown}", i + 1));
    }
    lines.join("\n")
}

/// The demo server with `--tls` (a certificate made at start) and
/// Chromium's flag that trusts its key.
async fn spawn_tls_app() -> (TestApp, String) {
    let config = chat_http::Config {
        tls: true,
        workers: 2,
        ..chat_http::Config::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(
        listener,
        chat_http::AppState::new(config),
        &chat_demo::mounts(chat_demo::Settings::default()),
    )
    .expect("server starts");
    let pin = server
        .tls
        .as_ref()
        .and_then(|tls| tls.spki_pin())
        .expect("a made certificate has a pin")
        .to_owned();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let app = TestApp {
        client: chat_client::Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    };
    (app, format!("--ignore-certificate-errors-spki-list={pin}"))
}

/// Polls `expression` in `tab` until it is true, at most [`PATIENCE`].
async fn wait_in(tab: &Page, what: &str, expression: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let holds = tab
            .evaluate(expression)
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok());
        if holds == Some(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}; the tab shows {:?}",
            tab_state(tab).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every pane connected (the page's own mark).
const READY: &str = "document.body?.dataset.ready === 'true'";

/// Panes of all tabs that show `state`.
fn count(states: &[Option<Vec<String>>], state: &str) -> usize {
    let suffix = format!("={state}");
    states
        .iter()
        .flatten()
        .flatten()
        .filter(|pane| pane.ends_with(&suffix))
        .count()
}

/// Eight tabs over HTTP/1.1: the first two take the six connections (a
/// long poll, an SSE stream and a streaming fetch each), the other six
/// cannot even fetch the page, and a pane of tab 1 that reconnects waits,
/// and says so. The same eight tabs over HTTP/2 connect every pane, on one
/// connection, with each WebSocket on an HTTP/1.1 connection of its own.
#[tokio::test]
async fn eight_tabs_wait_for_connections_over_http1_but_not_over_http2() {
    // HTTP/1.1: six connections for all tabs.
    let app = spawn_app().await;
    let Some((mut browser, _profile)) = launch(&[]).await else {
        return;
    };
    let tabs = open_tabs(&browser, &app.url("/")).await;
    wait_in(&tabs[1], "tab 2 connects every pane", READY).await;
    // Tab 1's polling pane, disconnected and connected again, finds no
    // free connection: its first poll is queued behind the held ones.
    let toggle = "document.querySelector('.pane[data-transport=polling] \
                  [data-action=toggle-connection]').click()";
    for _ in 0..2 {
        tabs[0].evaluate(toggle).await.expect("toggle");
    }
    wait_in(
        &tabs[0],
        "tab 1's polling pane says it is waiting for a connection",
        "document.querySelector('.pane[data-transport=polling]').dataset.waiting === 'true'",
    )
    .await;
    let mut h1 = Vec::new();
    for tab in &tabs {
        h1.push(tab_state(tab).await);
    }
    let open = app.server.state.stats.snapshot();
    eprintln!("{}", report("HTTP/1.1, eight tabs", &h1));
    eprintln!(
        "  held by the server: {} long polls, {} SSE streams, {} HTTP streams, {} WebSockets",
        open.of(Transport::Longpoll).open,
        open.of(Transport::Sse).open,
        open.of(Transport::Stream).open,
        open.of(Transport::Websocket).open,
    );
    assert!(count(&h1, "connected") < TABS * PANES.len());
    // (The waiting mark was awaited above; a connection freed since, as a
    // long poll answers, may have let that poll through by now.)
    let blank = h1.iter().filter(|tab| tab.is_none()).count();
    assert!(blank > 0, "some tab could not even fetch the page");
    let _ = browser.close().await;
    let _ = browser.wait().await;

    // HTTP/2: one connection, a stream per request.
    let (app, trust) = spawn_tls_app().await;
    let Some((mut browser, _profile)) = launch(&[trust]).await else {
        return;
    };
    let tabs = open_tabs(&browser, &app.url("/")).await;
    for (i, tab) in tabs.iter().enumerate() {
        wait_in(
            tab,
            &format!("over HTTP/2 tab {} connects every pane", i + 1),
            READY,
        )
        .await;
    }
    for _ in 0..2 {
        tabs[0].evaluate(toggle).await.expect("toggle");
    }
    wait_in(
        &tabs[0],
        "tab 1's polling pane connects again",
        "document.querySelector('.pane[data-transport=polling] [data-stat=state]')\
         .dataset.state === 'connected'",
    )
    .await;
    let mut h2 = Vec::new();
    for tab in &tabs {
        h2.push(tab_state(tab).await);
    }
    let tls = app.server.state.stats.tls.snapshot().tls;
    let sockets = app
        .server
        .state
        .stats
        .of(Transport::Websocket)
        .open
        .load(Relaxed);
    eprintln!("{}", report("HTTP/2, eight tabs", &h2));
    eprintln!(
        "  TLS connections: {}, of which HTTP/2: {}; WebSockets open: {sockets}",
        tls.connections, tls.h2_connections
    );
    assert_eq!(
        count(&h2, "connected"),
        TABS * PANES.len(),
        "every pane of every tab"
    );
    // One in every run so far; a browser may open a spare one ahead of
    // need, so only "HTTP/2 at all" is asserted.
    assert!(tls.h2_connections >= 1, "HTTP/2 for the tabs");
    assert_eq!(
        sockets,
        2 * TABS as u64,
        "a WebSocket and an Automatic pane per tab"
    );
    // Every HTTP/1.1 TLS connection is a WebSocket's: the page's requests
    // all went over HTTP/2.
    assert_eq!(
        tls.connections - tls.h2_connections,
        sockets,
        "every WebSocket on a TLS connection of its own (HTTP/1.1)"
    );
    let _ = browser.close().await;
    let _ = browser.wait().await;
}
