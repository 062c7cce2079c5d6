//! The demo binary itself: flags, the printed address, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chat_protocol::Transport;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::PATIENCE;

/// `chat-demo --addr 127.0.0.1:0` prints where it listens; SIGTERM answers a
/// held long poll (200, empty) and the process exits cleanly.
#[tokio::test]
async fn sigterm_answers_held_polls_and_exits_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-demo"))
        .args(["--addr", "127.0.0.1:0", "--workers", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("a line");
        line
    })
    .await
    .expect("thread");
    let base = line
        .trim()
        .strip_prefix("chat-demo listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let http = reqwest::Client::new();
    let held = tokio::spawn(
        http.get(format!("{base}/longpoll/messages?since=0&wait_s=55"))
            .send(),
    );
    let client = chat_client::Client::new(&base);
    crate::helpers::eventually("the poll is held", || async {
        let stats = client.stats().await.expect("stats");
        stats.transports.of(Transport::Longpoll).open == 1
    })
    .await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let response = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("answered")
        .expect("task")
        .expect("an answer, not a cut connection");
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.expect("json");
    assert_eq!(page["messages"], serde_json::json!([]));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("thread")
        .expect("exit status");
    assert!(status.success(), "{status}");
}

/// `--help` lists every setting with its environment variable.
#[test]
fn help_lists_the_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-demo"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--addr",
        "CHAT_ADDR",
        "--history",
        "--backfill",
        "--max-text",
        "--max-body",
        "--longpoll-wait",
        "--sse-keepalive",
        "--ws-ping",
        "--ws-timeout",
        "--ws-max-frame",
        "--backlog",
        "--allowed-origins",
    ] {
        assert!(help.contains(flag), "{flag} in --help:\n{help}");
    }
}
