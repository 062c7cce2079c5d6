//! User names must show who sent a message: names that show nothing, or
//! that can display as another name, are refused.

use chat_store::{NewMessage, SendError, Store, StoreConfig, Via};

fn send(store: &Store, user: &str) -> Result<String, SendError> {
    store
        .append(NewMessage {
            user: user.into(),
            text: "hi".into(),
            client_msg_id: None,
            via: Via::Api,
        })
        .map(|appended| {
            let json: serde_json::Value =
                serde_json::from_slice(&appended.message().json).expect("JSON");
            json["user"].as_str().expect("a user").to_owned()
        })
}

/// Names made only of invisible characters (zero-width space, byte-order
/// mark, joiners, the soft hyphen, variation selectors, fillers), alone or
/// with spaces, are empty: `invalid_user`, and nothing is stored.
#[test]
fn invisible_names_are_empty() {
    let store = Store::new(StoreConfig::default());
    for user in [
        "\u{200B}",
        "\u{FEFF}",
        " \u{200B}\u{FEFF} \u{2060} ",
        "\u{200C}\u{200D}",
        "\u{00AD}",
        "\u{FE0F}",
        "\u{3164}",
        "\u{2800}",
        "\u{E0041}",
    ] {
        let refused = send(&store, user).expect_err(&format!("{user:?} is refused"));
        assert_eq!(refused, SendError::UserLength(0), "{user:?}");
        assert_eq!(refused.code(), "invalid_user");
    }
    assert_eq!(store.stats().last_id, 0);
}

/// Invisible characters around a name are trimmed like spaces; inside it, and
/// a variation selector after an emoji, they stay.
#[test]
fn invisible_characters_around_a_name_are_trimmed() {
    let store = Store::new(StoreConfig::default());
    assert_eq!(send(&store, "\u{200B}ana\u{FEFF} ").expect("valid"), "ana");
    assert_eq!(
        send(&store, "\u{2764}\u{FE0F}").expect("valid"),
        "\u{2764}\u{FE0F}"
    );
    assert_eq!(
        send(&store, "\u{1F469}\u{200D}\u{1F4BB}").expect("valid"),
        "\u{1F469}\u{200D}\u{1F4BB}"
    );
}

/// A bidi embedding, override or isolate anywhere in a name is refused:
/// `invalid_user`, and nothing is stored.
#[test]
fn bidi_controls_are_refused() {
    let store = Store::new(StoreConfig::default());
    for (user, code) in [
        ("ana\u{202E}nimda", 0x202E),
        ("\u{202A}bob", 0x202A),
        ("b\u{202B}o", 0x202B),
        ("b\u{202C}o", 0x202C),
        ("b\u{202D}o", 0x202D),
        ("c\u{2066}d\u{2069}", 0x2066),
        ("c\u{2067}d", 0x2067),
        ("c\u{2068}d", 0x2068),
        ("cd\u{2069}", 0x2069),
    ] {
        let refused = send(&store, user).expect_err(&format!("{user:?} is refused"));
        assert_eq!(refused, SendError::UserBidi(code), "{user:?}");
        assert_eq!(refused.code(), "invalid_user");
    }
    assert_eq!(store.stats().last_id, 0);
}
