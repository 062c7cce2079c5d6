//! The Rust client's automatic choice (`Client::subscribe_auto`): straight
//! to the server, to a server without WebSocket, behind a relay that starts
//! refusing upgrades and then stops, and behind three real nginx setups
//! (`docs/nginx-proxy-*.conf`, started by `tests/support/nginx.rs`).
//!
//! Each proxy test prints how long Auto took to settle (`[auto] …` lines,
//! shown with `--nocapture`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use chat_client::{Client, Cursor, Event, Message, Options, Subscription, Transport, Via};
use chat_demo::Settings;
use chat_http::{AppState, Config};

use crate::helpers::{PATIENCE, TestApp, next_event, next_messages, spawn_app};

#[path = "../support/nginx.rs"]
mod nginx;

use nginx::{Nginx, Setup};

/// Auto resuming after `since`, polling fast so the suite does not wait out
/// intervals.
fn auto_options(since: Option<Cursor>) -> Options {
    Options {
        since,
        poll_interval: Duration::from_millis(50),
        ..Options::default()
    }
}

/// Lets Auto choose, at most [`PATIENCE`], and returns what it chose and
/// how long that took.
async fn settle(sub: &mut Subscription) -> (Transport, Duration) {
    let started = Instant::now();
    let chosen = tokio::time::timeout(PATIENCE, sub.settle())
        .await
        .expect("Auto chooses within the patience")
        .expect("Auto chooses a transport");
    (chosen, started.elapsed())
}

/// The transports Auto gave up, in its order.
fn given_up(sub: &Subscription) -> Vec<Transport> {
    sub.fallbacks().iter().map(|(t, _)| *t).collect()
}

/// The demo server with every transport but `without`, on a free port.
async fn spawn_without(without: Transport) -> TestApp {
    let config = Config {
        workers: 2,
        ..Config::default()
    };
    let mounts: Vec<_> = chat_demo::mounts(Settings::default())
        .into_iter()
        .filter(|m| m.transport != without)
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(listener, AppState::new(config), &mounts).expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        client: Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    }
}

/// Sends one message through `client` with each of `vias` in turn (each
/// acknowledged before the next), then checks that `sub` gets exactly
/// those, once each, in order, and nothing else: the end marker sent last
/// is the next message after them.
async fn every_via_arrives_once(
    client: &Client,
    sub: &mut Subscription,
    vias: &[Via],
    label: &str,
) {
    let mut sent: Vec<Message> = Vec::new();
    for (i, via) in vias.iter().enumerate() {
        let text = format!("{label} #{i} via {}", via.as_str());
        let id = format!("{label}-{i}");
        let message = client
            .send("ana", &text, Some(&id), *via)
            .await
            .unwrap_or_else(|e| panic!("send via {} through {label}: {e}", via.as_str()))
            .message;
        sent.push(message);
    }
    let got = next_messages(sub, sent.len()).await;
    let ids = |ms: &[Message]| ms.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(&got), ids(&sent), "every message once, in order");
    for (got, sent) in got.iter().zip(&sent) {
        assert_eq!(got.text, sent.text);
        assert_eq!(got.via, sent.via);
    }
    let end = client
        .send("ana", &format!("{label} end"), None, Via::Api)
        .await
        .expect("the end marker is sent")
        .message;
    match next_event(sub).await {
        Event::Message { message, .. } => assert_eq!(message.id, end.id, "nothing repeated"),
        other => panic!("expected the end marker, got {other:?}"),
    }
}

/// Straight to the demo server, Auto takes WebSocket and gives nothing
/// up, and the message its probe asked for again (`since = cursor - 1`)
/// is not handed out twice.
#[tokio::test]
async fn auto_takes_websocket_from_a_server_that_has_it() {
    let app = spawn_app().await;
    let seen = app.say("bea", "seen before").await;
    let mut sub = app
        .client
        .subscribe_auto(auto_options(Some(Cursor::after(seen.id))));

    let (chosen, took) = settle(&mut sub).await;
    eprintln!("[auto] direct: {chosen} in {took:?}");

    assert_eq!(chosen, Transport::Websocket);
    assert!(sub.fallbacks().is_empty(), "{:?}", sub.fallbacks());
    let live = app.say("bea", "live").await;
    let next = next_messages(&mut sub, 1).await;
    assert_eq!(next[0].id, live.id, "the probe's message is not repeated");
}

/// On an empty chat nothing can be made to arrive, so a successful open is
/// enough: Auto takes WebSocket and then receives the first message.
#[tokio::test]
async fn auto_on_an_empty_chat_accepts_an_open() {
    let app = spawn_app().await;
    let mut sub = app.client.subscribe_auto(auto_options(None));

    let (chosen, _) = settle(&mut sub).await;

    assert_eq!(chosen, Transport::Websocket);
    assert!(sub.fallbacks().is_empty(), "{:?}", sub.fallbacks());
    let first = app.say("bea", "first").await;
    assert_eq!(next_messages(&mut sub, 1).await[0].id, first.id);
}

