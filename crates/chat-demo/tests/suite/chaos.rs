//! The chaos run, short: `loadgen --chaos` (the same code,
//! `chat_loadgen::chaos::run`) against a real server for a couple of
//! seconds. Subscribers on every transport have their sockets closed or
//! reset at random moments, a few hundred times in all, while messages
//! flow; every one must still see every message once, in order.

use std::time::Duration;

use chat_loadgen::chaos::{self, ChaosSettings};
use chat_loadgen::cli::SendFor;
use chat_protocol::Transport;

use crate::helpers::spawn_app;

/// Two subscribers per transport, killed every 20 to 150 ms, while 300
/// messages are stored at 150 a second (under the default send limits):
/// nothing lost, duplicated or out of order, no gap or reset notice; every
/// transport was really disconnected, both ways (FIN and RST); the server
/// counted a request for every connection and counts none of them open
/// afterwards.
#[tokio::test]
async fn chaos_loses_and_repeats_nothing_on_any_transport() {
    let app = spawn_app().await;
    let settings = ChaosSettings {
        transports: Transport::ALL.to_vec(),
        per_transport: 2,
        rate: 150.0,
        send_for: SendFor::Count(300),
        hold_min: Duration::from_millis(20),
        hold_max: Duration::from_millis(150),
        poll_interval: Duration::from_millis(20),
        drain_timeout: Duration::from_secs(20),
        seed: 13,
    };
    let report = chaos::run(&app.base, &settings).await.expect("the run");
    let rendered = report.render();
    assert_eq!(report.sent, 300, "{rendered}");
    assert_eq!(report.rows.len(), Transport::ALL.len(), "{rendered}");
    for (transport, row) in &report.rows {
        assert!(
            row.forced() > 0,
            "{transport:?} never disconnected\n{rendered}"
        );
        assert_eq!(row.deliveries, 300 * 2, "{transport:?}\n{rendered}");
        assert_eq!(
            (row.lost, row.duplicated, row.reorders),
            (0, 0, 0),
            "{transport:?}\n{rendered}"
        );
        assert_eq!((row.gap_missed, row.resets), (0, 0), "{rendered}");
        assert!(
            row.server_requests >= row.connections,
            "{transport:?}: the server saw every connection\n{rendered}"
        );
        assert_eq!(row.server_open_after, 0, "{transport:?}\n{rendered}");
    }
    let total = report.total();
    assert!(
        total.forced_closes > 0 && total.forced_resets > 0,
        "{rendered}"
    );
    // The resets were real: the machine's TCP stack counted RSTs going out.
    if let Some(rsts) = report.rst_segments {
        assert!(rsts > 0, "{rendered}");
    }
    assert!(report.passed(), "{rendered}");
    assert_eq!(app.server.state.store.stats().last_id, 300);
}

/// `loadgen --senders 3`, the capacity harness's way of offering a rate one
/// sender cannot: the three senders share the messages (every sequence
/// number sent once, none skipped), and every subscriber still gets every
/// message once, in order.
#[tokio::test]
async fn several_senders_share_the_messages_and_lose_nothing() {
    use clap::Parser;

    let app = spawn_app().await;
    let cli = chat_loadgen::cli::Cli::parse_from([
        "loadgen",
        "--transport",
        "sse",
        "--clients",
        "3",
        "--messages",
        "60",
        "--rate",
        "120",
        "--senders",
        "3",
        // No untimed messages first: the store holds exactly the 60.
        "--warmup",
        "0",
    ]);
    let report = chat_loadgen::run::run(&cli, std::slice::from_ref(&app.base), &[])
        .await
        .expect("the run");
    assert_eq!((report.sent, report.send_errors), (60, 0));
    assert_eq!((report.expected, report.received), (180, 180));
    assert_eq!(
        (report.lost, report.duplicated, report.out_of_order),
        (0, 0, 0)
    );
    let stored = app.server.state.store.newest();
    assert_eq!(stored.0, 60, "each of the 60 messages stored once");
}

/// `loadgen --lean`: SSE, streaming, WebSocket and long-polling subscribers
/// that read their own sockets get every message once and in order, as the
/// project's client does; regular polling is refused with a clear error.
#[tokio::test]
async fn lean_subscribers_lose_nothing() {
    use clap::Parser;

    let app = spawn_app().await;
    for transport in ["sse", "stream", "websocket", "longpoll"] {
        let cli = chat_loadgen::cli::Cli::parse_from([
            "loadgen",
            "--transport",
            transport,
            "--clients",
            "3",
            "--messages",
            "40",
            "--rate",
            "200",
            "--senders",
            "2",
            "--lean",
        ]);
        let report = chat_loadgen::run::run(&cli, std::slice::from_ref(&app.base), &[])
            .await
            .expect("the run");
        assert_eq!((report.sent, report.send_errors), (40, 0), "{transport}");
        assert_eq!(
            (report.expected, report.received),
            (120, 120),
            "{transport}"
        );
        assert_eq!(
            (report.lost, report.duplicated, report.out_of_order),
            (0, 0, 0),
            "{transport}"
        );
    }
    let cli = chat_loadgen::cli::Cli::parse_from(["loadgen", "--transport", "polling", "--lean"]);
    let refused = chat_loadgen::run::run(&cli, std::slice::from_ref(&app.base), &[]).await;
    let error = format!("{:#}", refused.expect_err("polling is not lean"));
    assert!(error.contains("--lean reads"), "{error}");
}
