//! The processes `compare` starts for its load runs: demo servers of their
//! own (`compare --serve`, on a memory store or a shared Redis log),
//! `loadgen` against one or several of them, and a throwaway
//! `redis-server`.
//!
//! Nothing here pins a process to a core: the servers, Redis and `loadgen`
//! share the machine's cores, as every load run of `compare` does.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::Transport;
use chat_loadgen::report::{ParsedOutput, parse_output};
use tokio::io::AsyncBufReadExt;

/// How long a server or Redis gets to start, and a server to stop.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A demo server in its own process: `server` (this `compare` binary)
/// re-run as `--serve 127.0.0.1:0`, with `--serve-store URL` when given.
pub struct ServerProcess {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its process id, for `loadgen --server-pid`.
    pub pid: u32,
}

impl ServerProcess {
    /// Starts one and waits for the address it prints.
    pub async fn start(server: &Path, store: Option<&str>) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(server);
        command.args(["--serve", "127.0.0.1:0"]);
        if let Some(store) = store {
            command.args(["--serve-store", store]);
        }
        Self::spawn(command).await
    }

    /// Runs `command`, a server that prints `NAME listening on URL` first
    /// (every server binary here, and `compare --serve`), and waits for
    /// that line.
    pub async fn spawn(mut command: tokio::process::Command) -> anyhow::Result<Self> {
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {:?}", command.as_std().get_program()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await??
            .context("the server printed nothing (see its log above)")?;
        let url = line
            .split_once(" listening on ")
            .context("unexpected server output")?
            .1
            .to_owned();
        let pid = child.id().context("server pid")?;
        Ok(ServerProcess { child, url, pid })
    }

    /// SIGTERM (a graceful stop), then waits for it, up to [`PATIENCE`]
    /// (after which dropping it kills it).
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = tokio::time::timeout(PATIENCE, self.child.wait()).await;
    }
}

