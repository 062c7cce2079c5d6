//! Server-sent events: framing, headers, resume, compression, shutdown.

use chat_protocol::Transport;
use futures_util::StreamExt;

use crate::helpers::{PATIENCE, TestApp, eventually, spawn_app, spawn_with_settings};
use crate::kit::{RawSocket, get, off_thread, raw_request};

/// Opens an event stream on `target` with `headers` besides `accept`.
fn open_stream(app: &TestApp, target: &str, headers: &[&str]) -> RawSocket {
    let mut socket = RawSocket::connect(app.server.addr);
    let mut all = vec!["accept: text/event-stream"];
    all.extend_from_slice(headers);
    socket.send(get(target, &all));
    socket
}

/// The stream opens with `retry:`, carries the contract's headers, one event
/// per message with `id:` and the stored bytes, and is never compressed,
/// even when the client asks for gzip.
#[tokio::test]
async fn stream_has_the_contract_headers_and_framing() {
    let app = spawn_app().await;
    let sent = app.say("ana", "hello").await;
    let mut socket = open_stream(&app, "/sse/events?since=0", &["accept-encoding: gzip, br"]);
    let text = off_thread(move || socket.read_until("\"via\":\"api\"}\n\n")).await;
    let lower = text.to_lowercase();
    assert!(lower.starts_with("http/1.1 200 ok\r\n"), "{text}");
    for header in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
    ] {
        assert!(lower.contains(header), "{header} in {text}");
    }
    assert!(!lower.contains("content-encoding: gzip"), "{text}");
    assert!(!lower.contains("content-encoding: br"), "{text}");
    let body = &text[text.find("\r\n\r\n").expect("head") + 4..];
    assert!(body.contains("retry: "), "{body}");
    assert!(
        body.find("retry: ") < body.find("id: 1"),
        "retry first: {body}"
    );
    let stored = app.stored_json(1);
    let expected = format!("id: 1\ndata: {}\n\n", String::from_utf8_lossy(&stored));
    assert!(body.contains(&expected), "{body}");
    assert_eq!(sent.id.0, 1);
}

/// Text with CR, LF, `\nid: 9` and `\nevent: x` arrives as exactly one event
/// with the right id and the text intact.
#[tokio::test]
async fn hostile_text_is_one_event() {
    let app = spawn_app().await;
    let text = "one\rtwo\nthree\nid: 9\nevent: x\n\ndata: injected";
    let sent = app.say("ana", text).await;
    let response = app
        .http
        .get(app.url("/sse/events?since=0"))
        .send()
        .await
        .expect("request");
    let mut events = response.bytes_stream().eventsource_events();
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event")
        .expect("stream open")
        .expect("parses");
    assert_eq!(event.id, "1");
    assert_eq!(event.event, "message");
    let message: chat_client::Message = serde_json::from_str(&event.data).expect("json");
    assert_eq!(message, sent);
    assert_eq!(
        message.text,
        "one\ntwo\nthree\nid: 9\nevent: x\n\ndata: injected"
    );
}

/// `Last-Event-ID` takes precedence over `since`; a bogus one is a 400.
#[tokio::test]
async fn last_event_id_takes_precedence() {
    let app = spawn_app().await;
    for i in 1..=5 {
        app.say("ana", &format!("m{i}")).await;
    }
    let response = app
        .http
        .get(app.url("/sse/events?since=1"))
        .header("last-event-id", "3")
        .send()
        .await
        .expect("request");
    let mut events = response.bytes_stream().eventsource_events();
    let first = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event")
        .expect("open")
        .expect("parses");
    assert_eq!(first.id, "4");

    let bogus = app
        .http
        .get(app.url("/sse/events"))
        .header("last-event-id", "nope")
        .send()
        .await
        .expect("request");
    crate::api::assert_error(bogus, reqwest::StatusCode::BAD_REQUEST, "invalid_query").await;
    let ahead = app
        .http
        .get(app.url("/sse/events?since=99"))
        .send()
        .await
        .expect("request");
    crate::api::assert_error(ahead, reqwest::StatusCode::BAD_REQUEST, "cursor_ahead").await;
}

/// After the configured silence a comment line keeps the stream alive.
#[tokio::test]
async fn silence_sends_a_keep_alive_comment() {
    let settings = chat_demo::Settings {
        sse: chat_sse::Settings {
            keepalive_s: 1,
            ..chat_sse::Settings::default()
        },
        ..chat_demo::Settings::default()
    };
    let app = spawn_with_settings(chat_http::Config::default(), settings).await;
    let mut socket = open_stream(&app, "/sse/events?since=0", &[]);
    let text = off_thread(move || socket.read_until(": keep-alive\n\n")).await;
    assert!(text.contains("retry: "));
}

