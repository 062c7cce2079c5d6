//! The body of every refusal.

use serde::{Deserialize, Serialize};

/// `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The one field.
    pub error: ErrorDetail,
}

/// What an [`ErrorBody`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `cursor_ahead`.
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorBody {
    /// An error body with this code and message.
    pub fn new(code: &str, message: &str) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}
