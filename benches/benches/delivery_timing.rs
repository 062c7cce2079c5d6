//! What `/metrics`' store-to-write histogram adds to a delivery: counting a
//! message handed to a client with the histogram observed (a clock read and
//! a lock-free push, plus its share of folding the samples into buckets,
//! which the server does every second), against counting it alone.
//!
//! `cargo bench -p chat-benches --bench delivery_timing`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use chat_http::Transport;
use chat_http::metrics::Metrics;
use chat_http::stats::Stats;
use chat_store::{Cursor, NewMessage, Page, Store, StoreConfig, Via};

/// Deliveries between two folds of the samples in the bench: the server
/// folds every second, and 10,000 deliveries a second is a busy server.
const FOLD_EVERY: u64 = 10_000;

/// A page of `n` messages that is news (asked with a cursor), so timed.
fn news(n: u64) -> Page {
    let store = Store::new(StoreConfig::default());
    for i in 0..n {
        store
            .append(NewMessage {
                user: "bench".into(),
                text: format!("a message of the usual sort, number {i}"),
                client_msg_id: None,
                via: Via::Api,
            })
            .expect("valid");
    }
    store
        .read_in(None, Some(Cursor(0)), n as usize)
        .expect("a page")
}

/// `iters` deliveries of one message through `stats`: counted alone (as
/// before the histogram) without `metrics`, counted and timed with it,
/// folding the samples every [`FOLD_EVERY`].
fn deliver(stats: &Stats, metrics: Option<&Metrics>, page: &Page, iters: u64) -> Duration {
    let counters = stats.of(Transport::Sse);
    let message = &page.messages[0];
    let started = Instant::now();
    for i in 0..iters {
        match metrics {
            // Before the histogram: a count.
            None => counters.delivered(1),
            Some(metrics) => {
                counters.delivered_message(page, message);
                if i % FOLD_EVERY == FOLD_EVERY - 1 {
                    metrics.upkeep();
                }
            }
        }
    }
    if let Some(metrics) = metrics {
        metrics.upkeep();
    }
    started.elapsed()
}

fn delivery(c: &mut Criterion) {
    let page = news(1);
    let metrics = Metrics::new();
    let timed = Stats::timed(|t| metrics.store_to_write(t));
    let untimed = Stats::default();
    let mut group = c.benchmark_group("delivery");
    group.bench_function("counted", |b| {
        b.iter_custom(|iters| deliver(&untimed, None, &page, iters))
    });
    group.bench_function("counted_and_timed", |b| {
        b.iter_custom(|iters| deliver(&timed, Some(&metrics), &page, iters))
    });
    // The clock read alone, the larger part of the difference.
    group.bench_function("clock_read", |b| b.iter(std::time::SystemTime::now));
    group.finish();
}

criterion_group!(benches, delivery);
criterion_main!(benches);
