//! Resuming without loss: forced reconnects, and slow readers cut off.

use std::collections::HashSet;
use std::time::Duration;

use chat_client::{Cursor, Event, Options, Transport};
use chat_store::{NewMessage, Via};

use crate::helpers::{PATIENCE, eventually, next_messages, spawn_with};
use crate::kit::{RawSocket, TEXT, get, off_thread, parse_frames, ws_upgrade};

/// Reconnecting over and over while messages flow loses nothing and repeats
/// nothing: SSE resumes with `Last-Event-ID`, WebSocket with `since`.
#[tokio::test]
async fn many_forced_reconnects_lose_nothing() {
    const MESSAGES: u64 = 200;
    let app = crate::helpers::spawn_app().await;
    for transport in [Transport::Sse, Transport::Websocket] {
        let start = app.server.state.store.newest();
        let mut sub = app.client.subscribe(
            transport,
            Options {
                since: Some(start),
                ..Options::default()
            },
        );
        let store = app.server.state.store.clone();
        let writer = tokio::spawn(async move {
            for i in 0..MESSAGES {
                store
                    .append(NewMessage {
                        user: "w".into(),
                        text: format!("{i}"),
                        client_msg_id: None,
                        via: Via::Api,
                    })
                    .expect("valid");
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        let mut ids = Vec::new();
        while (ids.len() as u64) < MESSAGES {
            let want = 7.min(MESSAGES as usize - ids.len());
            let batch = next_messages(&mut sub, want).await;
            ids.extend(batch.iter().map(|m| m.id.0));
            sub.disconnect();
        }
        writer.await.expect("writer");
        let expected: Vec<u64> = (start.0 + 1..=start.0 + ids.len() as u64).collect();
        assert_eq!(ids, expected, "{transport:?}: every id once, in order");
        assert!(
            sub.reconnects() >= 25,
            "{transport:?} reconnected {}",
            sub.reconnects()
        );
    }
}

/// One stalled reader among many fast ones: the fast ones keep pace, the
/// stalled one is cut off once it is `backlog` messages behind (its `open`
/// slot is freed), and resuming from its cursor loses nothing.
#[tokio::test]
async fn a_stalled_reader_is_cut_off_and_resumes_without_loss() {
    for transport in [Transport::Sse, Transport::Websocket] {
        stalled_reader(transport).await;
    }
}

async fn stalled_reader(transport: Transport) {
    const FAST: usize = 8;
    const BACKLOG: u64 = 50;
    const MESSAGES: u64 = 500;
    // Large messages, so that the kernel's socket buffers (over a megabyte
    // on loopback, whose segments are 64 KiB) fill after a few dozen.
    const TEXT_CHARS: usize = 20_000;
    let app = spawn_with(chat_http::Config {
        backlog: BACKLOG,
        history: 100_000,
        max_text: TEXT_CHARS,
        ..chat_http::Config::default()
    })
    .await;
    let name = transport.as_str();

    // The stalled reader: a raw socket with a tiny receive buffer that sends
    // its request and then reads nothing.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4_096).expect("rcvbuf");
    socket.connect(&app.server.addr.into()).expect("connect");
    let mut stalled = RawSocket::from(std::net::TcpStream::from(socket));
    stalled.send(match transport {
        Transport::Sse => get("/sse/events?since=0", &[]),
        _ => ws_upgrade("/ws?since=0", None),
    });

    // The fast readers report how far they got.
    let (progress, _) = tokio::sync::watch::channel(vec![0u64; FAST]);
    let progress = std::sync::Arc::new(progress);
    let mut fast = Vec::new();
    for i in 0..FAST {
        let mut sub = app.client.subscribe(
            transport,
            Options {
                since: Some(Cursor(0)),
                ..Options::default()
            },
        );
        let progress = progress.clone();
        fast.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while (ids.len() as u64) < MESSAGES {
                if let Event::Message { message, .. } = sub.next().await.expect("fast reader") {
                    ids.push(message.id.0);
                    progress.send_modify(|p| p[i] = message.id.0);
                }
            }
            ids
        }));
    }
    eventually("every reader is connected", || async {
        app.counters(transport).await.open == FAST as u64 + 1
    })
    .await;

    // Write in steps the fast readers keep up with; the stalled one falls behind.
    let text = "x".repeat(TEXT_CHARS);
    let mut watch = progress.subscribe();
    for step in 0..MESSAGES / 20 {
        for _ in 0..20 {
            app.server
                .state
                .store
                .append(NewMessage {
                    user: "w".into(),
                    text: text.clone(),
                    client_msg_id: None,
                    via: Via::Api,
                })
                .expect("valid");
        }
        let target = (step + 1) * 20;
        tokio::time::timeout(
            PATIENCE,
            watch.wait_for(|p| p.iter().all(|&id| id >= target)),
        )
        .await
        .expect("fast readers keep pace")
        .expect("watch");
    }
    for reader in fast {
        let ids = reader.await.expect("fast reader");
        assert_eq!(
            ids,
            (1..=MESSAGES).collect::<Vec<_>>(),
            "{name}: fast reader"
        );
    }
    // The fast readers have hung up; only the stalled one could be open.
    eventually("the stalled reader was cut off", || async {
        app.counters(transport).await.open == 0
    })
    .await;

    // The stalled client wakes up, reads what reached it, and resumes.
    let received = off_thread(move || stalled.read_to_close()).await; // ends in a reset
    let mut ids = match transport {
        Transport::Sse => sse_ids(&received),
        _ => ws_ids(&received),
    };
    assert!(
        (ids.len() as u64) < MESSAGES - BACKLOG,
        "{name}: the stalled reader was cut before the end ({} ids)",
        ids.len()
    );
    let resume_from = Cursor(ids.last().copied().unwrap_or(0));
    let mut sub = app.client.subscribe(
        transport,
        Options {
            since: Some(resume_from),
            ..Options::default()
        },
    );
    let rest = next_messages(&mut sub, (MESSAGES - resume_from.0) as usize).await;
    ids.extend(rest.iter().map(|m| m.id.0));
    assert_eq!(
        ids,
        (1..=MESSAGES).collect::<Vec<_>>(),
        "{name}: nothing lost or repeated"
    );
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    app.server.shutdown().await.expect("clean stop");
}

/// Ids of the complete events in raw SSE bytes (chunk framing included).
fn sse_ids(raw: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(raw);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut ids = Vec::new();
    for i in 0..lines.len().saturating_sub(3) {
        if let Some(id) = lines[i].strip_prefix("id: ")
            && lines[i + 1].starts_with("data: ")
            && lines[i + 2].is_empty()
        {
            ids.push(id.parse().expect("id"));
        }
    }
    ids
}

/// Ids of the complete message frames in raw WebSocket bytes after the 101.
fn ws_ids(raw: &[u8]) -> Vec<u64> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    parse_frames(&raw[head_end..])
        .iter()
        .filter(|frame| frame.fin && frame.opcode == TEXT)
        .filter_map(|frame| serde_json::from_slice::<serde_json::Value>(&frame.payload).ok())
        .filter(|value| value.get("type").is_none())
        .filter_map(|value| value["id"].as_u64())
        .collect()
}
