//! Presence: `user=` on every transport, `GET /api/presence`, the lists push
//! transports send when it changes, and what those lists cost.

use std::sync::Arc;
use std::time::Duration;

use chat_client::{Client, Options, PresenceBody, PresenceList};
use chat_http::presence::Presence;
use chat_http::{AppState, Config};
use chat_protocol::{Control, CountersSnapshot, Incoming, Transport};

use crate::helpers::{TestApp, eventually};
use crate::kit::{RawSocket, get, off_thread, raw_request, ws_handshake, ws_upgrade};

/// How long a poll keeps its user online in these tests (the server's
/// default is 10 s: `chat_http::presence::SEEN_WINDOW`).
const WINDOW: Duration = Duration::from_millis(400);

/// The demo server whose presence registry forgets polls after [`WINDOW`].
async fn spawn_presence() -> TestApp {
    let mut state = AppState::new(Config {
        workers: 2,
        ..Config::default()
    });
    state.presence = Arc::new(Presence::new(WINDOW));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(listener, state, &chat_demo::mounts(Default::default()))
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        client: Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    }
}

/// The transports `user` is listed with, if listed.
fn listed(body: &PresenceBody, user: &str) -> Option<Vec<Transport>> {
    body.users
        .iter()
        .find(|u| u.user == user)
        .map(|u| u.transports.clone())
}

/// The names in a pushed list.
fn names(list: &PresenceList) -> Vec<&str> {
    list.users.iter().map(|u| u.user.as_str()).collect()
}

/// On every transport, a subscriber that names its user is listed with that
/// transport while it is subscribed; once it goes, a push transport's user
/// is gone at once and a poller's after the window. A polling user shows
/// how long ago it asked.
#[tokio::test]
async fn every_transport_lists_a_named_subscriber_until_it_leaves() {
    let app = spawn_presence().await;
    for transport in Transport::ALL {
        let user = format!("u-{transport}");
        let mut sub = app.client.subscribe(
            transport,
            Options {
                user: Some(user.clone()),
                poll_interval: Duration::from_millis(50),
                wait_s: 1,
                ..Options::default()
            },
        );
        let reading = tokio::spawn(async move {
            loop {
                if sub.next().await.is_err() {
                    return;
                }
            }
        });
        eventually(&format!("{user} listed"), || async {
            let body = app.client.presence().await.expect("presence");
            listed(&body, &user) == Some(vec![transport])
        })
        .await;
        if transport == Transport::Polling {
            let body = app.client.presence().await.expect("presence");
            let entry = body.users.iter().find(|u| u.user == user).expect("listed");
            assert!(
                entry.seen_ms_ago.contains_key(&Transport::Polling),
                "{body:?}"
            );
        }
        if matches!(
            transport,
            Transport::Sse | Transport::Websocket | Transport::Stream
        ) {
            let body = app.client.presence().await.expect("presence");
            assert_eq!(body.connections, 1, "{body:?}");
        }
        reading.abort();
        let _ = reading.await;
        eventually(&format!("{user} gone"), || async {
            let body = app.client.presence().await.expect("presence");
            listed(&body, &user).is_none() && body.connections == 0
        })
        .await;
    }
    // Polls that aged out are forgotten by the next sweep.
    eventually("nothing left behind", || async {
        app.server.state.presence.tracked() == 0
    })
    .await;
}

/// `user=` breaks a message's rules: a 400 with the contract's error body on
/// every transport (the upgrade included), and nobody is listed.
#[tokio::test]
async fn a_bad_user_is_a_400_on_every_transport() {
    let app = spawn_presence().await;
    let too_long = "x".repeat(33);
    let bad = [
        "",
        "%E2%80%8B",
        "ana%E2%80%AEnimda",
        too_long.as_str(),
        "a%07b",
    ];
    for transport in Transport::ALL {
        for user in bad {
            let target = format!("{}?user={user}", transport.route());
            let request = if transport == Transport::Websocket {
                ws_upgrade(&target, None)
            } else {
                get(&target, &[])
            };
            let addr = app.server.addr;
            let answer = off_thread(move || raw_request(addr, &request)).await;
            assert_eq!(answer.status(), 400, "{target}: {}", answer.head);
            let body: serde_json::Value =
                serde_json::from_slice(&answer.body).expect("a JSON error body");
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                code == "invalid_user" || code == "control_character",
                "{target}: {body}"
            );
        }
    }
    let body = app.client.presence().await.expect("presence");
    assert_eq!(body, PresenceBody::default());
}

