//! The test kit: raw HTTP/1.1 and WebSocket over a plain `TcpStream`,
//! written once for every test that must see the bytes themselves (heads,
//! chunk framing, frames, byte counts) or must misbehave on purpose (hang
//! up, never read, never answer a ping).
//!
//! - Requests: [`get`], [`post_json`] and [`ws_upgrade`] write request text.
//! - [`RawSocket`]: a connection that counts every byte it writes and reads;
//!   it reads a head, a whole answer, one chunk, text up to a marker, a
//!   WebSocket frame or everything up to the close, and sends masked client
//!   frames.
//! - [`raw_request`]: one request on a fresh connection, and its answer.
//! - [`ws_handshake`]: a [`RawSocket`] past its `101 Switching Protocols`.
//! - [`Frame`], [`parse_frames`], [`masked_frame`]: RFC 6455 framing.
//! - [`off_thread`]: runs blocking socket code beside the async test.
//!
//! Everything on a socket blocks, and every read gives up after
//! [`PATIENCE`], so a broken server fails a test instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::helpers::PATIENCE;

/// The `host` every raw request names.
const HOST: &str = "127.0.0.1";

/// The key of RFC 6455's sample handshake (section 1.3)...
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// ...and the `sec-websocket-accept` a server must answer it with.
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The mask of RFC 6455's sample masked frame. A client masks every frame
/// it sends; any key will do, a fixed one keeps the bytes reproducible.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// WebSocket opcode of a text frame.
pub const TEXT: u8 = 0x1;

/// WebSocket opcode of a close frame.
pub const CLOSE: u8 = 0x8;

