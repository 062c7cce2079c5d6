//! The abuse suite, WebSocket part: frames a client must not send, each
//! with the close code RFC 6455 gives it (1002 protocol error, 1007 invalid
//! payload data, 1009 message too big), and frames the server refuses with
//! an error frame on a socket that stays open; then the check that none of
//! them stored anything.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;

use crate::abuse_corpus::BAD_UTF8;
use crate::helpers::spawn_app;
use crate::kit::{CLOSE, TEXT, masked_frame, off_thread, ws_handshake};

/// Opcodes of the frames built here besides text and close.
const CONTINUATION: u8 = 0x0;
const BINARY: u8 = 0x2;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// What the server must do after a case's bytes.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Close the socket with this code.
    Close(u16),
    /// Answer an error frame with this code, and keep the socket open.
    Error(&'static str),
}

/// A masked frame with the first byte `first` (FIN, RSV bits, opcode).
fn frame_with(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = masked_frame(first & 0x0F, payload);
    frame[0] = first;
    frame
}

/// A frame as a server sends it: not masked, which a client must never do.
fn unmasked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// A send frame whose text holds `bytes` (which need not be UTF-8).
fn send_holding(bytes: &[u8]) -> Vec<u8> {
    let mut json = br#"{"type":"send","user":"ana","text":"a"#.to_vec();
    json.extend_from_slice(bytes);
    json.extend_from_slice(br#""}"#);
    json
}

/// The generated corpus: every case and its expected end.
fn corpus() -> Vec<(String, Vec<u8>, Expect)> {
    let mut cases: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>, expect| cases.push((name, bytes, expect));
    // Text that is not UTF-8: in one frame, and split over two fragments.
    for (name, bytes) in BAD_UTF8 {
        add(
            format!("{name} in a text frame"),
            masked_frame(TEXT, &send_holding(bytes)),
            Expect::Close(1007),
        );
        let payload = send_holding(bytes);
        let mut split = frame_with(TEXT, &payload[..20]);
        split.extend(frame_with(0x80 | CONTINUATION, &payload[20..]));
        add(
            format!("{name} in a fragmented message"),
            split,
            Expect::Close(1007),
        );
    }
    // Too big: one frame, or fragments that add up.
    for size in [64 * 1024 + 1, 200 * 1024] {
        add(
            format!("a {size}-byte text frame"),
            masked_frame(TEXT, &vec![b'x'; size]),
            Expect::Close(1009),
        );
    }
    let part = vec![b'x'; 30 * 1024];
    let mut fragments = frame_with(TEXT, &part);
    fragments.extend(frame_with(CONTINUATION, &part));
    fragments.extend(frame_with(0x80 | CONTINUATION, &part));
    add(
        "fragments adding up to 90 KiB".into(),
        fragments,
        Expect::Close(1009),
    );
    // Protocol errors.
    add(
        "an unmasked text frame".into(),
        unmasked(TEXT, b"{}"),
        Expect::Close(1002),
    );
    add(
        "an unmasked ping".into(),
        unmasked(PING, b"x"),
        Expect::Close(1002),
    );
    for (bit, name) in [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")] {
        add(
            format!("{name} set on a text frame"),
            frame_with(0x80 | bit | TEXT, b"{}"),
            Expect::Close(1002),
        );
    }
    add(
        "a fragmented ping".into(),
        frame_with(PING, b"x"),
        Expect::Close(1002),
    );
    add(
        "a fragmented close".into(),
        frame_with(CLOSE, &1000u16.to_be_bytes()),
        Expect::Close(1002),
    );
    add(
        "a ping of 126 bytes".into(),
        masked_frame(PING, &[b'p'; 126]),
        Expect::Close(1002),
    );
    for opcode in [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        add(
            format!("reserved opcode {opcode:#x}"),
            frame_with(0x80 | opcode, b"x"),
            Expect::Close(1002),
        );
    }
    add(
        "a continuation with nothing to continue".into(),
        frame_with(0x80 | CONTINUATION, b"x"),
        Expect::Close(1002),
    );
    let mut interleaved = frame_with(TEXT, b"{\"type\":");
    interleaved.extend(masked_frame(TEXT, b"{}"));
    add(
        "a new message inside a fragmented one".into(),
        interleaved,
        Expect::Close(1002),
    );
    // Close frames: a code that is reserved or undefined, a reason that is
    // not UTF-8, a payload of one byte are protocol errors; a valid close
    // is echoed.
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        add(
            format!("close code {code}"),
            masked_frame(CLOSE, &code.to_be_bytes()),
            Expect::Close(1002),
        );
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(b"\xC0\xAF");
    add(
        "a close reason that is not UTF-8".into(),
        masked_frame(CLOSE, &bad_reason),
        Expect::Close(1002),
    );
    add(
        "a close of one byte".into(),
        masked_frame(CLOSE, &[3]),
        Expect::Close(1002),
    );
    for code in [1000u16, 3000, 4999] {
        add(
            format!("a valid close {code}"),
            masked_frame(CLOSE, &code.to_be_bytes()),
            Expect::Close(code),
        );
    }
    // Refused sends: an error frame each, and the socket stays open.
    let refused: [(&str, &[u8], &str); 12] = [
        (
            "a binary frame",
            b"{\"type\":\"send\",\"user\":\"ana\",\"text\":\"hi\"}",
            "binary_frame",
        ),
        ("not JSON", b"hello", "malformed_json"),
        ("empty text frame", b"", "malformed_json"),
        ("a JSON string", b"\"send\"", "malformed_json"),
        (
            "an unknown frame type",
            br#"{"type":"dance","user":"ana","text":"hi"}"#,
            "malformed_json",
        ),
        (
            "a client ack",
            br#"{"type":"ack","id":1}"#,
            "malformed_json",
        ),
        (
            "no type",
            br#"{"user":"ana","text":"hi"}"#,
            "malformed_json",
        ),
        (
            "a send without text",
            br#"{"type":"send","user":"ana"}"#,
            "malformed_json",
        ),
        (
            "a number as user",
            br#"{"type":"send","user":7,"text":"hi"}"#,
            "malformed_json",
        ),
        (
            "a blank user",
            br#"{"type":"send","user":" ","text":"hi"}"#,
            "invalid_user",
        ),
        (
            "a NUL in text",
            br#"{"type":"send","user":"ana","text":"a\u0000"}"#,
            "control_character",
        ),
        (
            "a duplicate text",
            br#"{"type":"send","user":"ana","text":"a","text":"b"}"#,
            "malformed_json",
        ),
    ];
    for (name, payload, code) in refused {
        let opcode = if name == "a binary frame" {
            BINARY
        } else {
            TEXT
        };
        add(
            name.into(),
            masked_frame(opcode, payload),
            Expect::Error(code),
        );
    }
    cases
}

/// Sends `bytes` on a fresh WebSocket and checks what follows against
/// `expect`; the mismatch, if any.
fn run_case(addr: SocketAddr, bytes: &[u8], expect: Expect) -> Option<String> {
    let mut socket = ws_handshake(addr, "/ws", None);
    socket.send(bytes);
    match expect {
        Expect::Close(code) => {
            // Frames up to the server's close (a broadcast may come first);
            // the kit panics if the connection ends without one.
            let close = loop {
                let frame = socket.read_frame();
                if frame.opcode == CLOSE {
                    break frame;
                }
            };
            let got = close.close_code();
            (got != Some(code)).then(|| format!("closed with {got:?}, not {code}"))
        }
        Expect::Error(code) => {
            // The first frame that is not a presence notice.
            let error = loop {
                let frame = socket.read_frame();
                let item: Value = serde_json::from_slice(&frame.payload).unwrap_or_default();
                if item["type"] != "presence" {
                    break item;
                }
            };
            if error["type"] != "error" || error["code"] != code {
                return Some(format!("answered {error}, not an error {code}"));
            }
            // Still open: a ping is answered.
            socket.send(masked_frame(PING, b"alive"));
            let pong = loop {
                let frame = socket.read_frame();
                if frame.opcode != TEXT {
                    break frame;
                }
            };
            (pong.opcode != PONG || pong.payload != b"alive")
                .then(|| format!("no pong after the error: {pong:?}"))
        }
    }
}

/// Every frame of the corpus gets exactly its close code or error frame,
/// each on a fresh socket; nothing is stored.
#[tokio::test]
async fn the_bad_frame_corpus_gets_its_exact_close_codes_and_stores_nothing() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let cases = corpus();
    let total = cases.len();
    assert!(total > 60, "a corpus of {total}");
    let failures = off_thread(move || {
        cases
            .iter()
            .filter_map(|(name, bytes, expect)| {
                // A socket that never answers panics in the kit: a failure
                // of this case, reported with the others.
                let outcome = catch_unwind(AssertUnwindSafe(|| run_case(addr, bytes, *expect)));
                match outcome {
                    Ok(None) => None,
                    Ok(Some(why)) => Some(format!("{name}: {why}")),
                    Err(_) => Some(format!("{name}: no answer")),
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert!(
        failures.is_empty(),
        "{} of {total} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(app.client.stats().await.expect("stats").store.last_id, 0);
    assert_eq!(app.server.state.store.stats().last_id, 0, "nothing stored");
}
