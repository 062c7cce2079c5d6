//! The store's epoch: which numbering of ids a cursor belongs to.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest epoch, in characters.
pub const MAX_EPOCH_CHARS: usize = 32;

/// An opaque name for one numbering of ids: new whenever ids start again at
/// 1 (an in-memory store after a restart, a shared log that was deleted),
/// the same on every instance that shares one log. 1 to 32 characters from
/// `[A-Za-z0-9_-]`. A cursor means something only together with its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Epoch(Arc<str>);

/// A string that cannot be an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEpoch(pub String);

impl fmt::Display for InvalidEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an epoch is 1 to {MAX_EPOCH_CHARS} characters from [A-Za-z0-9_-], got {:?}",
            self.0
        )
    }
}

impl std::error::Error for InvalidEpoch {}

impl Epoch {
    /// Checks `s` against the epoch alphabet and length.
    pub fn parse(s: &str) -> Result<Epoch, InvalidEpoch> {
        let valid = !s.is_empty()
            && s.len() <= MAX_EPOCH_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Epoch(Arc::from(s)))
        } else {
            Err(InvalidEpoch(s.to_owned()))
        }
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Epoch {
    type Error = InvalidEpoch;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Epoch::parse(&s)
    }
}

impl From<Epoch> for String {
    fn from(e: Epoch) -> String {
        e.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alphabet and the length are enforced both ways.
    #[test]
    fn alphabet_and_length() {
        assert!(Epoch::parse("aZ09_-").is_ok());
        assert!(Epoch::parse(&"x".repeat(32)).is_ok());
        for bad in ["", "a b", "é", "a/b", &"x".repeat(33)] {
            assert!(Epoch::parse(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&Epoch::parse("e1").expect("valid")).expect("json");
        assert_eq!(json, r#""e1""#);
        assert!(serde_json::from_str::<Epoch>(r#""no way""#).is_err());
    }
}
