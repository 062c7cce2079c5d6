//! `GET /metrics`: Prometheus' text format, read with a Prometheus parser,
//! agreeing with `/api/stats` after real traffic on every transport.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use reqwest::StatusCode;
use serde_json::json;

use chat_client::Options;
use chat_protocol::{Cursor, StatsBody, Transport};

use crate::helpers::{TestApp, eventually, next_messages, spawn_app};

/// Scrapes `/metrics` and parses it as Prometheus does.
async fn scrape(app: &TestApp) -> Scrape {
    let answer = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::OK);
    let content_type = answer.headers()["content-type"].to_str().expect("ASCII");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = answer.text().await.expect("text");
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the exposition format")
}

/// The sample named `metric` with `transport` (or no label: `None`).
fn sample<'a>(scrape: &'a Scrape, metric: &str, transport: Option<Transport>) -> &'a Sample {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("transport") == transport.map(|t| t.as_str()))
        .unwrap_or_else(|| panic!("no {metric} for {transport:?}"))
}

/// A counter's or a gauge's value.
fn value(scrape: &Scrape, metric: &str, transport: Option<Transport>) -> u64 {
    match sample(scrape, metric, transport).value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v as u64,
        ref other => panic!("{metric} is {other:?}"),
    }
}

/// After messages went out on every transport (and a refusal), every metric
/// the contract names agrees with `/api/stats`, and the store-to-write
/// histogram has one observation per message delivered.
#[tokio::test]
async fn metrics_agree_with_stats_on_every_transport() {
    const MESSAGES: usize = 3;
    let app = spawn_app().await;
    let mut readers = Vec::new();
    for transport in Transport::ALL {
        let mut sub = app.client.subscribe(
            transport,
            Options {
                since: Some(Cursor(0)),
                poll_interval: Duration::from_millis(50),
                ..Options::default()
            },
        );
        readers.push(tokio::spawn(async move {
            next_messages(&mut sub, MESSAGES).await;
        }));
    }
    for (i, transport) in Transport::ALL.into_iter().enumerate().take(MESSAGES) {
        let via = if transport.sends_by_post() {
            transport.as_str()
        } else {
            "api"
        };
        let body = json!({"user": "ana", "text": format!("m{i}"), "via": via});
        let sent = app
            .http
            .post(app.url("/api/messages"))
            .json(&body)
            .send()
            .await
            .expect("answered");
        assert_eq!(sent.status(), StatusCode::CREATED);
    }
    for reader in readers {
        reader.await.expect("every transport delivers");
    }
    // A refusal to count: malformed JSON is a 400, not a rate limit; the
    // rate limit's count is read either way.
    let refused = app
        .http
        .post(app.url("/api/messages"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    // Subscribers gone, so nothing moves between the two reads.
    eventually("every subscription closed", || async {
        let stats = app.client.stats().await.expect("stats");
        Transport::ALL
            .iter()
            .all(|&t| stats.transports.of(t).open == 0)
    })
    .await;

    let scraped = scrape(&app).await;
    let stats: StatsBody = app.client.stats().await.expect("stats");
    for transport in Transport::ALL {
        let c = stats.transports.of(transport);
        let slow_readers = stats.refused.slow_readers.get(&transport).copied();
        let t = Some(transport);
        assert_eq!(value(&scraped, "chat_connections_open", t), c.open);
        assert_eq!(value(&scraped, "chat_requests_total", t), c.requests);
        assert_eq!(value(&scraped, "chat_bytes_out_total", t), c.bytes_out);
        assert_eq!(value(&scraped, "chat_bytes_in_total", t), c.bytes_in);
        let delivered = value(&scraped, "chat_messages_delivered_total", t);
        assert_eq!(delivered, c.messages_delivered);
        assert!(delivered >= MESSAGES as u64, "{t:?} delivered {delivered}");
        assert_eq!(
            value(&scraped, "chat_slow_reader_disconnects_total", t),
            slow_readers.unwrap_or(0)
        );
        // One observation per message delivered: every page here was news.
        let Value::Histogram(buckets) = &sample(&scraped, "chat_store_to_write_seconds", t).value
        else {
            panic!("chat_store_to_write_seconds is a histogram");
        };
        let all = buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .expect("a +Inf bucket");
        assert_eq!(all.count as u64, delivered, "{t:?}");
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "cumulative"
        );
        assert_eq!(
            value(&scraped, "chat_store_to_write_seconds_count", t),
            delivered
        );
    }
    assert_eq!(
        value(&scraped, "chat_messages_stored_total", None),
        stats.store.last_id
    );
    assert_eq!(
        value(&scraped, "chat_rate_limited_total", None),
        stats.refused.rate_limited
    );
    assert_eq!(
        value(&scraped, "chat_connections_capped_total", None),
        stats.refused.connections_capped
    );
    // `/metrics` itself is counted under no transport: scraping again
    // changes no transport's counters.
    let again = scrape(&app).await;
    for t in Transport::ALL.map(Some) {
        assert_eq!(
            value(&again, "chat_requests_total", t),
            value(&scraped, "chat_requests_total", t)
        );
    }
}

/// Refusals by the rate limit show in `/metrics` as in `/api/stats`.
#[tokio::test]
async fn rate_limited_sends_are_counted_in_metrics() {
    let app = crate::helpers::spawn_with(chat_http::Config {
        limits: chat_http::rate::LimitSettings {
            send_rate: 1,
            send_burst: 1,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut refused = 0;
    for i in 0..5 {
        let answer = app
            .http
            .post(app.url("/api/messages"))
            .json(&json!({"user": format!("u{i}"), "text": "hi"}))
            .send()
            .await
            .expect("answered");
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 1);
    let scraped = scrape(&app).await;
    assert_eq!(value(&scraped, "chat_rate_limited_total", None), refused);
}

/// A transport's own binary mounts `/metrics` too: a server with polling
/// alone answers it, with every transport's series (zero for the others).
#[tokio::test]
async fn a_single_transport_server_serves_metrics() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(
        listener,
        chat_http::AppState::new(chat_http::Config::default()),
        &[chat_polling::mount()],
    )
    .expect("server starts");
    let url = format!("http://{}", server.addr);
    let sent = reqwest::Client::new()
        .post(format!("{url}/api/messages"))
        .json(&json!({"user": "ana", "text": "hi"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(sent.status(), StatusCode::CREATED);
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    let scraped =
        Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the exposition format");
    assert_eq!(value(&scraped, "chat_messages_stored_total", None), 1);
    for t in Transport::ALL.map(Some) {
        assert_eq!(value(&scraped, "chat_requests_total", t), 0);
    }
    server.shutdown().await.expect("stops");
}
