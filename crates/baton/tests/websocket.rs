//! The WebSocket protocol over a real listener with a real client, on both backends.
mod common;

use std::time::Duration;

use baton_core::{ChatId, FrameBody, NewFrame, RunEvent, Topic};
use baton_testkit::Kind;
use common::{TestServer, Ws};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

on_both!(
    subscribe_sends_a_snapshot_then_live_frames,
    since_replays_what_was_missed_then_continues_live,
    replay_races_publishing_without_gap_or_duplicate,
    since_older_than_what_is_kept_gets_a_reset_snapshot,
    unsubscribe_stops_frames,
    bad_messages_get_error_frames_and_the_socket_lives_on,
    oversized_messages_close_with_1009,
    a_slow_client_is_cut_off_without_slowing_others,
    shutdown_sends_a_close_frame,
);

async fn chat_topic(s: &TestServer) -> (ChatId, String) {
    let chat = s.create_chat("live").await;
    let id: ChatId = chat["id"].as_str().unwrap().parse().unwrap();
    (id, format!("chat:{id}"))
}

/// A frame the test publishes: a narrator line, as a run's `log()` makes.
fn line(message: String) -> NewFrame {
    FrameBody::RunEvent(RunEvent::Log { message }).into()
}

async fn publish(s: &TestServer, id: ChatId, n: usize) {
    for i in 0..n {
        s.state
            .hub
            .publish(Topic::Chat(id), line(i.to_string()))
            .await
            .unwrap();
    }
}

async fn subscribe_sends_a_snapshot_then_live_frames(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (id, topic) = chat_topic(&s).await;
    let mut ws = s.ws().await;
    ws.subscribe(&topic, None).await;
    let snap = ws.next().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["topic"], topic.as_str());
    assert_eq!(snap["seq"], 0);
    assert_eq!(snap["reset"], false);
    assert_eq!(snap["state"]["chat"]["id"], id.to_string());
    assert!(snap["at"].as_str().unwrap().ends_with('Z'));

    publish(&s, id, 3).await;
    for want in 1..=3 {
        let f = ws.next().await;
        assert_eq!(f["type"], "run_event");
        assert_eq!(f["topic"], topic.as_str());
        assert_eq!(f["seq"], want);
        assert_eq!(f["message"], (want - 1).to_string());
    }
    // A second subscriber that arrives later starts from the current seq.
    let mut late = s.ws().await;
    late.subscribe(&topic, None).await;
    assert_eq!(late.next().await["seq"], 3);
    s.state
        .hub
        .publish(Topic::Chat(id), line(String::new()))
        .await
        .unwrap();
    assert_eq!(late.next().await["seq"], 4);
    assert_eq!(ws.next().await["seq"], 4);
}

async fn since_replays_what_was_missed_then_continues_live(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (id, topic) = chat_topic(&s).await;
    publish(&s, id, 5).await;
    let mut ws = s.ws().await;
    ws.subscribe(&topic, Some(2)).await;
    for want in 3..=5 {
        let f = ws.next().await;
        assert_eq!(
            (f["type"].as_str(), f["seq"].as_i64()),
            (Some("run_event"), Some(want))
        );
    }
    publish(&s, id, 1).await;
    assert_eq!(ws.next().await["seq"], 6);
    // Up to date already: nothing to replay, just live frames.
    let mut current = s.ws().await;
    current.subscribe(&topic, Some(6)).await;
    current.quiet().await;
    publish(&s, id, 1).await;
    assert_eq!(current.next().await["seq"], 7);
}

