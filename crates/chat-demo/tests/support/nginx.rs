//! A real nginx in front of a test server, started and stopped by the test.
//!
//! Include it with `#[path = "../support/nginx.rs"] mod nginx;` (from a file
//! in `tests/suite/`) or `#[path = "support/nginx.rs"] mod nginx;` (from a
//! file in `tests/`). It depends on nothing else in the tests.
//!
//! [`Nginx::start`] writes one of the committed configurations
//! (`docs/nginx-proxy-*.conf`, one per [`Setup`]) into a fresh temporary
//! directory, with the placeholders filled in: `{{LISTEN}}` a free loopback
//! port, `{{UPSTREAM}}` the server's address, `{{TEMP}}` the directory,
//! which also holds the pid file, the logs and nginx's temporary files. nginx
//! runs in the foreground (`daemon off; master_process off;`) as a child of
//! the test, which kills it on drop. [`Nginx::start_balancer`] does the same
//! with `docs/nginx-balancer.conf` ([`Setup::Balancer`]) in front of two
//! instances, `{{UPSTREAM_A}}` and `{{UPSTREAM_B}}`.
//!
//! The binary is `$NGINX` if set, else Debian's `/usr/sbin/nginx`, else
//! `nginx` on the `PATH`. Without one, [`Nginx::start`] panics with what to
//! install, under `CI=true` always; elsewhere `CHAT_SKIP_NGINX=1` makes it
//! print a banner saying the proxy tests were skipped and return `None`.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long nginx may take to start answering.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// Pause between checks while nginx starts.
const START_POLL: Duration = Duration::from_millis(20);

/// How many ports to try when the free port found is taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// Debian's nginx.
const DEBIAN_NGINX: &str = "/usr/sbin/nginx";

/// One of the proxies the tests put in front of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Set up as live updates need: upgrades forwarded, streams unbuffered,
    /// long read timeouts (`docs/nginx-proxy-correct.conf`).
    Correct,
    /// As `Correct`, but `Upgrade` and `Connection` are not forwarded, so a
    /// WebSocket upgrade reaches the server as a plain GET
    /// (`docs/nginx-proxy-no-upgrade.conf`).
    NoUpgrade,
    /// No upgrades, and every response gzipped for clients that accept it,
    /// streams included, which holds their bytes back
    /// (`docs/nginx-proxy-compressing.conf`).
    Compressing,
    /// A load balancer in front of two instances that share one log: round
    /// robin, no sticky sessions, set up as `Correct` otherwise
    /// (`docs/nginx-balancer.conf`). Started with [`Nginx::start_balancer`].
    Balancer,
}

impl Setup {
    /// Every setup in front of one server (all but [`Setup::Balancer`]).
    pub const ALL: [Setup; 3] = [Setup::Correct, Setup::NoUpgrade, Setup::Compressing];

