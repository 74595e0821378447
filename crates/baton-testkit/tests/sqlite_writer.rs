//! SQLite only: its one writer queues writes (`Store::queue` returns before the commit)
//! and checkpoints the write-ahead log beside itself.
use baton_core::{time, ChatId};
use baton_store::{Queued, Store, TraceScope};
use baton_testkit::{fixtures, Kind, TestDb};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stays_small_over_thousands_of_commits() {
    let db = TestDb::new(Kind::Sqlite).await;
    let s = db.store();
    let wal = format!(
        "{}-wal",
        baton_store_sqlite::path_from_url(&db.url)
            .unwrap()
            .display()
    );
    let chat = ChatId::new();
    let payload = "x".repeat(10_000);
    let mut largest = 0;
    // 2,000 commits of ~10 KB each: 20 MB through the log in all.
    for i in 0..2_000 {
        let mut t = fixtures::trace(chat, i, time::now());
        t.input = json!({ "payload": payload });
        s.insert_trace(&t).await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    assert!(largest < 16 << 20, "the log grew to {} MiB", largest >> 20);
    let page = s
        .list_traces(TraceScope::Chat(chat), 5, None)
        .await
        .unwrap();
    assert_eq!(page.len(), 5);
}

/// A clean stop must not lose what agents queued and never waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_every_queued_write_first() {
    let db = TestDb::new(Kind::Sqlite).await;
    let s = db.store();
    let chat = ChatId::new();
    for i in 0..500 {
        s.queue(Queued::Trace(fixtures::trace(chat, i, time::now())))
            .await;
    }
    s.close().await;
    // Writes after the close fail cleanly instead of hanging.
    assert!(s
        .insert_trace(&fixtures::trace(chat, 0, time::now()))
        .await
        .is_err());
    let reopened = baton_store_sqlite::SqliteStore::connect(&db.url)
        .await
        .unwrap();
    let all = reopened
        .list_traces(TraceScope::Chat(chat), 1_000, None)
        .await
        .unwrap();
    assert_eq!(all.len(), 500);
}
