//! Send-to-deliver latency per transport, one subscriber: from the moment a
//! client starts `POST /api/messages` to the moment the subscriber (the
//! project's Rust client, over loopback TCP) has the message.
//!
//! Regular polling is measured with a 50 ms interval. Each send here comes
//! right after the previous delivery, that is right after a poll, so its
//! figure is a full interval: the worst case (a random send waits half an
//! interval on average).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::mpsc;

use chat_benches::{base_url, start_server};
use chat_client::{Client, Event, Options, Transport, Via};

fn send_to_deliver(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime
        .block_on(async { start_server(chat_http::Config::default()) })
        .expect("server");
    let base = base_url(&server);
    let mut group = c.benchmark_group("send_to_deliver");
    for transport in Transport::ALL {
        if transport == Transport::Polling {
            group.sample_size(20);
        } else {
            group.sample_size(100);
        }
        // A subscriber that forwards every message it gets.
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Client::new(&base);
        let since = server.state.store.newest();
        let reader = runtime.spawn(async move {
            let mut sub = client.subscribe(
                transport,
                Options {
                    since: Some(since),
                    poll_interval: Duration::from_millis(50),
                    ..Options::default()
                },
            );
            while let Ok(event) = sub.next().await {
                if let Event::Message { message, .. } = event
                    && tx.send(message.id).is_err()
                {
                    break;
                }
            }
        });
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let sender = Client::new(&base);
        group.bench_function(transport.as_str(), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (sender, rx) = (sender.clone(), rx.clone());
                async move {
                    let mut rx = rx.lock().await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let sent = sender
                            .send("bench", "a message of the usual sort", None, Via::Api)
                            .await
                            .expect("sent");
                        while rx.recv().await.expect("subscriber alive") < sent.message.id {}
                        total += start.elapsed();
                    }
                    total
                }
            });
        });
        reader.abort();
    }
    group.finish();
    runtime.block_on(server.shutdown()).expect("clean stop");
}

criterion_group!(benches, send_to_deliver);
criterion_main!(benches);
