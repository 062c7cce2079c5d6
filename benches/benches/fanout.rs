//! Fan-out: one message to N subscribers, N = 1, 10, 100, 1000, per push
//! transport. The message is appended straight to the store (no POST), and
//! the clock stops when every subscriber (the project's Rust client, over
//! loopback TCP, in this same process) has it. Throughput is in deliveries
//! per second.
//!
//! Regular polling polls every 50 ms here: its fan-out time is bound by the
//! interval, not by the server.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chat_benches::{Subscribers, start_server};
use chat_client::Transport;

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for transport in Transport::ALL {
        let mut group = c.benchmark_group(format!("fanout/{}", transport.as_str()));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(5));
        for n in [1usize, 10, 100, 1_000] {
            let server = runtime
                .block_on(async { start_server(chat_http::Config::default()) })
                .expect("server");
            let mut subscribers = runtime.block_on(Subscribers::connect(
                &server,
                transport,
                n,
                Duration::from_millis(50),
            ));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter_custom(|iters| runtime.block_on(subscribers.time_rounds(&server, iters, 1)));
            });
            drop(subscribers);
            runtime.block_on(server.shutdown()).expect("clean stop");
        }
        group.finish();
    }
}

criterion_group!(benches, fanout);
criterion_main!(benches);
