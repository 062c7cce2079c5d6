//! Starting a server for a test and talking to it.

use std::time::Duration;

use chat_client::{Client, Event, Message, Subscription};
use chat_demo::Settings;
use chat_http::{AppState, Config, RunningServer};
use chat_protocol::{CountersSnapshot, Transport};

/// Every wait in the suite is bounded by this, so a broken server fails a
/// test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running demo server and clients for it.
pub struct TestApp {
    /// The server (its state gives the store and the counters).
    pub server: RunningServer,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The project's client.
    pub client: Client,
    /// A plain HTTP client for requests the project's client would not make.
    pub http: reqwest::Client,
}

/// The demo server with default settings on a free loopback port.
pub async fn spawn_app() -> TestApp {
    spawn_with(Config::default()).await
}

/// The demo server with `config` (its address is ignored) on a free port.
pub async fn spawn_with(config: Config) -> TestApp {
    spawn_with_settings(config, Settings::default()).await
}

/// The demo server with `config` and the transports' own `settings`.
pub async fn spawn_with_settings(mut config: Config, settings: Settings) -> TestApp {
    config.workers = 2;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(
        listener,
        AppState::new(config),
        &chat_demo::mounts(settings),
    )
    .expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        client: Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    }
}

/// A demo server whose messages live in the shared log at `store_url` (a
/// Redis the test started): one instance among any number.
pub async fn spawn_shared(store_url: &str) -> TestApp {
    let config = Config {
        store_url: Some(store_url.to_owned()),
        workers: 2,
        ..Config::default()
    };
    let state = AppState::open(config)
        .await
        .expect("the shared log answers");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let server = chat_http::start(listener, state, &chat_demo::mounts(Settings::default()))
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        client: Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    }
}

impl TestApp {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `text` as `user` through the plain API.
    pub async fn say(&self, user: &str, text: &str) -> Message {
        self.client
            .send(user, text, None, chat_client::Via::Api)
            .await
            .expect("send accepted")
            .message
    }

    /// The bytes the store holds for message `id`.
    pub fn stored_json(&self, id: u64) -> bytes::Bytes {
        let page = self
            .server
            .state
            .store
            .read(Some(chat_store::Cursor(id - 1)), 1)
            .expect("a valid cursor");
        page.messages[0].json.clone()
    }

    /// The `/api/stats` counters of one transport, as a client reads them.
    pub async fn counters(&self, transport: Transport) -> CountersSnapshot {
        let stats = self.client.stats().await.expect("stats");
        stats.transports.of(transport)
    }
}

/// The next event, or a panic after [`PATIENCE`].
pub async fn next_event(sub: &mut Subscription) -> Event {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("an event within the patience")
        .expect("the subscription works")
}

/// The next `n` events, which must all be messages.
pub async fn next_messages(sub: &mut Subscription, n: usize) -> Vec<Message> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match next_event(sub).await {
            Event::Message { message, .. } => out.push(message),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    out
}

/// Polls `check` until it holds, at most [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}