/// A push subscriber reads presence items until one satisfies `wanted`.
trait PresenceReader {
    /// The next presence list on the connection.
    fn next_list(&mut self) -> PresenceList;

    /// Presence lists until `wanted` holds (at most 20 of them).
    fn list_where(&mut self, wanted: impl Fn(&PresenceList) -> bool) -> PresenceList {
        for _ in 0..20 {
            let list = self.next_list();
            if wanted(&list) {
                return list;
            }
        }
        panic!("no wanted presence list among 20");
    }
}

/// An SSE stream read raw: `event: presence` events.
struct SseReader(RawSocket);

impl PresenceReader for SseReader {
    fn next_list(&mut self) -> PresenceList {
        loop {
            let chunk = String::from_utf8(self.0.read_chunk()).expect("UTF-8");
            if let Some(data) = chunk.strip_prefix("event: presence\ndata: ") {
                return serde_json::from_str(data.trim_end()).expect("a presence list");
            }
        }
    }
}

/// A WebSocket or a JSON-line stream read raw: `{"type":"presence",…}` items.
enum ItemReader {
    Socket(RawSocket),
    Lines(RawSocket),
}

impl PresenceReader for ItemReader {
    fn next_list(&mut self) -> PresenceList {
        loop {
            let text = match self {
                ItemReader::Socket(socket) => socket.read_frame().text().to_owned(),
                ItemReader::Lines(socket) => String::from_utf8(socket.read_chunk()).expect("UTF-8"),
            };
            if let Ok(Incoming::Control(Control::Presence { users, more })) =
                Incoming::parse(text.trim_end())
            {
                return PresenceList { users, more };
            }
        }
    }
}

/// Opens a streaming response on `target` and reads its head.
fn open_http(addr: std::net::SocketAddr, target: &str) -> RawSocket {
    let mut socket = RawSocket::connect(addr);
    socket.send(get(target, &[]));
    let head = socket.read_head();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    socket
}

/// Push subscribers are sent the list when they open (someone is online:
/// themselves) and whenever it changes: another user joining on another
/// transport, and leaving.
#[tokio::test]
async fn push_transports_send_the_list_when_it_changes() {
    let app = spawn_presence().await;
    let addr = app.server.addr;
    let ana = off_thread(move || {
        let mut ana = SseReader(open_http(addr, "/sse/events?user=ana"));
        let first = ana.next_list();
        assert_eq!(names(&first), ["ana"]);
        assert_eq!(first.users[0].transports, [Transport::Sse]);
        ana
    })
    .await;
    let (ana, bob) = off_thread(move || {
        let mut bob = ItemReader::Socket(ws_handshake(addr, "/ws?user=bob", None));
        let first = bob.next_list();
        assert_eq!(names(&first), ["ana", "bob"]);
        let mut ana = ana;
        ana.list_where(|l| names(l) == ["ana", "bob"]);
        (ana, bob)
    })
    .await;
    let (mut ana, bob, mut cy) = off_thread(move || {
        let mut cy = ItemReader::Lines(open_http(addr, "/stream/messages?user=cy"));
        cy.list_where(|l| names(l) == ["ana", "bob", "cy"]);
        let mut ana = ana;
        let list = ana.list_where(|l| names(l) == ["ana", "bob", "cy"]);
        assert_eq!(list.users[2].transports, [Transport::Stream]);
        (ana, bob, cy)
    })
    .await;
    drop(bob); // bob hangs up
    off_thread(move || {
        ana.list_where(|l| names(l) == ["ana", "cy"]);
        cy.list_where(|l| names(l) == ["ana", "cy"]);
    })
    .await;
}