async fn replay_races_publishing_without_gap_or_duplicate(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (id, topic) = chat_topic(&s).await;
    publish(&s, id, 300).await;
    let total = 1300usize;
    let hub = s.state.hub.clone();
    // Publishing goes on while the client replays and switches to live frames.
    let publisher = tokio::spawn(async move {
        for i in 300..total {
            hub.publish(Topic::Chat(id), line(i.to_string()))
                .await
                .unwrap();
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut ws = s.ws().await;
    ws.subscribe(&topic, Some(0)).await;
    let mut seqs = Vec::with_capacity(total);
    while seqs.len() < total {
        let f = ws.next().await;
        assert_eq!(f["type"], "run_event", "{f}");
        seqs.push(f["seq"].as_i64().unwrap());
    }
    publisher.await.unwrap();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    ws.quiet().await;
}

async fn since_older_than_what_is_kept_gets_a_reset_snapshot(kind: Kind) {
    let s = TestServer::start_with(kind, &[("events.retain_per_topic", "100")]).await;
    let (id, topic) = chat_topic(&s).await;
    let frames = vec![line(String::new()); 1024];
    s.state
        .hub
        .publish_many(Topic::Chat(id), frames)
        .await
        .unwrap();
    let store = s.state.store.clone();
    for _ in 0..200 {
        if store
            .topic_bounds(Topic::Chat(id))
            .await
            .unwrap()
            .first_kept
            > 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ws = s.ws().await;
    ws.subscribe(&topic, Some(5)).await;
    let snap = ws.next().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["reset"], true);
    assert_eq!(snap["seq"], 1024);
    // A seq from the future (another database) also resets.
    let mut other = s.ws().await;
    other.subscribe(&topic, Some(99_999)).await;
    let snap = other.next().await;
    assert_eq!(
        (snap["type"].as_str(), snap["reset"].as_bool()),
        (Some("snapshot"), Some(true))
    );
    // Within what is kept, a replay.
    let mut near = s.ws().await;
    near.subscribe(&topic, Some(1000)).await;
    assert_eq!(near.next().await["seq"], 1001);
}

async fn unsubscribe_stops_frames(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (id, topic) = chat_topic(&s).await;
    let mut ws = s.ws().await;
    ws.subscribe(&topic, None).await;
    ws.next().await;
    ws.send(json!({ "type": "unsubscribe", "topic": topic }))
        .await;
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");
    publish(&s, id, 2).await;
    ws.quiet().await;
    assert_eq!(s.state.hub.subscriber_count(Topic::Chat(id)), 0);
}

async fn bad_messages_get_error_frames_and_the_socket_lives_on(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (id, topic) = chat_topic(&s).await;
    publish(&s, id, 2).await;
    let mut ws = s.ws().await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("not json".into()), "invalid_json"),
        (Message::Text("[1,2,3]".into()), "invalid_message"),
        (
            Message::Text(r#"{"type":"launch_missiles"}"#.into()),
            "unknown_type",
        ),
        (
            Message::Text(r#"{"type":"subscribe"}"#.into()),
            "invalid_message",
        ),
        (
            Message::Text(r#"{"type":"subscribe","topic":5}"#.into()),
            "invalid_message",
        ),
        (
            Message::Text(r#"{"type":"subscribe","topic":"chat:x","since":"a"}"#.into()),
            "invalid_message",
        ),
        (
            Message::Text(r#"{"type":"subscribe","topic":"galaxy:1"}"#.into()),
            "invalid_topic",
        ),
        (
            Message::Text(r#"{"type":"subscribe","topic":"chat:not-a-uuid"}"#.into()),
            "invalid_topic",
        ),
        (
            Message::Text(
                format!(r#"{{"type":"subscribe","topic":"chat:{}"}}"#, ChatId::new()).into(),
            ),
            "topic_not_found",
        ),
        (
            Message::Text(
                format!(r#"{{"type":"subscribe","topic":"run:{}"}}"#, ChatId::new()).into(),
            ),
            "topic_not_found",
        ),
        (
            Message::Binary(vec![1, 2, 3].into()),
            "binary_not_supported",
        ),
    ];
    for (msg, code) in cases {
        ws.send_raw(msg.clone()).await;
        let f = ws.next().await;
        assert_eq!(f["type"], "error", "{msg:?}: {f}");
        assert_eq!(f["code"], code, "{msg:?}: {f}");
        assert!(f["seq"].is_null());
    }
    // Still usable, and nothing stored was touched.
    ws.subscribe(&topic, Some(0)).await;
    assert_eq!(ws.next().await["seq"], 1);
    assert_eq!(ws.next().await["seq"], 2);
    let (status, _) = s.get(&format!("/api/chats/{id}")).await;
    assert_eq!(status, 200);
    let mut tasks = s.ws().await;
    tasks.subscribe("tasks", None).await;
    let snap = tasks.next().await;
    assert_eq!(snap["state"]["tasks"], json!([]));
}

async fn oversized_messages_close_with_1009(kind: Kind) {
    let s = TestServer::start_with(kind, &[("server.ws_max_message_bytes", "1024")]).await;
    let mut ws = s.ws().await;
    ws.send_raw(Message::Text(
        format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(4000)).into(),
    ))
    .await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("1024"), "{reason}");
    // The server is fine.
    let (status, _) = s.get("/api/health").await;
    assert_eq!(status, 200);
}

async fn a_slow_client_is_cut_off_without_slowing_others(kind: Kind) {
    let s = TestServer::start_with(kind, &[("server.ws_queue_frames", "16")]).await;
    let (id, topic) = chat_topic(&s).await;
    let mut slow = s.ws().await;
    slow.subscribe(&topic, None).await;
    slow.next().await;
    let mut fast = s.ws().await;
    fast.subscribe(&topic, None).await;
    fast.next().await;

    // Big frames fill the slow client's socket buffers, then its queue.
    let pad = "x".repeat(32 * 1024);
    let n = 600usize;
    let hub = s.state.hub.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            hub.publish(Topic::Chat(id), line(format!("{i} {pad}")))
                .await
                .unwrap();
        }
    });
    let mut got = 0usize;
    while got < n {
        let f = fast.next().await;
        assert_eq!(f["seq"], got as i64 + 1);
        got += 1;
    }
    tokio::time::timeout(Duration::from_secs(30), publisher)
        .await
        .expect("publisher never blocked")
        .unwrap();
    let mut last_seq = 0;
    let (code, reason) = loop {
        match tokio::time::timeout(common::WAIT, slow.stream.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => {
                last_seq = serde_json::from_str::<Value>(&t).unwrap()["seq"]
                    .as_i64()
                    .unwrap();
            }
            Some(Ok(Message::Close(Some(f)))) => break (u16::from(f.code), f.reason.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1013);
    assert!(reason.contains("since"), "{reason}");
    assert!(
        last_seq < n as i64,
        "the slow client was cut off before the end"
    );
    // It comes back with since and gets the rest.
    let mut back = s.ws().await;
    back.subscribe(&topic, Some(last_seq)).await;
    let mut next = last_seq + 1;
    while next <= n as i64 {
        assert_eq!(back.next().await["seq"], next);
        next += 1;
    }
}

async fn shutdown_sends_a_close_frame(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (_, topic) = chat_topic(&s).await;
    let mut ws: Ws = s.ws().await;
    ws.subscribe(&topic, None).await;
    ws.next().await;
    let stopping = tokio::spawn(s.shutdown());
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1001, "{reason}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown finishes")
        .unwrap();
}

/// Another Baton on `a`'s database; it runs until the token is cancelled.
async fn second_instance(
    a: &TestServer,
) -> (baton_http::AppState, tokio_util::sync::CancellationToken) {
    let config = baton::config::load(&baton::config::Sources {
        files: vec![],
        env: vec![],
        flags: vec![
            ("database.url".to_string(), a.db.url.clone()),
            ("server.bind".to_string(), "127.0.0.1:0".to_string()),
        ],
    })
    .unwrap();
    let b = baton::serve::Server::build(&config).await.unwrap();
    let state = b.state.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(b.serve(stop.clone()));
    (state, stop)
}

/// Two instances on one Postgres, and a client of the first following a chat (its
/// snapshot already read).
struct Watching {
    a: TestServer,
    b_state: baton_http::AppState,
    stop_b: tokio_util::sync::CancellationToken,
    ws: Ws,
    t: Topic,
}

async fn two_instances_watching_a_chat() -> Watching {
    let a = TestServer::start(Kind::Postgres).await;
    let (b_state, stop_b) = second_instance(&a).await;
    let (id, topic) = chat_topic(&a).await;
    let mut ws = a.ws().await;
    ws.subscribe(&topic, None).await;
    assert_eq!(ws.next().await["type"], "snapshot");
    Watching {
        a,
        b_state,
        stop_b,
        ws,
        t: Topic::Chat(id),
    }
}

/// Two instances on one Postgres: a client of either sees frames published on both,
/// every seq once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_postgres_see_each_others_frames() {
    let Watching {
        a,
        b_state,
        stop_b,
        mut ws,
        t,
    } = two_instances_watching_a_chat().await;
    let (ha, hb) = (a.state.hub.clone(), b_state.hub.clone());
    let pa = tokio::spawn(async move {
        for i in 0..50 {
            ha.publish(t, line(format!("a{i}"))).await.unwrap();
        }
    });
    let pb = tokio::spawn(async move {
        for i in 0..50 {
            hb.publish(t, line(format!("b{i}"))).await.unwrap();
        }
    });
    pa.await.unwrap();
    pb.await.unwrap();
    // With A silent, these reach A's client only through LISTEN/NOTIFY.
    for i in 50..55 {
        b_state.hub.publish(t, line(format!("b{i}"))).await.unwrap();
    }
    let mut seqs = Vec::new();
    let mut from_b = 0;
    while seqs.len() < 105 {
        let f = ws.next().await;
        seqs.push(f["seq"].as_i64().unwrap());
        if f["message"].as_str().unwrap().starts_with('b') {
            from_b += 1;
        }
    }
    assert_eq!(seqs, (1..=105).collect::<Vec<_>>());
    assert_eq!(from_b, 55);
    ws.quiet().await;
    stop_b.cancel();
}

/// The connection that listens for other instances' frames can drop (a restart of
/// Postgres, a proxy's idle timeout); notices sent while it is down are gone, so the
/// instance must read what it missed from the log once it listens again. Whether B's
/// frames land in that gap depends on timing; `postgres_listen.rs` checks the report of
/// the loss itself deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_published_while_the_listener_was_down_still_arrive() {
    let Watching {
        a,
        b_state,
        stop_b,
        mut ws,
        t,
    } = two_instances_watching_a_chat().await;
    b_state.hub.publish(t, line("0".into())).await.unwrap();
    assert_eq!(ws.next().await["seq"], 1);

    // Cut every listening connection to this database, then publish at once from B,
    // while A is (likely) not listening.
    let admin = sqlx::PgPool::connect(&a.db.url).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'
           AND pid <> pg_backend_pid()) AS k",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(cut >= 1, "the listeners were found");
    for i in 1..20 {
        b_state.hub.publish(t, line(i.to_string())).await.unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < 19 {
        seqs.push(ws.next().await["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (2..=20).collect::<Vec<_>>());
    ws.quiet().await;
    admin.close().await;
    stop_b.cancel();
}
