//! A counting relay: a TCP proxy on loopback that forwards every byte
//! between clients and a server and counts what it forwards, so that the
//! wire overhead of each transport is measured at the socket rather than
//! estimated.
//!
//! Besides bytes up (client to server) and down, it counts HTTP requests
//! (request lines seen going up) and, going down, the messages of the
//! streaming transports, each the way its own client finds them: server-sent
//! events (`id:` lines at the start of an event, in a `text/event-stream`
//! body), HTTP streaming's message lines (lines starting `{"id":`, in an
//! `application/x-ndjson` body; gap and ping lines are not messages) and
//! WebSocket frames (parsed from the bytes after a `101 Switching
//! Protocols`). TCP/IP headers are not counted, exactly like the server's
//! own `/api/stats`, so the two can be compared.
//!
//! It can also model a slow link ([`Relay::with_link`]): delay, jitter and
//! bandwidth per direction, from [`crate::link`]. Bytes are counted as they
//! arrive at the relay, before the link holds them back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::net::{TcpListener, TcpStream};

use crate::link::{Line, Link, Schedule, forward};

/// What the relay has forwarded so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Bytes from clients to the server.
    pub bytes_up: AtomicU64,
    /// Bytes from the server to clients.
    pub bytes_down: AtomicU64,
    /// HTTP request lines seen going up.
    pub requests: AtomicU64,
    /// SSE events, NDJSON message lines and WebSocket frames seen going
    /// down.
    pub frames_down: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

/// A snapshot of a [`Tally`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// See [`Tally::bytes_up`].
    pub bytes_up: u64,
    /// See [`Tally::bytes_down`].
    pub bytes_down: u64,
    /// See [`Tally::requests`].
    pub requests: u64,
    /// See [`Tally::frames_down`].
    pub frames_down: u64,
    /// See [`Tally::connections`].
    pub connections: u64,
}

impl Counts {
    /// `self - before`, field by field.
    pub fn since(self, before: Counts) -> Counts {
        Counts {
            bytes_up: self.bytes_up - before.bytes_up,
            bytes_down: self.bytes_down - before.bytes_down,
            requests: self.requests - before.requests,
            frames_down: self.frames_down - before.frames_down,
            connections: self.connections - before.connections,
        }
    }
}

impl Tally {
    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            bytes_up: self.bytes_up.load(Relaxed),
            bytes_down: self.bytes_down.load(Relaxed),
            requests: self.requests.load(Relaxed),
            frames_down: self.frames_down.load(Relaxed),
            connections: self.connections.load(Relaxed),
        }
    }
}

/// A running relay.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// What it has counted.
    pub tally: Arc<Tally>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Starts a relay on a free loopback port that forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Relay> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Relay::with_link(listen, upstream, Link::NONE, Link::NONE).await
    }

    /// Starts a relay on `listen` that forwards to `upstream` over a
    /// modelled link: `up` for bytes from clients to the server, `down` for
    /// the other way ([`crate::link`]). Each direction has one line that
    /// every connection shares.
    pub async fn with_link(
        listen: SocketAddr,
        upstream: SocketAddr,
        up: Link,
        down: Link,
    ) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let tally = Arc::new(Tally::default());
        let lines = [Arc::new(Line::default()), Arc::new(Line::default())];
        let seed: u64 = rand::random();
        let task = tokio::spawn({
            let tally = tally.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let n = tally.connections.fetch_add(1, Relaxed);
                    let schedule = |link: Link, line: &Arc<Line>, k: u64| {
                        (!link.is_none()).then(|| {
                            Schedule::new(link, line.clone(), seed.wrapping_add(2 * n + k))
                        })
                    };
                    let schedules = [schedule(up, &lines[0], 0), schedule(down, &lines[1], 1)];
                    let tally = tally.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            relay(client, server, tally, schedules).await;
                        }
                    });
                }
            }
        });
        Ok(Relay { addr, tally, task })
    }

    /// `http://ADDR` of the relay.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Forwards both ways until either side closes, counting as it goes, each
