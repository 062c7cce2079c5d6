//! The link model: order kept, delays applied (lower bounds only), the line's
//! bandwidth accounted for, and a live relay that keeps bytes in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::{Line, Link, Schedule};
use crate::relay::Relay;

const MS: Duration = Duration::from_millis(1);

#[test]
fn jitter_never_reorders_and_every_chunk_waits_at_least_the_delay() {
    let link = Link {
        delay: 25 * MS,
        jitter: 40 * MS,
        bits_per_second: None,
    };
    let mut schedule = Schedule::new(link, Arc::new(Line::default()), 7);
    let t0 = Instant::now();
    let mut last = t0;
    let mut jittered = 0;
    for i in 0..1_000u32 {
        // Chunks 1 ms apart: far closer than the jitter, so without the
        // rule many would overtake the one before.
        let arrival = t0 + i * MS;
        let at = schedule.release(arrival, 100);
        assert!(at >= last, "chunk {i} released before the one ahead of it");
        assert!(at >= arrival + link.delay, "chunk {i} released early");
        if at > arrival + link.delay {
            jittered += 1;
        }
        last = at;
    }
    assert!(jittered > 0, "no chunk got any jitter");
}

#[test]
fn the_line_is_busy_for_exactly_the_bits_it_carries() {
    // 80 kbit/s: 1,000 bytes take 100 ms.
    let link = Link {
        delay: 10 * MS,
        jitter: Duration::ZERO,
        bits_per_second: Some(80_000),
    };
    assert_eq!(link.serialization(1_000), 100 * MS);
    let line = Arc::new(Line::default());
    let mut schedule = Schedule::new(link, line.clone(), 1);
    let t0 = Instant::now();
    // Ten chunks arrive together: each waits for the ones ahead of it.
    for i in 1..=10u32 {
        let at = schedule.release(t0, 1_000);
        assert!(at >= t0 + i * 100 * MS + link.delay, "chunk {i} too early");
    }
    // The line is free again only after all 80,000 bits.
    assert_eq!(line.transmit(&link, t0, 0), t0 + 1_000 * MS);
    // A chunk arriving after the line has gone idle does not wait for it.
    let later = t0 + 5_000 * MS;
    assert_eq!(line.transmit(&link, later, 500), later + 50 * MS);
}

#[test]
fn connections_share_one_line_per_direction() {
    let link = Link {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        bits_per_second: Some(8_000),
    };
    let line = Arc::new(Line::default());
    let mut a = Schedule::new(link, line.clone(), 1);
    let mut b = Schedule::new(link, line, 2);
    let t0 = Instant::now();
    // 100 bytes at 8 kbit/s: 100 ms each, one after the other.
    assert!(a.release(t0, 100) >= t0 + 100 * MS);
    assert!(b.release(t0, 100) >= t0 + 200 * MS);
    assert!(a.release(t0, 100) >= t0 + 300 * MS);
}

#[test]
fn no_link_changes_nothing() {
    assert!(Link::NONE.is_none());
    assert!(!Link::half_of(50 * MS).is_none());
    assert_eq!(Link::half_of(150 * MS).delay, 75 * MS);
    assert_eq!(Link::NONE.serialization(1 << 20), Duration::ZERO);
}

/// An echo server on loopback: writes back what it reads, per connection.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_live_relay_delays_both_ways_keeps_order_and_counts() {
    let upstream = echo_server().await;
    let link = Link {
        delay: 20 * MS,
        jitter: 15 * MS,
        bits_per_second: Some(10_000_000),
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let relay = Relay::with_link(listen, upstream, link, link)
        .await
        .expect("relay");
    let mut socket = TcpStream::connect(relay.addr).await.expect("connect");
    // 200 small writes with a running counter, then read it all back.
    let sent: Vec<u8> = (0..200u32).flat_map(|i| i.to_be_bytes()).collect();
    let start = Instant::now();
    let (mut r, mut w) = socket.split();
    let writing = async {
        for chunk in sent.chunks(4) {
            w.write_all(chunk).await.expect("write");
        }
        w.shutdown().await.expect("shutdown");
    };
    let mut back = Vec::new();
    let reading = tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back));
    let (_, read) = tokio::join!(writing, reading);
    read.expect("echoed within 30 s").expect("read");
    assert_eq!(back, sent, "bytes came back reordered or incomplete");
    // Up and down again: at least two one-way delays.
    assert!(start.elapsed() >= 2 * link.delay);
    let counts = relay.tally.counts();
    assert_eq!(counts.bytes_up, sent.len() as u64);
    assert_eq!(counts.bytes_down, sent.len() as u64);
    assert_eq!(counts.connections, 1);
}
