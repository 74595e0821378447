//! Postgres only: the notices of frames other instances append. When the listening
//! connection drops, notices sent meanwhile are lost; the stream must say so (after
//! listening again) so the hub can read what it missed from the log.
use std::time::Duration;

use baton_core::{ChatId, NewFrame, Topic};
use baton_store::{FrameNotice, Store};
use baton_store_postgres::PgStore;
use baton_testkit::{Kind, TestDb};
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_is_reported_after_it_listens_again() {
    let db = TestDb::new(Kind::Postgres).await;
    let here = PgStore::connect(&db.url).await.unwrap();
    let other = PgStore::connect(&db.url).await.unwrap();
    let mut notices = here.frame_notifications().await.unwrap().unwrap();
    let topic = Topic::Chat(ChatId::new());

    other
        .append_frames(topic, &[NewFrame::new("e", json!({}))])
        .await
        .unwrap();
    assert_eq!(
        next(&mut notices).await,
        FrameNotice::Appended {
            topic,
            first: 1,
            last: 1
        }
    );

    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'
           AND pid <> pg_backend_pid()) AS k",
    )
    .fetch_one(other.pool())
    .await
    .unwrap();
    assert!(cut >= 1);
    assert_eq!(next(&mut notices).await, FrameNotice::Reconnected);

    // Listening again: the next append is noticed.
    other
        .append_frames(
            topic,
            &[NewFrame::new("e", json!({})), NewFrame::new("e", json!({}))],
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut notices).await,
        FrameNotice::Appended {
            topic,
            first: 2,
            last: 3
        }
    );
}

async fn next(n: &mut baton_store::FrameNotifications) -> FrameNotice {
    tokio::time::timeout(Duration::from_secs(10), n.next())
        .await
        .expect("a notice within 10 s")
        .expect("the stream goes on")
}
