//! The counters in `/api/stats` against the bytes a raw client actually
//! writes and reads on its sockets, on every transport.

use chat_protocol::Transport;
use chat_protocol::{ClientFrame, Control, CountersSnapshot, Incoming, MessageId, PageBody};

use crate::helpers::{PATIENCE, TestApp, eventually, spawn_app};
use crate::kit::{RawSocket, TEXT, get, off_thread, post_json, ws_handshake};

/// Every transport counts exactly what went over its sockets: a raw client
/// does a realistic exchange (polls; a held long poll, its send and an empty
/// timeout; two event streams, one left by the client and one ended by the
/// server's shutdown; a WebSocket that receives, sends and closes), and once
/// every request is over the server's counters equal the client's byte
/// counts (heads, chunk framing, WebSocket frames and masks included) and
/// the messages, requests and empty answers it saw.
#[tokio::test]
async fn counters_match_the_socket_on_every_transport() {
    for transport in Transport::ALL {
        let app = spawn_app().await;
        let stats = app.server.state.stats.clone();
        let expected = match transport {
            Transport::Polling => polling(&app).await,
            Transport::Longpoll => longpoll(&app).await,
            Transport::Sse => sse(app).await,
            Transport::Websocket => websocket(&app).await,
            Transport::Stream => stream(app).await,
        };
        // Each byte is counted before it is written and a request's bytes in
        // before it is answered, so the counters are final once the client
        // has read everything and `open` (dropped just after a response's
        // last byte) is back to zero.
        eventually(&format!("{transport}: every request is over"), || async {
            stats.snapshot().of(transport).open == 0
        })
        .await;
        assert_eq!(stats.snapshot().of(transport), expected, "{transport}");
    }
}

/// The bytes a client wrote and read on its sockets.
#[derive(Debug, Clone, Copy)]
struct Wire {
    written: u64,
    read: u64,
}

impl Wire {
    fn of(socket: &RawSocket) -> Wire {
        Wire {
            written: socket.sent(),
            read: socket.received(),
        }
    }
}

impl std::ops::Add for Wire {
    type Output = Wire;

    fn add(self, other: Wire) -> Wire {
        Wire {
            written: self.written + other.written,
            read: self.read + other.read,
        }
    }
}

/// Three polls on one keep-alive connection: three messages, none, and one
/// (`limit=1`) with `connection: close`.
async fn polling(app: &TestApp) -> CountersSnapshot {
    for i in 0..3 {
        app.say("ana", &format!("message {i}")).await;
    }
    let addr = app.server.addr;
    let wire = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        let polls = [
            (get("/polling/messages?since=0", &["user-agent: raw"]), 3),
            (get("/polling/messages?since=3", &[]), 0),
            (
                get("/polling/messages?since=1&limit=1", &["connection: close"]),
                1,
            ),
        ];
        for (request, messages) in polls {
            socket.send(request);
            let answer = socket.read_response();
            assert_eq!(answer.status(), 200, "{}", answer.head);
            assert!(socket.unread().is_empty(), "nothing beyond the answer");
            let page: PageBody = serde_json::from_slice(&answer.body).expect("a page");
            assert_eq!(page.messages.len(), messages);
        }
        Wire::of(&socket)
    })
    .await;
    CountersSnapshot {
        requests: 3,
        open: 0,
        bytes_in: wire.written,
        bytes_out: wire.read,
        messages_delivered: 4,
        empty_responses: 1,
    }
}

/// A held long poll, answered by a send attributed to long polling through
/// `via`; then the next poll on the same connection, answered empty when
/// its `wait_s` is over.
async fn longpoll(app: &TestApp) -> CountersSnapshot {
    let addr = app.server.addr;
    let poller = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get("/longpoll/messages?since=0&wait_s=30", &[]));
        let answer = socket.read_response();
        let page: PageBody = serde_json::from_slice(&answer.body).expect("a page");
        assert_eq!(page.messages.len(), 1);
        socket.send(get(
            &format!("/longpoll/messages?since={}&wait_s=1", page.cursor),
            &[],
        ));
        let answer = socket.read_response();
        let page: PageBody = serde_json::from_slice(&answer.body).expect("a page");
        assert!(page.messages.is_empty());
        assert!(socket.unread().is_empty(), "nothing beyond the answer");
        Wire::of(&socket)
    });
    eventually("the poll is held", || async {
        app.counters(Transport::Longpoll).await.open == 1
    })
    .await;
    let sender = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(post_json(
            "/api/messages",
            r#"{"user":"ana","text":"hello","via":"longpoll"}"#,
        ));
        let answer = socket.read_response();
        assert_eq!(answer.status(), 201, "{}", answer.head);
        assert!(socket.unread().is_empty(), "nothing beyond the answer");
        Wire::of(&socket)
    })
    .await;
    let poller = tokio::time::timeout(PATIENCE, poller)
        .await
        .expect("both polls answered");
    let wire = poller + sender;
    CountersSnapshot {
        requests: 3,
        open: 0,
        bytes_in: wire.written,
        bytes_out: wire.read,
        messages_delivered: 1,
        empty_responses: 1,
    }
}