/// `GET target` with a `host` and then `headers` (`"name: value"` each).
pub fn get(target: &str, headers: &[&str]) -> String {
    let mut request = format!("GET {target} HTTP/1.1\r\nhost: {HOST}\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// `POST target` with `body` as JSON and its `content-length`.
pub fn post_json(target: &str, body: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The WebSocket upgrade request for `target`, from `origin` if given.
pub fn ws_upgrade(target: &str, origin: Option<&str>) -> String {
    let key = format!("sec-websocket-key: {WS_KEY}");
    let origin = origin.map(|o| format!("origin: {o}"));
    let mut headers = vec![
        "connection: Upgrade",
        "upgrade: websocket",
        "sec-websocket-version: 13",
        key.as_str(),
    ];
    headers.extend(origin.as_deref());
    get(target, &headers)
}

/// Sends `request` on a fresh connection and reads one answer.
pub fn raw_request(addr: SocketAddr, request: &str) -> Response {
    let mut socket = RawSocket::connect(addr);
    socket.send(request);
    socket.read_response()
}

/// Opens a WebSocket on `target` (from `origin` if given): sends the upgrade
/// and reads the `101` head, checking the accept key. Nothing after the
/// head has been read.
pub fn ws_handshake(addr: SocketAddr, target: &str, origin: Option<&str>) -> RawSocket {
    let mut socket = RawSocket::connect(addr);
    socket.send(ws_upgrade(target, origin));
    let head = socket.read_head();
    assert!(head.starts_with("HTTP/1.1 101 "), "an upgrade, not {head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(WS_ACCEPT));
    socket
}

/// Starts blocking socket code on a thread of its own at once, so the async
/// test keeps running meanwhile; await the result when it is needed.
pub fn off_thread<T, F>(work: F) -> impl Future<Output = T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let thread = tokio::task::spawn_blocking(work);
    async move {
        match thread.await {
            Ok(value) => value,
            // The test fails with the thread's own message.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the blocking part of the test did not finish: {e}"),
        }
    }
}

/// The value of header `name` (any case) in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// One HTTP answer as read from the socket.
#[derive(Debug)]
pub struct Response {
    /// Status line and headers, through the blank line, as sent.
    pub head: String,
    /// The body, chunk framing removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("a status line in {:?}", self.head))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that counts every byte it writes and reads, and
/// keeps what it read but did not consume yet.
pub struct RawSocket {
    stream: TcpStream,
    /// Read from the socket, not consumed by a `read_*` call yet.
    unread: Vec<u8>,
    /// Bytes written to the socket.
    sent: u64,
    /// Bytes read from the socket (consumed or not).
    received: u64,
}

impl From<TcpStream> for RawSocket {
    /// Wraps a connected stream (one made with `socket2`, say).
    fn from(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        RawSocket {
            stream,
            unread: Vec::new(),
            sent: 0,
            received: 0,
        }
    }
}

impl RawSocket {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        TcpStream::connect(addr).expect("connect").into()
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        self.stream.write_all(bytes).expect("write");
        self.sent += bytes.len() as u64;
    }

    /// Bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes read from the socket so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// What was read from the socket but not consumed yet.
    pub fn unread(&self) -> &[u8] {
        &self.unread
    }

    /// Reads up to `marker`, consumes through it and returns the text
    /// consumed.
    pub fn read_until(&mut self, marker: &str) -> String {
        let end = loop {
            if let Some(at) = find(&self.unread, marker.as_bytes()) {
                break at + marker.len();
            }
            self.fill(&format!("{marker:?}"));
        };
        String::from_utf8_lossy(&self.take(end)).into_owned()
    }

    /// Reads a head, through its blank line.
    pub fn read_head(&mut self) -> String {
        self.read_until("\r\n\r\n")
    }

    /// Reads one whole answer: its head, then a body framed by
    /// `content-length`, by chunks, or by the end of the connection.
    pub fn read_response(&mut self) -> Response {
        let head = self.read_head();
        let body = if let Some(length) = header(&head, "content-length") {
            let length = length.parse().expect("a content-length");
            self.fill_to(length, "the body");
            self.take(length)
        } else if header(&head, "transfer-encoding") == Some("chunked") {
            let mut body = Vec::new();
            loop {
                let chunk = self.read_chunk();
                if chunk.is_empty() {
                    break body;
                }
                body.extend(chunk);
            }
        } else {
            self.read_to_close()
        };
        Response { head, body }
    }

    /// Reads one chunk of a chunked body (`{len:x}\r\n…\r\n`) and returns
    /// what it carries: empty for the last chunk (`0\r\n\r\n`).
    pub fn read_chunk(&mut self) -> Vec<u8> {
        let size_line = self.read_until("\r\n");
        let size = usize::from_str_radix(size_line.trim_end(), 16)
            .unwrap_or_else(|_| panic!("a chunk size, not {size_line:?}"));
        self.fill_to(size + 2, "a chunk");
        let mut chunk = self.take(size + 2);
        assert_eq!(chunk.split_off(size), b"\r\n", "a chunk ends with CRLF");
        chunk
    }

    /// Reads whole chunks until the text they carry contains `marker`, and
    /// returns that text. Stops at a chunk's end, never inside one.
    pub fn read_chunks_until(&mut self, marker: &str) -> String {
        let mut text = String::new();
        while !text.contains(marker) {
            let chunk = self.read_chunk();
            assert!(
                !chunk.is_empty(),
                "the body ended before {marker:?}: {text}"
            );
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    }

    /// Reads until the server closes the connection (an end of stream or a
    /// reset) and returns everything not consumed before.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.read_some() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    break;
                }
                Err(e) => panic!("reading to the close: {e}"),
            }
        }
        let all = self.unread.len();
        self.take(all)
    }

    /// Reads one WebSocket frame (unmasked, as a server sends them).
    pub fn read_frame(&mut self) -> Frame {
        loop {
            if let Some((frame, len)) = parse_frame(&self.unread) {
                self.take(len);
                return frame;
            }
            self.fill("a whole frame");
        }
    }

    /// Sends `text` in one masked text frame.
    pub fn send_text(&mut self, text: &str) {
        self.send(masked_frame(TEXT, text.as_bytes()));
    }

    /// Sends a masked close frame with `code` and no reason.
    pub fn send_close(&mut self, code: u16) {
        self.send(masked_frame(CLOSE, &code.to_be_bytes()));
    }

    /// One read from the socket into `unread`; `Ok(0)` at the end of the
    /// stream. Panics when nothing comes within [`PATIENCE`].
    fn read_some(&mut self) -> std::io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(n) => {
                self.unread.extend_from_slice(&buf[..n]);
                self.received += n as u64;
                Ok(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "nothing to read within {PATIENCE:?} after {:?}",
                    String::from_utf8_lossy(&self.unread)
                )
            }
            Err(e) => Err(e),
        }
    }

    /// Reads more, which must come: the connection must not end before
    /// `what`.
    fn fill(&mut self, what: &str) {
        let n = self
            .read_some()
            .unwrap_or_else(|e| panic!("reading {what}: {e}"));
        assert!(
            n > 0,
            "the connection ended before {what}: {:?}",
            String::from_utf8_lossy(&self.unread)
        );
    }

    /// Reads until at least `n` bytes are unread.
    fn fill_to(&mut self, n: usize, what: &str) {
        while self.unread.len() < n {
            self.fill(what);
        }
    }

    /// Consumes the first `n` unread bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        self.unread.drain(..n).collect()
    }
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The final fragment of its message.
    pub fin: bool,
    /// [`TEXT`], [`CLOSE`], …
    pub opcode: u8,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload of a text frame.
    pub fn text(&self) -> &str {
        assert_eq!(self.opcode, TEXT, "a text frame: {self:?}");
        std::str::from_utf8(&self.payload).expect("a text frame is UTF-8")
    }

    /// The code of a close frame that has one.
    pub fn close_code(&self) -> Option<u16> {
        match self.payload[..] {
            [high, low, ..] if self.opcode == CLOSE => Some(u16::from_be_bytes([high, low])),
            _ => None,
        }
    }
}

/// The frame at the start of `bytes` and its length on the wire, if it is
/// all there. Unmasks a masked frame.
pub fn parse_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let [first, second, ..] = *bytes else {
        return None;
    };
    let (len, mut at) = match second & 0x7F {
        126 => (
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => {
            let len = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            (usize::try_from(len).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let mask: Option<[u8; 4]> = if second & 0x80 != 0 {
        let mask = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(mask)
    } else {
        None
    };
    let mut payload = bytes.get(at..at + len)?.to_vec();
    if let Some(mask) = mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    let frame = Frame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        payload,
    };
    Some((frame, at + len))
}

/// Every whole frame at the start of `bytes`, up to the first incomplete
/// one.
pub fn parse_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some((frame, len)) = parse_frame(bytes) {
        frames.push(frame);
        bytes = &bytes[len..];
    }
    frames
}

/// A final, masked client frame carrying `payload`.
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASKED: u8 = 0x80;
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(MASKED | len as u8),
        len => match u16::try_from(len) {
            Ok(len) => {
                frame.push(MASKED | 126);
                frame.extend(len.to_be_bytes());
            }
            Err(_) => {
                frame.push(MASKED | 127);
                frame.extend((len as u64).to_be_bytes());
            }
        },
    }
    frame.extend(MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}
