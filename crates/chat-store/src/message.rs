//! What a message is: its id and cursor types, the transport it came through,
//! the rules a new message must pass, and its one serialized form.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Longest `user` name, in characters, after trimming.
pub const MAX_USER_CHARS: usize = 32;
/// Longest `client_msg_id`, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;
/// Default longest `text`, in characters, after trimming (configurable).
pub const DEFAULT_MAX_TEXT_CHARS: usize = 2_000;

/// The id of a stored message: 1 for the first, then +1 each time, no gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A reader's position: "I have seen every message up to and including this
/// id". `Cursor(0)` has seen nothing. Every transport resumes from one.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cursor(pub u64);

impl Cursor {
    /// The cursor that has seen everything up to and including `id`.
    pub fn after(id: MessageId) -> Self {
        Cursor(id.0)
    }

    /// Whether a message with this id is news to this cursor.
    pub fn is_before(self, id: MessageId) -> bool {
        id.0 > self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

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
    /// A plain HTTP client that is none of the above (`curl`, a script).
    Api,
}

impl Via {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Polling => "polling",
            Via::Longpoll => "longpoll",
            Via::Sse => "sse",
            Via::Websocket => "websocket",
            Via::Api => "api",
        }
    }
}

/// The four transports, as named on the wire, in `/api/stats` and in `via`.
/// (`Via` has a fifth value, `api`, for senders that are none of them.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Regular polling, `GET /polling/messages`.
    Polling,
    /// Long polling, `GET /longpoll/messages`.
    Longpoll,
    /// Server-sent events, `GET /sse/events`.
    Sse,
    /// WebSocket, `GET /ws`.
    Websocket,
}

impl Transport {
    /// All four, in the order the page shows them.
    pub const ALL: [Transport; 4] = [
        Transport::Polling,
        Transport::Longpoll,
        Transport::Sse,
        Transport::Websocket,
    ];

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        self.via().as_str()
    }

    /// The `via` a message sent through this transport carries.
    pub fn via(self) -> Via {
        match self {
            Transport::Polling => Via::Polling,
            Transport::Longpoll => Via::Longpoll,
            Transport::Sse => Via::Sse,
            Transport::Websocket => Via::Websocket,
        }
    }

    /// The transport a `via` names, if any (`api` names none).
    pub fn from_via(via: Via) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.via() == via)
    }
}

/// A message as a sender hands it in, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Who sends it.
    pub user: String,
    /// What they say.
    pub text: String,
    /// Optional key that makes a retry of the same send harmless.
    pub client_msg_id: Option<String>,
    /// The transport the sender used.
    pub via: Via,
}

/// Why a new message was refused. Nothing is stored when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// `user` is empty after trimming or longer than [`MAX_USER_CHARS`].
    #[error("user must be 1 to {MAX_USER_CHARS} characters after trimming, got {0}")]
    UserLength(usize),
    /// `text` is empty after trimming or longer than the configured limit.
    #[error("text must be 1 to {max} characters after trimming, got {got}")]
    TextLength {
        /// Characters after trimming.
        got: usize,
        /// The configured limit.
        max: usize,
    },
    /// A control character where none is allowed.
    #[error("{field} contains a control character (U+{code:04X})")]
    ControlCharacter {
        /// Which field.
        field: &'static str,
        /// The offending code point.
        code: u32,
    },
    /// `client_msg_id` is empty or longer than [`MAX_CLIENT_MSG_ID_CHARS`].
    #[error("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_CHARS} characters, got {0}")]
    ClientMsgIdLength(usize),
}

impl SendError {
    /// A short machine-readable code for error bodies and WebSocket error frames.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::UserLength(_) => "invalid_user",
            SendError::TextLength { .. } => "invalid_text",
            SendError::ControlCharacter { .. } => "control_character",
            SendError::ClientMsgIdLength(_) => "invalid_client_msg_id",
        }
    }
}

/// A message that passed validation, normalized for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Valid {
    pub user: String,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub via: Via,
}

/// Checks a new message against the contract and normalizes it: trims `user`
/// and `text`, and turns `\r\n` and lone `\r` into `\n` in `text` (what a
/// browser does to a textarea's value when it submits a form), so that a
/// pasted Windows line ending is accepted rather than refused.
pub(crate) fn validate(new: NewMessage, max_text_chars: usize) -> Result<Valid, SendError> {
    let user = new.user.trim().to_owned();
    let user_chars = user.chars().count();
    if user_chars == 0 || user_chars > MAX_USER_CHARS {
        return Err(SendError::UserLength(user_chars));
    }
    reject_control(&user, "user", false)?;

    let text = new.text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim().to_owned();
    let text_chars = text.chars().count();
    if text_chars == 0 || text_chars > max_text_chars {
        return Err(SendError::TextLength {
            got: text_chars,
            max: max_text_chars,
        });
    }
    reject_control(&text, "text", true)?;

    if let Some(id) = &new.client_msg_id {
        let chars = id.chars().count();
        if chars == 0 || chars > MAX_CLIENT_MSG_ID_CHARS {
            return Err(SendError::ClientMsgIdLength(chars));
        }
        reject_control(id, "client_msg_id", false)?;
    }

    Ok(Valid {
        user,
        text,
        client_msg_id: new.client_msg_id,
        via: new.via,
    })
}

fn reject_control(value: &str, field: &'static str, newline_ok: bool) -> Result<(), SendError> {
    match value
        .chars()
        .find(|c| c.is_control() && !(newline_ok && *c == '\n'))
    {
        Some(c) => Err(SendError::ControlCharacter {
            field,
            code: c as u32,
        }),
        None => Ok(()),
    }
}

/// The wire form of a message, in the contract's field order. It has no
/// `type` field, so that WebSocket control frames can never be mistaken for it.
#[derive(Serialize)]
struct Wire<'a> {
    id: MessageId,
    user: &'a str,
    text: &'a str,
    sent_at_ms: u64,
    via: Via,
}

/// A stored message: its id and the bytes every transport carries for it.
///
/// Cloning is a reference-count increment: a thousand subscribers share one
/// allocation of the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message's id.
    pub id: MessageId,
    /// The message serialized once, at append, as compact JSON.
    pub json: Bytes,
}

impl StoredMessage {
    pub(crate) fn encode(id: MessageId, valid: &Valid, sent_at_ms: u64) -> Self {
        let wire = Wire {
            id,
            user: &valid.user,
            text: &valid.text,
            sent_at_ms,
            via: valid.via,
        };
        // Serializing a struct of strings and integers into a Vec cannot fail.
        let json = serde_json::to_vec(&wire).expect("message serializes");
        StoredMessage {
            id,
            json: Bytes::from(json),
        }
    }
}

/// The message as a client reads it back (clients and tests decode with it).
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
