//! A real `redis-server` for a test: Debian's package, started on a free
//! loopback port in a temporary folder, with an append-only file so that a
//! restart keeps what it acknowledged, and stopped when dropped.
//!
//! A missing binary fails the test with how to install it. Locally,
//! `CHAT_SKIP_REDIS=1` skips the test instead, saying so loudly; under
//! `CI=true` a missing binary always fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start or to answer.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl RedisServer {
    /// Starts one, or returns `None` when the test is to be skipped.
    pub fn start() -> Option<RedisServer> {
        let binary = find_binary()?;
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            binary,
        };
        server.launch();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL): what it acknowledged is in its
    /// append-only file, nothing else is saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port from the same folder.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Runs one command (written as RESP by [`command`]) and returns the raw
    /// answer.
    pub fn run(&self, args: &[&str]) -> String {
        let mut socket = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
        socket.write_all(&command(args)).expect("write");
        let mut answer = [0u8; 4096];
        let n = socket.read(&mut answer).expect("an answer");
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    fn launch(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let pong = TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
                    s.write_all(&command(&["PING"])).ok()?;
                    let mut answer = [0u8; 64];
                    let n = s.read(&mut answer).ok()?;
                    Some(answer[..n].starts_with(b"+PONG"))
                });
            if pong == Some(true) {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A command as RESP: an array of bulk strings.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

fn find_binary() -> Option<PathBuf> {
    let binary = std::env::var_os("CHAT_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
    if binary.exists() {
        return Some(binary);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("CHAT_SKIP_REDIS").is_ok_and(|v| v == "1");
    if skip && !ci {
        eprintln!(
            "\n{bar}\nSKIPPED: a Redis test did not run (CHAT_SKIP_REDIS=1):\n\
             {} not found. Install it with `apt-get install redis-server`.\n{bar}\n",
            binary.display(),
            bar = "=".repeat(72)
        );
        return None;
    }
    panic!(
        "{} not found: the scale-out tests need Debian's redis-server \
         (`apt-get install redis-server`, or CHAT_REDIS_SERVER=path). \
         Set CHAT_SKIP_REDIS=1 to skip them locally (never under CI=true).",
        binary.display()
    );
}
