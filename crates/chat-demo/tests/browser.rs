//! The side-by-side page in a real browser: headless Chromium (Debian's
//! `chromium`), driven over the DevTools protocol with `chromiumoxide`,
//! against a real demo server on a loopback port.
//!
//! The browser is looked up at `CHROMIUM` if that variable is set (a path
//! to the binary), else at Debian's and Ubuntu's usual places. Without one
//! these tests fail, saying how to install it (`apt-get install chromium`).
//! With `CHAT_SKIP_BROWSER=1` they are skipped instead, and say so loudly on
//! stderr; under `CI=true` a missing browser always fails, skip or not.
//! `CHAT_SCREENSHOT=path.png` makes `counters_move` also save a screenshot
//! of the page in use (that is how `docs/screenshot.png` is made).
//!
//! The Automatic pane is tested twice: on a direct connection it must settle
//! on WebSocket, and behind [`bad_proxy`] (a proxy that strips the WebSocket
//! upgrade and holds back never-ending responses) it must fall back to long
//! polling, saying why it left each better transport.

#[allow(dead_code)]
#[path = "suite/helpers.rs"]
mod helpers;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use helpers::{PATIENCE, TestApp, spawn_app};

/// The panes, in page order: one per transport, then the Automatic one.
const PANES: [&str; 6] = ["polling", "longpoll", "sse", "websocket", "stream", "auto"];

/// The `via` of a message sent from `pane` on a direct connection: its
/// transport's name; the Automatic pane sends through WebSocket.
fn via_of(pane: &str) -> &str {
    if pane == "auto" { "websocket" } else { pane }
}

/// Where the browser is looked for when `CHROMIUM` is not set.
const CHROMIUM_PATHS: [&str; 3] = [
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];

/// The browser: at `CHROMIUM` if set, else at one of [`CHROMIUM_PATHS`];
/// `Err` says where it was looked for.
fn find_chromium() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!("CHROMIUM={} does not exist", path.display()))
        };
    }
    CHROMIUM_PATHS
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| format!("none of {} exists", CHROMIUM_PATHS.join(", ")))
}

/// What to do without a browser: fail, unless `CHAT_SKIP_BROWSER=1` asks to
/// skip (outside CI), in which case the skip is announced on stderr, once,
/// past the test harness's capture so that it shows in every run.
fn no_browser(looked: &str) {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let skip = std::env::var("CHAT_SKIP_BROWSER").as_deref() == Ok("1");
    let install = "Install it with `apt-get install chromium` (Debian's package; `.ci/run` \
                   does that), or set CHROMIUM=/path/to/chromium";
    assert!(
        !ci,
        "no Chromium for the browser tests ({looked}), and CI=true: a CI run must \
         install it. {install}."
    );
    assert!(
        skip,
        "no Chromium for the browser tests ({looked}). {install}; or set \
         CHAT_SKIP_BROWSER=1 to skip these tests."
    );
    static BANNER: Once = Once::new();
    BANNER.call_once(|| {
        let line = "=".repeat(72);
        // Straight to the process's stderr: `eprintln!` would be captured
        // and shown only for a failing test.
        let _ = writeln!(
            std::io::stderr().lock(),
            "\n{line}\nSKIPPED: browser tests did not run (CHAT_SKIP_BROWSER=1).\n\
             No Chromium: {looked}.\n\
             The page was NOT tested. {install}, and unset CHAT_SKIP_BROWSER.\n{line}\n"
        );
    });
}

/// A browser with the page open on a fresh demo server.
struct Session {
    app: TestApp,
    browser: Browser,
    page: Page,
    _profile: tempfile::TempDir,
}

/// Starts the demo server and a browser on its page, once every pane is
/// connected; `None` when there is no browser and the tests are skipped.
async fn open_page() -> Option<Session> {
    open_page_on(spawn_app().await).await
}

/// A browser on `app`'s page, once every pane is connected.
async fn open_page_on(app: TestApp) -> Option<Session> {
    let url = app.url("/");
    open_page_at(
        app,
        &url,
        "every pane connected",
        "document.body.dataset.ready === 'true'",
    )
    .await
}

