//! The `link` binary's core: the demo page and its transports through a
//! modelled slow link. A real server, a real relay, the project's clients.

use std::time::{Duration, Instant};

use chat_benches::link_server::{LinkOptions, LinkServer};
use chat_client::{Client, Event, Options, Subscription, Transport, Via};

const RTT: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(30);

/// The next chat message of `sub`, within [`LIMIT`].
async fn next_message(sub: &mut Subscription) -> u64 {
    loop {
        let event = tokio::time::timeout(LIMIT, sub.next())
            .await
            .expect("an event within 30 s")
            .expect("a working subscription");
        if let Event::Message { message, .. } = event {
            return message.id.0;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_through_the_slow_link_takes_at_least_both_one_way_delays() {
    let link = LinkServer::start(LinkOptions {
        round_trip: RTT,
        jitter: Duration::from_millis(10),
        bits_per_second: None,
        upstream: None,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    })
    .await
    .expect("link server");
    assert_eq!(link.link().delay, RTT / 2);

    // The page itself comes through, one round trip at least.
    let start = Instant::now();
    let page = reqwest::get(link.url()).await.expect("GET /");
    assert!(page.status().is_success(), "{}", page.status());
    assert!(page.text().await.expect("body").contains("<html"));
    assert!(start.elapsed() >= RTT);

    // An SSE and a WebSocket subscriber, both through the link (the
    // upgrade passes the relay), each with a first message.
    let client = Client::new(link.relay.base_url());
    let options = Options::default();
    let mut sse = client.subscribe(Transport::Sse, options.clone());
    let mut ws = client.subscribe(Transport::Websocket, options);
    let first = client
        .send("tester", "warm-up", None, Via::Api)
        .await
        .expect("send through the link");
    assert_eq!(next_message(&mut sse).await, first.message.id.0);
    assert_eq!(next_message(&mut ws).await, first.message.id.0);

    // Sent through the link and delivered through it: up, then down.
    let before = link.relay.tally.counts();
    let start = Instant::now();
    let sent = client
        .send("tester", "over the slow link", None, Via::Api)
        .await
        .expect("send through the link");
    let id = sent.message.id.0;
    assert!(
        start.elapsed() >= RTT,
        "the send's answer came back in less than a round trip"
    );
    assert_eq!(next_message(&mut sse).await, id);
    assert!(start.elapsed() >= RTT);
    assert_eq!(next_message(&mut ws).await, id);
    assert!(start.elapsed() >= RTT);

    // The relay counted it: one POST up, an SSE event and a WebSocket frame
    // down (at least; keep-alives may add to both).
    let counts = link.relay.tally.counts().since(before);
    assert!(counts.requests >= 1, "{counts:?}");
    assert!(counts.bytes_up > 0, "{counts:?}");
    assert!(counts.frames_down >= 2, "{counts:?}");
    assert!(counts.bytes_down > 2 * 80, "{counts:?}");
    assert!(link.relay.tally.counts().connections >= 3);
    link.stop().await;
}
