//! The message: what every transport carries, byte for byte.

use serde::{Deserialize, Serialize};

use crate::id::MessageId;

/// The transport a sender used. It travels in the message as `via`, so that
/// every pane can show where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Regular polling.
    Polling,
    /// HTTP long polling.
    Longpoll,
    /// Server-sent events.
    Sse,
    /// WebSocket (the only transport that sends over its own connection).
    Websocket,
    /// HTTP streaming.
    Stream,
    /// A plain HTTP client that is none of the above (`curl`, a script).
    Api,
}

impl std::str::FromStr for Via {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Via::Polling,
            Via::Longpoll,
            Via::Sse,
            Via::Websocket,
            Via::Stream,
            Via::Api,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("no via is named {s:?}"))
    }
}

impl Via {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Polling => "polling",
            Via::Longpoll => "longpoll",
            Via::Sse => "sse",
            Via::Websocket => "websocket",
            Via::Stream => "stream",
            Via::Api => "api",
        }
    }
}

/// A message as a client reads it:
/// `{"id":17,"user":"ana","text":"hello","sent_at_ms":1763712000123,"via":"sse"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Assigned by the store.
    pub id: MessageId,
    /// Who sent it.
    pub user: String,
    /// What they said.
    pub text: String,
    /// When the store accepted it, in Unix milliseconds.
    pub sent_at_ms: u64,
    /// The transport the sender used.
    pub via: Via,
}

/// A message as the store writes it, once: the same fields as [`Message`], in
/// the contract's order, borrowed. It has no `type` field, so that a control
/// item can never be mistaken for it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MessageRef<'a> {
    /// See [`Message::id`].
    pub id: MessageId,
    /// See [`Message::user`].
    pub user: &'a str,
    /// See [`Message::text`].
    pub text: &'a str,
    /// See [`Message::sent_at_ms`].
    pub sent_at_ms: u64,
    /// See [`Message::via`].
    pub via: Via,
}

impl MessageRef<'_> {
    /// The message's one serialized form: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The body of `POST /api/messages`:
/// `{"user":"ana","text":"hello","client_msg_id":"b3f1…","via":"sse"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// Who sends it.
    pub user: String,
    /// What they say.
    pub text: String,
    /// Optional key that makes a retry of the same send harmless.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// The transport the sender used (`api` when absent).
    #[serde(default)]
    pub via: Option<Via>,
}
