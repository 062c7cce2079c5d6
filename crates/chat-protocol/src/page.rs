//! The body of a polling or long-polling answer:
//! `{"messages":[…],"cursor":C}`, with `"missed":K` after a gap.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::control::{Control, Incoming};
use crate::epoch::Epoch;
use crate::id::Cursor;
use crate::presence::PresenceList;

/// A page as a client reads it. The messages stay raw JSON, so a client can
/// keep the exact bytes the server sent (tests compare them to the store's).
#[derive(Debug, Default, Deserialize)]
pub struct PageBody {
    /// The messages, oldest first.
    pub messages: Vec<Box<RawValue>>,
    /// The id of the last message, or the `since` asked with when empty.
    pub cursor: Cursor,
    /// Messages older than the server's history (0 when absent).
    #[serde(default)]
    pub missed: u64,
    /// The client's epoch was not the store's: its cursor was ignored and
    /// this page starts from the beginning of what is retained.
    #[serde(default)]
    pub reset: bool,
    /// The store's epoch, present with `reset`.
    #[serde(default)]
    pub epoch: Option<Epoch>,
    /// Never in a poll's answer: who is online, when a push transport said
    /// so (a presence item carries nothing else).
    #[serde(skip)]
    pub presence: Option<PresenceList>,
}

impl PageBody {
    /// What one item of a push transport means as a page: a message (its
    /// id is the cursor), a gap, reset or presence notice; `None` for the
    /// items that carry no news (pings, acks, errors).
    pub fn from_incoming(incoming: Incoming) -> Option<Self> {
        match incoming {
            Incoming::Message { id, raw } => Some(PageBody {
                messages: vec![raw],
                cursor: Cursor::after(id),
                ..PageBody::default()
            }),
            Incoming::Control(Control::Gap { missed }) => Some(PageBody {
                missed,
                ..PageBody::default()
            }),
            Incoming::Control(Control::Reset { epoch }) => Some(PageBody::reset_notice(epoch)),
            Incoming::Control(Control::Presence { users, more }) => {
                Some(PageBody::presence_notice(PresenceList { users, more }))
            }
            Incoming::Control(_) => None,
        }
    }

    /// A reset notice on its own, as a push transport carries it: the
    /// store's epoch is `epoch` now, and what follows starts from the
    /// beginning of what is retained.
    pub fn reset_notice(epoch: Epoch) -> Self {
        PageBody {
            reset: true,
            epoch: Some(epoch),
            ..PageBody::default()
        }
    }

    /// A presence list on its own, as a push transport carries it.
    pub fn presence_notice(list: PresenceList) -> Self {
        PageBody {
            presence: Some(list),
            ..PageBody::default()
        }
    }

    /// Writes a page around messages that are already JSON, without
    /// re-encoding them: each is copied into the array as it is. `reset` is
    /// the store's epoch when the client's was another.
    pub fn write<'a>(
        messages: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
        cursor: Cursor,
        missed: u64,
        reset: Option<&Epoch>,
    ) -> Bytes {
        let payload: usize = messages.clone().map(|m| m.len() + 1).sum();
        let mut body = BytesMut::with_capacity(payload + 64);
        body.put_slice(b"{\"messages\":[");
        for (i, message) in messages.enumerate() {
            if i > 0 {
                body.put_u8(b',');
            }
            body.put_slice(message);
        }
        body.put_slice(format!("],\"cursor\":{cursor}").as_bytes());
        if missed > 0 {
            body.put_slice(format!(",\"missed\":{missed}").as_bytes());
        }
        if let Some(epoch) = reset {
            // The alphabet of an epoch needs no JSON escaping.
            body.put_slice(format!(",\"reset\":true,\"epoch\":\"{epoch}\"").as_bytes());
        }
        body.put_u8(b'}');
        body.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A written page reads back with the same bytes, cursor and gap.
    #[test]
    fn write_then_read() {
        let a = br#"{"id":3,"user":"a","text":"x","sent_at_ms":1,"via":"api"}"#;
        let b = br#"{"id":4,"user":"b","text":"y","sent_at_ms":2,"via":"sse"}"#;
        let body = PageBody::write([&a[..], &b[..]].into_iter(), Cursor(4), 2, None);
        let page: PageBody = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(page.cursor, Cursor(4));
        assert_eq!(page.missed, 2);
        assert_eq!(page.messages[1].get().as_bytes(), b);
        let empty = PageBody::write(std::iter::empty(), Cursor(9), 0, None);
        assert_eq!(&empty[..], br#"{"messages":[],"cursor":9}"#);
        let epoch = Epoch::parse("e2").expect("valid");
        let reset = PageBody::write(std::iter::empty(), Cursor(0), 0, Some(&epoch));
        let page: PageBody = serde_json::from_slice(&reset).expect("valid JSON");
        assert!(page.reset);
        assert_eq!(page.epoch, Some(epoch));
    }
}
