//! The byte counters in `/api/stats` against the bytes a raw TCP client
//! actually sends and reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::helpers::{PATIENCE, TestApp, eventually, spawn_app};

/// Sends `requests` over one keep-alive connection, reading one answer with
/// a `content-length` after each; returns every byte read.
fn exchange(addr: SocketAddr, requests: &[String]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut all = Vec::new();
    for request in requests {
        socket.write_all(request.as_bytes()).expect("write");
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).expect("read");
            assert!(n > 0, "server closed early");
            response.extend_from_slice(&buf[..n]);
            if let Some(end) = complete_len(&response) {
                assert_eq!(end, response.len(), "nothing beyond the answer");
                break;
            }
        }
        all.extend(response);
    }
    all
}

/// The length of a complete response with a `content-length`, if complete.
fn complete_len(bytes: &[u8]) -> Option<usize> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))?
        .trim()
        .parse()
        .ok()?;
    (bytes.len() >= head_end + length).then_some(head_end + length)
}

async fn totals(app: &TestApp, transport: &str) -> (u64, u64) {
    let c = app.counters(transport).await;
    (
        c["bytes_in"].as_u64().expect("number"),
        c["bytes_out"].as_u64().expect("number"),
    )
}

/// Polls (empty and not, with a `missed` notice and with `connection:
/// close`) are counted to the byte, heads included.
#[tokio::test]
async fn polling_bytes_match_the_socket() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.say("ana", &format!("message {i}")).await;
    }
    let requests = vec![
        "GET /polling/messages?since=0 HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: raw\r\n\r\n".to_owned(),
        "GET /polling/messages?since=3 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".to_owned(),
        "GET /polling/messages?since=1&limit=1 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".to_owned(),
    ];
    let sent: usize = requests.iter().map(String::len).sum();
    let addr = app.server.addr;
    let read = tokio::task::spawn_blocking(move || exchange(addr, &requests))
        .await
        .expect("thread");
    assert_eq!(
        totals(&app, "polling").await,
        (sent as u64, read.len() as u64)
    );
}

/// A held long poll and a send attributed through `via` are counted exactly.
#[tokio::test]
async fn longpoll_and_send_bytes_match_the_socket() {
    let app = spawn_app().await;
    let body = r#"{"user":"ana","text":"hello","via":"longpoll"}"#;
    let send = format!(
        "POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let poll =
        "GET /longpoll/messages?since=0&wait_s=30 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".to_owned();
    let addr = app.server.addr;
    let poll_len = poll.len();
    let held = tokio::task::spawn_blocking(move || exchange(addr, &[poll]));
    eventually("the poll is held", || async {
        app.counters("longpoll").await["open"] == 1
    })
    .await;
    let send_len = send.len();
    let answered = tokio::task::spawn_blocking(move || exchange(addr, &[send]))
        .await
        .expect("thread");
    let held = held.await.expect("thread");
    assert_eq!(
        totals(&app, "longpoll").await,
        (
            (poll_len + send_len) as u64,
            (held.len() + answered.len()) as u64
        )
    );
    assert_eq!(app.counters("longpoll").await["requests"], 2);
}