/// A browser on the page at `url` (`app`'s, or a proxy in front of it),
/// once `ready` (a script expression, described by `what`) holds.
async fn open_page_at(app: TestApp, url: &str, what: &str, ready: &str) -> Option<Session> {
    let chromium = match find_chromium() {
        Ok(path) => path,
        Err(looked) => {
            no_browser(&looked);
            return None;
        }
    };
    let profile = tempfile::tempdir().expect("profile dir");
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(profile.path())
        .viewport(Viewport {
            width: 1440,
            height: 900,
            ..Viewport::default()
        })
        .window_size(1440, 900)
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .launch_timeout(PATIENCE)
        .request_timeout(PATIENCE)
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page(url).await.expect("page opens");
    let session = Session {
        app,
        browser,
        page,
        _profile: profile,
    };
    session.wait_for(what, ready).await;
    Some(session)
}

impl Session {
    /// Evaluates `expression` in the page.
    async fn js<T: DeserializeOwned>(&self, expression: &str) -> T {
        self.page
            .evaluate(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
            .into_value()
            .unwrap_or_else(|e| panic!("result of {expression}: {e}"))
    }

    /// Polls a boolean expression until it holds, at most [`PATIENCE`].
    async fn wait_for(&self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            if self
                .page
                .evaluate(expression)
                .await
                .ok()
                .and_then(|r| r.into_value::<bool>().ok())
                == Some(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never happened: {what} ({expression})");
    }

    /// The ids a pane shows, in order.
    async fn ids(&self, pane: &str) -> Vec<u64> {
        self.js(&format!(
            "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]')]\
             .map(li => Number(li.dataset.id))"
        ))
        .await
    }

    /// Sends `text` from a pane's own send box, as a user would.
    async fn send_from(&self, pane: &str, text: &str) {
        let field = self
            .page
            .find_element(format!(
                ".pane[data-transport={pane}] form.send [name=text]"
            ))
            .await
            .expect("send box");
        field.click().await.expect("focus");
        field.type_str(text).await.expect("type");
        field.press_key("Enter").await.expect("Enter sends");
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
    }
}

/// JSON string literal for embedding text in a script.
fn js_string(text: &str) -> String {
    serde_json::to_string(text).expect("string")
}

/// The page loads with six panes, each connected, in order, and the
/// Automatic pane, on a direct connection, settles on WebSocket without
/// giving anything up.
#[tokio::test]
async fn page_loads_with_six_connected_panes() {
    let Some(session) = open_page().await else {
        return;
    };
    let panes: Vec<String> = session
        .js("[...document.querySelectorAll('.pane')].map(p => p.dataset.transport)")
        .await;
    assert_eq!(panes, PANES);
    for pane in PANES {
        let state: String = session
            .js(&format!(
                "document.querySelector('.pane[data-transport={pane}] [data-stat=state]').textContent.trim()"
            ))
            .await;
        assert_eq!(state, "connected", "{pane}");
    }
    let now: String = session
        .js("document.querySelector('.pane[data-transport=auto]').dataset.transportNow")
        .await;
    assert_eq!(now, "websocket", "Automatic on a direct connection");
    let left: u32 = session
        .js("document.querySelectorAll('.pane[data-transport=auto] [data-left]').length")
        .await;
    assert_eq!(left, 0, "Automatic gave nothing up");
    session.close().await;
}

/// A transport's own server serves the same page with only its pane: no
/// Automatic pane (nothing to choose from) and no comparison strip.
#[tokio::test]
async fn a_transport_server_shows_only_its_pane() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = chat_http::start(
        listener,
        chat_http::AppState::new(chat_http::Config::default()),
        &[chat_sse::mount(chat_sse::Settings::default())],
    )
    .expect("starts");
    let base = format!("http://{}", server.addr);
    let app = TestApp {
        client: chat_client::Client::new(&base),
        http: reqwest::Client::new(),
        base,
        server,
    };
    let Some(session) = open_page_on(app).await else {
        return;
    };
    let panes: Vec<String> = session
        .js("[...document.querySelectorAll('.pane')].map(p => p.dataset.transport)")
        .await;
    assert_eq!(panes, ["sse"]);
    let strip_hidden: bool = session
        .js("document.getElementById('compare').hidden")
        .await;
    assert!(strip_hidden, "one pane has nothing to compare");
    session.send_from("sse", "alone").await;
    session
        .wait_for(
            "the message shows",
            "[...document.querySelectorAll('.pane ol.messages li[data-id] .text')].some(t => t.textContent === 'alone')",
        )
        .await;
    session.close().await;
}

/// A message typed into each pane, the Automatic one included, appears once
/// in all six, marked with the transport that sent it.
#[tokio::test]
async fn a_message_from_each_pane_appears_once_in_all() {
    let Some(session) = open_page().await else {
        return;
    };
    for sender in PANES {
        let text = format!("hello from the {sender} pane");
        session.send_from(sender, &text).await;
        for pane in PANES {
            session
                .wait_for(
                    &format!("{pane} shows the {sender} message once"),
                    &format!(
                        "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]')]\
                         .filter(li => li.querySelector('.text').textContent === {text}\
                                  && li.dataset.via === '{via}').length === 1",
                        text = js_string(&text),
                        via = via_of(sender),
                    ),
                )
                .await;
        }
    }
    let stored = session.app.server.state.store.stats().last_id;
    assert_eq!(stored, 6, "one message per pane, no duplicates stored");
    session.close().await;
}

/// Hostile text is shown as text and runs nothing.
#[tokio::test]
async fn hostile_text_is_shown_as_text_and_runs_nothing() {
    let Some(session) = open_page().await else {
        return;
    };
    let hostile = [
        "<img src=x onerror=\"window.__pwned = 'img'\">",
        "<script>window.__pwned = 'script'</script>",
        "<b onmouseover=\"window.__pwned = 'b'\">bold?</b>",
    ];
    for text in hostile {
        session.app.say("mallory", text).await;
    }
    for pane in PANES {
        session
            .wait_for(
                &format!("{pane} shows the three messages"),
                &format!(
                    "document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]').length >= 3"
                ),
            )
            .await;
        let texts: Vec<String> = session
            .js(&format!(
                "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id] .text')]\
                 .map(t => t.textContent)"
            ))
            .await;
        for text in hostile {
            assert!(
                texts.iter().any(|t| t == text),
                "{pane} shows {text:?} as text"
            );
        }
    }
    let injected: u32 = session
        .js("document.querySelectorAll('ol.messages img, ol.messages script, ol.messages b').length")
        .await;
    assert_eq!(injected, 0, "no element was made from user text");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pwned: bool = session.js("window.__pwned !== undefined").await;
    assert!(!pwned, "no user text ran");
    session.close().await;
}

/// Each pane, disconnected and reconnected while messages flow, ends with
/// every message once, in order.
#[tokio::test]
async fn a_pane_reconnects_without_loss_or_duplicates() {
    let Some(session) = open_page().await else {
        return;
    };
    let mut total = 0u64;
    for pane in PANES {
        let toggle = format!(".pane[data-transport={pane}] button[data-action=toggle-connection]");
        session
            .js::<bool>(&format!(
                "(document.querySelector('{toggle}').click(), true)"
            ))
            .await;
        session
            .wait_for(
                &format!("{pane} disconnected"),
                &format!(
                    "document.querySelector('.pane[data-transport={pane}] [data-stat=state]').textContent.trim() === 'disconnected'"
                ),
            )
            .await;
        for i in 0..15 {
            session.app.say("flow", &format!("{pane} gap {i}")).await;
        }
        session
            .js::<bool>(&format!(
                "(document.querySelector('{toggle}').click(), true)"
            ))
            .await;
        for i in 0..15 {
            session.app.say("flow", &format!("{pane} after {i}")).await;
        }
        total += 30;
        for shown in PANES {
            let expected: Vec<u64> = (1..=total).collect();
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let ids = session.ids(shown).await;
                if ids == expected {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{shown} after {pane} reconnected: {ids:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    session.close().await;
}

/// The counters in every pane move as messages flow: received, requests,
/// bytes per message from the server, latency.
#[tokio::test]
async fn counters_move() {
    let Some(session) = open_page().await else {
        return;
    };
    for i in 0..10 {
        session
            .app
            .say(
                "ana",
                &format!("message {i} from a script, through the API"),
            )
            .await;
    }
    for pane in PANES {
        session
            .send_from(pane, &format!("hello from the {pane} pane"))
            .await;
    }
    for pane in PANES {
        let stat = |name: &str| {
            format!(
                "document.querySelector('.pane[data-transport={pane}] [data-stat={name}]').textContent.trim()"
            )
        };
        session
            .wait_for(
                &format!("{pane} counts 10 received"),
                &format!("parseInt({}) >= 10", stat("received")),
            )
            .await;
        session
            .wait_for(
                &format!("{pane} shows bytes per message"),
                &format!("/\\d/.test({})", stat("bytes_per_msg")),
            )
            .await;
        session
            .wait_for(
                &format!("{pane} shows a latency"),
                &format!("/\\d/.test({})", stat("p50")),
            )
            .await;
        session
            .wait_for(
                &format!("{pane} counts requests"),
                &format!("parseInt({}) >= 1", stat("requests")),
            )
            .await;
    }
    if let Ok(path) = std::env::var("CHAT_SCREENSHOT") {
        // Let the charts' bars finish their transition.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        session
            .page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
            .await
            .expect("screenshot");
    }
    session.close().await;
}

/// The strip on top compares the panes: three charts with one bar per pane,
/// empty before anything was delivered, and growing and changing as
/// messages flow.
#[tokio::test]
async fn the_comparison_strip_bars_move() {
    let Some(session) = open_page().await else {
        return;
    };
    const METRICS: [&str; 3] = ["bytes_per_msg", "requests_per_msg", "p50"];
    let rows = |metric: &str| {
        format!("[...document.querySelectorAll('#compare [data-metric={metric}] .bar-row')]")
    };
    for metric in METRICS {
        let order: Vec<String> = session
            .js(&format!("{}.map(r => r.dataset.transport)", rows(metric)))
            .await;
        assert_eq!(order, PANES, "{metric}: one bar per pane, in page order");
    }
    let before: Vec<String> = session
        .js(&format!("{}.map(r => r.dataset.value)", rows("p50")))
        .await;
    assert!(
        before.iter().all(String::is_empty),
        "no latency before any live message: {before:?}"
    );
    for i in 0..5 {
        session.app.say("ana", &format!("chart {i}")).await;
    }
    for metric in METRICS {
        session
            .wait_for(
                &format!("every {metric} bar has a value and a width"),
                &format!(
                    "{}.every(r => r.dataset.value !== '' \
                        && r.querySelector('.bar').getBoundingClientRect().width > 0 \
                        && /\\d/.test(r.querySelector('.bar-value').textContent))",
                    rows(metric)
                ),
            )
            .await;
    }
    // Polling keeps asking while nothing happens: its requests per message
    // climb, and the bars follow.
    let polling = |metric: &str| {
        format!(
            "document.querySelector('#compare [data-metric={metric}] .bar-row[data-transport=polling]').dataset.value"
        )
    };
    let first: String = session.js(&polling("requests_per_msg")).await;
    session
        .wait_for(
            "polling's requests per message move",
            &format!("{} !== {}", polling("requests_per_msg"), js_string(&first)),
        )
        .await;
    session.close().await;
}

/// Behind a proxy that strips the WebSocket upgrade and holds back
/// never-ending responses, the Automatic pane ends on long polling: the
/// upgrade is refused; SSE, taken when it opened on an empty chat, is given
/// up once a message it should have carried does not come; streaming,
/// tried once the chat has a message, delivers nothing. The message sent
/// meanwhile shows once. A reload starts on long polling, remembered for the
/// tab's session.
#[tokio::test]
async fn automatic_falls_back_behind_a_bad_proxy() {
    let app = spawn_app().await;
    let upstream: SocketAddr = app.server.addr;
    let proxy = bad_proxy(upstream).await;
    let now = "document.querySelector('.pane[data-transport=auto]').dataset.transportNow";
    let left = |transport: &str| {
        format!(
            "document.querySelector('.pane[data-transport=auto] [data-left][data-transport={transport}]')?.dataset.reason"
        )
    };
    let Some(session) = open_page_at(
        app,
        &format!("http://{proxy}/"),
        "Automatic on SSE, taken as it opened on an empty chat",
        &format!("{now} === 'sse'"),
    )
    .await
    else {
        return;
    };
    let reason: String = session.js(&left("websocket")).await;
    assert_eq!(reason, "refused", "the stripped upgrade");

    session.send_from("auto", "through a bad proxy").await;
    session
        .wait_for(
            "Automatic on long polling",
            &format!("{now} === 'longpoll'"),
        )
        .await;
    let reasons: Vec<(String, String)> = session
        .js(
            "[...document.querySelectorAll('.pane[data-transport=auto] [data-left]')]\
             .map(li => [li.dataset.transport, li.dataset.reason])",
        )
        .await;
    let expected = [
        ("websocket", "refused"),
        ("sse", "silent"),
        ("stream", "silent"),
    ]
    .map(|(t, r)| (t.to_owned(), r.to_owned()));
    assert_eq!(reasons, expected);
    session
        .wait_for(
            "the message shows once, sent through SSE's POST",
            "[...document.querySelectorAll('.pane[data-transport=auto] ol.messages li[data-id]')]\
             .filter(li => li.querySelector('.text').textContent === 'through a bad proxy' \
                      && li.dataset.via === 'sse').length === 1",
        )
        .await;
    let ids = session.ids("auto").await;
    assert_eq!(ids, [1]);

    session.js::<bool>("(location.reload(), true)").await;
    session
        .wait_for(
            "after a reload, Automatic starts on long polling",
            &format!(
                "document.readyState === 'complete' && {now} === 'longpoll' \
                 && document.querySelectorAll('.pane[data-transport=auto] [data-left]').length === 0"
            ),
        )
        .await;
    session.close().await;
}

/// A badly set-up proxy in front of `upstream`, like an nginx without the
/// WebSocket lines and with buffering forced on: it drops the `Upgrade` and
/// `Connection` headers of every request, and of a response to
/// `/sse/` or `/stream/` it passes the head but holds the body back until
/// 64 KiB have gathered. One request per connection (`connection: close`).
async fn bad_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("the proxy's address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                // A connection that breaks is the browser's to retry.
                let _ = relay(client, upstream).await;
            });
        }
    });
    addr
}

