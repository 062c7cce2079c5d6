//! Every rule of the store, through its public API.

use std::sync::Arc;
use std::time::Duration;

use chat_store::{
    Appended, Cursor, CursorError, Message, MessageId, NewMessage, SendError, Store, StoreConfig,
    Via,
};

fn new(user: &str, text: &str) -> NewMessage {
    NewMessage {
        user: user.into(),
        text: text.into(),
        client_msg_id: None,
        via: Via::Api,
    }
}

fn store_with(history: usize, backfill: usize) -> Store {
    Store::new(StoreConfig {
        history,
        backfill,
        ..StoreConfig::default()
    })
}

fn ids(page: &chat_store::Page) -> Vec<u64> {
    page.messages.iter().map(|m| m.id.0).collect()
}

fn fill(store: &Store, n: usize) {
    for i in 0..n {
        store.append(new("ana", &format!("m{i}"))).expect("valid");
    }
}

/// Ids start at 1 and grow by one with no gaps.
#[test]
fn ids_start_at_one_without_gaps() {
    let store = Store::new(StoreConfig::default());
    for expected in 1..=5 {
        let m = store.append(new("ana", "hi")).expect("valid");
        assert_eq!(m.message().id, MessageId(expected));
    }
    assert_eq!(store.newest(), Cursor(5));
}

