//! What an idle connection costs the server in heap, counted exactly: this
//! test binary's allocator counts every byte allocated and freed, the server
//! runs in it (one worker), and plain blocking sockets (which allocate
//! nothing per connection) hold 1,000 connections of one transport open and
//! idle. The growth of the live heap, divided by the connections, must stay
//! within its bound, issue 12's targets: 6 KiB for a WebSocket, an SSE
//! stream or an HTTP stream, 8 KiB for a held long poll.
//!
//! Most of that is owed to `patches/actix-http` (actix/actix-web#2075),
//! which makes actix-http's two 8 KiB buffers per connection lazy: without
//! it every connection holds 16 KiB more and this test fails. The figures
//! and where the rest goes are in docs/measurements.md, "Memory per idle
//! connection: actix-http's buffers and smaller cuts"; the RSS of the
//! release server at 10,000 connections is the capacity harness's
//! (results.md). This test runs a debug build, whose futures are laid out a
//! little differently: it measured 4.8 KiB per SSE and stream connection,
//! 4.9 per held long poll and 5.6 per WebSocket when written.

#![allow(unsafe_code)] // the counting allocator: a `GlobalAlloc` is unsafe to implement

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use chat_http::{AppState, Config, RunningServer};
use chat_protocol::Transport;

/// The system allocator, keeping count of the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn count(bytes: usize, sign: isize) {
    LIVE.fetch_add(sign * bytes as isize, Ordering::Relaxed);
}

// SAFETY: every call goes straight to the system allocator with the same
// arguments; the counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size(), 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size(), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Idle connections per transport.
const CONNECTIONS: usize = 1000;

/// Every wait is bounded by this.
const PATIENCE: Duration = Duration::from_secs(30);

/// What one connection asks for, whether an answer's head comes at once (a
/// push transport) or not (a held long poll), and the bound in KiB.
struct Case {
    transport: Transport,
    request: String,
    head_comes: bool,
    bound_kib: f64,
}

fn cases() -> Vec<Case> {
    let get = |transport: Transport, query: &str, extra: &str| {
        format!(
            "GET {}{query} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: */*\r\n{extra}\r\n",
            transport.route()
        )
    };
    let push = |transport: Transport, extra: &str| Case {
        transport,
        request: get(transport, "", extra),
        head_comes: true,
        bound_kib: 6.0,
    };
    vec![
        push(Transport::Sse, ""),
        push(Transport::Stream, ""),
        push(
            Transport::Websocket,
            "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ),
        Case {
            // The store is empty, so a poll from the start is held.
            transport: Transport::Longpoll,
            request: get(Transport::Longpoll, "?since=0", ""),
            head_comes: false,
            bound_kib: 8.0,
        },
    ]
}

/// Opens `n` connections and sends each the case's request; for a push
/// transport, reads each answer's head (the rest stays unread in the socket).
fn open(addr: SocketAddr, request: &str, head_comes: bool, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut socket = TcpStream::connect(addr).expect("connect");
            socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
            socket.write_all(request.as_bytes()).expect("request");
            if head_comes {
                read_head(&mut socket);
            }
            socket
        })
        .collect()
}

/// Opens them off the async runtime.
async fn open_off_thread(addr: SocketAddr, case: &Case, n: usize) -> Vec<TcpStream> {
    let request = case.request.clone();
    let head_comes = case.head_comes;
    tokio::task::spawn_blocking(move || open(addr, &request, head_comes, n))
        .await
        .expect("connections open")
}

/// Reads byte by byte up to the end of a response head.
fn read_head(socket: &mut TcpStream) {
    let mut tail = [0u8; 4];
    let mut byte = [0u8; 1];
    while &tail != b"\r\n\r\n" {
        socket.read_exact(&mut byte).expect("a response head");
        tail.rotate_left(1);
        tail[3] = byte[0];
    }
}

/// Waits, boundedly, until the server counts exactly `n` requests of
/// `transport` in progress.
async fn until_open(server: &RunningServer, transport: Transport, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    let open = &server.state.stats.of(transport).open;
    while open.load(Ordering::Relaxed) != n {
        assert!(
            Instant::now() < deadline,
            "{transport:?}: {n} connections expected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The live heap once it has settled: the lowest of a few readings a moment
/// apart (one reading can catch a timer or a log line on its way).
async fn settled_live() -> isize {
    let mut lowest = isize::MAX;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        lowest = lowest.min(LIVE.load(Ordering::Relaxed));
    }
    lowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_holds_at_most_its_bound_of_server_heap() {
    let mut report = Vec::new();
    for case in cases() {
        let config = Config {
            workers: 1,
            ..Config::default()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        // Long polls held for the longest wait allowed, far longer than the
        // connecting takes, so none is answered before it is counted.
        let settings = chat_demo::Settings {
            longpoll: chat_longpoll::Settings { wait_s: 55 },
            ..chat_demo::Settings::default()
        };
        let server = chat_http::start(
            listener,
            AppState::new(config),
            &chat_demo::mounts(settings),
        )
        .expect("server starts");

        // The first connections fill pools and lazy statics: not counted.
        let warm = open_off_thread(server.addr, &case, 50).await;
        until_open(&server, case.transport, 50).await;
        drop(warm);
        until_open(&server, case.transport, 0).await;

        let before = settled_live().await;
        let sockets = open_off_thread(server.addr, &case, CONNECTIONS).await;
        until_open(&server, case.transport, CONNECTIONS as u64).await;
        let after = settled_live().await;
        let per_connection = (after - before) as f64 / CONNECTIONS as f64 / 1024.0;
        report.push(format!(
            "{:?}: {per_connection:.2} KiB of heap per idle connection (bound {} KiB)",
            case.transport, case.bound_kib
        ));
        drop(sockets);
        server.shutdown().await.expect("server stops");
        assert!(per_connection <= case.bound_kib, "{}", report.join("\n"));
    }
    println!("{}", report.join("\n"));
}
