//! The lean feed's parsing, fed the way reads of any size would bring it.

use super::*;

/// Reads `wire` (a response body as sent, chunked when `chunked`) into
/// a feed `step` bytes at a time, as reads of any size would bring it,
/// and returns every message and notice it yields, and the cursor.
fn feed(transport: Transport, wire: &[u8], chunked: bool, step: usize) -> (Vec<Event>, Cursor) {
    let target = Target {
        addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        transport,
    };
    let mut feed = LeanFeed::new(target, Cursor(3));
    feed.chunk = if chunked {
        Chunk::Size
    } else {
        Chunk::Unframed
    };
    let mut events = Vec::new();
    let mut ended = false;
    for piece in wire.chunks(step) {
        feed.raw.extend_from_slice(piece);
        // After the last chunk only its CRLF is left, and a feed reads no further.
        if !ended {
            ended = feed.dechunk().expect("well-formed chunks");
        }
        while let Some(event) = feed.take_event().expect("well-formed items") {
            events.push(event);
        }
    }
    assert_eq!(ended, chunked, "only a chunked body has a last chunk");
    (events, feed.cursor)
}

/// `HEX\r\nDATA\r\n` for each piece, then the last chunk.
fn chunked(pieces: &[&str]) -> Vec<u8> {
    let mut wire = Vec::new();
    for piece in pieces {
        wire.extend_from_slice(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes());
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

fn message_json(id: u64) -> String {
    format!(r#"{{"id":{id},"user":"ana","text":"m{id}","sent_at_ms":1,"via":"sse"}}"#)
}

/// What the feeds below must yield: two messages, a gap, a third, and
/// a reset, whatever the sizes of the reads.
fn check(events: &[Event], cursor: Cursor) {
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Message { message, raw } => {
                assert_eq!(raw.as_ref(), message_json(message.id.0).as_bytes());
                format!("m{}", message.id.0)
            }
            Event::Gap { missed } => format!("gap {missed}"),
            Event::Reset { epoch } => format!("reset {epoch}"),
        })
        .collect();
    assert_eq!(seen, ["m4", "m5", "gap 7", "m13", "reset e2"]);
    assert_eq!(
        cursor,
        Cursor(0),
        "a reset starts the new log from its start"
    );
}

/// SSE: events split over chunks and chunks over reads; comments,
/// `retry:` and presence are skipped.
#[test]
fn sse_events_are_read_whatever_the_reads() {
    let (m4, m5, m13) = (message_json(4), message_json(5), message_json(13));
    let wire = chunked(&[
        "retry: 3000\n\n",
        &format!("id: 4\ndata: {m4}\n\nid: 5\ndata: {m5}\n\n"),
        ": keep-alive\n\n",
        "event: gap\ndata: {\"missed\":7}\n\nid: 13\nda",
        &format!("ta: {m13}\n\nevent: presence\ndata: {{\"users\":[]}}\n\n"),
        "event: reset\ndata: {\"epoch\":\"e2\"}\n\n",
    ]);
    for step in [1, 2, 3, 7, 64, wire.len()] {
        let (events, cursor) = feed(Transport::Sse, &wire, true, step);
        check(&events, cursor);
    }
}

/// Streaming: one line per item, pings and presence skipped; a body
/// that is not chunked is read as it comes.
#[test]
fn stream_lines_are_read_whatever_the_reads() {
    let lines = format!(
        "{}\n{}\n{{\"type\":\"ping\"}}\n{{\"type\":\"gap\",\"missed\":7}}\n{}\n\
         {{\"type\":\"presence\",\"users\":[]}}\n{{\"type\":\"reset\",\"epoch\":\"e2\"}}\n",
        message_json(4),
        message_json(5),
        message_json(13)
    );
    let wire = chunked(&[&lines[..30], &lines[30..]]);
    for step in [1, 5, 64, wire.len()] {
        let (events, cursor) = feed(Transport::Stream, &wire, true, step);
        check(&events, cursor);
        let (events, cursor) = feed(Transport::Stream, lines.as_bytes(), false, step);
        check(&events, cursor);
    }
}

/// A chunk size that is not hexadecimal is an error, not a guess.
#[test]
fn a_bad_chunk_size_is_an_error() {
    let target = Target {
        addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        transport: Transport::Sse,
    };
    let mut feed = LeanFeed::new(target, Cursor(0));
    feed.raw.extend_from_slice(b"zz\r\nhello\r\n");
    assert!(feed.dechunk().is_err());
}
