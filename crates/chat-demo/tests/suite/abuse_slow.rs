//! The abuse suite, slow and large clients: heads trickled a byte at a time
//! (slowloris), bodies that stall, heads over the size limit. Each gets its
//! exact answer (408, or a close; 431) while an ordinary client is served,
//! and none stores anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_protocol::Transport;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use crate::abuse::{Expect, answer, mismatch};
use crate::helpers::{PATIENCE, eventually, spawn_app};
use crate::kit::{get, off_thread, ws_upgrade};

/// Slow clients that trickle their heads.
const SLOWLORIS: usize = 40;
/// Clients whose bodies stall after one byte.
const STALLED: usize = 10;
/// The pause between two bytes of a trickled head: its 300 bytes would
/// take 30 s, six times the head timeout.
const TRICKLE: Duration = Duration::from_millis(100);

/// The heads the slow clients trickle, one per kind of request, padded to
/// about 300 bytes; none is ever complete.
fn slow_heads() -> Vec<Vec<u8>> {
    let pad = format!("x-pad: {}\r\n", "p".repeat(220));
    let post = "POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                content-type: application/json\r\ncontent-length: 30\r\n";
    let mut heads = vec![
        post.to_owned(),
        get("/sse/events?since=0", &[]),
        get("/stream/messages?since=0", &[]),
        get("/longpoll/messages?since=0", &[]),
        ws_upgrade("/ws?since=0", None),
    ];
    for head in &mut heads {
        // Drop the blank line that would end the head, and pad it.
        let open = head.trim_end_matches("\r\n").to_owned();
        *head = format!("{open}\r\n{pad}");
    }
    heads.into_iter().map(String::into_bytes).collect()
}

/// Trickles `head` a byte at a time until the server answers or closes.
/// Returns the bytes of the head left unsent and what the server sent.
/// `started` counts the tricklers that have sent their first byte.
async fn trickle(
    addr: std::net::SocketAddr,
    head: Vec<u8>,
    started: Arc<AtomicUsize>,
) -> (usize, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut read = tokio::spawn(async move {
        let mut answer = Vec::new();
        // A reset instead of an end of stream ends the read just the same.
        let _ = timeout(PATIENCE, reader.read_to_end(&mut answer)).await;
        answer
    });
    let mut sent = 0;
    let mut answered = None;
    while sent < head.len() {
        if writer.write_all(&head[sent..=sent]).await.is_err() {
            break;
        }
        sent += 1;
        if sent == 1 {
            started.fetch_add(1, Ordering::SeqCst);
        }
        tokio::select! {
            _ = sleep(TRICKLE) => {}
            answer = &mut read => {
                answered = Some(answer.unwrap_or_default());
                break;
            }
        }
    }
    let answer = match answered {
        Some(answer) => answer,
        None => read.await.unwrap_or_default(),
    };
    (head.len() - sent, answer)
}

