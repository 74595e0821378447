use std::sync::Arc;

use baton_core::{ChatId, NewFrame, Topic};
use baton_events::{EventHub, HubConfig};
use baton_testkit::{Kind, TestDb, KINDS};
use serde_json::json;

async fn hub(kind: Kind, retain: i64) -> (TestDb, Arc<EventHub>) {
    let db = TestDb::new(kind).await;
    let hub = Arc::new(EventHub::new(
        db.store(),
        HubConfig {
            retain_per_topic: retain,
        },
    ));
    (db, hub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_arrive_in_seq_order_and_only_for_the_topic() {
    for kind in KINDS {
        let (_db, hub) = hub(kind, 1000).await;
        let a = Topic::Chat(ChatId::new());
        let b = Topic::Chat(ChatId::new());
        let (conn, mut rx) = hub.connect(64);
        hub.subscribe(a, &conn).await.unwrap();
        for i in 0..5 {
            hub.publish(a, NewFrame::new("message", json!({"i": i})))
                .await
                .unwrap();
            hub.publish(b, NewFrame::new("message", json!({"i": i})))
                .await
                .unwrap();
        }
        let mut seqs = Vec::new();
        while let Ok(d) = rx.try_recv() {
            assert_eq!(d.topic, a);
            seqs.push(d.seq);
        }
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_cuts_off_only_that_subscriber() {
    let (_db, hub) = hub(Kind::Sqlite, 1000).await;
    let t = Topic::Tasks;
    let (slow, _slow_rx) = hub.connect(3);
    let (fast, mut fast_rx) = hub.connect(100);
    hub.subscribe(t, &slow).await.unwrap();
    hub.subscribe(t, &fast).await.unwrap();
    for i in 0..10 {
        hub.publish(t, NewFrame::new("task_event", json!({"i": i})))
            .await
            .unwrap();
    }
    assert!(slow.cut_off().is_cancelled());
    assert!(!fast.cut_off().is_cancelled());
    assert_eq!(hub.subscriber_count(t), 1);
    let mut n = 0;
    while fast_rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_frames_are_pruned_beyond_retention() {
    let (db, hub) = hub(Kind::Sqlite, 100).await;
    let t = Topic::Tasks;
    let frames = vec![NewFrame::new("task_event", json!({})); 1024];
    hub.publish_many(t, frames).await.unwrap();
    // Pruning runs in the background.
    for _ in 0..100 {
        if db.store().topic_bounds(t).await.unwrap().first_kept > 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let b = db.store().topic_bounds(t).await.unwrap();
    assert_eq!(b.last_seq, 1024);
    assert_eq!(b.first_kept, 1024 - 100 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_each_get_their_own_consecutive_frames() {
    for kind in KINDS {
        let (_db, hub) = hub(kind, 100_000).await;
        let t = Topic::Chat(ChatId::new());
        let (conn, mut rx) = hub.connect(100_000);
        hub.subscribe(t, &conn).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..16 {
            let hub = hub.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..20 {
                    let n = 1 + (i % 3);
                    let frames = (0..n)
                        .map(|k| NewFrame::new("m", json!({"w": w, "i": i, "k": k})))
                        .collect();
                    let stored = hub.publish_many(t, frames).await.unwrap();
                    // A call's frames are consecutive and come back in the order given.
                    for pair in stored.windows(2) {
                        assert_eq!(pair[1].seq, pair[0].seq + 1);
                    }
                    for (k, f) in stored.iter().enumerate() {
                        assert_eq!(
                            (f.body.to_map()["w"].as_i64(), f.body.to_map()["k"].as_i64()),
                            (Some(w), Some(k as i64))
                        );
                    }
                    got.extend(stored.into_iter().map(|f| f.seq));
                }
                got
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (1..=all.len() as i64).collect::<Vec<_>>(), "{kind:?}");
        let mut live = Vec::new();
        while let Ok(d) = rx.try_recv() {
            live.push(d.seq);
        }
        assert_eq!(live, all, "live frames arrive in seq order, {kind:?}");
    }
}

/// A frame another instance committed (here: straight into the log, with no notice yet)
/// is not overtaken by this hub's own later frame: the subscriber gets both, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_committed_elsewhere_is_not_lost_behind_a_later_local_one() {
    for kind in KINDS {
        let (_db, hub) = hub(kind, 1000).await;
        let t = Topic::Chat(ChatId::new());
        let (conn, mut rx) = hub.connect(64);
        hub.subscribe(t, &conn).await.unwrap();
        hub.store()
            .append_frames(
                t,
                &[NewFrame::new("message", json!({ "from": "elsewhere" }))],
            )
            .await
            .unwrap();
        hub.publish(t, NewFrame::new("message", json!({ "from": "here" })))
            .await
            .unwrap();
        let mut seqs = Vec::new();
        while seqs.len() < 2 {
            let d = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{kind:?}: only {seqs:?} arrived"))
                .unwrap();
            seqs.push(d.seq);
        }
        assert_eq!(seqs, [1, 2], "{kind:?}");
    }
}
