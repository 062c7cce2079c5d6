//! The generated corpus of bad HTTP requests that `abuse.rs` runs: small
//! lists (bad JSON values, bad UTF-8 sequences, bad headers, bad query
//! values) crossed with the places they can go, each with its answer.

use crate::abuse::{Case, Expect};

/// Byte sequences that are not UTF-8: overlong encodings, UTF-16
/// surrogates, lone continuation bytes, a sequence cut short, bytes that
/// never occur.
pub(crate) const BAD_UTF8: &[(&str, &[u8])] = &[
    ("overlong slash", b"\xC0\xAF"),
    ("overlong NUL", b"\xC0\x80"),
    ("overlong 3-byte", b"\xE0\x80\xAF"),
    ("overlong 4-byte", b"\xF0\x80\x80\xAF"),
    ("high surrogate", b"\xED\xA0\x80"),
    ("low surrogate", b"\xED\xBF\xBF"),
    ("lone continuation", b"\x80"),
    ("continuations", b"\xBF\xBF"),
    ("cut short", b"\xE2\x82"),
    ("above U+10FFFF", b"\xF4\x90\x80\x80"),
    ("5-byte form", b"\xF8\x88\x80\x80\x80"),
    ("FE", b"\xFE"),
    ("FF", b"\xFF"),
];

