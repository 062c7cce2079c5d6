//! The binary as a user meets it: `--version`, start-up failures (one line
//! on stderr and a documented exit code each), and logs fit for a terminal,
//! a pipe and a log collector. Every server binary shares this `main`
//! (`chat_http::run_binary`); the demo's stands for all of them.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a binary may take to start or to fail.
const PATIENCE: Duration = Duration::from_secs(20);

fn demo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-demo"));
    command.env_remove("CHAT_ADDR").env_remove("CHAT_WEB_DIR");
    command
}

/// Runs the binary to its end (it must end by itself) and returns its output.
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary did not exit within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Asserts a failed start: the exit code, and one line on stderr (logs
/// aside) that says what failed.
fn assert_fails(output: &Output, code: i32, says: &str) {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("chat-demo: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line in {stderr}");
    assert!(
        errors[0].contains(says),
        "{:?} should say {says:?}",
        errors[0]
    );
    assert!(output.stdout.is_empty(), "nothing on stdout");
}

/// A started server, stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port and waits for its first stdout line.
fn start(command: &mut Command) -> (Running, String) {
    let mut child = command
        .args(["--addr", "127.0.0.1:0", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    (Running(child), line)
}

/// `--version` prints the name and version and exits 0.
#[test]
fn version_is_printed() {
    let output = run(demo().arg("--version"));
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("chat-demo {}", env!("CARGO_PKG_VERSION"))
    );
}

/// An unknown flag is exit code 2, one line naming the flag.
#[test]
fn a_bad_flag_is_exit_code_2() {
    assert_fails(&run(demo().arg("--no-such-flag")), 2, "--no-such-flag");
    assert_fails(
        &run(demo().args(["--addr", "not-an-address"])),
        2,
        "not-an-address",
    );
}

/// An address in use is exit code 3, one line naming the address.
#[test]
fn an_address_in_use_is_exit_code_3() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = run(demo().args(["--addr", &addr]));
    assert_fails(&output, 3, &format!("cannot listen on {addr}"));
}

/// A `--web-dir` without an `index.html` is exit code 4, one line naming the
/// folder; one with it serves that folder instead of the embedded page.
#[test]
fn the_web_folder_is_checked_at_start() {
    let empty = tempfile::tempdir().expect("temp dir");
    let output = run(demo()
        .args(["--addr", "127.0.0.1:0", "--web-dir"])
        .arg(empty.path()));
    assert_fails(&output, 4, "index.html");

    std::fs::write(empty.path().join("index.html"), "<p>edited</p>").expect("write");
    let (_server, line) = start(demo().arg("--web-dir").arg(empty.path()));
    let addr = line
        .trim()
        .strip_prefix("chat-demo listening on http://")
        .expect("address line");
    let mut socket = std::net::TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    std::io::Write::write_all(
        &mut socket,
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .expect("write");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n<p>edited</p>"), "{answer}");
}

/// Logs go to stderr: without a terminal (a pipe here) they carry no colour
/// codes, and `--log-format json` writes one JSON object per line.
#[test]
fn logs_fit_a_pipe_and_a_collector() {
    for (format, json) in [("text", false), ("json", true)] {
        let (mut server, _) = start(
            demo()
                .args(["--log-format", format])
                .env("RUST_LOG", "info")
                .env_remove("NO_COLOR"),
        );
        let _ = server.0.kill();
        let mut stderr = String::new();
        server
            .0
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read");
        assert!(!stderr.is_empty(), "{format}: some logs");
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: no ANSI codes in {stderr}"
        );
        for line in stderr.lines() {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            assert_eq!(parsed.is_ok(), json, "{format}: {line}");
        }
    }
}

/// `--store` that is not a store this project knows is a usage error (2);
/// one that does not answer is exit code 5, within the connect timeout.
#[test]
fn a_bad_or_unreachable_store_stops_the_start() {
    assert_fails(&run(demo().args(["--store", "postgres://x"])), 2, "--store");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let output = run(demo().args([
        "--addr",
        "127.0.0.1:0",
        "--store",
        &format!("redis://127.0.0.1:{port}"),
    ]));
    assert_fails(&output, 5, "cannot reach the store");
}

/// `kill -9` of an instance on a shared log loses nothing: the restarted
/// process serves the same history under the same epoch, and ids go on.
#[test]
fn an_instance_killed_and_restarted_loses_nothing() {
    #[path = "support/redis.rs"]
    #[allow(dead_code)]
    mod redis_server;
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let store = redis.url();
    let get = |addr: &str, target: &str| -> String {
        let mut socket = std::net::TcpStream::connect(addr).expect("connect");
        socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let request = format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        std::io::Write::write_all(&mut socket, request.as_bytes()).expect("write");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).expect("read");
        answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    let post = |addr: &str, text: &str| {
        let body = format!(r#"{{"user":"ana","text":"{text}"}}"#);
        let request = format!(
            "POST /api/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut socket = std::net::TcpStream::connect(addr).expect("connect");
        socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
        std::io::Write::write_all(&mut socket, request.as_bytes()).expect("write");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    };
    let address = |line: &str| {
        line.trim()
            .strip_prefix("chat-demo listening on http://")
            .expect("address line")
            .to_owned()
    };

    let (mut first, line) = start(demo().args(["--store", &store]));
    let addr = address(&line);
    for i in 0..5 {
        post(&addr, &format!("before {i}"));
    }
    let history = get(&addr, "/polling/messages?since=0");
    let config = get(&addr, "/api/config");
    first.0.kill().expect("SIGKILL"); // what `kill -9` does
    let _ = first.0.wait();

    let (_second, line) = start(demo().args(["--store", &store]));
    let addr = address(&line);
    assert_eq!(
        get(&addr, "/polling/messages?since=0"),
        history,
        "same bytes"
    );
    let epoch = |config: &str| {
        serde_json::from_str::<serde_json::Value>(config).expect("JSON")["epoch"].clone()
    };
    assert_eq!(epoch(&get(&addr, "/api/config")), epoch(&config));
    post(&addr, "after");
    let page: serde_json::Value =
        serde_json::from_str(&get(&addr, "/polling/messages?since=5")).expect("JSON");
    assert_eq!(page["messages"][0]["id"], 6);
}
