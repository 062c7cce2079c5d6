//! The binary as `cargo install` or a copy leaves it: a release build,
//! copied into an empty folder with no source tree around, serves the whole
//! page from itself (the files are compiled in).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::helpers::spawn_app;
use crate::page::{PANES, find_chromium, no_browser, open_page_at};

/// The release binary, built for this test in its own target folder (the
/// suite's own build is a debug one): `target/copied-binary/release`.
fn release_binary() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = workspace.join("target/copied-binary");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "chat-demo",
            "--bin",
            "chat-demo",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&workspace)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the release build failed");
    target.join("release/chat-demo")
}

/// Kills the copied server when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A release binary copied alone into an empty folder and started there:
/// the page loads, all six panes connect, and a message sent from one pane
/// reaches every pane once.
#[tokio::test]
async fn a_copied_release_binary_serves_the_whole_page() {
    if let Err(looked) = find_chromium() {
        no_browser(&looked);
        return;
    }
    let built = tokio::task::spawn_blocking(release_binary)
        .await
        .expect("build thread");
    let empty = tempfile::tempdir().expect("an empty folder");
    let copy = empty.path().join("chat-demo");
    std::fs::copy(&built, &copy).expect("copy the binary");
    let mut child = Command::new(&copy)
        .args(["--addr", "127.0.0.1:0", "--workers", "1"])
        .current_dir(empty.path())
        .env_remove("CHAT_WEB_DIR")
        .env_remove("CHAT_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the copy starts");
    let stdout = child.stdout.take().expect("stdout");
    let _server = Running(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("a line");
        line
    })
    .await
    .expect("reader");
    let url = line
        .trim()
        .strip_prefix("chat-demo listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert_eq!(
        std::fs::read_dir(empty.path()).expect("list").count(),
        1,
        "nothing but the binary in its folder"
    );

    // The session keeps an in-process app for its helpers; the page under
    // test is the copy's.
    let Some(session) = open_page_at(
        spawn_app().await,
        &format!("{url}/"),
        "every pane connected",
        "document.body.dataset.ready === 'true'",
    )
    .await
    else {
        return;
    };
    let text = "hello from a copied binary".to_owned();
    session.send_from("sse", &text).await;
    for pane in PANES {
        session.wait_once(pane, std::slice::from_ref(&text)).await;
    }
    session.close().await;
}
