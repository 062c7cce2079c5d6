//! Burst: 1,000 messages appended at once, delivered to 10 subscribers, per
//! transport (polling every 100 ms). Where a transport batches (a poll answer
//! carries up to 500 messages; SSE, WebSocket and HTTP streaming write what
//! is queued in one go) it shows here. Throughput is in deliveries per second.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chat_benches::{Subscribers, start_server};
use chat_client::Transport;

const MESSAGES: u64 = 1_000;
const SUBSCRIBERS: usize = 10;

fn burst(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("burst_1000_to_10");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(MESSAGES * SUBSCRIBERS as u64));
    for transport in Transport::ALL {
        let server = runtime
            .block_on(async { start_server(chat_http::Config::default()) })
            .expect("server");
        let mut subscribers = runtime.block_on(Subscribers::connect(
            &server,
            transport,
            SUBSCRIBERS,
            Duration::from_millis(100),
        ));
        group.bench_function(BenchmarkId::from_parameter(transport.as_str()), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(subscribers.time_rounds(&server, iters, MESSAGES))
            });
        });
        drop(subscribers);
        runtime.block_on(server.shutdown()).expect("clean stop");
    }
    group.finish();
}

criterion_group!(benches, burst);
criterion_main!(benches);
