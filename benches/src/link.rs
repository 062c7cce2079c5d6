//! A link model for the counting [`relay`](crate::relay): one-way delay,
//! jitter and bandwidth, applied to the bytes of each direction as they
//! pass, so that the transports can be compared over a slow link on
//! loopback.
//!
//! Each direction of each connection has one reader and one writer task and
//! one queue between them. The reader stamps every chunk it reads with a
//! release time and queues it; the writer takes chunks in order and sleeps
//! until each one's time before writing it. So there is one timer per
//! connection direction at a time, never a task or thread per chunk.
//!
//! A chunk that arrives at `t` with `n` bytes is released at:
//!
//! 1. the time its last bit has crossed the line: the line is busy with
//!    earlier chunks until `free`, and `n` bytes take `8 n / rate` seconds,
//!    so `sent = max(t, free) + 8 n / rate` (and the line is then busy until
//!    `sent`). One line per direction is shared by every connection through
//!    the relay, like a user's access link;
//! 2. plus the one-way delay and a jitter drawn uniformly from
//!    `0..=jitter` for this chunk;
//! 3. but never before the chunk ahead of it on the same connection was
//!    released: TCP delivers in order, so jitter delays bytes and never
//!    reorders them.
//!
//! The end of a stream (the reader seeing EOF) is released the same way, so
//! a close arrives after every byte sent before it, one delay later.
//!
//! What it does not model: loss and retransmission, TCP's congestion window
//! and slow start, a receive window (the queue holds at most [`QUEUE`]
//! chunks, then the reader stops reading and TCP's own flow control takes
//! over on loopback), or a different path for the two directions' packets
//! beyond each direction having its own parameters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks queued per connection direction before the reader waits.
pub const QUEUE: usize = 256;

/// How big a read is.
const READ_SIZE: usize = 64 * 1024;

/// One direction of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    /// The one-way delay every byte gets.
    pub delay: Duration,
    /// Up to this much more, drawn per chunk (uniform in `0..=jitter`).
    pub jitter: Duration,
    /// The line's rate in bits per second; `None`: no limit.
    pub bits_per_second: Option<u64>,
}

impl Link {
    /// No delay, no jitter, no limit: the relay forwards as it reads.
    pub const NONE: Link = Link {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        bits_per_second: None,
    };

    /// One direction of a link with round trip `rtt`: half of it one way.
    pub fn half_of(rtt: Duration) -> Link {
        Link {
            delay: rtt / 2,
            ..Link::NONE
        }
    }

    /// Whether this link changes nothing.
    pub fn is_none(&self) -> bool {
        *self == Link::NONE
    }

    /// How long `bytes` take to cross the line at its rate.
    pub fn serialization(&self, bytes: usize) -> Duration {
        match self.bits_per_second {
            Some(rate) if rate > 0 => {
                let nanos = bytes as u128 * 8 * 1_000_000_000 / u128::from(rate);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            _ => Duration::ZERO,
        }
    }
}

/// The line of one direction, shared by every connection through a relay:
/// when it is free again.
#[derive(Debug, Default)]
pub struct Line {
    free: Mutex<Option<Instant>>,
}

impl Line {
    /// Puts `bytes` on the line at `arrival` (or once it is free) and
    /// returns when the last of them has crossed it.
    pub fn transmit(&self, link: &Link, arrival: Instant, bytes: usize) -> Instant {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let start = free.map_or(arrival, |f| f.max(arrival));
        let sent = start + link.serialization(bytes);
        *free = Some(sent);
        sent
    }
}

/// When each chunk of one connection direction is released.
#[derive(Debug)]
pub struct Schedule {
    link: Link,
    line: Arc<Line>,
    /// The release time of the chunk before.
    last: Option<Instant>,
    rng: StdRng,
}

impl Schedule {
    /// A schedule for one connection direction over `line`; `seed` makes
    /// its jitter repeatable.
    pub fn new(link: Link, line: Arc<Line>, seed: u64) -> Schedule {
        Schedule {
            link,
            line,
            last: None,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// When a chunk of `bytes` that arrived at `arrival` is released (see
    /// the module's documentation). Never earlier than the chunk before.
    pub fn release(&mut self, arrival: Instant, bytes: usize) -> Instant {
        let sent = self.line.transmit(&self.link, arrival, bytes);
        let jitter = if self.link.jitter.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(self.link.jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(self.rng.random_range(0..=nanos))
        };
        let mut at = sent + self.link.delay + jitter;
        if let Some(last) = self.last {
            at = at.max(last);
        }
        self.last = Some(at);
        at
    }
}

/// Copies `read` to `write` through `schedule` (straight through when it is
/// `None`), calling `count` on every chunk as it is read, until EOF or an
/// error on either side; then shuts `write` down.
pub async fn forward<R, W>(
    mut read: R,
    mut write: W,
    schedule: Option<Schedule>,
    mut count: impl FnMut(&[u8]) + Send,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut buf = vec![0u8; READ_SIZE];
    let Some(mut schedule) = schedule else {
        loop {
            let n = match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            count(&buf[..n]);
            if write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
        return;
    };
    // `None` is the end of the stream.
    let (queue, mut queued) = mpsc::channel::<(Instant, Option<Bytes>)>(QUEUE);
    let reading = async move {
        loop {
            let n = match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            count(&buf[..n]);
            let at = schedule.release(Instant::now(), n);
            if queue
                .send((at, Some(Bytes::copy_from_slice(&buf[..n]))))
                .await
                .is_err()
            {
                // The writer is gone: the other side closed.
                return;
            }
        }
        let at = schedule.release(Instant::now(), 0);
        let _ = queue.send((at, None)).await;
    };
    let writing = async move {
        while let Some((at, chunk)) = queued.recv().await {
            tokio::time::sleep_until(at).await;
            let Some(bytes) = chunk else { break };
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(reading, writing);
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
