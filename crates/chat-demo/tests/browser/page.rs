//! The browser half of the page tests: finding Chromium (or skipping, as
//! the test binary's documentation says), opening the page in it, and
//! reading and driving the page through [`Session`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::Page;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::helpers::{PATIENCE, TestApp, spawn_app};

/// The panes, in page order: one per transport, then the Automatic one.
pub const PANES: [&str; 6] = ["polling", "longpoll", "sse", "websocket", "stream", "auto"];

/// The `via` of a message sent from `pane` on a direct connection: its
/// transport's name; the Automatic pane sends through WebSocket.
pub fn via_of(pane: &str) -> &str {
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
pub fn find_chromium() -> Result<PathBuf, String> {
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
pub fn no_browser(looked: &str) {
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
pub struct Session {
    pub app: TestApp,
    browser: Browser,
    pub page: Page,
    _profile: tempfile::TempDir,
}

/// Starts the demo server and a browser on its page, once every pane is
/// connected; `None` when there is no browser and the tests are skipped.
pub async fn open_page() -> Option<Session> {
    open_page_on(spawn_app().await).await
}

/// A browser on `app`'s page, once every pane is connected.
pub async fn open_page_on(app: TestApp) -> Option<Session> {
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
pub async fn open_page_at(app: TestApp, url: &str, what: &str, ready: &str) -> Option<Session> {
    let (browser, profile) = launch(&[]).await?;
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

/// Chromium, headless, on a fresh profile (kept while the browser runs),
/// with `extra` flags; `None` when there is no browser and the tests are
/// skipped.
pub async fn launch(extra: &[String]) -> Option<(Browser, tempfile::TempDir)> {
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
        .args(extra.iter().map(String::as_str))
        .launch_timeout(PATIENCE)
        .request_timeout(PATIENCE)
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    Some((browser, profile))
}

impl Session {
    /// Evaluates `expression` in the page.
    pub async fn js<T: DeserializeOwned>(&self, expression: &str) -> T {
        self.page
            .evaluate(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
            .into_value()
            .unwrap_or_else(|e| panic!("result of {expression}: {e}"))
    }

    /// Polls a boolean expression until it holds, at most [`PATIENCE`].
    pub async fn wait_for(&self, what: &str, expression: &str) {
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
    pub async fn ids(&self, pane: &str) -> Vec<u64> {
        self.js(&format!(
            "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]')]\
             .map(li => Number(li.dataset.id))"
        ))
        .await
    }

    /// Sends `text` from a pane's own send box, as a user would.
    pub async fn send_from(&self, pane: &str, text: &str) {
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

    /// How many messages `pane` shows whose text is `text`: an expression.
    pub fn count_text(pane: &str, text: &str) -> String {
        format!(
            "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]')]\
             .filter(li => li.querySelector('.text').textContent === {text}).length",
            text = js_string(text),
        )
    }

    /// Waits until `pane` shows each of `texts` exactly once.
    pub async fn wait_once(&self, pane: &str, texts: &[String]) {
        for text in texts {
            self.wait_for(
                &format!("{pane} shows {text:?} once"),
                &format!("{} === 1", Self::count_text(pane, text)),
            )
            .await;
        }
    }

    /// Waits until every pane shows `text`, sent from the `sender` pane,
    /// exactly once, marked with the transport that sent it.
    pub async fn every_pane_shows_once(&self, sender: &str, text: &str) {
        for pane in PANES {
            self.wait_for(
                &format!("{pane} shows the {sender} message once"),
                &format!(
                    "[...document.querySelectorAll('.pane[data-transport={pane}] ol.messages li[data-id]')]\
                     .filter(li => li.querySelector('.text').textContent === {text}\
                              && li.dataset.via === '{via}').length === 1",
                    text = js_string(text),
                    via = via_of(sender),
                ),
            )
            .await;
        }
    }

    /// A pane's connection state, as it shows it.
    pub async fn state(&self, pane: &str) -> String {
        self.js(&format!(
            "document.querySelector('.pane[data-transport={pane}] [data-stat=state]').textContent.trim()"
        ))
        .await
    }

    /// A `data-*` value of a pane (`key` in the dataset's camelCase).
    pub async fn data(&self, pane: &str, key: &str) -> String {
        self.js(&format!(
            "document.querySelector('.pane[data-transport={pane}]').dataset.{key} ?? ''"
        ))
        .await
    }

    /// Waits until the Automatic pane is on `transport` and trying nothing
    /// else, and returns when it got on it: milliseconds after the page
    /// started loading (`data-transport-since`).
    pub async fn auto_settles_on(&self, transport: &str) -> u64 {
        self.wait_for(
            &format!("Automatic on {transport}, trying nothing else"),
            &format!(
                "(p => p.dataset.transportNow === '{transport}' && p.dataset.transportTrying === '')\
                 (document.querySelector('.pane[data-transport=auto]'))"
            ),
        )
        .await;
        self.data("auto", "transportSince")
            .await
            .parse()
            .expect("data-transport-since is a number")
    }

    /// Why the Automatic pane left each transport it left, best first.
    pub async fn auto_left(&self) -> Vec<(String, String)> {
        self.js(
            "[...document.querySelectorAll('.pane[data-transport=auto] [data-left]')]\
             .map(li => [li.dataset.transport, li.dataset.reason])",
        )
        .await
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
    }
}

/// JSON string literal for embedding text in a script.
pub fn js_string(text: &str) -> String {
    serde_json::to_string(text).expect("string")
}