/// What the proxy holds back from a never-ending response.
const PROXY_BUFFER: usize = 64 * 1024;

/// One request through [`bad_proxy`].
async fn relay(mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut client).await?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let held = path.starts_with("/sse/") || path.starts_with("/stream/");
    let mut forwarded = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(name.as_str(), "connection" | "upgrade" | "keep-alive") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("connection: close\r\n\r\n");

    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(forwarded.as_bytes()).await?;
    server.write_all(&rest).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // The request's body, if any, and the client's hang-up.
    let mut up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
    });
    let down = async {
        if held {
            let (head, mut body) = read_head(&mut from_server).await?;
            to_client.write_all(&head).await?;
            let mut chunk = [0u8; 4096];
            loop {
                let n = from_server.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
                if body.len() >= PROXY_BUFFER {
                    to_client.write_all(&body).await?;
                    body.clear();
                }
            }
            to_client.write_all(&body).await?;
        } else {
            tokio::io::copy(&mut from_server, &mut to_client).await?;
        }
        to_client.shutdown().await
    };
    tokio::select! {
        // The browser hung up (say, it aborted a held stream).
        _ = &mut up => Ok(()),
        done = down => {
            // Answered: let the browser read it all and hang up, rather than
            // closing under it (which could reset the connection).
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut up).await;
            up.abort();
            done
        }
    }
}

/// Reads up to the end of an HTTP head: the head (blank line included) and
/// whatever came after it.
async fn read_head<R: AsyncReadExt + Unpin>(reader: &mut R) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = bytes.split_off(end + 4);
            return Ok((bytes, rest));
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}
