//! The abuse suite, HTTP part: a corpus of bad requests, generated from
//! small lists (bad JSON values, bad UTF-8 sequences, bad headers, bad
//! query values) crossed with the places they can go, each with the exact
//! answer it must get; then the check that none of them stored anything.
//!
//! The WebSocket corpus is in `abuse_ws.rs`, slow clients and oversized
//! heads in `abuse_slow.rs`, the chaos run in `chaos.rs`. `defects.rs` and
//! `defects_input.rs` hold the single cases the adversarial run found;
//! floods (send rates) are the limits' tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::abuse_corpus::{
    BAD_UTF8, header_cases, json_cases, post_json, query_cases, rule_cases, with_field,
};
use crate::helpers::spawn_app;
use crate::kit::{Response, get, header, off_thread, ws_upgrade};

/// What a case must be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// This status, with the contract's JSON error body and this code.
    Json(u16, &'static str),
    /// This status from the HTTP parser, before the app (no JSON body).
    Status(u16),
}

/// One bad request and its answer.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// What it tries.
    pub name: String,
    /// The request's bytes.
    pub request: Vec<u8>,
    /// The answer it must get.
    pub expect: Expect,
}

impl Case {
    pub(crate) fn new(name: impl Into<String>, request: Vec<u8>, expect: Expect) -> Self {
        Case {
            name: name.into(),
            request,
            expect,
        }
    }
}

/// Bad `user=` names on every transport's subscription (presence): the
/// message's rules, checked before any stream opens or socket upgrades.
fn user_cases() -> Vec<Case> {
    let long = "a".repeat(33);
    let mut values: Vec<(String, &str)> = vec![
        (String::new(), "invalid_user"),
        ("%20%20".into(), "invalid_user"),
        (long, "invalid_user"),
        ("%E2%80%8B%EF%BB%BF".into(), "invalid_user"),
        ("ana%E2%80%AE".into(), "invalid_user"),
        ("a%00b".into(), "control_character"),
        ("a%1Bb".into(), "control_character"),
        ("ana&user=bob".into(), "invalid_query"),
    ];
    for (_, bytes) in BAD_UTF8 {
        let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        values.push((format!("a{encoded}"), "invalid_query"));
    }
    let mut cases = Vec::new();
    for path in [
        "/polling/messages",
        "/longpoll/messages",
        "/sse/events",
        "/stream/messages",
        "/ws",
    ] {
        for (value, code) in &values {
            let target = format!("{path}?since=0&user={value}");
            let request = if *path == *"/ws" {
                ws_upgrade(&target, None)
            } else {
                get(&target, &[])
            };
            cases.push(Case::new(
                target.clone(),
                request.into_bytes(),
                Expect::Json(400, code),
            ));
        }
    }
    cases
}

/// How long a bad request may go unanswered: past the head and body
/// timeouts (5 s each), a server that has not answered never will.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

/// Sends `request` on a fresh connection and reads one answer framed by
/// its `content-length` (every refusal has one), or says why there was
/// none.
pub(crate) fn answer(addr: SocketAddr, request: &[u8]) -> Result<Response, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| e.to_string())?;
    // The server may answer and close before the whole request is written.
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end + 4]).into_owned();
            let length: usize = header(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let body = bytes[end + 4..end + 4 + length].to_vec();
                return Ok(Response { head, body });
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "closed after {:?}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(format!(
                    "no answer ({e}) after {:?}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
        }
    }
}

/// The mismatch between `response` and `expect`, if any.
pub(crate) fn mismatch(response: &Response, expect: Expect) -> Option<String> {
    let status = response.status();
    let (want, code) = match expect {
        Expect::Json(status, code) => (status, Some(code)),
        Expect::Status(status) => (status, None),
    };
    if status != want {
        return Some(format!("{status} instead of {want}: {}", response.text()));
    }
    let code = code?;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    (body["error"]["code"] != code)
        .then(|| format!("code {} instead of {code}", body["error"]["code"]))
}

/// Every case of the generated corpus gets exactly its status (and error
/// code), each on a fresh connection, and none of them stores anything:
/// `/api/stats` counts no message and a poll from 0 finds none.
#[tokio::test]
async fn the_bad_request_corpus_gets_its_exact_answers_and_stores_nothing() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let cases: Vec<Case> = [
        json_cases(),
        rule_cases(),
        header_cases(),
        query_cases(),
        user_cases(),
    ]
    .concat();
    let total = cases.len();
    assert!(total > 300, "a corpus of {total}");
    let failures = off_thread(move || {
        cases
            .iter()
            .filter_map(|case| {
                match answer(addr, &case.request) {
                    Ok(response) => mismatch(&response, case.expect),
                    Err(why) => Some(why),
                }
                .map(|why| format!("{}: {why}", case.name))
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert!(
        failures.is_empty(),
        "{} of {total} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let stats = app.client.stats().await.expect("stats");
    assert_eq!(stats.store.last_id, 0, "nothing stored");
    let page: Value = app
        .http
        .get(app.url("/polling/messages?since=0"))
        .send()
        .await
        .expect("a poll")
        .json()
        .await
        .expect("a page");
    assert_eq!(page["messages"], serde_json::json!([]));
    // The server is still up and takes a good message.
    assert_eq!(app.say("ana", "still here").await.id.0, 1);
}

/// Fields the contract does not name are ignored, whatever they hold
/// (20,000 levels of nesting, a number no type holds: serde skips them
/// without recursing, within the body limit), and the stored message has
/// only the contract's fields.
#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    for extra in [deep.as_str(), "1e999", "{\"type\":\"send\"}"] {
        let request = post_json(&with_field("extra", extra.as_bytes()));
        let response = off_thread(move || answer(addr, &request))
            .await
            .expect("an answer");
        assert_eq!(response.status(), 201, "{}", response.text());
        let stored: Value = serde_json::from_slice(&response.body).expect("JSON");
        let mut fields: Vec<&String> = stored.as_object().expect("an object").keys().collect();
        fields.sort();
        assert_eq!(fields, ["id", "sent_at_ms", "text", "user", "via"]);
    }
}
