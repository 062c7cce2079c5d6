//! # chat-loadgen: many clients of one transport against one chat server
//!
//! The binary `loadgen` opens `--clients` subscriptions on one transport,
//! sends messages at `--rate` per second (in total, from `--senders`
//! senders, one by default, each awaiting its own answers) through
//! `POST /api/messages` with `via: api`, and checks that every subscriber
//! received every message, once, in order. It measures:
//!
//! - **deliveries**: one message reaching one subscriber; a run should see
//!   `messages sent × clients` of them. Deliveries per second is that count
//!   over the time from the first send to the last delivery.
//! - **latency**: from just before the sender's `POST` to the moment the
//!   subscriber's [`chat_client::Subscription::next`] returns the message.
//!   Each message's text carries its send time (microseconds since a clock
//!   shared by the sender and every subscriber, all in this process), so no
//!   map of send times is needed and a message can never arrive "before" it
//!   is known. Regular polling's latency is dominated by
//!   `--poll-interval-ms`.
//! - **lost / duplicated / out of order**: summed over subscribers. The
//!   project's client drops anything at or below its cursor, so a server
//!   that reordered messages would show up here as *lost* ones.
//! - **bytes out per delivery**: the transport's `bytes_out` over its
//!   `messages_delivered` in `/api/stats`, between "everyone connected" and
//!   "everything delivered": what one delivery costs on the wire, response
//!   heads, keep-alives and empty polls included.
//! - **server RSS and CPU** (with `--server-pid`, or `--in-process`): from
//!   `/proc/PID/status` (`VmRSS`) and `/proc/PID/stat` (`utime + stime`), at
//!   the start, once everyone connected and at the end; memory per client is
//!   the growth divided by the clients. With `--in-process` the process is
//!   the server *and* the load generator, with both ends of every
//!   connection, so those figures are upper bounds (a WebSocket client alone
//!   holds a 128 KiB read buffer, tungstenite's default); run the server on
//!   its own for server-only numbers.
//!
//! **Per-client limits.** Every load client comes from 127.0.0.1, so a
//! server's send rates per address and per user (`chat_http::rate`, on by
//! default) would refuse most of a run's sends after its first second. The
//! servers this crate starts (`--in-process`, `compare --serve`, the
//! benches: [`server`]) run with them off (`--no-client-limits`); a server
//! started apart for `--url` must be started with `--no-client-limits` too.
//!
//! **Several servers.** `--url` given more than once (or `--url A,B`) points
//! it at instances that share one log (`chat-demo --store redis://…`; it
//! checks that they report the same epoch): subscriber `i` connects to
//! server `i % n` and message `seq` is sent to server `seq % n`, so
//! messages cross from one instance to another, and the checks above are
//! the same: every subscriber must see every message once, in order,
//! whichever instance it is on. The servers' counters are added up, and so
//! are their RSS and CPU (one `--server-pid` per server).
//!
//! It exits with a non-zero status when a message was lost or duplicated or
//! a send failed. The last line it prints is a Markdown table row (the
//! header is printed above it) to paste into the docs; `compare` in
//! `benches/` reads that row back with [`report::parse_output`].
//!
//! ## The modules, in the order a run uses them
//!
//! - [`cli`]: the flags (`loadgen --help`), and the check that `--url` is a
//!   loopback address: the load generator never talks to another machine.
//! - [`limits`]: what stops 10,000+ clients on one machine (descriptors,
//!   ephemeral ports, the accept queue, the server's connection cap), and
//!   the descriptor budget checked before anything starts.
//! - [`server`]: the demo server in this process, for `--in-process` (and
//!   for `compare`'s server process and the benches).
//! - [`stats`]: the typed `/api/stats` reader, the counters of one
//!   transport ([`chat_protocol::CountersSnapshot`]) and their growth over a
//!   run. Shared with `compare`.
//! - [`process`]: the `/proc` sampler: a process's resident memory, CPU
//!   ticks and descriptor limit, and the machine's CPU model. Shared with
//!   `compare`.
//! - [`probe`]: the probe codec: how a message's text carries this run's id,
//!   its sequence number and its send time (`loadgen RUN SEQ SENT_US`), so
//!   other traffic on the same server is ignored.
//! - [`run`]: the run itself: ramp up at `--connect-rate` until the server
//!   counts every subscriber, wait `--settle-ms` (a second) so that the
//!   connections' setup is over, send `--warmup` (20) untimed messages so
//!   that every connection is past its first segments, send the timed ones,
//!   drain (wait for every delivery, up to `--drain-timeout`), stop, count. Pinned to one core, the whole load
//!   generator runs on one thread.
//! - [`sender`]: the senders, each one message at a time at its share of
//!   `--rate`, taking turns, retried under the same `client_msg_id`.
//! - [`subscriber`]: one task per subscriber, logging this run's messages
//!   as they arrive, and stopping them all at the end.
//! - [`report`]: adding up the logs ([`report::Report::tally`]), the
//!   printed report and its table row, and the parser `compare` reads it
//!   back with.
//! - [`chaos`]: `--chaos`, the abuse run: subscribers on every transport
//!   whose sockets are closed or reset at random moments, over and over,
//!   on raw connections of its own ([`chaos::wire`]), and its report.
//!
//! ## Running it
//!
//! ```text
//! cargo build --release -p chat-loadgen
//! # 100 clients, server in this process:
//! ./target/release/loadgen --in-process --transport sse
//! ./target/release/loadgen --in-process --transport polling --poll-interval-ms 1000
//! ./target/release/loadgen --in-process --transport websocket --clients 1000 --rate 100 --duration 5
//! # against a separate server (the realistic setup: server-only RSS and CPU):
//! cargo run --release &
//! ./target/release/loadgen --transport websocket --server-pid "$(pgrep -n chat-demo)"
//! # 10,000 clients of each transport, 10 messages a second for 10 s; the
//! # server needs 10,000+ descriptors for them (it raises its own soft limit
//! # to the hard limit at start):
//! for t in polling longpoll sse websocket stream; do
//!   ./target/release/loadgen --transport $t --clients 10000 --rate 10 --duration 10 \
//!       --server-pid "$(pgrep -n chat-demo)"
//! done
//! ```
//!
//! Two instances on one Redis log (`compare`'s section "Several instances
//! on a shared Redis log" does this for every transport):
//!
//! ```text
//! ./target/release/chat-demo --addr 127.0.0.1:8081 --store redis://127.0.0.1:6379 &
//! ./target/release/chat-demo --addr 127.0.0.1:8082 --store redis://127.0.0.1:6379 &
//! ./target/release/loadgen --url http://127.0.0.1:8081 --url http://127.0.0.1:8082 \
//!     --transport sse --clients 1000 --rate 100
//! ```
//!
//! `--in-process` with 10,000 clients needs 20,000 descriptors in one
//! process (see [`limits`]).
//!
//! ## Chaos mode
//!
//! `--chaos` replaces `--transport`: `--clients` subscribers on *each*
//! transport have their connections closed (FIN) or reset (RST, through
//! `SO_LINGER` 0) after a random 50 to 500 ms (`--hold-min-ms`,
//! `--hold-max-ms`), wherever they are, and reconnect from their cursor,
//! while the sender stores `--messages` at `--rate`. It passes (exit 0)
//! only if every subscriber saw every message once and in order, with at
//! least one forced disconnect on every transport. The server must run
//! with `--no-client-limits`: one user sending 200 a second from one
//! address is what the send limits stop. The run in
//! `docs/results.md` ("Chaos: forced disconnects on every transport"),
//! which `--write-results docs` wrote with the command and the server's:
//!
//! ```text
//! cargo build --release -p chat-demo -p chat-loadgen
//! ./target/release/chat-demo --addr 127.0.0.1:18631 --no-client-limits &
//! ./target/release/loadgen --chaos --url http://127.0.0.1:18631 --server-pid "$!" \
//!     --clients 10 --messages 5000 --rate 200 --poll-interval-ms 100 --seed 2026 \
//!     --write-results docs
//! ```
//!
//! `chaos_loses_and_repeats_nothing_on_any_transport` in
//! `crates/chat-demo/tests/suite/chaos.rs` runs a short one on every
//! `cargo test`.
//!
//! This is a binary's library: the run returns [`anyhow`] errors, as
//! binaries here may; the two modules `compare` shares, [`stats`] and
//! [`process`], return their own typed errors.

pub mod chaos;
pub mod cli;
pub mod kept;
pub mod lean;
pub mod limits;
pub mod probe;
pub mod process;
pub mod report;
pub mod run;
pub mod sender;
pub mod server;
pub mod stats;
pub mod subscriber;
