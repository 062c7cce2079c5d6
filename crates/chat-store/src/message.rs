//! What a new message must pass to be stored, and its one serialized form.
//! The types it is made of (ids, `via`, the limits) are the wire contract's,
//! from `chat-protocol`.

use bytes::Bytes;

use chat_protocol::limits::{MAX_CLIENT_MSG_ID_CHARS, MAX_USER_CHARS};
use chat_protocol::{MessageId, MessageRef, Via};

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
        let json = MessageRef {
            id,
            user: &valid.user,
            text: &valid.text,
            sent_at_ms,
            via: valid.via,
        }
        .to_json();
        StoredMessage {
            id,
            json: Bytes::from(json),
        }
    }
}