/// A presence item is bytes on the wire like any other, counted in
/// `bytes_out`, and never a message delivered: on each push transport a
/// named subscriber gets its list and one message, and the counters match
/// what it wrote and read, with one message delivered.
#[tokio::test]
async fn presence_items_are_counted_as_bytes_not_messages() {
    for transport in [Transport::Sse, Transport::Websocket, Transport::Stream] {
        let app = spawn_presence().await;
        let addr = app.server.addr;
        let target = format!("{}?user=ana", transport.route());
        let socket = off_thread(move || {
            let (socket, list) = match transport {
                Transport::Sse => {
                    let mut reader = SseReader(open_http(addr, &target));
                    let list = reader.next_list();
                    (reader.0, list)
                }
                Transport::Websocket => {
                    let mut reader = ItemReader::Socket(ws_handshake(addr, &target, None));
                    let list = reader.next_list();
                    let ItemReader::Socket(socket) = reader else {
                        unreachable!()
                    };
                    (socket, list)
                }
                _ => {
                    let mut reader = ItemReader::Lines(open_http(addr, &target));
                    let list = reader.next_list();
                    let ItemReader::Lines(socket) = reader else {
                        unreachable!()
                    };
                    (socket, list)
                }
            };
            assert_eq!(names(&list), ["ana"]);
            socket
        })
        .await;
        app.say("bob", "hello").await;
        let (written, read) = off_thread(move || {
            let mut socket = socket;
            if transport == Transport::Websocket {
                let frame = socket.read_frame();
                assert!(frame.text().starts_with("{\"id\":1,"), "{frame:?}");
            } else {
                socket.read_chunks_until("\"id\":1,");
            }
            (socket.sent(), socket.received())
        })
        .await;
        let counters = settled(&app, transport).await;
        assert_eq!(counters.messages_delivered, 1, "{transport}");
        assert_eq!(counters.bytes_out, read, "{transport}: every byte read");
        assert_eq!(
            counters.bytes_in, written,
            "{transport}: every byte written"
        );
    }
}

/// The counters of `transport` once no connection is open.
async fn settled(app: &TestApp, transport: Transport) -> CountersSnapshot {
    eventually("the connection closed", || async {
        app.counters(transport).await.open == 0
    })
    .await;
    app.counters(transport).await
}

/// The Rust client reads presence items on every push transport without
/// failing, and keeps the last list: a subscription named ana, once it has
/// read on past the list, has the list that names her. (The list and a
/// message ready at the same moment go out in either order, so the test
/// sends messages until the list has come, three at most.)
#[tokio::test]
async fn the_rust_client_keeps_the_last_pushed_list() {
    let app = spawn_presence().await;
    for transport in [Transport::Sse, Transport::Websocket, Transport::Stream] {
        let user = format!("ana-{transport}");
        let mut sub = app.client.subscribe(
            transport,
            Options {
                user: Some(user.clone()),
                ..Options::default()
            },
        );
        let mut list = None;
        for round in 0..3 {
            let text = format!("to {user}, {round}");
            let wanted = text.clone();
            let reading = tokio::spawn(async move {
                loop {
                    match sub.next().await {
                        Ok(chat_client::Event::Message { message, .. })
                            if message.text == wanted =>
                        {
                            return sub;
                        }
                        Ok(_) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            eventually(&format!("{user} listed"), || async {
                let body = app.client.presence().await.expect("presence");
                listed(&body, &user).is_some()
            })
            .await;
            app.say("bob", &text).await;
            sub = tokio::time::timeout(crate::helpers::PATIENCE, reading)
                .await
                .expect("the message in time")
                .expect("the task");
            list = sub.presence().cloned();
            if list.is_some() {
                break;
            }
        }
        let list = list.unwrap_or_else(|| panic!("{transport}: a list was pushed"));
        assert!(names(&list).contains(&user.as_str()), "{list:?}");
    }
}

/// Presence is per instance: two instances on one shared Redis log carry
/// the same chat, but each lists only the subscribers connected to it.
#[tokio::test]
async fn presence_is_per_instance_on_a_shared_log() {
    let Some(redis) = crate::redis_server::RedisServer::start() else {
        return;
    };
    let a = crate::helpers::spawn_shared(&redis.url()).await;
    let b = crate::helpers::spawn_shared(&redis.url()).await;
    let mut sub = a.client.subscribe(
        Transport::Sse,
        Options {
            user: Some("ana".into()),
            ..Options::default()
        },
    );
    let reading = tokio::spawn(async move { while sub.next().await.is_ok() {} });
    eventually("ana listed by the instance she is connected to", || async {
        let body = a.client.presence().await.expect("presence");
        listed(&body, "ana") == Some(vec![Transport::Sse])
    })
    .await;
    let other = b.client.presence().await.expect("presence");
    assert_eq!(other, PresenceBody::default(), "the other instance");
    reading.abort();
}