/// A server that does not mount WebSocket answers `/ws` with 404: Auto
/// records that and takes server-sent events, the next in its order.
#[tokio::test]
async fn auto_takes_sse_when_the_server_has_no_websocket() {
    let app = spawn_without(Transport::Websocket).await;
    let seen = app.say("bea", "seen before").await;
    let mut sub = app
        .client
        .subscribe_auto(auto_options(Some(Cursor::after(seen.id))));

    let (chosen, took) = settle(&mut sub).await;
    eprintln!(
        "[auto] no /ws mounted: {chosen} in {took:?}; gave up {:?}",
        sub.fallbacks()
    );

    assert_eq!(chosen, Transport::Sse);
    let [(given_up, reason)] = sub.fallbacks() else {
        panic!("one transport given up: {:?}", sub.fallbacks());
    };
    assert_eq!(*given_up, Transport::Websocket);
    assert!(reason.starts_with("refused with 404"), "{reason}");
    every_via_arrives_once(&app.client, &mut sub, &[Via::Api, Via::Sse], "no-ws").await;
}

/// A relay between client and server that answers WebSocket upgrades with
/// `502` while `refusing` is set, passes everything else through, and can
/// cut every connection it carries.
struct Relay {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Whether upgrades are refused.
    refusing: Arc<AtomicBool>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
}

