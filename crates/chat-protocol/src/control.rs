//! What push transports send besides messages, and what a WebSocket client
//! sends. Every control item has a `type`; a message never has one.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::epoch::Epoch;
use crate::id::MessageId;
use crate::presence::{UserPresence, is_zero};

/// A gap notice: the cursor predated the server's history and this many
/// messages are gone. SSE carries it as the data of `event: gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// How many messages the reader missed.
    pub missed: u64,
}

/// A control item of a push transport: a WebSocket text frame
/// (`{"type":"gap","missed":3}`) or a streaming line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    /// The cursor predated the history.
    Gap {
        /// How many messages are gone.
        missed: u64,
    },
    /// A send from this socket was stored (or had been, for a retry).
    Ack {
        /// The sender's key, `null` when it gave none.
        client_msg_id: Option<String>,
        /// The stored message's id.
        id: MessageId,
    },
    /// A send from this socket was refused; the socket stays open.
    Error {
        /// Machine-readable, as in an HTTP error body.
        code: String,
        /// For people.
        message: String,
        /// For `rate_limited`: milliseconds until a send would be accepted
        /// (absent for every other code).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A keep-alive line of a quiet HTTP stream.
    Ping,
    /// The store's ids started again (its epoch is not the client's): drop
    /// what you have; everything retained follows.
    Reset {
        /// The store's epoch now.
        epoch: Epoch,
    },
    /// Who is online changed: the whole list now (see
    /// [`crate::PresenceList`]; SSE sends the same as `event: presence`).
    Presence {
        /// The users online, by name, at most [`crate::presence::MAX_LISTED`].
        users: Vec<UserPresence>,
        /// Users online and not listed (0 when absent).
        #[serde(default, skip_serializing_if = "is_zero")]
        more: u64,
    },
}

impl Control {
    /// The item as one line of compact JSON.
    pub fn to_json(&self) -> String {
        // An enum of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Gap {
    /// `{"missed":K}`, the data of an SSE `gap` event.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A reset notice: the data of an SSE `reset` event, `{"epoch":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// The store's epoch now.
    pub epoch: Epoch,
}

impl Reset {
    /// `{"epoch":"…"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a WebSocket client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Store a message, like `POST /api/messages` (`via` is `websocket`).
    Send {
        /// Who sends it.
        user: String,
        /// What they say.
        text: String,
        /// Optional idempotency key.
        #[serde(default)]
        client_msg_id: Option<String>,
    },
}

impl ClientFrame {
    /// The frame's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One item read from a push transport: a message (its raw JSON and id) or a
/// control item.
#[derive(Debug)]
pub enum Incoming {
    /// A chat message, exactly as the server sent it.
    Message {
        /// Its id, read from the JSON.
        id: MessageId,
        /// The JSON itself.
        raw: Box<RawValue>,
    },
    /// Anything with a `type`.
    Control(Control),
}

impl Incoming {
    /// Tells a message from a control item by the `type` field, reading the
    /// text once.
    pub fn parse(text: &str) -> Result<Incoming, serde_json::Error> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "type")]
            kind: Option<serde::de::IgnoredAny>,
            id: Option<MessageId>,
        }
        let probe: Probe = serde_json::from_str(text)?;
        match (probe.kind, probe.id) {
            (Some(_), _) => serde_json::from_str(text).map(Incoming::Control),
            (None, Some(id)) => Ok(Incoming::Message {
                id,
                raw: RawValue::from_string(text.to_owned())?,
            }),
            (None, None) => Err(serde::de::Error::missing_field("id")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The control items have the contract's exact shape.
    #[test]
    fn shapes() {
        assert_eq!(
            Control::Gap { missed: 3 }.to_json(),
            r#"{"type":"gap","missed":3}"#
        );
        let ack = Control::Ack {
            client_msg_id: Some("c1".into()),
            id: MessageId(18),
        };
        assert_eq!(
            ack.to_json(),
            r#"{"type":"ack","client_msg_id":"c1","id":18}"#
        );
        assert_eq!(Gap { missed: 2 }.to_json(), r#"{"missed":2}"#);
        assert_eq!(Control::Ping.to_json(), r#"{"type":"ping"}"#);
        let limited = Control::Error {
            code: "rate_limited".into(),
            message: "slow down".into(),
            retry_after_ms: Some(250),
        };
        assert_eq!(
            limited.to_json(),
            r#"{"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":250}"#
        );
        let refused = Control::Error {
            code: "invalid_text".into(),
            message: "empty".into(),
            retry_after_ms: None,
        };
        assert_eq!(
            refused.to_json(),
            r#"{"type":"error","code":"invalid_text","message":"empty"}"#
        );
    }

    /// A message and a control item are told apart by `type`.
    #[test]
    fn incoming() {
        let m = r#"{"id":7,"user":"a","text":"t","sent_at_ms":1,"via":"api"}"#;
        match Incoming::parse(m).expect("a message") {
            Incoming::Message { id, raw } => {
                assert_eq!(id, MessageId(7));
                assert_eq!(raw.get(), m);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Incoming::parse(r#"{"type":"gap","missed":1}"#),
            Ok(Incoming::Control(Control::Gap { missed: 1 }))
        ));
        assert!(Incoming::parse(r#"{"user":"a"}"#).is_err());
    }
}
