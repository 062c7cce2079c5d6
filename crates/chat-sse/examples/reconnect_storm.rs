//! The reconnect storm after a deploy, measured: `N` clients that behave
//! like a browser's `EventSource` (wait the stream's `retry:`, then
//! reconnect) hold SSE streams; the server shuts down (every stream ends at
//! once) and a new one starts on the same port; each client's reconnect is
//! timed from the moment the shutdown began. Once with every stream told
//! `retry: 1000` (the old fixed value), once with the jittered default.
//!
//! Run with:
//!
//! ```text
//! cargo run --release -p chat-sse --example reconnect_storm -- 1000
//! ```
//!
//! It prints, for each setting, how the reconnects spread: the first and
//! last, the busiest 100 ms, and a histogram in 500 ms buckets. The numbers
//! are in docs/pitfalls.md ("Every `EventSource` reconnecting at once after
//! a deploy"). A client is a raw socket, not a browser: a browser adds its
//! own scheduling, and Chrome and Firefox both wait the `retry:` time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use chat_http::{AppState, Config, RunningServer};
use chat_sse::Settings;

/// Width of the busiest-window count.
const WINDOW: Duration = Duration::from_millis(100);
/// Width of a histogram bucket.
const BUCKET: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    for (name, min, max) in [
        ("fixed retry: 1000", 1_000, 1_000),
        (
            "jittered (the default)",
            chat_sse::DEFAULT_RETRY_MIN_MS,
            chat_sse::DEFAULT_RETRY_MAX_MS,
        ),
    ] {
        let settings = Settings {
            retry_min_ms: min,
            retry_max_ms: max,
            ..Settings::default()
        };
        let arrivals = storm(clients, settings).await?;
        report(name, &arrivals);
    }
    Ok(())
}

/// Starts a server with `settings`, connects `clients`, restarts it, and
/// returns when each client was back, after the shutdown began (sorted).
async fn storm(clients: usize, settings: Settings) -> anyhow::Result<Vec<Duration>> {
    let server = serve(chat_http::listen("127.0.0.1:0".parse()?)?, &settings)?;
    let addr = server.addr;
    let (connected, mut all_connected) = mpsc::channel(clients);
    let (ended, mut arrivals) = mpsc::channel(clients);
    let (start, _) = tokio::sync::broadcast::channel::<Instant>(1);
    for _ in 0..clients {
        let (connected, ended, mut start) = (connected.clone(), ended.clone(), start.subscribe());
        tokio::spawn(async move {
            let result = async {
                let retry = client(addr, &connected).await?;
                let began = start.recv().await?;
                tokio::time::sleep(retry).await;
                // Like a browser: try until the new server answers.
                loop {
                    if let Ok(mut socket) = TcpStream::connect(addr).await
                        && open(&mut socket).await.is_ok()
                    {
                        return anyhow::Ok(began.elapsed());
                    }
                    tokio::time::sleep(retry).await;
                }
            };
            let _ = ended.send(result.await).await;
        });
    }
    for _ in 0..clients {
        all_connected.recv().await;
    }
    let began = Instant::now();
    start.send(began)?;
    server.shutdown().await?;
    let restarted = serve(chat_http::listen(addr)?, &settings)?;
    let mut times = Vec::with_capacity(clients);
    for _ in 0..clients {
        times.push(arrivals.recv().await.ok_or(anyhow::anyhow!("a client"))??);
    }
    restarted.shutdown().await?;
    times.sort();
    Ok(times)
}

/// The SSE server alone, on `listener`.
fn serve(listener: std::net::TcpListener, settings: &Settings) -> anyhow::Result<RunningServer> {
    let state = AppState::new(Config {
        workers: 1,
        ..Config::default()
    });
    Ok(chat_http::start(
        listener,
        state,
        &[chat_sse::mount(settings.clone())],
    )?)
}

/// Opens a stream, reports it open, reads its `retry:` and reads on until
/// the server ends it; returns the `retry:`.
async fn client(addr: SocketAddr, connected: &mpsc::Sender<()>) -> anyhow::Result<Duration> {
    let mut socket = TcpStream::connect(addr).await?;
    let retry = open(&mut socket).await?;
    connected.send(()).await?;
    let mut rest = Vec::new();
    let _ = socket.read_to_end(&mut rest).await;
    Ok(retry)
}

/// Sends the request and reads the head and the `retry:` line.
async fn open(socket: &mut TcpStream) -> anyhow::Result<Duration> {
    socket
        .write_all(
            b"GET /sse/events HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n",
        )
        .await?;
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    anyhow::ensure!(line.starts_with("HTTP/1.1 200"), "answered {line:?}");
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            anyhow::bail!("the stream ended before its retry: line");
        }
        if let Some(ms) = line.trim_end().strip_prefix("retry: ") {
            return Ok(Duration::from_millis(ms.parse()?));
        }
    }
}

/// Prints the spread of `arrivals` (sorted).
fn report(name: &str, arrivals: &[Duration]) {
    let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) else {
        return;
    };
    let busiest = arrivals
        .iter()
        .enumerate()
        .map(|(i, t)| {
            arrivals[i..]
                .iter()
                .take_while(|u| **u < *t + WINDOW)
                .count()
        })
        .max()
        .unwrap_or(0);
    let median = arrivals[arrivals.len() / 2];
    println!("{name}: {} clients", arrivals.len());
    println!(
        "  back between {:.2} s and {:.2} s (median {:.2} s); busiest {} ms: {busiest} reconnects",
        first.as_secs_f64(),
        last.as_secs_f64(),
        median.as_secs_f64(),
        WINDOW.as_millis()
    );
    let buckets = (last.as_millis() / BUCKET.as_millis()) as usize + 1;
    let mut counts = vec![0usize; buckets];
    for t in arrivals {
        counts[(t.as_millis() / BUCKET.as_millis()) as usize] += 1;
    }
    for (i, count) in counts.iter().enumerate() {
        let from = i as f64 * BUCKET.as_secs_f64();
        println!(
            "  {from:4.1}–{:4.1} s {count:5} {}",
            from + BUCKET.as_secs_f64(),
            "#".repeat(count.div_ceil(10))
        );
    }
}
