//! How long a held long poll takes to answer once a message is sent: from the
//! moment the client starts `POST /api/messages` to the moment the held
//! `GET /longpoll/messages` has its whole answer. Real server, real HTTP
//! clients, loopback TCP.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use chat_benches::{base_url, start_server};
use chat_client::{Client, Via};

fn longpoll_wakeup(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime
        .block_on(async { start_server(chat_http::Config::default()) })
        .expect("server");
    let base = base_url(&server);
    let store = server.state.store.clone();
    let sender = Client::new(&base);
    let poller = reqwest::Client::new();

    c.bench_function("longpoll/send_to_held_answer", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (store, sender, poller, base) =
                (store.clone(), sender.clone(), poller.clone(), base.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let since = store.newest();
                    let url = format!("{base}/longpoll/messages?since={since}&wait_s=30");
                    let held = tokio::spawn(poller.get(url).send());
                    // Wait until the poll is parked on the store.
                    while store.waiting() == 0 {
                        tokio::task::yield_now().await;
                    }
                    let start = Instant::now();
                    sender
                        .send("bench", "wake up", None, Via::Api)
                        .await
                        .expect("sent");
                    let answer = held.await.expect("task").expect("answer");
                    answer.bytes().await.expect("body");
                    total += start.elapsed();
                }
                total
            }
        });
    });
    runtime.block_on(server.shutdown()).expect("clean stop");
}

criterion_group!(benches, longpoll_wakeup);
criterion_main!(benches);
