//! A stored message's bytes as each streaming transport frames them, built
//! once per message and shared by every connection.
//!
//! The store does not know how a transport frames a message; it keeps a slot
//! per [`Framing`] beside the message's JSON. The first connection that
//! needs a framing builds it ([`crate::StoredMessage::framed`]); every clone
//! of the message (a page handed to each of a thousand connections is a
//! thousand clones) shares the slot, so the others get the same `Bytes`, a
//! reference-count increment, instead of framing the message again.
//!
//! Framing lazily rather than at append keeps a message no streaming client
//! reads (a server with only pollers) at its JSON alone, and keeps the
//! transports' formats out of the store. A framed message costs its framing's
//! bytes for as long as the store retains it (the history bound).

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::StoredMessage;

/// The framings a message may be kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// An SSE event: `id:` and `data:` lines and the blank line.
    SseEvent,
    /// An NDJSON line: the JSON and a newline (HTTP streaming).
    JsonLine,
}

impl Framing {
    /// How many there are.
    const COUNT: usize = 2;

    fn slot(self) -> usize {
        match self {
            Framing::SseEvent => 0,
            Framing::JsonLine => 1,
        }
    }
}

/// One message's framings, each built at most once.
#[derive(Clone, Default)]
pub struct Framings(Arc<[OnceLock<Bytes>; Framing::COUNT]>);

impl Framings {
    /// The bytes of `framing`, built by `frame` the first time they are asked
    /// for.
    pub(crate) fn get_or_build(&self, framing: Framing, frame: impl FnOnce() -> Bytes) -> Bytes {
        self.0[framing.slot()].get_or_init(frame).clone()
    }
}

/// A cache: it says nothing about the message, so it never makes two
/// messages differ.
impl PartialEq for Framings {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Framings {}

impl std::fmt::Debug for Framings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let built: Vec<usize> = self
            .0
            .iter()
            .filter_map(|s| s.get().map(Bytes::len))
            .collect();
        f.debug_tuple("Framings").field(&built).finish()
    }
}

/// Messages handed to a connection as one piece: the framed bytes of one or
/// more consecutive messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Their framings, end to end.
    pub bytes: Bytes,
    /// The messages it carries.
    pub messages: &'a [StoredMessage],
}

/// `messages` in `framing` (built by `frame` where not built yet), grouped
/// into chunks of consecutive messages of at most `max_bytes` bytes each (a
/// message larger than that is a chunk alone). A chunk of one message is
/// its shared framing, not a copy; a chunk of several is one allocation with
/// their framings end to end, so that a connection that wakes to several
/// messages hands them to its response, and actix to the socket, as one
/// piece. Nothing else is allocated: the chunks are made as they are taken.
pub fn coalesce(
    messages: &[StoredMessage],
    framing: Framing,
    frame: fn(&StoredMessage) -> Bytes,
    max_bytes: usize,
) -> Coalesce<'_> {
    Coalesce {
        messages,
        framing,
        frame,
        max_bytes,
    }
}

/// The chunks of [`coalesce`], made as they are taken.
#[derive(Debug)]
pub struct Coalesce<'a> {
    messages: &'a [StoredMessage],
    framing: Framing,
    frame: fn(&StoredMessage) -> Bytes,
    max_bytes: usize,
}

impl<'a> Iterator for Coalesce<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        let framed = |m: &StoredMessage| m.framed(self.framing, self.frame);
        let first = framed(self.messages.first()?);
        let mut len = first.len();
        let mut end = 1;
        while let Some(next) = self.messages.get(end) {
            let next_len = framed(next).len();
            if len + next_len > self.max_bytes {
                break;
            }
            len += next_len;
            end += 1;
        }
        let (taken, rest) = self.messages.split_at(end);
        self.messages = rest;
        let bytes = if end == 1 {
            first
        } else {
            let mut joined = BytesMut::with_capacity(len);
            for message in taken {
                joined.extend_from_slice(&framed(message));
            }
            joined.freeze()
        };
        Some(Chunk {
            bytes,
            messages: taken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A framing is built once and shared by every clone; the slots are
    /// apart.
    #[test]
    fn built_once_and_shared() {
        let framings = Framings::default();
        let clone = framings.clone();
        let mut built = 0;
        let first = framings.get_or_build(Framing::JsonLine, || {
            built += 1;
            Bytes::from_static(b"{}\n")
        });
        let again = clone.get_or_build(Framing::JsonLine, || {
            built += 1;
            Bytes::from_static(b"other")
        });
        assert_eq!(built, 1);
        assert_eq!(first, again);
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same allocation");
        let sse = clone.get_or_build(Framing::SseEvent, || Bytes::from_static(b"data: {}\n\n"));
        assert_eq!(&sse[..], b"data: {}\n\n");
        assert_eq!(
            framings,
            Framings::default(),
            "a cache never makes messages differ"
        );
    }

    fn message(id: u64, text: &str) -> StoredMessage {
        StoredMessage {
            id: chat_protocol::MessageId(id),
            json: Bytes::from(format!("{{\"id\":{id},\"text\":\"{text}\"}}")),
            sent_at_ms: 0,
            framings: Framings::default(),
        }
    }

    fn line(m: &StoredMessage) -> Bytes {
        let mut line = m.json.to_vec();
        line.push(b'\n');
        Bytes::from(line)
    }

    /// Consecutive messages join up to the bound, in order, each framed
    /// once; a lone message is its shared framing; one over the bound goes
    /// alone.
    #[test]
    fn chunks_join_up_to_the_bound() {
        let page = [
            message(1, "a"),
            message(2, "b"),
            message(3, &"x".repeat(40)),
            message(4, "d"),
        ];
        let one = line(&page[0]).len();
        let chunks: Vec<Chunk> = coalesce(&page, Framing::JsonLine, line, 2 * one).collect();
        let ids = |c: &Chunk| c.messages.iter().map(|m| m.id.0).collect::<Vec<_>>();
        assert_eq!(
            chunks.iter().map(ids).collect::<Vec<_>>(),
            [vec![1, 2], vec![3], vec![4]]
        );
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.bytes.to_vec()).collect();
        let expected: Vec<u8> = page.iter().flat_map(|m| line(m).to_vec()).collect();
        assert_eq!(all, expected, "every byte, in order");
        let again = page[3].framed(Framing::JsonLine, |_| Bytes::from_static(b"rebuilt"));
        assert_eq!(
            chunks[2].bytes.as_ptr(),
            again.as_ptr(),
            "a lone message is not copied"
        );
        assert!(coalesce(&[], Framing::JsonLine, line, 100).next().is_none());
    }
}