/// Streams end cleanly on shutdown (the last chunk is sent, and nothing
/// after it), and the open counter is back to zero. (The bytes of a stream
/// ended this way are checked in `accounting`.)
#[tokio::test]
async fn shutdown_ends_streams_cleanly() {
    let app = spawn_app().await;
    let mut socket = open_stream(&app, "/sse/events?since=0", &[]);
    eventually("the stream is open", || async {
        app.counters(Transport::Sse).await.open == 1
    })
    .await;
    let counters = app.server.state.stats.clone();
    let stopping = tokio::spawn(app.server.shutdown());
    off_thread(move || {
        socket.read_head();
        while !socket.read_chunk().is_empty() {}
        assert!(
            socket.read_to_close().is_empty(),
            "nothing after the last chunk"
        );
    })
    .await;
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("stopped")
        .expect("task")
        .expect("clean");
    assert_eq!(counters.snapshot().of(Transport::Sse).open, 0);
}

/// The `Compress` middleware, wrapped around the SSE routes, leaves the
/// stream uncompressed (actix-web-lab marks it `content-encoding: identity`).
#[tokio::test]
async fn compression_middleware_leaves_the_stream_alone() {
    use actix_web::{App, HttpServer, middleware::Compress, web::Data};
    let state = chat_http::AppState::new(chat_http::Config::default());
    let data = Data::new(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sse = chat_sse::mount(chat_sse::Settings::default());
    let polling = chat_polling::mount();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Compress::default())
            .app_data(data.clone())
            .configure(|cfg| (sse.routes)(cfg))
            .configure(|cfg| (polling.routes)(cfg))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .disable_signals()
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    let big = "x".repeat(1_500);
    state
        .store
        .append(chat_store::NewMessage {
            user: "ana".into(),
            text: big,
            client_msg_id: None,
            via: chat_store::Via::Api,
        })
        .expect("valid");
    let gzip = ["accept-encoding: gzip"];
    // The middleware is active: a large polling answer is compressed...
    let polled = off_thread(move || {
        raw_request(addr, &get("/polling/messages?since=0", &gzip))
            .head
            .to_lowercase()
    })
    .await;
    assert!(polled.contains("content-encoding: gzip"), "{polled}");
    // ...but the event stream is not.
    let streamed = off_thread(move || {
        let mut socket = RawSocket::connect(addr);
        socket.send(get("/sse/events?since=0", &gzip));
        socket.read_head().to_lowercase()
    })
    .await;
    assert!(
        streamed.contains("content-encoding: identity"),
        "{streamed}"
    );
    assert!(!streamed.contains("gzip"), "{streamed}");
    state.shutdown.cancel();
    handle.stop(true).await;
}

/// `eventsource-stream` over a reqwest body.
trait EventSourceExt {
    fn eventsource_events(
        self,
    ) -> eventsource_stream::EventStream<
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    >;
}

impl<S> EventSourceExt for S
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
{
    fn eventsource_events(
        self,
    ) -> eventsource_stream::EventStream<
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    > {
        use eventsource_stream::Eventsource;
        let boxed: std::pin::Pin<
            Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>,
        > = Box::pin(self);
        boxed.eventsource()
    }
}

/// Each stream opens with its own `retry:`, drawn from
/// `--sse-retry-min..=--sse-retry-max` (1 to 5 s by default), so that the
/// streams a deploy ends together do not all come back together
/// (docs/pitfalls.md: the storm, measured).
#[tokio::test]
async fn each_stream_gets_its_own_retry_within_the_range() {
    let app = spawn_app().await;
    let addr = app.server.addr;
    let retries: Vec<u64> = off_thread(move || {
        (0..20)
            .map(|_| {
                let mut socket = RawSocket::connect(addr);
                socket.send(get("/sse/events", &["accept: text/event-stream"]));
                socket.read_head();
                let text = socket.read_chunks_until("retry: ");
                let line = text
                    .lines()
                    .find_map(|l| l.strip_prefix("retry: "))
                    .expect("a retry: line");
                line.trim().parse().expect("milliseconds")
            })
            .collect()
    })
    .await;
    let range = chat_sse::DEFAULT_RETRY_MIN_MS..=chat_sse::DEFAULT_RETRY_MAX_MS;
    assert!(retries.iter().all(|r| range.contains(r)), "{retries:?}");
    let mut distinct = retries.clone();
    distinct.sort();
    distinct.dedup();
    // 20 draws from 4,001 values: all equal has odds of 4001^-19.
    assert!(distinct.len() > 1, "{retries:?}");
}