/// direction through its schedule (up, down) when it has one.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    tally: Arc<Tally>,
    [up, down]: [Option<Schedule>; 2],
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut scan = LineStarts::default();
    let up_tally = tally.clone();
    let up = forward(client_read, server_write, up, move |bytes| {
        up_tally.bytes_up.fetch_add(bytes.len() as u64, Relaxed);
        let requests = scan.count(bytes, &[b"GET ", b"POST "]);
        up_tally.requests.fetch_add(requests, Relaxed);
    });
    let mut frames = DownstreamFrames::default();
    let down = forward(server_read, client_write, down, move |bytes| {
        tally.bytes_down.fetch_add(bytes.len() as u64, Relaxed);
        tally.frames_down.fetch_add(frames.count(bytes), Relaxed);
    });
    tokio::join!(up, down);
}

/// Counts lines that start with one of some prefixes, across reads.
#[derive(Default)]
struct LineStarts {
    /// The start of the current line, when it is shorter than the longest
    /// prefix so far.
    pending: Vec<u8>,
    /// Whether the next byte starts a line.
    at_line_start: bool,
    started: bool,
}

impl LineStarts {
    fn count(&mut self, bytes: &[u8], prefixes: &[&[u8]]) -> u64 {
        if !self.started {
            self.started = true;
            self.at_line_start = true;
        }
        let longest = prefixes.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut found = 0;
        for &b in bytes {
            if self.at_line_start || !self.pending.is_empty() {
                self.at_line_start = false;
                self.pending.push(b);
                if prefixes.contains(&self.pending.as_slice()) {
                    found += 1;
                    self.pending.clear();
                } else if self.pending.len() >= longest
                    || !prefixes.iter().any(|p| p.starts_with(&self.pending))
                {
                    self.pending.clear();
                }
            }
            if b == b'\n' {
                self.at_line_start = true;
                self.pending.clear();
            }
        }
        found
    }
}

/// What the body after a response head is, as far as counting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Body {
    /// The head has not all arrived yet.
    #[default]
    Undecided,
    /// `text/event-stream`: count `id:` lines.
    Events,
    /// `application/x-ndjson`: count lines that are a message.
    Lines,
    /// After a `101`: count WebSocket frames.
    WebSocket,
    /// A body of this many bytes still to come (a poll answer, `/api/config`):
    /// nothing to count in it, and another response may follow it on the
    /// same connection.
    Sized(u64),
    /// Anything else (no length given): nothing to count, to the end.
    Other,
}

impl Body {
    /// Which body a complete response head announces.
    fn of(head: &[u8]) -> Body {
        if head.starts_with(b"HTTP/1.1 101") {
            return Body::WebSocket;
        }
        let head = String::from_utf8_lossy(head).to_ascii_lowercase();
        let content_type = head
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-type:"))
            .map(str::trim)
            .unwrap_or_default();
        let length = head
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse().ok());
        if content_type.starts_with("text/event-stream") {
            Body::Events
        } else if content_type.starts_with("application/x-ndjson") {
            Body::Lines
        } else if let Some(length) = length {
            Body::Sized(length)
        } else {
            Body::Other
        }
    }
}

/// Counts, going down one connection, SSE events (`id:` lines), HTTP
/// streaming's message lines (`{"id":` at the start of a line) or
/// WebSocket frames, whichever a response head announces. Responses with a
/// `content-length` are skipped, so a stream that follows them on a kept-alive
/// connection (a client asks `/api/config` first) is still counted.
///
/// Chunked encoding does not get in the way of the line counts: both
/// servers write each event or line as its own chunk, so the chunk-size line
/// ends just before the event or line starts.
#[derive(Default)]
struct DownstreamFrames {
    lines: LineStarts,
    /// Bytes of the head seen so far, while it is incomplete.
    head: Vec<u8>,
    body: Body,
    /// Bytes of the current frame still to skip, or of its header collected.
    skip: u64,
    header: Vec<u8>,
}

