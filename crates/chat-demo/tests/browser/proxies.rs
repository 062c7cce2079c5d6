//! The page through the three real nginx setups of `tests/support/nginx.rs`
//! (`docs/nginx-proxy-*.conf`), as issue 10 asks of every client: set up
//! right, every pane works and Automatic takes WebSocket; without the
//! upgrade, the WebSocket pane cannot connect and Automatic lands on SSE;
//! compressing everything, the SSE and streaming panes get nothing and
//! Automatic lands on long polling. In each, a message sent from every
//! pane that can send reaches the Automatic pane exactly once.
//!
//! Each test prints how long Automatic took to settle (`[page auto] …`,
//! shown with `--nocapture`): from the page starting to load to the moment
//! it got on the transport it stays on. One message is stored before the
//! page loads, so that every transport Automatic tries owes it data at once
//! (on an empty chat it would take a transport on probation when it opens;
//! `automatic_falls_back_behind_a_bad_proxy` covers that path).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;
use crate::nginx::{Nginx, Setup};
use crate::page::{PANES, Session, open_page_at};

/// The page through nginx with `setup`, once Automatic is on `expected` and
/// trying nothing else; `None` when nginx or Chromium is missing and the
/// test is skipped. The nginx is returned so that it outlives the page.
async fn through(setup: Setup, expected: &str) -> Option<(Session, Nginx)> {
    let (session, nginx) = open_through(setup).await?;
    settled(&session, setup, expected).await;
    Some((session, nginx))
}

/// The page through nginx with `setup`, as soon as its panes are there.
async fn open_through(setup: Setup) -> Option<(Session, Nginx)> {
    let app = spawn_app().await;
    app.say("bea", "before the page").await;
    let nginx = Nginx::start(setup, app.server.addr).await?;
    let session = open_page_at(
        app,
        &nginx.url("/"),
        "six panes",
        "document.querySelectorAll('.pane').length === 6",
    )
    .await?;
    Some((session, nginx))
}

/// Waits until Automatic is on `expected` and prints how long it took.
async fn settled(session: &Session, setup: Setup, expected: &str) {
    let settled = session.auto_settles_on(expected).await;
    let left = session.auto_left().await;
    eprintln!(
        "[page auto] {setup}: on {expected} {settled} ms after the page started loading; left {left:?}"
    );
}

/// The status line nginx answers a browser's WebSocket upgrade with (one
/// that names the page's origin, as every browser does).
async fn upgrade_status(nginx: &Nginx) -> String {
    let mut socket = TcpStream::connect(nginx.addr).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nhost: {addr}\r\norigin: http://{addr}\r\n\
         connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        addr = nginx.addr
    );
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut head = vec![0u8; 64];
    let n = socket.read(&mut head).await.expect("an answer");
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Sends one message from each of `senders` (each shown in the Automatic
/// pane before the next goes), then checks that the Automatic pane shows
/// every message stored, the one from before the page included, once each
/// and in order, and that each of `receivers` shows every sent one once.
async fn every_pane_reaches_automatic(
    session: &Session,
    setup: Setup,
    senders: &[&str],
    receivers: &[&str],
) {
    let mut texts = Vec::new();
    for sender in senders {
        let text = format!("from the {sender} pane through {setup}");
        session.send_from(sender, &text).await;
        session.wait_once("auto", std::slice::from_ref(&text)).await;
        texts.push(text);
    }
    let ids = session.ids("auto").await;
    let expected: Vec<u64> = (1..=1 + senders.len() as u64).collect();
    assert_eq!(ids, expected, "{setup}: every message once, in order");
    for pane in receivers {
        session.wait_once(pane, &texts).await;
    }
}

/// Set up as live updates need: every pane connects, Automatic takes
/// WebSocket and leaves nothing, and a message from each of the six panes
/// reaches the Automatic pane once.
#[tokio::test]
async fn through_nginx_set_up_right_every_pane_works() {
    let Some((session, nginx)) = open_through(Setup::Correct).await else {
        return;
    };
    let status = upgrade_status(&nginx).await;
    assert!(
        status.starts_with("HTTP/1.1 101"),
        "a browser's WebSocket upgrade through docs/nginx-proxy-correct.conf is answered \
         {status:?}: nginx sends the upstream's name as Host, so the server's origin check \
         takes the page for another site's (403 cross_origin). The configuration needs \
         `proxy_set_header Host $http_host;`, as docs/nginx-balancer.conf has."
    );
    settled(&session, Setup::Correct, "websocket").await;
    session
        .wait_for(
            "every pane connected",
            "document.body.dataset.ready === 'true'",
        )
        .await;
    let left = session.auto_left().await;
    assert!(left.is_empty(), "Automatic left nothing: {left:?}");
    every_pane_reaches_automatic(&session, Setup::Correct, &PANES, &PANES).await;
    session.close().await;
}

/// Without the upgrade forwarded: the WebSocket pane says it cannot
/// connect, Automatic leaves WebSocket (refused) for SSE, and a message
/// from every other pane reaches it once.
#[tokio::test]
async fn through_nginx_without_upgrades_automatic_takes_sse() {
    let Some((session, _nginx)) = through(Setup::NoUpgrade, "sse").await else {
        return;
    };
    let left = session.auto_left().await;
    assert_eq!(left, [("websocket".to_owned(), "refused".to_owned())]);
    session
        .wait_for(
            "the WebSocket pane says it cannot connect",
            "(p => !p.querySelector('[data-problem]').hidden \
                 && /Cannot connect/.test(p.querySelector('[data-problem]').textContent))\
             (document.querySelector('.pane[data-transport=websocket]'))",
        )
        .await;
    assert_ne!(session.state("websocket").await, "connected");
    let working = ["polling", "longpoll", "sse", "stream", "auto"];
    for pane in working {
        session
            .wait_for(
                &format!("{pane} connected"),
                &format!(
                    "document.querySelector('.pane[data-transport={pane}] [data-stat=state]')\
                     .textContent.trim() === 'connected'"
                ),
            )
            .await;
    }
    every_pane_reaches_automatic(&session, Setup::NoUpgrade, &working, &working).await;
    let ids = session.ids("websocket").await;
    assert!(ids.is_empty(), "nothing came by WebSocket: {ids:?}");
    session.close().await;
}

/// Compressing everything (and no upgrades): nothing the SSE and streaming
/// panes wait for arrives, Automatic leaves WebSocket (refused), SSE and
/// streaming (silent) for long polling, and a message from every pane that
/// can send (SSE's and streaming's send by POST, which is answered) reaches
/// it once.
#[tokio::test]
async fn through_a_compressing_nginx_automatic_takes_long_polling() {
    let Some((session, _nginx)) = through(Setup::Compressing, "longpoll").await else {
        return;
    };
    let left = session.auto_left().await;
    let expected = [
        ("websocket", "refused"),
        ("sse", "silent"),
        ("stream", "silent"),
    ]
    .map(|(t, r)| (t.to_owned(), r.to_owned()));
    assert_eq!(left, expected);
    let senders = ["polling", "longpoll", "sse", "stream", "auto"];
    every_pane_reaches_automatic(
        &session,
        Setup::Compressing,
        &senders,
        &["polling", "longpoll"],
    )
    .await;
    for pane in ["sse", "stream"] {
        let ids = session.ids(pane).await;
        assert!(
            ids.is_empty(),
            "{pane}: the proxy holds its stream back: {ids:?}"
        );
    }
    session.close().await;
}
