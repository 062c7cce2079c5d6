//! Presence on the page: every pane lists who is online and through which
//! transports, push panes from what their transport is told, polling panes
//! from `GET /api/presence`.

use chat_client::{Options, Transport};

use crate::page::{PANES, Session, js_string, open_page};

/// A script that is true when every pane lists `user` with exactly
/// `transports` (space-separated, in page order), or, with `None`, when no
/// pane lists `user` at all.
fn every_pane_lists(user: &str, transports: Option<&str>) -> String {
    let user = js_string(user);
    let check = match transports {
        Some(transports) => format!(
            "li !== null && li.dataset.transports === {}",
            js_string(transports)
        ),
        None => "li === null".to_owned(),
    };
    format!(
        "[...document.querySelectorAll('.pane')].length === {panes} && \
         [...document.querySelectorAll('.pane')].every(pane => {{ \
           const li = [...pane.querySelectorAll('ul.online li[data-user]')] \
             .find(li => li.dataset.user === {user}) ?? null; \
           return {check}; }})",
        panes = PANES.len(),
    )
}

/// Where a pane's list came from: `pushed` or `asked`.
async fn source(session: &Session, pane: &str) -> String {
    session
        .js(&format!(
            "document.querySelector('.pane[data-transport={pane}] ul.online').dataset.source ?? ''"
        ))
        .await
}

/// The page's user is listed in every pane with the five transports its
/// panes subscribe on; push panes were told, polling panes asked, and a
/// polling pane says how long ago the page's poll came. A Rust SSE
/// subscriber named bob then appears in every pane, through SSE, and
/// disappears from every pane when it hangs up.
#[tokio::test]
async fn panes_show_who_is_online_and_through_what() {
    let Some(session) = open_page().await else {
        return;
    };
    let me: String = session
        .js("document.getElementById('user').value.trim()")
        .await;
    session
        .wait_for(
            "the page's user listed with every transport in every pane",
            &every_pane_lists(&me, Some("polling longpoll sse websocket stream")),
        )
        .await;
    for pane in ["sse", "websocket", "stream"] {
        assert_eq!(source(&session, pane).await, "pushed", "{pane}");
    }
    for pane in ["polling", "longpoll"] {
        assert_eq!(source(&session, pane).await, "asked", "{pane}");
    }
    let own: String = session
        .js(&format!(
            "[...document.querySelectorAll('.pane[data-transport=polling] ul.online li[data-user]')]\
             .find(li => li.dataset.user === {}).textContent",
            js_string(&me)
        ))
        .await;
    assert!(own.contains("(you)"), "{own}");
    assert!(own.contains("Regular polling (seen "), "{own}");

    let mut bob = session.app.client.subscribe(
        Transport::Sse,
        Options {
            user: Some("bob".into()),
            ..Options::default()
        },
    );
    let reading = tokio::spawn(async move { while bob.next().await.is_ok() {} });
    session
        .wait_for(
            "bob on SSE in every pane",
            &every_pane_lists("bob", Some("sse")),
        )
        .await;
    reading.abort();
    let _ = reading.await;
    session
        .wait_for("bob gone from every pane", &every_pane_lists("bob", None))
        .await;
    session.close().await;
}
