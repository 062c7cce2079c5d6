//! The store alone, without any transport: what an append, a read after a
//! cursor and a wake-up cost, so that the transport benches can be read as
//! "store cost plus transport cost".

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chat_store::{Cursor, NewMessage, Store, StoreConfig, Via};

fn message(i: u64) -> NewMessage {
    NewMessage {
        user: "bench".into(),
        text: format!("a message of the usual sort, number {i}"),
        client_msg_id: None,
        via: Via::Api,
    }
}

fn filled(n: u64) -> Store {
    let store = Store::new(StoreConfig::default());
    for i in 0..n {
        store.append(message(i)).expect("valid");
    }
    store
}

/// Validate, number, serialize once, push (and evict past the history).
fn append(c: &mut Criterion) {
    let store = filled(10_000);
    let mut i = 0;
    c.bench_function("store/append", |b| {
        b.iter(|| {
            i += 1;
            store.append(message(i)).expect("valid")
        })
    });
}

/// Read N messages after a cursor: N reference-count increments.
fn read_since(c: &mut Criterion) {
    let store = filled(10_000);
    let mut group = c.benchmark_group("store/read_since");
    for n in [1u64, 10, 100, 500] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let since = Cursor(store.newest().0 - n);
            b.iter(|| store.read(Some(since), n as usize).expect("valid"))
        });
    }
    group.finish();
}

/// One append waking N parked waiters, until every one has run.
fn wake_up(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("store/wake_up");
    for waiters in [1usize, 10, 100, 1_000] {
        group.throughput(Throughput::Elements(waiters as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(waiters),
            &waiters,
            |b, &waiters| {
                let store = Arc::new(Store::new(StoreConfig::default()));
                b.to_async(&runtime).iter_custom(|iters| {
                    let store = store.clone();
                    async move {
                        let mut total = std::time::Duration::ZERO;
                        for i in 0..iters {
                            let cursor = store.newest();
                            let parked: Vec<_> = (0..waiters)
                                .map(|_| {
                                    let store = store.clone();
                                    tokio::spawn(async move { store.wait_beyond(cursor).await })
                                })
                                .collect();
                            while store.waiting() < waiters {
                                tokio::task::yield_now().await;
                            }
                            let start = std::time::Instant::now();
                            store.append(message(i)).expect("valid");
                            for p in parked {
                                p.await.expect("woken");
                            }
                            total += start.elapsed();
                        }
                        total
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append, read_since, wake_up);
criterion_main!(benches);