/// `POST /api/messages` with `content_type` (none if `None`) and `body`.
pub(crate) fn post(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = String::from("POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("content-type: {content_type}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// `POST /api/messages` with a JSON body.
pub(crate) fn post_json(body: &[u8]) -> Vec<u8> {
    post(Some("application/json"), body)
}

/// A message body with `raw` spliced in as the value of `field`.
pub(crate) fn with_field(field: &str, raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in [("user", &b"\"ana\""[..]), ("text", b"\"hi\"")] {
        if name != field {
            body.extend_from_slice(format!("\"{name}\":").as_bytes());
            body.extend_from_slice(value);
            body.push(b',');
        }
    }
    body.extend_from_slice(format!("\"{field}\":").as_bytes());
    body.extend_from_slice(raw);
    let mut object = b"{".to_vec();
    object.extend(body);
    object.push(b'}');
    object
}

/// Bodies that are JSON but not a message, or not JSON at all: 400
/// `malformed_json` each.
pub(crate) fn json_cases() -> Vec<Case> {
    let malformed = Expect::Json(400, "malformed_json");
    let mut cases = Vec::new();
    // Not an object.
    for value in [
        "null",
        "true",
        "0",
        "-1.5e300",
        "\"ana\"",
        "[]",
        r#"["ana","hi"]"#,
        r#"[{"user":"ana","text":"hi"}]"#,
    ] {
        cases.push(Case::new(
            format!("body {value}"),
            post_json(value.as_bytes()),
            malformed,
        ));
    }
    // Fields of the wrong type, in every field.
    for field in ["user", "text", "client_msg_id", "via"] {
        for value in [
            "1",
            "1.5",
            "true",
            "[]",
            "{}",
            "[\"ana\"]",
            "{\"s\":\"ana\"}",
        ] {
            cases.push(Case::new(
                format!("{field}: {value}"),
                post_json(&with_field(field, value.as_bytes())),
                malformed,
            ));
        }
    }
    cases.push(Case::new(
        "user: null",
        post_json(&with_field("user", b"null")),
        malformed,
    ));
    cases.push(Case::new(
        "via: unknown",
        post_json(&with_field("via", b"\"pigeon\"")),
        malformed,
    ));
    cases.push(Case::new(
        "via: upper case",
        post_json(&with_field("via", b"\"SSE\"")),
        malformed,
    ));
    // Missing fields.
    for body in [
        "{}",
        r#"{"user":"ana"}"#,
        r#"{"text":"hi"}"#,
        r#"{"client_msg_id":"k"}"#,
    ] {
        cases.push(Case::new(
            format!("missing: {body}"),
            post_json(body.as_bytes()),
            malformed,
        ));
    }
    // Duplicate keys: which one would win is not for the server to guess.
    for body in [
        r#"{"user":"ana","user":"bob","text":"hi"}"#,
        r#"{"user":"ana","text":"hi","text":"ho"}"#,
    ] {
        cases.push(Case::new(
            format!("duplicate key: {body}"),
            post_json(body.as_bytes()),
            malformed,
        ));
    }
    // Deep nesting and numbers no number type holds, where a string must
    // be. (In a field the contract does not name, both are ignored like
    // the field: `unknown_fields_are_ignored`.)
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for (name, value) in [
        ("nested 200 deep", deep(200)),
        ("nested 20,000 deep", deep(20_000)),
        ("1e999", "1e999".to_owned()),
        ("-1e999", "-1e999".to_owned()),
        ("400 nines", "9".repeat(400)),
    ] {
        for field in ["user", "text", "client_msg_id"] {
            cases.push(Case::new(
                format!("{field}: {name}"),
                post_json(&with_field(field, value.as_bytes())),
                malformed,
            ));
        }
    }
    // Not JSON.
    for (name, body) in [
        ("empty body", &b""[..]),
        (
            "a byte-order mark first",
            b"\xEF\xBB\xBF{\"user\":\"ana\",\"text\":\"hi\"}",
        ),
        ("trailing garbage", br#"{"user":"ana","text":"hi"} x"#),
        (
            "two objects",
            br#"{"user":"ana","text":"hi"}{"user":"ana","text":"hi"}"#,
        ),
        ("single quotes", b"{'user':'ana','text':'hi'}"),
        ("a comment", br#"{"user":"ana",/* */"text":"hi"}"#),
        ("a trailing comma", br#"{"user":"ana","text":"hi",}"#),
        ("cut short", br#"{"user":"ana","text":"h"#),
        (
            "a raw newline in a string",
            b"{\"user\":\"ana\",\"text\":\"h\ni\"}",
        ),
        (
            "a lone surrogate escape",
            br#"{"user":"ana","text":"\ud800"}"#,
        ),
        (
            "a lone low surrogate escape",
            br#"{"user":"ana","text":"\udc00x"}"#,
        ),
        ("a bad escape", br#"{"user":"ana","text":"\q"}"#),
        ("UTF-16", b"\xFF\xFE{\x00}\x00"),
    ] {
        cases.push(Case::new(name, post_json(body), malformed));
    }
    // Bytes that are not UTF-8, inside each string and outside any.
    for (name, bytes) in BAD_UTF8 {
        for field in ["user", "text"] {
            let mut value = b"\"a".to_vec();
            value.extend_from_slice(bytes);
            value.push(b'"');
            cases.push(Case::new(
                format!("{name} in {field}"),
                post_json(&with_field(field, &value)),
                malformed,
            ));
        }
        let mut body = bytes.to_vec();
        body.extend_from_slice(br#"{"user":"ana","text":"hi"}"#);
        cases.push(Case::new(
            format!("{name} before the object"),
            post_json(&body),
            malformed,
        ));
    }
    cases
}

/// JSON messages that break a rule of the message: 400 with the rule's code.
pub(crate) fn rule_cases() -> Vec<Case> {
    let long_user = format!("\"{}\"", "a".repeat(33));
    let long_text = format!("\"{}\"", "a".repeat(2_001));
    let long_key = format!("\"{}\"", "k".repeat(65));
    let cases: [(&str, &[u8], &[u8], Expect); 10] = [
        (
            "empty user",
            b"user",
            b"\"\"",
            Expect::Json(400, "invalid_user"),
        ),
        (
            "blank user",
            b"user",
            b"\" \\t \"",
            Expect::Json(400, "invalid_user"),
        ),
        (
            "user too long",
            b"user",
            long_user.as_bytes(),
            Expect::Json(400, "invalid_user"),
        ),
        (
            "empty text",
            b"text",
            b"\"  \"",
            Expect::Json(400, "invalid_text"),
        ),
        (
            "text too long",
            b"text",
            long_text.as_bytes(),
            Expect::Json(400, "invalid_text"),
        ),
        (
            "NUL in text",
            b"text",
            b"\"a\\u0000b\"",
            Expect::Json(400, "control_character"),
        ),
        (
            "escape in user",
            b"user",
            b"\"a\\u001bb\"",
            Expect::Json(400, "control_character"),
        ),
        (
            "empty client_msg_id",
            b"client_msg_id",
            b"\"\"",
            Expect::Json(400, "invalid_client_msg_id"),
        ),
        (
            "long client_msg_id",
            b"client_msg_id",
            long_key.as_bytes(),
            Expect::Json(400, "invalid_client_msg_id"),
        ),
        (
            "via websocket by POST",
            b"via",
            b"\"websocket\"",
            Expect::Json(400, "invalid_via"),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, field, value, expect)| {
            let field = std::str::from_utf8(field).expect("ASCII");
            Case::new(name, post_json(&with_field(field, value)), expect)
        })
        .collect()
}

/// Bad `Content-Type`, `Content-Length` and `Transfer-Encoding` headers.
pub(crate) fn header_cases() -> Vec<Case> {
    let body = br#"{"user":"ana","text":"hi"}"#;
    let media = Expect::Json(415, "unsupported_media_type");
    let mut cases = vec![Case::new("no content-type", post(None, body), media)];
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
        "",
    ] {
        cases.push(Case::new(
            format!("content-type {content_type:?}"),
            post(Some(content_type), body),
            media,
        ));
    }
    let raw = |name: &str, headers: &str, rest: &[u8], expect| {
        let mut request = format!(
            "POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{headers}\r\n"
        )
        .into_bytes();
        request.extend_from_slice(rest);
        Case::new(name, request, expect)
    };
    let parser = Expect::Status(400);
    cases.extend([
        raw(
            "content-length not a number",
            "content-length: abc\r\n",
            body,
            parser,
        ),
        raw(
            "content-length negative",
            "content-length: -1\r\n",
            body,
            parser,
        ),
        raw(
            "content-length signed",
            "content-length: +26\r\n",
            body,
            parser,
        ),
        raw(
            "content-length over 64 bits",
            "content-length: 99999999999999999999999\r\n",
            body,
            parser,
        ),
        raw(
            "two different content-lengths",
            "content-length: 26\r\ncontent-length: 5\r\n",
            body,
            parser,
        ),
        raw(
            "a content-length list",
            "content-length: 26, 26\r\n",
            body,
            parser,
        ),
        raw(
            "content-length and chunked",
            "content-length: 26\r\ntransfer-encoding: chunked\r\n",
            b"1a\r\n{\"user\":\"ana\",\"text\":\"hi\"}\r\n0\r\n\r\n",
            parser,
        ),
        raw(
            "transfer-encoding gzip",
            "transfer-encoding: gzip\r\n",
            body,
            parser,
        ),
        raw(
            "transfer-encoding chunked twice",
            "transfer-encoding: chunked, chunked\r\n",
            b"1a\r\n{\"user\":\"ana\",\"text\":\"hi\"}\r\n0\r\n\r\n",
            parser,
        ),
        raw(
            "a bad chunk size",
            "transfer-encoding: chunked\r\n",
            b"zz\r\n{}\r\n0\r\n\r\n",
            Expect::Json(400, "bad_body"),
        ),
        raw("a NUL in a header", "x-a: a\0b\r\n", b"", parser),
        raw("a space in a header name", "x a: b\r\n", b"", parser),
        raw("a folded header", "x-a: a\r\n b\r\n", b"", parser),
    ]);
    cases.push(Case::new(
        "a space in the request target",
        b"GET /polling/messages?since= 1 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".to_vec(),
        Expect::Status(400),
    ));
    // A body longer than it says is a short JSON body, then garbage.
    cases.push(raw(
        "content-length shorter than the body",
        "content-length: 5\r\n",
        body,
        Expect::Json(400, "malformed_json"),
    ));
    cases
}

/// Bad query values of `since`, `limit`, `wait_s` and `epoch`, on the two
/// paging transports (the streams and the WebSocket read `since` with the
/// same code: `defects_input.rs` checks them all with a few values).
pub(crate) fn query_cases() -> Vec<Case> {
    let bad = Expect::Json(400, "invalid_query");
    let mut values: Vec<String> = [
        "",
        "-1",
        "+1",
        "%2B1",
        "%201",
        "1+",
        "1%20",
        "1.0",
        "1e3",
        "0x10",
        "1_000",
        "%00",
        "%",
        "%zz",
        "%FF",
        "99999999999999999999999",
        "18446744073709551616",
        "%EF%BC%91",
        "abc",
    ]
    .iter()
    .map(|v| (*v).to_owned())
    .collect();
    for (_, bytes) in BAD_UTF8 {
        values.push(bytes.iter().map(|b| format!("%{b:02X}")).collect());
    }
    let mut cases = Vec::new();
    for path in ["/polling/messages", "/longpoll/messages"] {
        // Polling takes no `wait_s`.
        let names: &[&str] = if path.starts_with("/long") {
            &["since", "limit", "wait_s"]
        } else {
            &["since", "limit"]
        };
        for &name in names {
            for value in &values {
                let query = match name {
                    "since" => format!("since={value}"),
                    other => format!("since=0&{other}={value}"),
                };
                cases.push(Case::new(format!("{path}?{query}"), get(path, &query), bad));
            }
            let twice =
                format!("since=0&{name}=1&{name}=1").replacen("since=0&since=1", "since=1", 1);
            cases.push(Case::new(format!("{path}?{twice}"), get(path, &twice), bad));
        }
        cases.push(Case::new("limit 0", get(path, "since=0&limit=0"), bad));
        for epoch in ["", "a%20b", "a.b", &"e".repeat(33), "%FF"] {
            let query = format!("since=0&epoch={epoch}");
            cases.push(Case::new(format!("{path}?{query}"), get(path, &query), bad));
        }
        cases.push(Case::new(
            format!("{path}: a cursor ahead"),
            get(path, "since=1000000"),
            Expect::Json(400, "cursor_ahead"),
        ));
    }
    cases
}

/// `GET path?query` with a `host`.
fn get(path: &str, query: &str) -> Vec<u8> {
    format!("GET {path}?{query} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").into_bytes()
}