/// One `loadgen` run of `clients` subscribers of `transport` at `rate`
/// messages a second for `seconds`, spread over `servers`; its output read
/// back with [`parse_output`].
pub async fn run_loadgen(
    loadgen: &Path,
    servers: &[&ServerProcess],
    transport: Transport,
    clients: u32,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<ParsedOutput> {
    let mut command = tokio::process::Command::new(loadgen);
    for server in servers {
        command.args([
            "--url",
            &server.url,
            "--server-pid",
            &server.pid.to_string(),
        ]);
    }
    let output = command
        .args(["--transport", transport.as_str()])
        .args([
            "--clients",
            &clients.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .args(["--duration", &seconds.to_string()])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_output(&text, transport).with_context(|| format!("no result row from loadgen:\n{text}"))
}

/// A `redis-server` for a benchmark: on a free loopback port, in a folder of
/// its own under the temporary directory, with nothing saved (`--save ''
/// --appendonly no`: no snapshot, no append-only file, so no disk write or
/// fsync is measured; the tests run it with `--appendfsync always`
/// instead). Killed when dropped, its folder removed.
pub struct RedisProcess {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl RedisProcess {
    /// The binary: `CHAT_REDIS_SERVER`, else `redis-server` in
    /// `/usr/bin` or `/usr/local/bin`; `None` if there is none.
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("CHAT_REDIS_SERVER") {
            return Some(PathBuf::from(path)).filter(|p| p.exists());
        }
        ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    /// Starts `binary` and waits until it answers `PING`.
    pub fn start(binary: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir =
            std::env::temp_dir().join(format!("chat-compare-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = std::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let redis = RedisProcess { child, port, dir };
        let deadline = Instant::now() + PATIENCE;
        while !redis.command(&["PING"]).is_ok_and(|a| a == "PONG") {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command; returns a simple or bulk string answer's text.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut socket = TcpStream::connect(("127.0.0.1", self.port))?;
        socket.set_read_timeout(Some(PATIENCE))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        socket.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = socket.read(&mut buf)?;
            anyhow::ensure!(n > 0, "redis-server closed the connection");
            answer.extend_from_slice(&buf[..n]);
            if let Some(text) = resp_text(&answer)? {
                return Ok(text);
            }
        }
    }

    /// `INFO commandstats`: calls per command since the last reset, every
    /// command run inside a script included.
    pub fn command_calls(&self) -> anyhow::Result<CommandCalls> {
        Ok(CommandCalls::parse(
            &self.command(&["INFO", "commandstats"])?,
        ))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The text of a complete RESP answer (`+…`, or `$N` and N bytes), `None`
/// while incomplete; an error answer (`-…`) is an error.
fn resp_text(answer: &[u8]) -> anyhow::Result<Option<String>> {
    let Some(end) = answer.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&answer[1..end]).into_owned();
    match answer.first() {
        Some(b'+' | b':') => Ok(Some(line)),
        Some(b'-') => anyhow::bail!("redis-server: {line}"),
        Some(b'$') => {
            let len: usize = line.parse().context("a bulk string's length")?;
            let body = &answer[end + 2..];
            Ok((body.len() >= len).then(|| String::from_utf8_lossy(&body[..len]).into_owned()))
        }
        _ => anyhow::bail!("unexpected answer from redis-server"),
    }
}

/// Calls per command, from `INFO commandstats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandCalls(pub std::collections::BTreeMap<String, u64>);

/// Commands the chat servers send over the network; every other command
/// they cause runs inside one of their scripts (`EVALSHA`).
pub const SENT_COMMANDS: [&str; 5] = ["evalsha", "eval", "xread", "xrevrange", "script|load"];
/// Commands `compare` itself sends, left out of every count.
const OWN_COMMANDS: [&str; 4] = ["info", "ping", "flushall", "config|resetstat"];

impl CommandCalls {
    /// Reads `cmdstat_NAME:calls=N,…` lines.
    pub fn parse(info: &str) -> Self {
        CommandCalls(
            info.lines()
                .filter_map(|line| {
                    let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                    let calls = rest.strip_prefix("calls=")?.split(',').next()?;
                    Some((name.to_owned(), calls.parse().ok()?))
                })
                .collect(),
        )
    }

    /// Calls since `earlier`, per command, `compare`'s own left out.
    pub fn since(&self, earlier: &CommandCalls) -> CommandCalls {
        CommandCalls(
            self.0
                .iter()
                .filter(|(name, _)| !OWN_COMMANDS.contains(&name.as_str()))
                .map(|(name, &n)| {
                    let before = earlier.0.get(name).copied().unwrap_or(0);
                    (name.clone(), n.saturating_sub(before))
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// Every call, script-inner ones included.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Calls that came over the network ([`SENT_COMMANDS`]).
    pub fn sent(&self) -> u64 {
        SENT_COMMANDS
            .iter()
            .filter_map(|name| self.0.get(*name))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RESP answers are read whole, and only when complete.
    #[test]
    fn resp_answers() {
        let text = |answer: &[u8]| resp_text(answer).expect("no error");
        assert_eq!(text(b"+PONG\r\n").as_deref(), Some("PONG"));
        assert_eq!(text(b"$5\r\nhel"), None);
        assert_eq!(text(b"$5\r\nhello\r\n").as_deref(), Some("hello"));
        assert_eq!(text(b"+OK"), None);
        assert!(resp_text(b"-ERR nope\r\n").is_err());
    }

    /// Growth per command, compare's own commands left out; sent ones apart.
    #[test]
    fn command_calls_grow() {
        let before = CommandCalls::parse(
            "# Commandstats\r\ncmdstat_get:calls=10,usec=1,usec_per_call=0.1\r\n\
             cmdstat_info:calls=1,usec=3\r\n",
        );
        let after = CommandCalls::parse(
            "# Commandstats\r\ncmdstat_get:calls=16,usec=1\r\n\
             cmdstat_evalsha:calls=3,usec=9,rejected_calls=0\r\n\
             cmdstat_xread:calls=2,usec=9\r\ncmdstat_info:calls=2,usec=3\r\n\
             cmdstat_script|load:calls=1,usec=3\r\n",
        );
        let grown = after.since(&before);
        assert_eq!(grown.0.get("get"), Some(&6));
        assert_eq!(grown.0.get("info"), None);
        assert_eq!(grown.total(), 12);
        assert_eq!(grown.sent(), 6);
    }
}
