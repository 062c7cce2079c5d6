//! Property tests of what a message must pass to be stored: the store
//! accepts exactly what the documented rules (`docs/protocol.md`, "The
//! message") accept, and a refused message leaves the store as it was.
//!
//! The strings are drawn from small alphabets that mix what the rules are
//! about: letters (ASCII, accented, CJK, an emoji), spaces, tabs and
//! newlines, other control characters, characters that show nothing
//! (U+200B, U+FEFF) and a bidi override (U+202E). The test's own model of
//! the rules is written from the docs, not from the code.

use chat_store::{
    MAX_CLIENT_MSG_ID_CHARS, MAX_USER_CHARS, NewMessage, SendError, Store, StoreConfig, Via,
};
use proptest::prelude::*;

/// A short text limit, so that texts over it are drawn often.
const MAX_TEXT: usize = 40;

/// The alphabet names and texts are drawn from.
const ALPHABET: &[char] = &[
    'a', 'Z', '7', 'é', '漢', '😀', ' ', '\u{2003}', '\t', '\n', '\r', '\u{0}', '\u{7F}', '\u{85}',
    '\u{200B}', '\u{FEFF}', '\u{202E}',
];

fn from_alphabet(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn store() -> Store {
    Store::new(StoreConfig {
        max_text_chars: MAX_TEXT,
        ..StoreConfig::default()
    })
}

fn send(store: &Store, user: &str, text: &str, key: Option<&str>) -> Result<String, SendError> {
    store
        .append(NewMessage {
            user: user.into(),
            text: text.into(),
            client_msg_id: key.map(str::to_owned),
            via: Via::Api,
        })
        .map(|appended| {
            let json: serde_json::Value =
                serde_json::from_slice(&appended.message().json).expect("stored JSON");
            json["user"].as_str().expect("a user").to_owned()
        })
}

/// Shows nothing by itself (within the alphabet).
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{FEFF}' | '\u{202E}')
}

/// The documented rule for `user`, on the alphabet: trimmed of spaces and of
/// characters that show nothing; then 1 to 32 characters, at least one
/// visible; no control characters; no bidi controls. The error code it
/// expects, or the trimmed name.
fn user_rule(user: &str) -> Result<String, &'static str> {
    let trimmed =
        user.trim_matches(|c: char| c.is_whitespace() || matches!(c, '\u{200B}' | '\u{FEFF}'));
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_USER_CHARS || trimmed.chars().all(invisible) {
        return Err("invalid_user");
    }
    if trimmed.chars().any(char::is_control) {
        return Err("control_character");
    }
    if trimmed.contains('\u{202E}') {
        return Err("invalid_user");
    }
    Ok(trimmed.to_owned())
}

/// The documented rule for `text`: line endings made `\n`, trimmed, then 1
/// to the limit characters, and no control characters but `\n`.
fn text_rule(text: &str) -> Result<(), &'static str> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let chars = text.trim().chars().count();
    if chars == 0 || chars > MAX_TEXT {
        return Err("invalid_text");
    }
    if text.trim().chars().any(|c| c.is_control() && c != '\n') {
        return Err("control_character");
    }
    Ok(())
}

proptest! {
    /// A user name is accepted exactly when the documented rule accepts it,
    /// stored trimmed, and refused with the rule's code otherwise; a refused
    /// name stores nothing.
    #[test]
    fn user_names_follow_the_documented_rule(user in from_alphabet(40)) {
        let store = store();
        let got = send(&store, &user, "hi", None).map_err(|e| e.code());
        prop_assert_eq!(&got, &user_rule(&user), "user {:?}", user);
        prop_assert_eq!(store.stats().last_id, u64::from(got.is_ok()));
    }

    /// A text is accepted exactly when the documented rule accepts it.
    #[test]
    fn texts_follow_the_documented_rule(text in from_alphabet(60)) {
        let store = store();
        let got = send(&store, "ana", &text, None).map(|_| ()).map_err(|e| e.code());
        prop_assert_eq!(got, text_rule(&text), "text {:?}", text);
        prop_assert_eq!(store.stats().last_id, u64::from(got.is_ok()));
    }

    /// Any name of 1 to 32 letters and digits, with spaces around it, is
    /// stored as the letters and digits.
    #[test]
    fn plain_names_are_stored_trimmed(name in "[A-Za-z0-9éü漢]{1,32}", pad in " {0,3}") {
        let store = store();
        let user = format!("{pad}{name}{pad}");
        prop_assert_eq!(send(&store, &user, "hi", None), Ok(name));
    }

    /// A `client_msg_id` of 1 to 64 printable characters is accepted, and
    /// sending again with it stores nothing new; an empty or longer one is
    /// refused.
    #[test]
    fn client_msg_ids_are_1_to_64_characters(key in "[!-~é]{0,80}") {
        let store = store();
        let chars = key.chars().count();
        let got = send(&store, "ana", "hi", Some(&key));
        if (1..=MAX_CLIENT_MSG_ID_CHARS).contains(&chars) {
            prop_assert!(got.is_ok());
            prop_assert!(send(&store, "ana", "hi", Some(&key)).is_ok());
            prop_assert_eq!(store.stats().last_id, 1);
        } else {
            prop_assert_eq!(got, Err(SendError::ClientMsgIdLength(chars)));
            prop_assert_eq!(store.stats().last_id, 0);
        }
    }
}
