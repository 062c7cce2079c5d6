//! The report adds up what it should, and `compare` can read it back.

use super::*;
use crate::subscriber::Delivery;

/// A report of 10 clients of SSE, before any tally.
fn report(process: Option<ProcessReport>) -> Report {
    Report {
        transport: Transport::Sse,
        clients: 10,
        rate: 10.0,
        servers: Vec::new(),
        sent: 2,
        send_errors: 0,
        send_error: None,
        send_time: Duration::from_millis(200),
        ramp_time: Duration::from_millis(50),
        connected: 10,
        expected: 20,
        received: 0,
        delivery_time: Duration::ZERO,
        latency: Report::latency_histogram().expect("valid bounds"),
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        gap_missed: 0,
        resets: 0,
        reconnects: 0,
        failed_subscribers: 0,
        subscriber_error: None,
        traffic: Some(CountersSnapshot {
            requests: 0,
            open: 10,
            bytes_in: 0,
            bytes_out: 2_700,
            messages_delivered: 20,
            empty_responses: 0,
        }),
        process,
    }
}

/// A sender that stored messages 0 and 1 and failed message 2.
fn sender_log() -> SenderLog {
    SenderLog {
        stored: vec![true, true, false],
        errors: 1,
        first_error: Some("refused".into()),
        first_send_us: 1_000,
        elapsed: Duration::from_millis(300),
    }
}

/// Missing, repeated and failed subscribers are counted as lost and
/// duplicated; messages never stored are not expected.
#[test]
fn tally_counts_lost_and_duplicated() {
    let mut r = report(None);
    let twice = SubscriberLog {
        deliveries: vec![
            Delivery {
                seq: 0,
                latency_us: 500,
            },
            Delivery {
                seq: 0,
                latency_us: 700,
            },
            // Never stored: not counted at all.
            Delivery {
                seq: 2,
                latency_us: 100,
            },
        ],
        last_delivery_us: 6_000,
        ..SubscriberLog::default()
    };
    r.tally(&sender_log(), &[Ok(twice), Err("gone".into())]);
    assert_eq!(r.received, 2);
    // Message 1 by the first subscriber, both by the failed one.
    assert_eq!(r.lost, 3);
    assert_eq!(r.duplicated, 1);
    assert_eq!(r.failed_subscribers, 1);
    assert_eq!(r.subscriber_error.as_deref(), Some("gone"));
    assert_eq!(r.delivery_time, Duration::from_micros(5_000));
    assert!(!r.passed());
}

/// What `render` prints, `parse_output` reads back: the row, under the
/// shared header, and the memory per client once connected.
#[test]
fn rendered_report_parses_back() {
    let sample = |rss_kib, cpu_ticks| Sample { rss_kib, cpu_ticks };
    let process = ProcessReport {
        pids: vec![42],
        in_process: false,
        start: sample(10_000, 100),
        connected: sample(10_250, 120),
        end: sample(10_400, 150),
        clock_ticks: 100,
    };
    let out = report(Some(process)).render();
    let lines: Vec<&str> = out.lines().collect();
    let row = lines.last().expect("a row");
    assert_eq!(lines[lines.len() - 3], TABLE_HEADER);
    assert_eq!(lines[lines.len() - 2], TABLE_ALIGN);
    assert_eq!(
        TABLE_HEADER.matches('|').count(),
        TABLE_ALIGN.matches('|').count()
    );
    assert_eq!(row.matches('|').count(), TABLE_HEADER.matches('|').count());
    assert!(
        out.contains("\nmemory per client    40.0 KiB over the run, 25.0 KiB once connected\n")
    );
    assert!(row.contains("| 135 | 10.2 | 40.0 | 0.50 |"), "{row}");

    let parsed = parse_output(&format!("warming up\n{out}"), Transport::Sse).expect("parsed");
    assert_eq!(parsed.row, *row);
    assert_eq!(parsed.kib_per_client_connected, Some(25.0));
    assert_eq!(parse_output(&out, Transport::Websocket), None);
    assert!(
        out.contains("\nserver process       pid 42: RSS 10000 -> "),
        "{out}"
    );
    assert!(!out.contains("\nservers "), "one server, no servers line");

    let figures = parsed.figures().expect("the row's figures");
    assert_eq!((figures.sent, figures.lost, figures.duplicated), (2, 0, 0));
    assert_eq!(figures.deliveries_per_second, 0.0);
    assert_eq!(row_figures("| sse | 1 |"), None);
}

/// Several servers: a line saying how the subscribers were spread, and the
/// processes' figures added up under every pid.
#[test]
fn several_servers_are_listed_and_added_up() {
    let sample = |rss_kib, cpu_ticks| Sample { rss_kib, cpu_ticks };
    let mut r = report(Some(ProcessReport {
        pids: vec![42, 43],
        in_process: false,
        start: sample(20_000, 100),
        connected: sample(20_500, 120),
        end: sample(21_000, 150),
        clock_ticks: 100,
    }));
    r.servers = vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()];
    r.clients = 11;
    let out = r.render();
    assert!(
        out.contains(
            "\nservers              2 sharing one log, subscribers and sends round-robin: \
             http://127.0.0.1:1 (6), http://127.0.0.1:2 (5)\n"
        ),
        "{out}"
    );
    assert!(out.contains("\nserver processes     pids 42 + 43 (added up): RSS 20000 -> "));
    let parsed = parse_output(&out, Transport::Sse).expect("parsed");
    assert!(
        parsed.row.starts_with("| sse | 11 | 10 | 2 |"),
        "{}",
        parsed.row
    );
}

/// Without a pid, the process columns are dashes and there is no memory.
#[test]
fn without_a_pid_the_process_columns_are_empty() {
    let out = report(None).render();
    let parsed = parse_output(&out, Transport::Sse).expect("parsed");
    assert!(parsed.row.ends_with("| – | – | – |"), "{}", parsed.row);
    assert_eq!(parsed.kib_per_client_connected, None);
}
