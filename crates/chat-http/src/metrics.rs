//! # `GET /metrics`: the counters in Prometheus' text format
//!
//! The same numbers as `/api/stats`, for a Prometheus server to scrape
//! (`text/plain; version=0.0.4`), plus one thing `/api/stats` cannot show:
//! how long a message takes from the store accepting it to the server
//! writing it to a subscriber, as a histogram per transport.
//!
//! The counters are not kept twice. They live in [`crate::stats`]'s atomics,
//! which the transports bump as they work; a scrape reads every one of them
//! and hands the values to the `metrics` crate's Prometheus exporter, which
//! writes the text. So `/metrics` and `/api/stats` read the same atomics and
//! cannot disagree (beyond the traffic between two reads). Each server has
//! its own exporter (no process-wide recorder), so two servers in one
//! process (the tests) keep their numbers apart.
//!
//! The histogram, `chat_store_to_write_seconds{transport}`, is observed once
//! per message delivered, where the transports count a delivery
//! ([`crate::stats::Counters::delivered_message`]): for polling and long
//! polling when the answer's body is made, for the streaming transports when
//! the message is handed to the connection's outgoing queue. Its start is the
//! message's `sent_at_ms`, the store's clock in whole milliseconds, so an
//! observation can read up to 1 ms long; with a shared log, every instance's
//! clock must agree. History is left out: a page a client asked for without a
//! cursor (the recent backfill), or after a reset or gap notice.
//!
//! `/metrics` is counted under no transport, like `/api/stats`.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Data;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use chat_protocol::Transport;

use crate::AppState;
use crate::api::NOSNIFF;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often the histograms' samples are folded into their buckets.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The histogram's name.
pub const STORE_TO_WRITE: &str = "chat_store_to_write_seconds";

/// The histogram's bucket bounds, in seconds: 1 ms (the resolution of
/// `sent_at_ms`) to 30 s (a long poll's wait, a slow reader's backlog).
pub const STORE_TO_WRITE_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Per-transport counters: name, help.
const PER_TRANSPORT: [(&str, &str); 6] = [
    (
        "chat_requests_total",
        "HTTP requests (a WebSocket counts its upgrade once)",
    ),
    (
        "chat_messages_delivered_total",
        "Chat messages handed to clients",
    ),
    (
        "chat_bytes_out_total",
        "Bytes sent: response heads, bodies with chunk framing, WebSocket frames",
    ),
    (
        "chat_bytes_in_total",
        "Bytes received: request heads, bodies, WebSocket frames",
    ),
    (
        "chat_empty_responses_total",
        "Answers that carried no message (polling and long polling)",
    ),
    (
        "chat_slow_reader_disconnects_total",
        "Streaming connections reset because their client fell too far behind or stopped reading",
    ),
];

/// One server's exporter and the handles it sets at each scrape.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `chat_connections_open{transport}`, in [`Transport::ALL`]'s order.
    open: Vec<Gauge>,
    /// The [`PER_TRANSPORT`] counters, per transport.
    per_transport: Vec<[Counter; 6]>,
    /// The counters of the whole server, in [`TOTALS`]' order.
    totals: Vec<Counter>,
    /// `chat_messages_retained`.
    retained: Gauge,
}

/// The counters of the whole server: name, help.
const TOTALS: [(&str, &str); 6] = [
    (
        "chat_messages_stored_total",
        "Messages stored in this epoch (the newest id), by every instance sharing the log",
    ),
    (
        "chat_rate_limited_total",
        "Sends refused by a rate limit (429 on POST, an error frame on WebSocket)",
    ),
    (
        "chat_connections_capped_total",
        "Requests and WebSockets refused over the cap on open connections per address",
    ),
    (
        "chat_body_timeouts_total",
        "Request bodies that did not arrive in time (408)",
    ),
    (
        "chat_heads_too_large_total",
        "Request heads over the size limit (431)",
    ),
    (
        "chat_stalled_total",
        "Streaming connections reset because their client left bytes unread",
    ),
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An exporter with every metric registered (at zero).
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(STORE_TO_WRITE.to_owned()),
                &STORE_TO_WRITE_BUCKETS,
            )
            // Only fails for an empty list of buckets.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, help: &'static str, unit: Option<Unit>| {
            recorder.describe_counter(name.into(), unit, help.into());
        };
        for (name, help) in PER_TRANSPORT.iter().chain(&TOTALS) {
            let unit = name.starts_with("chat_bytes").then_some(Unit::Bytes);
            describe(name, help, unit);
        }
        recorder.describe_gauge(
            "chat_connections_open".into(),
            None,
            "Requests or connections in progress right now".into(),
        );
        recorder.describe_gauge(
            "chat_messages_retained".into(),
            None,
            "Messages the store retains".into(),
        );
        recorder.describe_histogram(
            STORE_TO_WRITE.into(),
            Some(Unit::Seconds),
            "From the store accepting a message to the server writing it to a subscriber".into(),
        );
        let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        let labelled = |name: &'static str, t: Transport| {
            Key::from_parts(name, vec![Label::new("transport", t.as_str())])
        };
        let open = Transport::ALL
            .iter()
            .map(|&t| recorder.register_gauge(&labelled("chat_connections_open", t), &metadata))
            .collect();
        let per_transport = Transport::ALL
            .iter()
            .map(|&t| {
                std::array::from_fn(|i| {
                    recorder.register_counter(&labelled(PER_TRANSPORT[i].0, t), &metadata)
                })
            })
            .collect();
        let totals = TOTALS
            .iter()
            .map(|(name, _)| recorder.register_counter(&Key::from_name(*name), &metadata))
            .collect();
        let retained =
            recorder.register_gauge(&Key::from_name("chat_messages_retained"), &metadata);
        Metrics {
            recorder,
            handle,
            open,
            per_transport,
            totals,
            retained,
        }
    }

    /// The `chat_store_to_write_seconds` histogram of `transport`.
    pub fn store_to_write(&self, transport: Transport) -> Histogram {
        let key = Key::from_parts(
            STORE_TO_WRITE,
            vec![Label::new("transport", transport.as_str())],
        );
        let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        self.recorder.register_histogram(&key, &metadata)
    }

    /// Folds the histograms' samples into their buckets, so that they hold
    /// no memory between scrapes (every [`UPKEEP_EVERY`]).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The exposition text of `state`'s counters, read now.
    pub fn render(&self, state: &AppState) -> String {
        let stats = state.stats.snapshot();
        for (i, &t) in Transport::ALL.iter().enumerate() {
            let c = stats.of(t);
            let values = [
                c.requests,
                c.messages_delivered,
                c.bytes_out,
                c.bytes_in,
                c.empty_responses,
                state.stats.of(t).slow_reader_disconnects(),
            ];
            for (counter, value) in self.per_transport[i].iter().zip(values) {
                counter.absolute(value);
            }
            self.open[i].set(c.open as f64);
        }
        let store = state.store.stats();
        let refused = state.stats.refusals();
        let values = [
            store.last_id,
            refused.rate_limited,
            refused.connections_capped,
            refused.body_timeouts,
            refused.heads_too_large,
            refused.stalled,
        ];
        for (counter, value) in self.totals.iter().zip(values) {
            counter.absolute(value);
        }
        self.retained.set(store.retained as f64);
        self.handle.render()
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(state: Data<AppState>) -> HttpResponse {
    let metrics: &Arc<Metrics> = &state.metrics;
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .insert_header(NOSNIFF)
        .body(metrics.render(&state))
}