    /// Its name, as in the configuration's file name.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Correct => "correct",
            Setup::NoUpgrade => "no-upgrade",
            Setup::Compressing => "compressing",
            Setup::Balancer => "balancer",
        }
    }

    /// The committed configuration, placeholders unfilled.
    fn template(self) -> &'static str {
        match self {
            Setup::Correct => include_str!("../../../../docs/nginx-proxy-correct.conf"),
            Setup::NoUpgrade => include_str!("../../../../docs/nginx-proxy-no-upgrade.conf"),
            Setup::Compressing => include_str!("../../../../docs/nginx-proxy-compressing.conf"),
            Setup::Balancer => include_str!("../../../../docs/nginx-balancer.conf"),
        }
    }

    /// The configuration for nginx on `listen`, in front of `upstream`,
    /// keeping its files in `temp`.
    pub fn config(self, listen: SocketAddr, upstream: SocketAddr, temp: &Path) -> String {
        self.config_for(listen, &[upstream], temp)
    }

    /// The configuration for nginx on `listen`, in front of `upstreams` (the
    /// first fills `{{UPSTREAM}}` and `{{UPSTREAM_A}}`, the second
    /// `{{UPSTREAM_B}}`), keeping its files in `temp`.
    pub fn config_for(self, listen: SocketAddr, upstreams: &[SocketAddr], temp: &Path) -> String {
        let nth = |i: usize| upstreams.get(i).map(|a| a.to_string()).unwrap_or_default();
        let config = self
            .template()
            .replace("{{LISTEN}}", &listen.to_string())
            .replace("{{UPSTREAM}}", &nth(0))
            .replace("{{UPSTREAM_A}}", &nth(0))
            .replace("{{UPSTREAM_B}}", &nth(1))
            .replace("{{TEMP}}", &temp.display().to_string());
        assert!(
            !config.contains("{{"),
            "a placeholder left unfilled in {}",
            self.name()
        );
        config
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A running nginx, killed on drop.
pub struct Nginx {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Which configuration it runs.
    pub setup: Setup,
    child: Child,
    /// Its configuration, logs and temporary files; removed on drop.
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `setup` in front of `upstream` and waits until a
    /// request through it (`GET /api/config`) is answered `200`. `None` only
    /// when nginx is missing and skipping was asked for (see the module's
    /// documentation); panics when it cannot start.
    pub async fn start(setup: Setup, upstream: SocketAddr) -> Option<Nginx> {
        Self::start_with(setup, &[upstream]).await
    }

    /// Starts [`Setup::Balancer`] in front of two instances, `a` and `b`, as
    /// [`Nginx::start`] does.
    pub async fn start_balancer(a: SocketAddr, b: SocketAddr) -> Option<Nginx> {
        Self::start_with(Setup::Balancer, &[a, b]).await
    }

    async fn start_with(setup: Setup, upstreams: &[SocketAddr]) -> Option<Nginx> {
        let binary = match find_binary() {
            Ok(binary) => binary,
            Err(why) => return missing(&why),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            match Self::start_once(&binary, setup, upstreams).await {
                Ok(nginx) => return Some(nginx),
                Err(log) if log.contains("Address already in use") && attempt < PORT_ATTEMPTS => {}
                Err(log) => panic!("nginx ({setup}) did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// One try on a free port; the error log if nginx exits or does not
    /// answer in time.
    async fn start_once(
        binary: &Path,
        setup: Setup,
        upstreams: &[SocketAddr],
    ) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("chat-nginx-")
            .tempdir()
            .expect("a temporary directory");
        let addr = free_port();
        let conf = dir.path().join("nginx.conf");
        let config = setup.config_for(addr, upstreams, dir.path());
        std::fs::write(&conf, config).expect("write nginx.conf");
        let output = std::fs::File::create(dir.path().join("output.log")).expect("output.log");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            // Before it reads the configuration, nginx logs to a built-in
            // path (/var/log/nginx), which a test may not write to.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("a second handle"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("{} cannot be started: {e}", binary.display()));
        let mut nginx = Nginx {
            addr,
            base: format!("http://{addr}"),
            setup,
            child,
            dir,
        };
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("exited with {status}\n{}", nginx.logs()));
            }
            if answers(addr).await {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not answering after {START_PATIENCE:?}\n{}",
                    nginx.logs()
                ));
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What nginx wrote to its output and error log so far, for a failing
    /// test's message.
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("output.log"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The child is ours, and nginx keeps nothing worth a graceful stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx binary, or why there is none.
fn find_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("NGINX") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("NGINX={} does not exist", path.display()))
        };
    }
    if Path::new(DEBIAN_NGINX).is_file() {
        return Ok(DEBIAN_NGINX.into());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("no nginx at {DEBIAN_NGINX} or on the PATH"))
}

/// No nginx: fail, unless skipping was asked for outside CI.
fn missing(why: &str) -> Option<Nginx> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("CHAT_SKIP_NGINX").is_ok_and(|v| v == "1");
    if ci || !skip {
        panic!(
            "the proxy tests need nginx: {why}. Install it (Debian: \
             `apt-get install nginx`, or run .ci/run), or point NGINX at one. \
             To skip these tests locally, set CHAT_SKIP_NGINX=1 (not under CI=true)."
        );
    }
    eprintln!(
        "\n{bar}\n!! SKIPPED: a proxy test did not run: {why}.\n\
         !! CHAT_SKIP_NGINX=1 is set; install nginx to run it.\n{bar}\n",
        bar = "!".repeat(72)
    );
    None
}

/// A loopback port nothing listens on right now: bound, read, released.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// Whether `GET /api/config` through `addr` is answered `200`.
async fn answers(addr: SocketAddr) -> bool {
    // A blocking request on a thread of its own: the server behind nginx
    // may share the test's runtime.
    tokio::task::spawn_blocking(move || {
        let Ok(mut socket) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(START_POLL * 50));
        let request = "GET /api/config HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
        if socket.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        socket.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    })
    .await
    .unwrap_or(false)
}