/// Two event streams: the first gets a stored and a live event and is left
/// by the client; the second resumes with `Last-Event-ID`, gets one live
/// event and is ended by the server's shutdown (the last chunk included).
async fn sse(app: TestApp) -> CountersSnapshot {
    app.say("ana", "one").await;
    let addr = app.server.addr;
    let event = |app: &TestApp, id: u64| {
        let json = app.stored_json(id);
        format!("id: {id}\ndata: {}\n\n", String::from_utf8_lossy(&json))
    };

    let first_event = event(&app, 1);
    let mut first = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get("/sse/events?since=0", &["accept: text/event-stream"]));
        let head = socket.read_head();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        socket.read_chunks_until(&first_event);
        socket
    })
    .await;
    app.say("bob", "two").await;
    let second_event = event(&app, 2);
    first = off_thread(move || {
        first.read_chunks_until(&second_event);
        first
    })
    .await;
    let first_wire = Wire::of(&first);
    drop(first); // the client hangs up
    eventually("the server saw the client leave", || async {
        app.counters(Transport::Sse).await.open == 0
    })
    .await;

    let mut resumed = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get(
            "/sse/events",
            &["accept: text/event-stream", "last-event-id: 2"],
        ));
        let head = socket.read_head();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        socket.read_chunks_until("retry: ");
        socket
    })
    .await;
    app.say("cy", "three").await;
    let third_event = event(&app, 3);
    resumed = off_thread(move || {
        resumed.read_chunks_until(&third_event);
        resumed
    })
    .await;
    let stopping = tokio::spawn(app.server.shutdown());
    let resumed = off_thread(move || {
        assert!(
            resumed.read_chunk().is_empty(),
            "the last chunk, and no event"
        );
        assert!(resumed.read_to_close().is_empty(), "nothing after it");
        Wire::of(&resumed)
    })
    .await;
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("stopped")
        .expect("task")
        .expect("clean");
    let wire = first_wire + resumed;
    CountersSnapshot {
        requests: 2,
        open: 0,
        bytes_in: wire.written,
        bytes_out: wire.read,
        messages_delivered: 3,
        empty_responses: 0,
    }
}

/// Two HTTP streams: the first gets a stored and a live line and the client
/// hangs up; the second resumes with `since`, gets one live line and is
/// ended by the server's shutdown (the last chunk included).
async fn stream(app: TestApp) -> CountersSnapshot {
    app.say("ana", "one").await;
    let addr = app.server.addr;
    let line = |app: &TestApp, id: u64| {
        let json = app.stored_json(id);
        format!("{}\n", String::from_utf8_lossy(&json))
    };

    let first_line = line(&app, 1);
    let mut first = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get("/stream/messages?since=0", &[]));
        let head = socket.read_head();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        socket.read_chunks_until(&first_line);
        socket
    })
    .await;
    app.say("bob", "two").await;
    let second_line = line(&app, 2);
    first = off_thread(move || {
        first.read_chunks_until(&second_line);
        first
    })
    .await;
    let first_wire = Wire::of(&first);
    drop(first); // the client hangs up
    eventually("the server saw the client leave", || async {
        app.counters(Transport::Stream).await.open == 0
    })
    .await;

    let resumed = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get("/stream/messages?since=2", &[]));
        let head = socket.read_head();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        socket
    })
    .await;
    eventually("the stream is open", || async {
        app.counters(Transport::Stream).await.open == 1
    })
    .await;
    app.say("cy", "three").await;
    let third_line = line(&app, 3);
    let mut resumed = off_thread(move || {
        let mut resumed = resumed;
        resumed.read_chunks_until(&third_line);
        resumed
    })
    .await;
    let stopping = tokio::spawn(app.server.shutdown());
    let resumed = off_thread(move || {
        assert!(
            resumed.read_chunk().is_empty(),
            "the last chunk, and no line"
        );
        assert!(resumed.read_to_close().is_empty(), "nothing after it");
        Wire::of(&resumed)
    })
    .await;
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("stopped")
        .expect("task")
        .expect("clean");
    let wire = first_wire + resumed;
    CountersSnapshot {
        requests: 2,
        open: 0,
        bytes_in: wire.written,
        bytes_out: wire.read,
        messages_delivered: 3,
        empty_responses: 0,
    }
}

/// One WebSocket: the upgrade, two stored messages, a masked send answered
/// by its ack and the message itself, and the client's close, echoed.
async fn websocket(app: &TestApp) -> CountersSnapshot {
    app.say("ana", "one").await;
    app.say("bob", "two").await;
    let stored = [app.stored_json(1), app.stored_json(2)];
    let addr = app.server.addr;
    let wire = off_thread(move || {
        let mut socket = ws_handshake(addr, "/ws?since=0", None);
        for json in stored {
            let frame = socket.read_frame();
            assert_eq!((frame.opcode, &frame.payload[..]), (TEXT, &json[..]));
        }
        let send = ClientFrame::Send {
            user: "cy".into(),
            text: "three".into(),
            client_msg_id: Some("c1".into()),
        };
        socket.send_text(&send.to_json());
        let (mut acked, mut echoed) = (false, false);
        while !(acked && echoed) {
            match Incoming::parse(socket.read_frame().text()).expect("a message or a control") {
                Incoming::Control(Control::Ack { id, .. }) => acked = id == MessageId(3),
                Incoming::Message { id, .. } => echoed = id == MessageId(3),
                other => panic!("unexpected {other:?}"),
            }
        }
        socket.send_close(1000);
        assert_eq!(
            socket.read_frame().close_code(),
            Some(1000),
            "the close echoed"
        );
        assert!(socket.read_to_close().is_empty(), "nothing after the close");
        Wire::of(&socket)
    })
    .await;
    CountersSnapshot {
        requests: 1,
        open: 0,
        bytes_in: wire.written,
        bytes_out: wire.read,
        messages_delivered: 3,
        empty_responses: 0,
    }
}
