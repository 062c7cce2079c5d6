//! Property tests of cursor parsing (`since`, `limit`) and of reading a
//! send's JSON body, against the rules `docs/protocol.md` documents: a
//! number is ASCII digits, after percent-decoding, given once, that fits in
//! 64 bits; every parameter is UTF-8 once decoded; a message is a JSON
//! object with string `user` and `text`.

use actix_web::test::TestRequest;
use chat_http::api::{ApiError, Query, parse_object, whole_number};
use chat_protocol::{Cursor, SendRequest};
use proptest::prelude::*;

/// Page size limit the tests ask `limit` against.
const MAX_LIMIT: usize = 500;

/// `Query::parse` of a request to `/x?{query}`.
fn query(query: &str) -> Result<Query, ApiError> {
    Query::parse(&TestRequest::with_uri(&format!("/x?{query}")).to_http_request())
}

/// `since` as the server reads it from a raw query string.
fn since(raw_query: &str) -> Result<Option<Cursor>, ApiError> {
    query(raw_query)?.since()
}

/// Every byte of `s` percent-encoded, whether it needs it or not.
fn encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Whether `e` is the contract's 400 `invalid_query`.
fn is_bad_query(e: &ApiError) -> bool {
    matches!(e, ApiError::BadQuery { .. })
}

proptest! {
    /// Any u64, written in digits (with leading zeros or not), plain or
    /// percent-encoded byte by byte, is that cursor.
    #[test]
    fn digits_parse_to_their_number(n: u64, zeros in 0usize..4, encoded: bool) {
        let digits = format!("{}{n}", "0".repeat(zeros));
        let raw = if encoded { encode_all(&digits) } else { digits.clone() };
        prop_assert_eq!(since(&format!("since={raw}")).ok(), Some(Some(Cursor(n))));
        prop_assert_eq!(whole_number::<u64>(&digits), Some(n));
    }

    /// Digits whose number is above u64::MAX are refused with a message that
    /// says so, never wrapped or clamped.
    #[test]
    fn overflow_is_a_clear_error(extra in "[0-9]{1,30}") {
        let digits = format!("{}{extra}", u64::MAX);
        let e = since(&format!("since={digits}")).expect_err("above u64::MAX");
        prop_assert!(is_bad_query(&e));
        prop_assert!(e.to_string().contains("64 bits"), "{}", e);
    }

    /// Any value holding something other than an ASCII digit (a sign, a
    /// space, a letter, a dot, any other character), plain where the query
    /// syntax allows it or percent-encoded, is refused; so is an empty one.
    #[test]
    fn anything_but_digits_is_refused(
        before in "[0-9]{0,5}",
        junk in "[^0-9]",
        after in "[0-9]{0,5}",
        encoded: bool,
    ) {
        let value = format!("{before}{junk}{after}");
        let e = if encoded {
            since(&format!("since={}", encode_all(&value)))
        } else {
            let pair = serde_urlencoded::to_string([("since", value.as_str())]).expect("encodes");
            since(&pair)
        }
        .expect_err("not digits");
        prop_assert!(is_bad_query(&e), "{:?}", value);
        prop_assert_eq!(whole_number::<u64>(&value), None);
    }

    /// A parameter given twice is refused, whatever the two values (even
    /// equal ones), for `since` and `limit` alike.
    #[test]
    fn a_repeated_parameter_is_refused(a: u64, b: u64, name in "since|limit") {
        let e = query(&format!("{name}={a}&{name}={b}")).err().expect("refused");
        prop_assert!(is_bad_query(&e));
    }

    /// `limit` is 1 to the page size (larger values clamped), the page size
    /// when absent; 0 is refused.
    #[test]
    fn limit_is_clamped_to_the_page_size(n: u64) {
        let got = query(&format!("limit={n}")).and_then(|q| q.limit(MAX_LIMIT));
        match n {
            0 => prop_assert!(got.is_err()),
            n => prop_assert_eq!(got.ok(), Some((n as usize).min(MAX_LIMIT))),
        }
        prop_assert_eq!(query("").and_then(|q| q.limit(MAX_LIMIT)).ok(), Some(MAX_LIMIT));
    }

    /// Any parameter (a `user=` name included) whose percent-decoded bytes
    /// are not UTF-8 is refused, never read with U+FFFD in their place;
    /// the same bytes as UTF-8 pass.
    #[test]
    fn bytes_that_are_not_utf8_are_refused(
        name in "[a-z]{1,8}",
        text in "\\PC{0,8}",
        cut in 1usize..4,
    ) {
        // A character of 2 to 4 bytes, cut short: never UTF-8.
        let whole = "é€😀".chars().nth(cut - 1).expect("a character").to_string();
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(&whole.as_bytes()[..cut]);
        let broken: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        let (bad_value, bad_name) = (format!("{name}={broken}"), format!("{broken}=1"));
        prop_assert!(query(&bad_value).is_err(), "a value that is not UTF-8");
        prop_assert!(query(&bad_name).is_err(), "a name that is not UTF-8");
        let fine: String = format!("{text}{whole}").bytes().map(|b| format!("%{b:02X}")).collect();
        let good = format!("{name}={fine}");
        prop_assert!(query(&good).is_ok(), "the same text as UTF-8");
    }

    /// Other parameters, with any value percent-encoded, do not disturb the
    /// cursor.
    #[test]
    fn other_parameters_leave_the_cursor_alone(n: u64, name in "[a-z]{1,8}", value in "\\PC{0,20}") {
        prop_assume!(name != "since" && name != "limit");
        let pair = serde_urlencoded::to_string([(name.as_str(), value.as_str())]).expect("encodes");
        prop_assert_eq!(since(&format!("{pair}&since={n}")).ok(), Some(Some(Cursor(n))));
    }

    /// A send body is read exactly when it is a JSON object with string
    /// `user` and `text` (and optional `client_msg_id`): the strings come
    /// back as they were, whatever they hold.
    #[test]
    fn any_object_with_string_fields_is_a_send(user in "\\PC{0,40}", text in "\\PC{0,80}", key in proptest::option::of("\\PC{0,10}")) {
        let body = serde_json::json!({"user": user, "text": text, "client_msg_id": key});
        let parsed: SendRequest = parse_object(body.to_string().as_bytes()).expect("an object");
        prop_assert_eq!(parsed.user, user);
        prop_assert_eq!(parsed.text, text);
        prop_assert_eq!(parsed.client_msg_id, key);
    }

    /// Anything that is not such an object is `malformed_json`: any other
    /// JSON value, the object's fields as an array, a field of the wrong
    /// type, a field missing, or any bytes that are not JSON at all.
    #[test]
    fn anything_else_is_malformed(value in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let refused = |body: &[u8]| matches!(parse_object::<SendRequest>(body), Err(ApiError::MalformedJson(_)));
        if !value.is_object() {
            prop_assert!(refused(value.to_string().as_bytes()), "{}", value);
        }
        let wrapped = serde_json::json!({"user": value, "text": "hi"});
        if !value.is_string() {
            prop_assert!(refused(wrapped.to_string().as_bytes()), "{}", wrapped);
        }
        let array = serde_json::json!(["ana", "hi"]);
        prop_assert!(refused(array.to_string().as_bytes()), "an array");
        let missing_text = br#"{"user":"ana"}"#;
        prop_assert!(refused(missing_text), "a missing text");
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            prop_assert!(refused(&bytes));
        }
    }
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
