//! The behaviour every transport shares, run against each of them.

use std::collections::HashSet;
use std::time::Duration;

use chat_client::{Cursor, Event, Options, Transport};

use crate::helpers::{next_event, next_messages, spawn_app, spawn_with};

/// Fast polling, so that the suite does not wait out intervals.
fn options(since: Option<Cursor>) -> Options {
    Options {
        since,
        poll_interval: Duration::from_millis(20),
        ..Options::default()
    }
}

/// A message sent through any transport reaches subscribers on every
/// transport, once, marked with the transport that sent it.
#[tokio::test]
async fn a_message_from_any_transport_reaches_all() {
    let app = spawn_app().await;
    let mut subs: Vec<_> = Transport::ALL
        .iter()
        .map(|t| (t, app.client.subscribe(*t, options(Some(Cursor(0))))))
        .collect();
    for sender in Transport::ALL {
        let sent = app
            .client
            .send(
                "ana",
                &format!("from {}", sender.as_str()),
                None,
                sender.via(),
            )
            .await
            .expect("sent");
        for (transport, sub) in &mut subs {
            let got = next_messages(sub, 1).await;
            assert_eq!(
                got[0], sent.message,
                "{transport:?} got what {sender:?} sent"
            );
            assert_eq!(got[0].via, sender.via());
        }
    }
}

/// Every transport delivers the store's bytes exactly.
#[tokio::test]
async fn every_transport_carries_the_stored_bytes() {
    let app = spawn_app().await;
    app.say("ana", "exact \"bytes\" \\ é 😀\nline two").await;
    let stored = app.stored_json(1);
    for transport in Transport::ALL {
        let mut sub = app.client.subscribe(transport, options(Some(Cursor(0))));
        match next_event(&mut sub).await {
            Event::Message { raw, .. } => assert_eq!(raw, stored, "{transport:?}"),
            other => panic!("{transport:?}: {other:?}"),
        }
    }
}

/// A late joiner with a cursor gets exactly the history after it, then live
/// messages, in order.
#[tokio::test]
async fn a_late_joiner_gets_history_since_its_cursor() {
    let app = spawn_app().await;
    for i in 1..=10 {
        app.say("ana", &format!("m{i}")).await;
    }
    for transport in Transport::ALL {
        let mut sub = app.client.subscribe(transport, options(Some(Cursor(6))));
        let got: Vec<u64> = next_messages(&mut sub, 4)
            .await
            .iter()
            .map(|m| m.id.0)
            .collect();
        assert_eq!(got, vec![7, 8, 9, 10], "{transport:?}");
    }
    let mut subs: Vec<_> = Transport::ALL
        .iter()
        .map(|t| app.client.subscribe(*t, options(Some(Cursor(10)))))
        .collect();
    let live = app.say("bob", "live").await;
    for sub in &mut subs {
        assert_eq!(next_messages(sub, 1).await[0], live);
    }
}

/// A subscriber whose cursor predates the history is told how many messages
/// it missed, then gets everything retained.
#[tokio::test]
async fn a_stale_cursor_gets_the_gap_notice_first() {
    let app = spawn_with(chat_http::Config {
        history: 4,
        ..chat_http::Config::default()
    })
    .await;
    for i in 1..=10 {
        app.say("ana", &format!("m{i}")).await;
    }
    for transport in Transport::ALL {
        let mut sub = app.client.subscribe(transport, options(Some(Cursor(2))));
        assert_eq!(
            next_event(&mut sub).await,
            Event::Gap { missed: 4 },
            "{transport:?}: ids 3..=6 are gone"
        );
        let got: Vec<u64> = next_messages(&mut sub, 4)
            .await
            .iter()
            .map(|m| m.id.0)
            .collect();
        assert_eq!(got, vec![7, 8, 9, 10], "{transport:?}");
    }
}

/// Many concurrent senders: every subscriber sees every id once, in order.
#[tokio::test]
async fn concurrent_senders_are_seen_once_in_order() {
    const SENDERS: usize = 5;
    const EACH: usize = 40;
    let app = spawn_app().await;
    let mut subs: Vec<_> = Transport::ALL
        .iter()
        .map(|t| app.client.subscribe(*t, options(Some(Cursor(0)))))
        .collect();
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let client = app.client.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..EACH {
                client
                    .send(
                        &format!("u{s}"),
                        &format!("{i}"),
                        None,
                        chat_client::Via::Api,
                    )
                    .await
                    .expect("sent");
            }
        }));
    }
    for sub in &mut subs {
        let got = next_messages(sub, SENDERS * EACH).await;
        let ids: Vec<u64> = got.iter().map(|m| m.id.0).collect();
        assert_eq!(ids, (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>());
        let unique: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
    }
    for s in senders {
        s.await.expect("sender");
    }
}