impl Relay {
    /// A relay in front of `upstream`, refusing upgrades if `refusing`.
    async fn start(upstream: SocketAddr, refusing: bool) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("a bound address");
        let refusing = Arc::new(AtomicBool::new(refusing));
        let (cut, _) = watch::channel(0);
        let relay = Relay {
            base: format!("http://{addr}"),
            refusing: refusing.clone(),
            cut: cut.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (refusing, mut cut) = (refusing.clone(), cut.subscribe());
                tokio::spawn(async move {
                    tokio::select! {
                        () = relay_one(client, upstream, &refusing) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        relay
    }

    /// Refuses upgrades from now on, or passes them.
    fn refuse_upgrades(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Closes every connection open through the relay.
    fn cut_all(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}

/// Carries one connection: reads the request head to see what it asks for,
/// then refuses it or relays both ways.
async fn relay_one(mut client: TcpStream, upstream: SocketAddr, refusing: &AtomicBool) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if head.starts_with(b"GET /ws") && refusing.load(Ordering::SeqCst) {
        let refusal = "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\
                       connection: close\r\n\r\n";
        let _ = client.write_all(refusal.as_bytes()).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if server.write_all(&head).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// Sends a message now and then and reads it back until `done` holds,
/// checking that each arrives once, next in line; the last id read.
async fn talk_until(
    app: &TestApp,
    sub: &mut Subscription,
    mut last: u64,
    what: &str,
    done: impl Fn(&Subscription) -> bool,
) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    while !done(sub) {
        assert!(Instant::now() < deadline, "never happened: {what}");
        let sent = app.say("bea", "meanwhile").await;
        let got = next_messages(sub, 1).await;
        last += 1;
        assert_eq!((got[0].id.0, sent.id.0), (last, last), "once, in order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// Behind a relay that refuses upgrades, Auto takes SSE; once upgrades
/// pass again, it moves back up to WebSocket at its next try, and the
/// messages sent meanwhile arrive once each, in order, across the switch.
#[tokio::test]
async fn auto_moves_back_up_to_websocket_when_it_works_again() {
    let app = spawn_app().await;
    let relay = Relay::start(app.server.addr, true).await;
    let client = Client::new(&relay.base);
    let seen = app.say("bea", "seen before").await;
    let mut sub = client.subscribe_auto(Options {
        upgrade_interval: Duration::from_millis(300),
        ..auto_options(Some(Cursor::after(seen.id)))
    });

    assert_eq!(settle(&mut sub).await.0, Transport::Sse);
    let [(Transport::Websocket, reason)] = sub.fallbacks() else {
        panic!("WebSocket given up: {:?}", sub.fallbacks());
    };
    assert!(reason.starts_with("refused with 502"), "{reason}");
    relay.refuse_upgrades(false);

    talk_until(&app, &mut sub, seen.id.0, "back on WebSocket", |sub| {
        sub.transport() == Some(Transport::Websocket)
    })
    .await;
    assert!(sub.fallbacks().is_empty(), "{:?}", sub.fallbacks());
    every_via_arrives_once(&client, &mut sub, &[Via::Api, Via::Websocket], "moved").await;
}

/// Auto on WebSocket whose socket is cut and whose upgrade is then refused
/// gives WebSocket up and carries on over SSE from its cursor, tries
/// WebSocket again while it is still refused, and climbs back once it is
/// not: no message lost or repeated on the way down or up.
#[tokio::test]
async fn auto_falls_back_when_its_transport_breaks_and_climbs_back() {
    let app = spawn_app().await;
    let relay = Relay::start(app.server.addr, false).await;
    let client = Client::new(&relay.base);
    let mut sub = client.subscribe_auto(Options {
        upgrade_interval: Duration::from_millis(300),
        ..auto_options(Some(Cursor(0)))
    });
    assert_eq!(settle(&mut sub).await.0, Transport::Websocket);
    let mut last = talk_until(&app, &mut sub, 0, "two messages", |sub| {
        sub.cursor() >= Some(Cursor(2))
    })
    .await;

    relay.refuse_upgrades(true);
    relay.cut_all();
    last = talk_until(&app, &mut sub, last, "down to SSE", |sub| {
        sub.transport() == Some(Transport::Sse)
    })
    .await;
    let [(Transport::Websocket, reason)] = sub.fallbacks() else {
        panic!("WebSocket given up: {:?}", sub.fallbacks());
    };
    assert!(reason.starts_with("refused with 502"), "{reason}");
    // A try to move up while upgrades are still refused changes nothing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = last;
    last = talk_until(&app, &mut sub, last, "one more message", move |sub| {
        sub.cursor() > Some(Cursor(before))
    })
    .await;
    assert_eq!(sub.transport(), Some(Transport::Sse));
    assert_eq!(given_up(&sub), [Transport::Websocket]);

    relay.refuse_upgrades(false);
    talk_until(&app, &mut sub, last, "back on WebSocket", |sub| {
        sub.transport() == Some(Transport::Websocket)
    })
    .await;
    assert!(sub.fallbacks().is_empty(), "{:?}", sub.fallbacks());
}

/// Through nginx set up with `setup`: Auto lands on `lands_on` after giving
/// up `gives_up`, and a message sent with each transport that works through
/// this proxy reaches it once, in order.
async fn auto_through_nginx(setup: Setup, lands_on: Transport, gives_up: &[Transport]) {
    let app = spawn_app().await;
    let Some(proxy) = Nginx::start(setup, app.server.addr).await else {
        return;
    };
    let client = Client::new(&proxy.base);
    let seen = app.say("bea", "seen before").await;
    let mut sub = client.subscribe_auto(auto_options(Some(Cursor::after(seen.id))));

    let (chosen, took) = settle(&mut sub).await;
    eprintln!(
        "[auto] through nginx ({setup}): settled on {chosen} in {took:?}; gave up {:?}",
        sub.fallbacks()
    );

    assert_eq!(chosen, lands_on, "gave up {:?}", sub.fallbacks());
    assert_eq!(given_up(&sub), gives_up, "{:?}", sub.fallbacks());
    let mut vias = vec![Via::Api, Via::Polling, Via::Longpoll, Via::Sse, Via::Stream];
    if lands_on == Transport::Websocket {
        vias.push(Via::Websocket);
    }
    every_via_arrives_once(&client, &mut sub, &vias, setup.name()).await;
    assert_eq!(sub.transport(), Some(lands_on), "Auto stayed");
}

/// A proxy set up for live updates: Auto takes WebSocket.
#[tokio::test]
async fn auto_through_a_correct_proxy_takes_websocket() {
    auto_through_nginx(Setup::Correct, Transport::Websocket, &[]).await;
}

/// A proxy that strips the upgrade: the server answers 400, and Auto takes
/// server-sent events.
#[tokio::test]
async fn auto_through_a_proxy_without_upgrades_takes_sse() {
    auto_through_nginx(Setup::NoUpgrade, Transport::Sse, &[Transport::Websocket]).await;
}

/// A proxy that gzips streams holds their bytes back: both streams open
/// in silence and are given up after the probe's timeout, and Auto takes
/// long polling, whose complete answers compression cannot hold.
#[tokio::test]
async fn auto_through_a_compressing_proxy_takes_long_polling() {
    auto_through_nginx(
        Setup::Compressing,
        Transport::Longpoll,
        &[Transport::Websocket, Transport::Sse, Transport::Stream],
    )
    .await;
}

/// On an empty chat an open would do, but nginx's gzip holds the stream's
/// head back as well, so the streams are still given up.
#[tokio::test]
async fn auto_on_an_empty_chat_through_a_compressing_proxy_takes_long_polling() {
    let app = spawn_app().await;
    let Some(proxy) = Nginx::start(Setup::Compressing, app.server.addr).await else {
        return;
    };
    let client = Client::new(&proxy.base);
    let mut sub = client.subscribe_auto(auto_options(None));

    let (chosen, took) = settle(&mut sub).await;
    eprintln!("[auto] empty chat through nginx (compressing): {chosen} in {took:?}");

    assert_eq!(chosen, Transport::Longpoll, "gave up {:?}", sub.fallbacks());
    let first = app.say("bea", "first").await;
    assert_eq!(next_messages(&mut sub, 1).await[0].id, first.id);
}