/// The stored bytes are the contract's JSON, field for field, trimmed, with
/// no `type` field.
#[test]
fn stored_json_matches_the_contract() {
    let store = Store::new(StoreConfig::default());
    let mut m = new("  ana ", "  hello\r\nworld\r ");
    m.via = Via::Sse;
    let stored = store.append(m).expect("valid").message().clone();
    let text = std::str::from_utf8(&stored.json).expect("utf-8");
    assert!(
        text.starts_with(r#"{"id":1,"user":"ana","text":"hello\nworld","sent_at_ms":"#),
        "{text}"
    );
    assert!(text.ends_with(r#","via":"sse"}"#), "{text}");
    assert!(!text.contains("\"type\""));
    let decoded: Message = serde_json::from_slice(&stored.json).expect("decodes");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(decoded.sent_at_ms <= now && decoded.sent_at_ms + 60_000 > now);
}

/// Every validation rule refuses, and a refusal stores nothing.
#[test]
fn invalid_messages_are_refused_and_store_nothing() {
    let store = Store::new(StoreConfig {
        max_text_chars: 10,
        ..StoreConfig::default()
    });
    let long_user = "u".repeat(33);
    let cases: Vec<(NewMessage, SendError)> = vec![
        (new("   ", "hi"), SendError::UserLength(0)),
        (new(&long_user, "hi"), SendError::UserLength(33)),
        (
            new("ana", " \n "),
            SendError::TextLength { got: 0, max: 10 },
        ),
        (
            new("ana", "12345678901"),
            SendError::TextLength { got: 11, max: 10 },
        ),
        (
            new("a\u{7}na", "hi"),
            SendError::ControlCharacter {
                field: "user",
                code: 7,
            },
        ),
        (
            new("ana\nbob", "hi"),
            SendError::ControlCharacter {
                field: "user",
                code: 10,
            },
        ),
        (
            new("ana", "a\u{0}b"),
            SendError::ControlCharacter {
                field: "text",
                code: 0,
            },
        ),
        (
            new("ana", "a\tb"),
            SendError::ControlCharacter {
                field: "text",
                code: 9,
            },
        ),
        (
            NewMessage {
                client_msg_id: Some("x".repeat(65)),
                ..new("ana", "hi")
            },
            SendError::ClientMsgIdLength(65),
        ),
        (
            NewMessage {
                client_msg_id: Some(String::new()),
                ..new("ana", "hi")
            },
            SendError::ClientMsgIdLength(0),
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(store.append(message), Err(expected));
    }
    assert_eq!(store.stats().last_id, 0);
    assert_eq!(store.stats().retained, 0);
}

/// Limits are counted in characters, not bytes, and the bounds are inclusive.
#[test]
fn limits_count_characters_and_are_inclusive() {
    let store = Store::new(StoreConfig {
        max_text_chars: 3,
        ..StoreConfig::default()
    });
    let user = "é".repeat(32);
    store
        .append(new(&user, "日本語"))
        .expect("32 and 3 chars fit");
    store
        .append(new("a", "a\nb"))
        .expect("newline allowed in text");
}

/// The same (`user`, `client_msg_id`) stores once; another user or key stores again.
#[test]
fn client_msg_id_makes_sends_idempotent() {
    let store = Store::new(StoreConfig::default());
    let keyed = |user: &str, key: &str, text: &str| NewMessage {
        client_msg_id: Some(key.into()),
        ..new(user, text)
    };
    let first = store.append(keyed("ana", "k1", "hello")).expect("valid");
    assert!(matches!(first, Appended::Created(_)));
    let again = store
        .append(keyed("ana", "k1", "hello, edited"))
        .expect("valid");
    assert_eq!(again, Appended::Existing(first.message().clone()));
    let other_user = store.append(keyed("bob", "k1", "hello")).expect("valid");
    assert!(matches!(other_user, Appended::Created(_)));
    let other_key = store.append(keyed("ana", "k2", "hello")).expect("valid");
    assert!(matches!(other_key, Appended::Created(_)));
    assert_eq!(store.newest(), Cursor(3));
}

/// A key is remembered as long as its message is retained, then forgotten.
#[test]
fn idempotency_window_is_the_retained_history() {
    let store = store_with(2, 50);
    let keyed = NewMessage {
        client_msg_id: Some("k".into()),
        ..new("ana", "hello")
    };
    store.append(keyed.clone()).expect("valid");
    fill(&store, 1);
    assert!(matches!(
        store.append(keyed.clone()),
        Ok(Appended::Existing(_))
    ));
    fill(&store, 1);
    assert!(matches!(store.append(keyed), Ok(Appended::Created(_))));
}

/// `since=N` returns every message after N, in order, up to the limit, and
/// the cursor moves to the last one returned.
#[test]
fn read_since_cursor_pages_in_order() {
    let store = store_with(100, 50);
    fill(&store, 10);
    let page = store.read(Some(Cursor(3)), 4).expect("valid cursor");
    assert_eq!(ids(&page), vec![4, 5, 6, 7]);
    assert_eq!(page.cursor, Cursor(7));
    assert_eq!(page.missed, 0);
    let rest = store.read(Some(page.cursor), 100).expect("valid cursor");
    assert_eq!(ids(&rest), vec![8, 9, 10]);
    let empty = store.read(Some(Cursor(10)), 100).expect("valid cursor");
    assert!(empty.messages.is_empty());
    assert_eq!(empty.cursor, Cursor(10));
}

/// `since=0` is all retained history.
#[test]
fn since_zero_is_all_history() {
    let store = store_with(100, 2);
    fill(&store, 5);
    assert_eq!(
        ids(&store.read(Some(Cursor(0)), 500).expect("valid")),
        vec![1, 2, 3, 4, 5]
    );
}

/// Without a cursor, the most recent `backfill` messages.
#[test]
fn no_cursor_is_backfill() {
    let store = store_with(100, 3);
    let empty = store.read(None, 500).expect("valid");
    assert!(empty.messages.is_empty());
    assert_eq!(empty.cursor, Cursor(0));
    fill(&store, 5);
    let page = store.read(None, 500).expect("valid");
    assert_eq!(ids(&page), vec![3, 4, 5]);
    assert_eq!(page.cursor, Cursor(5));
}

/// A cursor ahead of the newest message is an error, not a wait.
#[test]
fn cursor_ahead_of_newest_is_refused() {
    let store = store_with(100, 3);
    fill(&store, 2);
    assert_eq!(
        store.read(Some(Cursor(3)), 10),
        Err(CursorError::AheadOfNewest {
            since: Cursor(3),
            newest: Cursor(2)
        })
    );
    assert_eq!(
        store.read(Some(Cursor(u64::MAX)), 10).map(|_| ()),
        Err(CursorError::AheadOfNewest {
            since: Cursor(u64::MAX),
            newest: Cursor(2)
        })
    );
}

/// History is bounded; a cursor older than it gets a missed count and then
/// everything retained.
#[test]
fn bounded_history_reports_the_gap() {
    let store = store_with(3, 50);
    fill(&store, 10);
    assert_eq!(store.stats().retained, 3);
    let page = store.read(Some(Cursor(2)), 500).expect("valid");
    assert_eq!(page.missed, 5, "ids 3..=7 are gone");
    assert_eq!(ids(&page), vec![8, 9, 10]);
    let at_edge = store.read(Some(Cursor(7)), 500).expect("valid");
    assert_eq!(at_edge.missed, 0);
    assert_eq!(ids(&at_edge), vec![8, 9, 10]);
}

/// Every reader shares the bytes made at append: no re-encoding per reader.
#[test]
fn readers_share_the_stored_bytes() {
    let store = store_with(10, 10);
    let sent = store.append(new("ana", "hi")).expect("valid");
    let a = store.read(Some(Cursor(0)), 1).expect("valid");
    let b = store.read(None, 1).expect("valid");
    assert_eq!(a.messages[0].json.as_ptr(), sent.message().json.as_ptr());
    assert_eq!(b.messages[0].json.as_ptr(), sent.message().json.as_ptr());
}

/// `wait_beyond` resolves at once when news exists, and is woken by the
/// append that passes the cursor otherwise.
#[tokio::test]
async fn wait_beyond_wakes_on_append() {
    let store = Arc::new(store_with(10, 10));
    fill(&store, 1);
    store.wait_beyond(Cursor(0)).await;

    let waiter = tokio::spawn({
        let store = store.clone();
        async move { store.wait_beyond(Cursor(1)).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    fill(&store, 1);
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by the append")
        .expect("task ran");
}

/// A dropped waiter leaves nothing behind: the watch channel has no receivers.
#[tokio::test]
async fn dropped_waiters_leave_nothing_behind() {
    let store = Arc::new(store_with(10, 10));
    let mut waiters = Vec::new();
    for _ in 0..100 {
        let store = store.clone();
        waiters.push(tokio::spawn(
            async move { store.wait_beyond(Cursor(0)).await },
        ));
    }
    tokio::task::yield_now().await;
    for w in &waiters {
        w.abort();
    }
    for w in waiters {
        assert!(w.await.expect_err("aborted").is_cancelled());
    }
    assert_eq!(Arc::strong_count(&store), 1, "no task holds the store");
    assert_eq!(store.waiting(), 0, "no receiver left on the watch channel");
}

/// Counts the wakes of a task that is not there.
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A polled body parks once per round, however often it is polled, and the
/// next change (an append, a new epoch) wakes it once; then it finds what
/// it waited for. One that goes away first gives its waker back.
#[test]
fn a_polled_body_parks_once_and_is_woken_by_the_next_change() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};

    let store = store_with(10, 10);
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let epoch = store.epoch();
    let mut parked = None;

    // Nothing after the cursor: parked, and polling again adds nothing.
    for _ in 0..3 {
        let poll = store.poll_beyond_in(&epoch, Cursor(0), &mut parked, &mut cx);
        assert_eq!(poll, Poll::Pending);
    }
    store.append(new("ana", "one")).expect("stored");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken once");
    let poll = store.poll_beyond_in(&epoch, Cursor(0), &mut parked, &mut cx);
    assert_eq!(poll, Poll::Ready(()));
    assert_eq!(parked, None);

    // Caught up again: parked again; a change it does not wait for (a new
    // epoch) wakes it too, and it is ready, to read the reset.
    let poll = store.poll_beyond_in(&epoch, Cursor(1), &mut parked, &mut cx);
    assert_eq!(poll, Poll::Pending);
    store.reset(chat_protocol::Epoch::parse("later").expect("an epoch"));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    let poll = store.poll_beyond_in(&epoch, Cursor(1), &mut parked, &mut cx);
    assert_eq!(poll, Poll::Ready(()));

    // A change with nobody parked wakes nobody.
    store.append(new("ana", "two")).expect("stored");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);

    // A waiter that goes away takes its waker back: the next change does
    // not wake it (nor keep its task alive until then).
    let epoch = store.epoch();
    let mut parked = None;
    let poll = store.poll_beyond_in(&epoch, store.newest(), &mut parked, &mut cx);
    assert_eq!(poll, Poll::Pending);
    assert_eq!(Arc::strong_count(&wakes), 3, "the store holds a clone");
    store.unpark(parked);
    assert_eq!(Arc::strong_count(&wakes), 2, "given back");
    store.append(new("ana", "three")).expect("stored");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);

    // Clients that come and go while nothing is sent do not grow the list:
    // once most of it is given back, a new round starts, and the one still
    // parked is woken to park again.
    let stayer = Arc::new(Wakes(AtomicUsize::new(0)));
    let stayer_waker = Waker::from(stayer.clone());
    let mut stayer_parked = None;
    let newest = store.newest();
    let poll = store.poll_beyond_in(
        &epoch,
        newest,
        &mut stayer_parked,
        &mut Context::from_waker(&stayer_waker),
    );
    assert_eq!(poll, Poll::Pending);
    for _ in 0..200 {
        let mut parked = None;
        let poll = store.poll_beyond_in(&epoch, newest, &mut parked, &mut cx);
        assert_eq!(poll, Poll::Pending);
        store.unpark(parked);
    }
    assert!(stayer.0.load(Ordering::SeqCst) >= 1, "a new round woke it");
    assert_eq!(Arc::strong_count(&wakes), 2, "no place given back is held");
}

/// Many writers and many readers at once: every reader sees every id exactly
/// once, in order, and the ids have no gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers_see_every_id_once_in_order() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 250;
    const READERS: usize = 16;
    const TOTAL: u64 = (WRITERS * PER_WRITER) as u64;
    let store = Arc::new(store_with(TOTAL as usize, 50));

    let mut readers = Vec::new();
    for _ in 0..READERS {
        let store = store.clone();
        readers.push(tokio::spawn(async move {
            let mut cursor = Cursor(0);
            let mut seen = Vec::new();
            while cursor.0 < TOTAL {
                store.wait_beyond(cursor).await;
                let page = store.read(Some(cursor), 37).expect("valid cursor");
                assert_eq!(page.missed, 0);
                seen.extend(page.messages.iter().map(|m| m.id.0));
                cursor = page.cursor;
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                store
                    .append(new(&format!("w{w}"), &format!("{i}")))
                    .expect("valid");
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer finished");
    }
    let expected: Vec<u64> = (1..=TOTAL).collect();
    for r in readers {
        let seen = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("reader finished")
            .expect("reader did not panic");
        assert_eq!(seen, expected);
    }
    // Per writer, its own messages are stored in the order it sent them.
    let all = store.read(Some(Cursor(0)), TOTAL as usize).expect("valid");
    for w in 0..WRITERS {
        let texts: Vec<usize> = all
            .messages
            .iter()
            .map(|m| serde_json::from_slice::<Message>(&m.json).expect("decodes"))
            .filter(|m| m.user == format!("w{w}"))
            .map(|m| m.text.parse().expect("number"))
            .collect();
        assert_eq!(texts, (0..PER_WRITER).collect::<Vec<_>>());
    }
}
