//! What a new message must pass to be stored, and its one serialized form.
//! The types it is made of (ids, `via`, the limits) are the wire contract's,
//! from `chat-protocol`.

use bytes::Bytes;

use crate::framing::{Framing, Framings};

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
    /// Characters that show nothing (a zero-width space, a byte-order mark)
    /// are trimmed like spaces, and a name made only of them is empty.
    #[error("user must be 1 to {MAX_USER_CHARS} visible characters after trimming, got {0}")]
    UserLength(usize),
    /// `user` holds a bidirectional override, embedding or isolate, which
    /// would make a name display as another (`ana` followed by U+202E and
    /// `nimda` shows as `anaadmin`).
    #[error("user contains a bidirectional control character (U+{0:04X})")]
    UserBidi(u32),
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
            SendError::UserLength(_) | SendError::UserBidi(_) => "invalid_user",
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
/// (of spaces and of characters that show nothing) and `text`, and turns
/// `\r\n` and lone `\r` into `\n` in `text` (what a browser does to a
/// textarea's value when it submits a form), so that a pasted Windows line
/// ending is accepted rather than refused.
pub(crate) fn validate(new: NewMessage, max_text_chars: usize) -> Result<Valid, SendError> {
    let user = validate_user(&new.user)?;

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

/// Checks a user name as a message's `user` is checked, and returns it
/// trimmed (of spaces and of characters that show nothing). A subscription's
/// `user=` (presence) passes the same rules.
pub fn validate_user(raw: &str) -> Result<String, SendError> {
    let user = raw
        .trim_matches(|c: char| c.is_whitespace() || is_blank(c))
        .to_owned();
    let user_chars = user.chars().count();
    let visible = user.chars().any(|c| !is_invisible(c));
    if !visible || user_chars > MAX_USER_CHARS {
        return Err(SendError::UserLength(if visible { user_chars } else { 0 }));
    }
    reject_control(&user, "user", false)?;
    if let Some(c) = user.chars().find(|&c| is_bidi_control(c)) {
        return Err(SendError::UserBidi(c as u32));
    }
    Ok(user)
}

/// Characters that show nothing and mean nothing at either end of a name:
/// the soft hyphen, zero-width spaces and joiners, direction marks, the word
/// joiner and invisible operators, fillers, the byte-order mark, the blank
/// braille pattern. Trimmed like spaces.
fn is_blank(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// Characters that show nothing by themselves: the blanks above, plus
/// variation selectors, tags and the bidi controls. A name made only of
/// these (and spaces) is empty. Variation selectors are not trimmed: after
/// an emoji they choose how it looks.
fn is_invisible(c: char) -> bool {
    is_blank(c)
        || is_bidi_control(c)
        || matches!(
            c,
            '\u{180B}'..='\u{180D}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Bidirectional embeddings, overrides and isolates (U+202A to U+202E,
/// U+2066 to U+2069): they reorder the text around them, so a name holding
/// one can display as a different name.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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
    /// When the store accepted it (the JSON's `sent_at_ms`, kept beside it
    /// so that a server can time deliveries without parsing the JSON).
    pub sent_at_ms: u64,
    /// The JSON as each streaming transport frames it, built once and
    /// shared by every clone (see [`StoredMessage::framed`]).
    pub framings: Framings,
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
            sent_at_ms,
            framings: Framings::default(),
        }
    }

    /// The message in `framing`: built by `frame` from it the first time
    /// any clone of it asks, the same `Bytes` every time after.
    pub fn framed(&self, framing: Framing, frame: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.framings.get_or_build(framing, || frame(self))
    }
}