/// 40 clients trickle their heads (a send, SSE, streaming, a long poll, a
/// WebSocket upgrade) a byte every 100 ms and 10 stall their bodies; an
/// ordinary client sends and reads while they are all still connected.
/// Every trickler is answered 408 or closed before its head is complete,
/// every stalled body gets 408 `body_timeout`, and only the ordinary
/// client's message is stored.
#[tokio::test]
async fn slowloris_and_stalled_bodies_are_cut_while_others_are_served() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let heads = slow_heads();
    let mut slow = Vec::new();
    for i in 0..SLOWLORIS {
        let head = heads[i % heads.len()].clone();
        let (finished, started) = (Arc::clone(&finished), Arc::clone(&started));
        slow.push(tokio::spawn(async move {
            let outcome = trickle(addr, head, started).await;
            finished.fetch_add(1, Ordering::SeqCst);
            outcome
        }));
    }
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let finished = Arc::clone(&finished);
        stalled.push(off_thread(move || {
            let request = b"POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                content-type: application/json\r\ncontent-length: 100\r\n\r\n{";
            let outcome = answer(addr, request);
            finished.fetch_add(1, Ordering::SeqCst);
            outcome
        }));
    }

    // The ordinary client, once every trickler has begun.
    eventually("every trickler has sent a byte", || async {
        started.load(Ordering::SeqCst) == SLOWLORIS
    })
    .await;
    let sent = app.say("ana", "served meanwhile").await;
    let config = app.client.config().await.expect("config");
    assert!(config.transports.contains(&Transport::Sse));
    let still_slow = SLOWLORIS + STALLED - finished.load(Ordering::SeqCst);
    assert!(
        still_slow > 0,
        "the ordinary client was served while slow ones were connected"
    );

    for task in slow {
        let (unsent, answer) = task.await.expect("a trickler");
        let text = String::from_utf8_lossy(&answer);
        assert!(unsent > 0, "cut before the head was complete: {text}");
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 408"),
            "408 or a close, not {text}"
        );
    }
    for outcome in stalled {
        let response = outcome.await.expect("an answer to a stalled body");
        assert_eq!(mismatch(&response, Expect::Json(408, "body_timeout")), None);
    }
    assert_eq!(
        app.server.state.store.stats().last_id,
        sent.id.0,
        "one message"
    );
    assert_eq!(sent.id.0, 1);
}

/// Heads over 16 KiB, in every shape (one long header, many headers, a
/// long request target, a long cookie) and on every transport's path, get
/// 431 `head_too_large`; a head just under the limit is served.
#[tokio::test]
async fn heads_over_the_limit_get_431_on_every_path() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let limit = chat_http::limits::MAX_REQUEST_HEAD;
    let paths = [
        "/api/config",
        "/polling/messages?since=0",
        "/longpoll/messages?since=0&wait_s=1",
        "/sse/events?since=0",
        "/stream/messages?since=0",
        "/ws?since=0",
    ];
    let long_line = format!("x-long: {}", "l".repeat(limit));
    let many: Vec<String> = (0..90)
        .map(|i| format!("x-h{i}: {}", "m".repeat(200)))
        .collect();
    let cookie = format!("cookie: {}", "c=1; ".repeat(limit / 5));
    let mut failures = Vec::new();
    for path in paths {
        let ws = path.starts_with("/ws");
        let shapes: Vec<(String, Vec<String>, String)> = vec![
            (
                "one long header".into(),
                vec![long_line.clone()],
                path.to_owned(),
            ),
            ("90 headers".into(), many.clone(), path.to_owned()),
            (
                "a long cookie".into(),
                vec![cookie.clone()],
                path.to_owned(),
            ),
            (
                "a long request target".into(),
                Vec::new(),
                format!("{path}&pad={}", "q".repeat(limit)),
            ),
        ];
        for (shape, headers, target) in shapes {
            let request = {
                let base = if ws {
                    ws_upgrade(&target, None)
                } else {
                    get(&target, &[])
                };
                let at = base.len() - 2;
                let mut request = base[..at].to_owned();
                for header in &headers {
                    request.push_str(header);
                    request.push_str("\r\n");
                }
                request.push_str("\r\n");
                request
            };
            let response = off_thread(move || answer(addr, request.as_bytes())).await;
            let why = match response {
                Ok(response) => mismatch(&response, Expect::Json(431, "head_too_large")),
                Err(why) => Some(why),
            };
            if let Some(why) = why {
                failures.push(format!("{path}, {shape}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Just under the limit: served.
    let under = format!("x-pad: {}", "u".repeat(limit - 200));
    let ok = off_thread(move || answer(addr, get("/api/config", &[&under]).as_bytes()))
        .await
        .expect("an answer");
    assert_eq!(ok.status(), 200, "{}", ok.head);
    let body: Value = serde_json::from_slice(&ok.body).expect("JSON");
    assert!(body["transports"].is_array());
    assert_eq!(app.server.state.store.stats().last_id, 0);
}