impl DownstreamFrames {
    fn count(&mut self, bytes: &[u8]) -> u64 {
        let mut rest = bytes;
        loop {
            match self.body {
                Body::Undecided => {
                    self.head.extend_from_slice(rest);
                    let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return 0;
                    };
                    self.body = Body::of(&self.head[..end]);
                    let body_start = rest.len() - (self.head.len() - end - 4);
                    rest = &rest[body_start..];
                    self.head.clear();
                }
                Body::Sized(left) => {
                    let n = left.min(rest.len() as u64);
                    rest = &rest[n as usize..];
                    self.body = if n == left {
                        Body::Undecided
                    } else {
                        Body::Sized(left - n)
                    };
                    if rest.is_empty() {
                        return 0;
                    }
                }
                Body::WebSocket => return self.frames(rest),
                Body::Events => return self.lines.count(rest, &[b"id: "]),
                Body::Lines => return self.lines.count(rest, &[b"{\"id\":"]),
                Body::Other => return 0,
            }
        }
    }

    /// Walks WebSocket frame headers (server frames are never masked).
    fn frames(&mut self, mut bytes: &[u8]) -> u64 {
        let mut found = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() as u64);
                self.skip -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if self.header.len() < 2 {
                continue;
            }
            let need = match self.header[1] & 0x7F {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            if self.header.len() < need {
                continue;
            }
            self.skip = match need {
                4 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                10 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&self.header[2..10]);
                    u64::from_be_bytes(len)
                }
                _ => u64::from(self.header[1] & 0x7F),
            };
            self.header.clear();
            found += 1;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::{DownstreamFrames, LineStarts};

    #[test]
    fn request_lines_are_counted_across_reads() {
        let mut scan = LineStarts::default();
        let prefixes: &[&[u8]] = &[b"GET ", b"POST "];
        assert_eq!(
            scan.count(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGE", prefixes),
            1
        );
        assert_eq!(scan.count(b"T /b HTTP/1.1\r\n\r\nPOST /c", prefixes), 2);
    }

    #[test]
    fn sse_events_ndjson_lines_and_websocket_frames_are_counted() {
        let mut sse = DownstreamFrames::default();
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
        assert_eq!(sse.count(head), 0);
        assert_eq!(
            sse.count(b"1\r\nid: 1\ndata: {}\n\n\r\n10\r\nid: 2\ndata: {}\n\n"),
            2
        );

        // Message lines only: the gap and ping lines are not messages, and
        // the chunk-size lines sit between them.
        let mut ndjson = DownstreamFrames::default();
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n\r\n";
        let body = b"1a\r\n{\"type\":\"gap\",\"missed\":3}\n\r\n9\r\n{\"id\":4}\n\r\n10\r\n{\"type\":\"ping\"}\n\r\n9\r\n{\"id\":5}\n\r\n";
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(body);
        // Split inside the head and inside a line: counting goes on across reads.
        assert_eq!(ndjson.count(&bytes[..20]), 0);
        let split = head.len() + body.len() - 6;
        assert_eq!(ndjson.count(&bytes[20..split]), 1);
        assert_eq!(ndjson.count(&bytes[split..]), 1);

        // A poll answer is neither.
        let mut poll = DownstreamFrames::default();
        assert_eq!(
            poll.count(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"id\":1}\nid: 2\n"
            ),
            0
        );

        // An answer with a length, then a stream on the same connection
        // (a client asks /api/config first): the stream's events count, the
        // answer's lines do not.
        let mut reused = DownstreamFrames::default();
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\ncontent-type: application/json\r\n\r\nid: 9\n{\"id\":9}";
        let stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n9\r\nid: 1\ndata: {}\n\n\r\n";
        let mut bytes = answer.to_vec();
        bytes.extend_from_slice(stream);
        assert_eq!(reused.count(&bytes[..answer.len() - 3]), 0);
        assert_eq!(reused.count(&bytes[answer.len() - 3..]), 1);

        let mut ws = DownstreamFrames::default();
        let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n".to_vec();
        bytes.extend_from_slice(&[0x81, 3, b'a', b'b', b'c']);
        bytes.extend_from_slice(&[0x81, 126, 0, 200]);
        bytes.extend(std::iter::repeat_n(b'x', 200));
        assert_eq!(ws.count(&bytes[..40]), 0);
        assert_eq!(ws.count(&bytes[40..]), 2);
    }
}
