//! The storage behaviour suite: every case runs against SQLite and Postgres.
use std::collections::HashSet;

use baton_core::{
    time, ChatId, NewChat, NewFrame, NewMessage, Role, RunId, Topic, TraceCursor, TraceFinish,
    TraceId, TraceOutcome,
};
use baton_core::{Message, MessageId, Session, SessionId, SessionStatus};
use baton_store::{Queued, Store, StoreError, TopicBounds, TraceScope};
use baton_testkit::{fixtures, Kind, TestDb};
use serde_json::json;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(baton_testkit::Kind::Sqlite).await }) *
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(baton_testkit::Kind::Postgres).await }) *
        }
    };
}

on_both!(
    reopening_applies_nothing_twice,
    chats_round_trip_and_page_newest_first,
    messages_need_their_chat_and_come_back_oldest_first,
    traces_are_visible_while_running_and_complete_on_finish,
    a_finished_traces_latency_is_whole_milliseconds_elapsed,
    finishing_an_unknown_trace_is_not_found,
    a_late_finish_never_overwrites_how_a_trace_ended,
    duplicate_trace_id_is_a_conflict_and_keeps_the_original,
    trace_pages_follow_turn_then_start_then_id,
    a_sessions_traces_page_without_its_neighbours,
    concurrent_writes_commit_together_and_fail_alone,
    writes_refused_for_a_missing_row_leave_nothing_behind,
    nul_characters_do_not_break_writes,
    frames_get_consecutive_seqs_per_topic,
    concurrent_appenders_never_share_a_seq,
    appends_to_many_topics_number_each_topic_on_its_own,
    pruning_moves_first_kept_but_never_seq,
    topics_exist_only_for_real_things,
    an_edited_applied_migration_is_refused,
    sessions_snapshot_with_their_messages_atomically,
    interrupted_traces_are_closed_and_turns_summarized,
    runs_and_their_journal_round_trip,
    leases_are_claimed_once_renewed_fenced_and_released,
    instances_claiming_at_once_never_share_a_run,
    sessions_are_leased_like_runs,
    tasks_round_trip_are_claimed_once_fenced_and_end_once,
    ended_tasks_are_told_to_their_chat_once_with_the_snapshot,
    chat_settings_change_and_survive,
    instances_claiming_at_once_never_share_a_task,
    attachments_are_kept_once_per_sha256_and_orphans_go,
    traces_are_found_by_kind_tool_status_duration_and_words,
    prompts_are_kept_once_by_hash,
);

/// A system prompt written many times (queued together, queued in turns, awaited) is
/// kept once and read back whole; an unknown hash reads nothing; a group in which the
/// same prompt is written beside other rows commits them all.
async fn prompts_are_kept_once_by_hash(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let text = "You are an agent.\nQuote \"this\", and \u{e9}t\u{e9}.";
    assert_eq!(s.prompt("h1").await.unwrap(), None);
    for _ in 0..3 {
        s.queue(Queued::Prompt {
            hash: "h1".into(),
            text: text.into(),
        })
        .await;
    }
    let chat = s
        .create_chat(NewChat {
            title: "p".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let session = session(chat.id);
    s.queue(Queued::Session(session.clone())).await;
    s.put_prompt("h1", text).await.unwrap();
    s.put_prompt("h2", "another").await.unwrap();
    s.queue(Queued::Prompt {
        hash: "h1".into(),
        text: text.into(),
    })
    .await;
    assert_eq!(s.prompt("h1").await.unwrap().as_deref(), Some(text));
    assert_eq!(s.prompt("h2").await.unwrap().as_deref(), Some("another"));
    assert_eq!(s.prompt("h3").await.unwrap(), None);
    assert!(
        s.get_session(session.id).await.unwrap().is_some(),
        "the session queued among the prompts is there"
    );
}

async fn reopening_applies_nothing_twice(kind: Kind) {
    let db = TestDb::new(kind).await;
    let chat = db
        .store()
        .create_chat(NewChat {
            title: "keep me".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    // A second and third open of the same database, at once.
    let (a, b) = match kind {
        Kind::Sqlite => {
            let (a, b) = tokio::join!(
                baton_store_sqlite::SqliteStore::connect(&db.url),
                baton_store_sqlite::SqliteStore::connect(&db.url)
            );
            (
                a.unwrap().migrate().await.unwrap(),
                b.unwrap().migrate().await.unwrap(),
            )
        }
        Kind::Postgres => {
            let (a, b) = tokio::join!(
                baton_store_postgres::PgStore::connect(&db.url),
                baton_store_postgres::PgStore::connect(&db.url)
            );
            (
                a.unwrap().migrate().await.unwrap(),
                b.unwrap().migrate().await.unwrap(),
            )
        }
    };
    assert!(a.applied.is_empty() && b.applied.is_empty());
    assert!(a.already >= 1);
    assert_eq!(db.store().get_chat(chat.id).await.unwrap().unwrap(), chat);
}

async fn chats_round_trip_and_page_newest_first(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            s.create_chat(NewChat {
                title: format!("chat {i}"),
                workspace: Some("/tmp/w".into()),
                capabilities: Default::default(),
                auto_continue: true,
            })
            .await
            .unwrap(),
        );
    }
    assert_eq!(
        s.get_chat(made[2].id).await.unwrap().as_ref(),
        Some(&made[2])
    );
    assert!(s.get_chat(ChatId::new()).await.unwrap().is_none());
    let first = s.list_chats(2, None).await.unwrap();
    assert_eq!(
        first.iter().map(|c| &c.title).collect::<Vec<_>>(),
        ["chat 4", "chat 3"]
    );
    let second = s.list_chats(2, Some(first[1].id)).await.unwrap();
    assert_eq!(
        second.iter().map(|c| &c.title).collect::<Vec<_>>(),
        ["chat 2", "chat 1"]
    );
    let last = s.list_chats(2, Some(second[1].id)).await.unwrap();
    assert_eq!(last.len(), 1);
}

async fn messages_need_their_chat_and_come_back_oldest_first(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "m".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    for (i, role) in [Role::User, Role::Assistant, Role::User]
        .into_iter()
        .enumerate()
    {
        s.insert_message(NewMessage {
            chat_id: chat.id,
            role,
            content: format!("m{i}"),
            attachments: vec![],
            turn_number: i as i64,
        })
        .await
        .unwrap();
    }
    let orphan = s
        .insert_message(NewMessage {
            chat_id: ChatId::new(),
            role: Role::User,
            content: "lost".into(),
            attachments: vec![],
            turn_number: 0,
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound("chat"))),
        "{orphan:?}"
    );
    let msgs = s.list_messages(chat.id).await.unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );
    assert_eq!(msgs[1].role, Role::Assistant);
}

async fn traces_are_visible_while_running_and_complete_on_finish(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let t = fixtures::running_llm_trace(chat, 1);
    s.insert_trace(&t).await.unwrap();
    let seen = s.get_trace(t.id).await.unwrap().unwrap();
    assert_eq!(seen, t);
    assert_eq!(seen.outcome, TraceOutcome::Running);

    let done = s
        .finish_trace(
            t.id,
            &TraceFinish {
                output: Some(json!({"text": "hello"})),
                input_tokens: Some(1200),
                output_tokens: Some(80),
                cache_tokens: Some(1024),
                cache_write_tokens: Some(0),
                reasoning_tokens: Some(12),
                tokens_used: Some(1280),
                cost_usd: Some(0.000_42),
                outcome: Some(TraceOutcome::Ok),
                meta: Some(json!({"segments": {"system": 300, "tools": 700, "history": 200}})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done.outcome, TraceOutcome::Ok);
    assert_eq!(done.cache_tokens, Some(1024));
    assert_eq!(done.output, Some(json!({"text": "hello"})));
    assert!(done.finished_at.unwrap() >= done.started_at);
    assert!(done.latency_ms.unwrap() >= 0);
    assert_eq!(done.meta["segments"]["tools"], 700);
    assert_eq!(s.get_trace(t.id).await.unwrap().unwrap(), done);
}

/// A finish that brings no latency gets the time from start to finish in whole
/// milliseconds, cut and not rounded, the same on both backends and as `Trace::finished`.
async fn a_finished_traces_latency_is_whole_milliseconds_elapsed(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let start = time::to_micros(&time::now());
    for (i, elapsed_us) in [1_600, 1_999, 2_000, 250_501].into_iter().enumerate() {
        let mut t = fixtures::running_llm_trace(chat, i as i64 + 1);
        t.started_at = time::from_micros(start).unwrap();
        s.insert_trace(&t).await.unwrap();
        let finish = TraceFinish {
            finished_at: time::from_micros(start + elapsed_us),
            outcome: Some(TraceOutcome::Ok),
            ..Default::default()
        };
        let done = s.finish_trace(t.id, &finish).await.unwrap();
        assert_eq!(done.latency_ms, Some(elapsed_us / 1000), "{elapsed_us} µs");
        assert_eq!(done, t.finished(&finish));
    }
}

async fn finishing_an_unknown_trace_is_not_found(kind: Kind) {
    let db = TestDb::new(kind).await;
    let r = db
        .store()
        .finish_trace(TraceId::new(), &TraceFinish::default())
        .await;
    assert!(matches!(r, Err(StoreError::NotFound("trace"))), "{r:?}");
}

async fn a_late_finish_never_overwrites_how_a_trace_ended(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let t = fixtures::running_llm_trace(chat, 1);
    s.insert_trace(&t).await.unwrap();
    let session = t.session_id.unwrap();
    // A successor closes it; the lost holder's finish comes after.
    let closed = s.close_running_traces(session, "taken over").await.unwrap();
    assert_eq!(closed.len(), 1);
    let late = TraceFinish {
        outcome: Some(TraceOutcome::Ok),
        output: Some(json!("late answer")),
        ..TraceFinish::default()
    };
    let r = s.finish_trace(t.id, &late).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    s.queue(baton_store::Queued::Finish(t.id, late)).await;
    s.insert_trace(&fixtures::trace(chat, 2, time::now()))
        .await
        .unwrap(); // after the queue
    let back = s.get_trace(t.id).await.unwrap().unwrap();
    assert_eq!(back.outcome, TraceOutcome::Cancelled);
    assert_eq!(back.error.as_deref(), Some("taken over"));
    assert_eq!(back.output, None);
}

async fn duplicate_trace_id_is_a_conflict_and_keeps_the_original(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let t = fixtures::trace(chat, 0, time::now());
    s.insert_trace(&t).await.unwrap();
    let mut again = t.clone();
    again.tool_name = "overwrite".into();
    let batch = vec![fixtures::trace(chat, 0, time::now()), again];
    assert!(matches!(
        s.insert_traces(&batch).await,
        Err(StoreError::Conflict(_))
    ));
    // The batch is all-or-nothing and the original is untouched.
    assert_eq!(
        s.list_traces(TraceScope::Chat(chat), 10, None)
            .await
            .unwrap(),
        vec![t]
    );
}

async fn trace_pages_follow_turn_then_start_then_id(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let other = ChatId::new();
    let base = time::now();
    let mut all = Vec::new();
    // Inserted out of order, many sharing a start time, across 5 turns.
    for i in 0..250i64 {
        let turn = (i * 7) % 5;
        let start = base + chrono::Duration::microseconds((i % 3) * 10);
        all.push(fixtures::trace(chat, turn, start));
    }
    all.reverse();
    s.insert_traces(&all).await.unwrap();
    s.insert_traces(&[fixtures::trace(other, 0, base)])
        .await
        .unwrap();

    let mut expected = all.clone();
    expected.sort_by(|a, b| {
        (a.turn_number, a.started_at, a.id).cmp(&(b.turn_number, b.started_at, b.id))
    });
    let mut got = Vec::new();
    let mut cursor: Option<TraceCursor> = None;
    loop {
        let page = s
            .list_traces(TraceScope::Chat(chat), 40, cursor)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some(TraceCursor {
            turn_number: last.turn_number,
            started_at: last.started_at,
            id: last.id,
        });
        got.extend(page);
    }
    assert_eq!(got.len(), 250);
    assert_eq!(
        got.iter().map(|t| t.id).collect::<Vec<_>>(),
        expected.iter().map(|t| t.id).collect::<Vec<_>>()
    );
    let unique: HashSet<_> = got.iter().map(|t| t.id).collect();
    assert_eq!(unique.len(), 250);
}

async fn a_sessions_traces_page_without_its_neighbours(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let session = SessionId::new();
    let base = time::now();
    // A run's agent has no chat; its neighbour session writes in between.
    let mut mine = Vec::new();
    for i in 0..7i64 {
        let mut t = fixtures::trace(
            ChatId::new(),
            i % 2,
            base + chrono::Duration::microseconds(i),
        );
        t.chat_id = None;
        t.session_id = Some(session);
        mine.push(t);
        s.insert_trace(&fixtures::trace(ChatId::new(), 0, base))
            .await
            .unwrap();
    }
    s.insert_traces(&mine).await.unwrap();
    mine.sort_by(|a, b| {
        (a.turn_number, a.started_at, a.id).cmp(&(b.turn_number, b.started_at, b.id))
    });
    let first = s
        .list_traces(TraceScope::Session(session), 4, None)
        .await
        .unwrap();
    let last = first.last().unwrap();
    let cursor = TraceCursor {
        turn_number: last.turn_number,
        started_at: last.started_at,
        id: last.id,
    };
    let rest = s
        .list_traces(TraceScope::Session(session), 4, Some(cursor))
        .await
        .unwrap();
    let got: Vec<_> = first.iter().chain(&rest).map(|t| t.id).collect();
    assert_eq!(got, mine.iter().map(|t| t.id).collect::<Vec<_>>());
    assert!(s
        .list_traces(TraceScope::Session(SessionId::new()), 4, None)
        .await
        .unwrap()
        .is_empty());
}

/// Writes made at the same moment may share one commit (SQLite's writer groups them): a
/// failing write must fail alone, and every other write must land and say so.
async fn concurrent_writes_commit_together_and_fail_alone(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let original = fixtures::trace(chat, 0, time::now());
    s.insert_trace(&original).await.unwrap();
    let mut clash = original.clone();
    clash.tool_name = "overwrite".into();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = s.clone();
        let t = if i == 30 {
            clash.clone()
        } else {
            fixtures::trace(chat, 1, time::now())
        };
        tasks.push(tokio::spawn(
            async move { (t.id, s.insert_trace(&t).await) },
        ));
    }
    let mut ok = 0;
    for task in tasks {
        let (id, r) = task.await.unwrap();
        if id == original.id {
            assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
        } else {
            r.unwrap();
            ok += 1;
        }
    }
    assert_eq!(ok, 59);
    let all = s
        .list_traces(TraceScope::Chat(chat), 100, None)
        .await
        .unwrap();
    assert_eq!(all.len(), 60);
    assert_eq!(all.iter().find(|t| t.id == original.id).unwrap(), &original);
}

/// A write can be refused after its statements ran (an update that found no row); in a
/// busy group that must undo only that write, with everything it wrote, and keep the rest.
async fn writes_refused_for_a_missing_row_leave_nothing_behind(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "group".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..90 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                // A snapshot of a session that does not exist, with a message that does
                // nothing wrong by itself.
                0 => {
                    let ghost = session(chat.id);
                    let msg = Message {
                        id: MessageId::new(),
                        chat_id: chat.id,
                        role: Role::Assistant,
                        content: format!("orphan {i}"),
                        attachments: vec![],
                        turn_number: 1,
                        created_at: time::now(),
                        task_id: None,
                    };
                    let r = s.save_session(&ghost, &[msg]).await;
                    assert!(matches!(r, Err(StoreError::NotFound("session"))), "{r:?}");
                }
                1 => {
                    let r = s
                        .finish_trace(TraceId::new(), &TraceFinish::default())
                        .await;
                    assert!(matches!(r, Err(StoreError::NotFound("trace"))), "{r:?}");
                }
                _ => {
                    let t = fixtures::running_llm_trace(chat.id, 1);
                    s.insert_trace(&t).await.unwrap();
                    s.finish_trace(t.id, &TraceFinish::default()).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(s.list_messages(chat.id).await.unwrap().is_empty());
    let traces = s
        .list_traces(TraceScope::Chat(chat.id), 100, None)
        .await
        .unwrap();
    assert_eq!(traces.len(), 30);
    assert!(traces.iter().all(|t| t.finished_at.is_some()));
}

async fn nul_characters_do_not_break_writes(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let mut t = fixtures::trace(chat, 0, time::now());
    t.input = json!({"path": "a\u{0}b", "k\u{0}": ["\u{0}"]});
    t.error = Some("bad\u{0}byte".into());
    s.insert_trace(&t).await.unwrap();
    let back = s.get_trace(t.id).await.unwrap().unwrap();
    let path = back.input["path"].as_str().unwrap();
    assert!(path.starts_with('a') && path.ends_with('b'));
    assert!(back.error.unwrap().starts_with("bad"));
    // Frames keep theirs as written: a stream can carry any character.
    let topic = Topic::Chat(chat);
    let body = json!({"text": "a\u{0}b", "k\u{0}": ["\u{0}"]});
    let stored = s
        .append_frames(topic, &[NewFrame::new("message_delta", body.clone())])
        .await
        .unwrap();
    let replay = s.frames_since(topic, 0, 10).await.unwrap();
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].seq, stored[0].seq);
    assert_eq!(serde_json::Value::Object(replay[0].body.to_map()), body);
    assert_eq!(serde_json::Value::Object(stored[0].body.to_map()), body);
}

async fn frames_get_consecutive_seqs_per_topic(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let a = Topic::Chat(ChatId::new());
    let b = Topic::Run(RunId::new());
    assert_eq!(
        s.topic_bounds(a).await.unwrap(),
        TopicBounds {
            last_seq: 0,
            first_kept: 1
        }
    );
    let f = |i: i64| NewFrame::new("message", json!({"i": i}));
    let first = s.append_frames(a, &[f(1), f(2)]).await.unwrap();
    let other = s.append_frames(b, &[f(9)]).await.unwrap();
    let second = s.append_frames(a, &[f(3)]).await.unwrap();
    assert_eq!(first.iter().map(|x| x.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(other[0].seq, 1);
    assert_eq!(second[0].seq, 3);
    let replay = s.frames_since(a, 1, 100).await.unwrap();
    assert_eq!(
        replay
            .iter()
            .map(|x| x.body.to_map()["i"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(replay[0].kind, "message");
    assert_eq!(replay[0].topic, a);
    assert_eq!(replay[1].to_json()["seq"], 3);
    assert_eq!(s.frames_since(a, 0, 2).await.unwrap().len(), 2);
    assert_eq!(
        s.topic_bounds(a).await.unwrap(),
        TopicBounds {
            last_seq: 3,
            first_kept: 1
        }
    );
}

async fn concurrent_appenders_never_share_a_seq(kind: Kind) {
    let db = TestDb::new(kind).await;
    let topic = Topic::Tasks;
    let mut handles = Vec::new();
    for w in 0..8 {
        let s = db.store();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                let frames =
                    vec![NewFrame::new("task_event", json!({"w": w, "i": i})); 1 + (i % 3)];
                seqs.extend(
                    s.append_frames(topic, &frames)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|f| f.seq),
                );
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_unstable();
    let n = all.len() as i64;
    assert_eq!(all, (1..=n).collect::<Vec<_>>());
    assert_eq!(
        db.store()
            .frames_since(topic, 0, 10_000)
            .await
            .unwrap()
            .len() as i64,
        n
    );
}

async fn appends_to_many_topics_number_each_topic_on_its_own(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let (old, new) = (Topic::Run(RunId::new()), Topic::Chat(ChatId::new()));
    s.append_frames(old, &[NewFrame::new("a", json!({ "n": 0 }))])
        .await
        .unwrap();
    let frames = |n: usize, tag: &str| -> Vec<NewFrame> {
        (0..n)
            .map(|i| NewFrame::new("e", json!({ "tag": tag, "i": i })))
            .collect()
    };
    // Many topics in one call, while single-topic appends race them.
    let racer = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                s.append_frames(old, &[NewFrame::new("r", json!({}))])
                    .await
                    .unwrap();
            }
        })
    };
    let mut calls = Vec::new();
    for round in 0..20 {
        let s = s.clone();
        let batch = vec![
            (old, frames(3, &format!("old{round}"))),
            (new, frames(2, &format!("new{round}"))),
        ];
        calls.push(tokio::spawn(async move {
            let out = s.append_frames_to_topics(batch).await;
            assert_eq!(out.len(), 2);
            let out: Vec<Vec<baton_core::Frame>> = out.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(out[0].len(), 3);
            assert_eq!(out[1].len(), 2);
            assert!(out[0].iter().all(|f| f.topic == old));
            assert!(out[1].iter().all(|f| f.topic == new));
            // Consecutive within each topic, in the order given.
            for list in &out {
                for w in list.windows(2) {
                    assert_eq!(w[1].seq, w[0].seq + 1);
                }
            }
            assert_eq!(out[0][2].body.to_map()["i"], json!(2));
        }));
    }
    racer.await.unwrap();
    for c in calls {
        c.await.unwrap();
    }
    let seqs = |list: Vec<baton_core::Frame>| list.into_iter().map(|f| f.seq).collect::<Vec<_>>();
    let old_seqs = seqs(s.frames_since(old, 0, 10_000).await.unwrap());
    assert_eq!(old_seqs, (1..=1 + 20 + 60).collect::<Vec<_>>());
    let new_seqs = seqs(s.frames_since(new, 0, 10_000).await.unwrap());
    assert_eq!(new_seqs, (1..=40).collect::<Vec<_>>());
    assert_eq!(s.topic_bounds(new).await.unwrap().last_seq, 40);
    // The same topic twice, and a topic with nothing to append, still answer in order.
    let out = s
        .append_frames_to_topics(vec![
            (new, frames(1, "x")),
            (new, frames(2, "y")),
            (old, vec![]),
        ])
        .await;
    let out: Vec<Vec<i64>> = out.into_iter().map(|r| seqs(r.unwrap())).collect();
    assert_eq!(out, vec![vec![41], vec![42, 43], vec![]]);
}

async fn pruning_moves_first_kept_but_never_seq(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let t = Topic::Chat(ChatId::new());
    let frames = vec![NewFrame::new("message", json!({})); 10];
    s.append_frames(t, &frames).await.unwrap();
    assert_eq!(s.prune_frames(t, 6).await.unwrap(), 6);
    assert_eq!(
        s.topic_bounds(t).await.unwrap(),
        TopicBounds {
            last_seq: 10,
            first_kept: 7
        }
    );
    assert_eq!(s.frames_since(t, 0, 100).await.unwrap()[0].seq, 7);
    // Pruning past the end keeps first_kept at last_seq + 1 and seq keeps counting.
    s.prune_frames(t, 100).await.unwrap();
    assert_eq!(
        s.topic_bounds(t).await.unwrap(),
        TopicBounds {
            last_seq: 10,
            first_kept: 11
        }
    );
    assert_eq!(s.append_frames(t, &frames[..1]).await.unwrap()[0].seq, 11);
}

async fn topics_exist_only_for_real_things(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "t".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    assert!(s.topic_exists(Topic::Chat(chat.id)).await.unwrap());
    assert!(!s.topic_exists(Topic::Chat(ChatId::new())).await.unwrap());
    assert!(!s.topic_exists(Topic::Run(RunId::new())).await.unwrap());
    assert!(s.topic_exists(Topic::Tasks).await.unwrap());
}

async fn an_edited_applied_migration_is_refused(kind: Kind) {
    let db = TestDb::new(kind).await;
    let tamper = "UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001_init'";
    let err = match kind {
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(tamper).execute(&pool).await.unwrap();
            pool.close().await;
            baton_store_sqlite::SqliteStore::connect(&db.url)
                .await
                .err()
        }
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(tamper).execute(&pool).await.unwrap();
            pool.close().await;
            baton_store_postgres::PgStore::connect(&db.url).await.err()
        }
    };
    let err = err.expect("refused").to_string();
    assert!(
        err.contains("0001_init") && err.contains("never edit"),
        "{err}"
    );
}

fn session(chat: ChatId) -> Session {
    let now = time::now();
    Session {
        id: SessionId::new(),
        chat_id: Some(chat),
        run_id: None,
        parent_id: None,
        provider: "mock".into(),
        model: "mock-1".into(),
        status: SessionStatus::Running,
        turn_number: 0,
        state: json!({ "history": [] }),
        error: None,
        created_at: now,
        updated_at: now,
        lease: Default::default(),
    }
}

async fn sessions_snapshot_with_their_messages_atomically(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "s".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let mut sess = session(chat.id);
    s.create_session(&sess).await.unwrap();
    sess.turn_number = 2;
    sess.status = SessionStatus::Idle;
    sess.state = json!({ "history": [{ "role": "user", "text": "hi\u{0}" }] });
    let msg = Message {
        id: MessageId::new(),
        chat_id: chat.id,
        role: Role::Assistant,
        content: "answer".into(),
        attachments: vec![],
        turn_number: 2,
        created_at: time::now(),
        task_id: None,
    };
    s.save_session(&sess, std::slice::from_ref(&msg))
        .await
        .unwrap();
    let back = s.get_session(sess.id).await.unwrap().unwrap();
    assert_eq!((back.status, back.turn_number), (SessionStatus::Idle, 2));
    assert_eq!(s.list_messages(chat.id).await.unwrap(), vec![msg.clone()]);
    // Saving again with the same message fails as a whole: the snapshot is unchanged.
    sess.turn_number = 3;
    assert!(s
        .save_session(&sess, std::slice::from_ref(&msg))
        .await
        .is_err());
    assert_eq!(
        s.get_session(sess.id).await.unwrap().unwrap().turn_number,
        2
    );
    assert_eq!(s.list_messages(chat.id).await.unwrap().len(), 1);
    assert_eq!(s.list_sessions(chat.id).await.unwrap().len(), 1);
    assert!(s
        .sessions_with_status(SessionStatus::Running)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.sessions_with_status(SessionStatus::Idle)
            .await
            .unwrap()
            .len(),
        1
    );
    let ghost = session(chat.id);
    assert!(matches!(
        s.save_session(&ghost, &[]).await,
        Err(StoreError::NotFound("session"))
    ));
}

async fn interrupted_traces_are_closed_and_turns_summarized(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = ChatId::new();
    let sess = SessionId::new();
    let mut llm = fixtures::running_llm_trace(chat, 1);
    llm.session_id = Some(sess);
    llm.input_tokens = Some(1000);
    llm.cache_tokens = Some(768);
    llm.output_tokens = Some(50);
    llm.cost_usd = Some(0.001);
    llm.outcome = baton_core::TraceOutcome::Ok;
    llm.finished_at = Some(llm.started_at);
    let mut tool = fixtures::trace(chat, 1, time::now());
    tool.session_id = Some(sess);
    let mut running = fixtures::running_llm_trace(chat, 2);
    running.session_id = Some(sess);
    s.insert_traces(&[llm, tool, running.clone()])
        .await
        .unwrap();
    let turns = s.turn_summaries(sess, None, 100).await.unwrap();
    assert_eq!(turns.len(), 2);
    // Paged by turn number.
    let first = s.turn_summaries(sess, None, 1).await.unwrap();
    assert_eq!(first.iter().map(|t| t.turn_number).collect::<Vec<_>>(), [1]);
    let next = s.turn_summaries(sess, Some(1), 1).await.unwrap();
    assert_eq!(next.iter().map(|t| t.turn_number).collect::<Vec<_>>(), [2]);
    assert!(s.turn_summaries(sess, Some(2), 1).await.unwrap().is_empty());
    assert_eq!(
        (
            turns[0].tool_count,
            turns[0].input_tokens,
            turns[0].cache_tokens
        ),
        (1, 1000, 768)
    );
    assert!((turns[0].cache_hit_rate - 0.768).abs() < 1e-9);
    assert!(turns[0].finished_at.is_some());
    assert!(
        turns[1].finished_at.is_none(),
        "a running call leaves its turn open"
    );
    let closed = s
        .close_running_traces(sess, "interrupted: the server restarted")
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].id, running.id);
    assert_eq!(closed[0].outcome, baton_core::TraceOutcome::Cancelled);
    assert_eq!(
        closed[0].error.as_deref(),
        Some("interrupted: the server restarted")
    );
    assert!(s
        .close_running_traces(sess, "again")
        .await
        .unwrap()
        .is_empty());
    // Found by why it was closed, and by its words from before.
    let by = |q: &str| {
        let s = s.clone();
        let filter = baton_store::TraceFilter {
            words: baton_store::search_words(q),
            ..Default::default()
        };
        async move {
            s.search_traces(TraceScope::Session(sess), &filter, 10, None)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by("restarted").await, [running.id]);
    assert!(by(&running.tool_name).await.contains(&running.id));
    assert!(s.turn_summaries(sess, None, 100).await.unwrap()[1]
        .finished_at
        .is_some());

    // Turn numbers with gaps (a turn that made no traced call): pages still hold `limit`
    // turns each, with all of each turn's calls.
    let gappy = SessionId::new();
    let mut calls = Vec::new();
    for turn in [3, 7, 7, 8, 20] {
        let mut t = fixtures::trace(chat, turn, time::now());
        t.session_id = Some(gappy);
        calls.push(t);
    }
    s.insert_traces(&calls).await.unwrap();
    let page = |after, limit| {
        let s = s.clone();
        async move {
            s.turn_summaries(gappy, after, limit)
                .await
                .unwrap()
                .iter()
                .map(|t| (t.turn_number, t.tool_count))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 2).await, [(3, 1), (7, 2)]);
    assert_eq!(page(Some(7), 2).await, [(8, 1), (20, 1)]);
    assert_eq!(page(Some(8), 5).await, [(20, 1)]);
    assert!(page(Some(20), 5).await.is_empty());
}

async fn runs_and_their_journal_round_trip(kind: Kind) {
    use baton_core::{AgentStatus, JournalEntry, Run, RunStatus};
    let db = TestDb::new(kind).await;
    let s = db.store();
    let now = time::now();
    let mut runs = Vec::new();
    for i in 0..3 {
        let run = Run {
            id: RunId::new(),
            name: format!("wf-{i}"),
            status: if i == 1 {
                RunStatus::AwaitingApproval
            } else {
                RunStatus::Queued
            },
            source: "builtin".into(),
            script: "return 1".into(),
            args: Some(json!({ "q": "x\u{0}y" })),
            options: baton_core::RunOptions {
                concurrency: 4,
                ..Default::default()
            },
            result: None,
            error: None,
            totals: Default::default(),
            log: vec![],
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            lease: Default::default(),
        };
        s.create_run(&run).await.unwrap();
        runs.push(run);
    }
    let mut r = runs[0].clone();
    r.status = RunStatus::Completed;
    r.result = Some(json!(["done"]));
    r.log = vec!["first line".into(), "second".into()];
    r.started_at = Some(now);
    r.finished_at = Some(time::now());
    s.update_run(&r).await.unwrap();
    let back = s.get_run(r.id).await.unwrap().unwrap();
    assert_eq!(
        (back.status, back.result.clone(), back.log.len()),
        (RunStatus::Completed, Some(json!(["done"])), 2)
    );
    assert!(s.topic_exists(Topic::Run(r.id)).await.unwrap());
    let all = s.list_runs(None, 10, None).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["wf-2", "wf-1", "wf-0"]
    );
    let waiting = s
        .list_runs(Some(RunStatus::AwaitingApproval), 10, None)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    let page2 = s.list_runs(None, 2, Some(all[1].id)).await.unwrap();
    assert_eq!(page2.len(), 1);

    let mut e = JournalEntry {
        run_id: r.id,
        key: "k1".into(),
        seq: 1,
        label: Some("a".into()),
        phase: Some("Find".into()),
        status: AgentStatus::Running,
        session_id: None,
        prompt: "p".into(),
        result: None,
        error: None,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        cached: false,
        started_at: now,
        finished_at: None,
        epoch: 0,
    };
    s.put_journal(&e).await.unwrap();
    e.status = AgentStatus::Completed;
    e.result = Some(json!({ "files": ["a"] }));
    e.input_tokens = 10;
    s.put_journal(&e).await.unwrap();
    let mut e2 = e.clone();
    e2.key = "k0".into();
    e2.seq = 2;
    s.put_journal(&e2).await.unwrap();
    assert_eq!(s.get_journal(r.id, "k1").await.unwrap().unwrap(), e);
    assert!(s.get_journal(r.id, "nope").await.unwrap().is_none());
    let j = s.list_journal(r.id).await.unwrap();
    assert_eq!(
        j.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["k1", "k0"],
        "start order, not key order"
    );
    let mut orphan = e.clone();
    orphan.run_id = RunId::new();
    assert!(matches!(
        s.put_journal(&orphan).await,
        Err(StoreError::NotFound("run"))
    ));

    // Stopping a run's agents: only those still running, queued writes included.
    let mut left = e.clone();
    left.key = "k2".into();
    left.seq = 3;
    left.status = AgentStatus::Running;
    left.result = None;
    s.put_journal(&left).await.unwrap();
    let mut queued = left.clone();
    queued.key = "k3".into();
    queued.seq = 4;
    s.queue(baton_store::Queued::Journal(queued)).await;
    let other = runs[2].id;
    let mut elsewhere = left.clone();
    elsewhere.run_id = other;
    s.put_journal(&elsewhere).await.unwrap();
    let at = time::now();
    assert_eq!(s.stop_running_agents(r.id, 0, at).await.unwrap(), 2);
    let j = s.list_journal(r.id).await.unwrap();
    let statuses: Vec<(&str, AgentStatus, Option<_>)> = j
        .iter()
        .map(|e| (e.key.as_str(), e.status, e.finished_at))
        .collect();
    assert_eq!(
        statuses,
        [
            ("k1", AgentStatus::Completed, None),
            ("k0", AgentStatus::Completed, None),
            ("k2", AgentStatus::Cancelled, Some(at)),
            ("k3", AgentStatus::Cancelled, Some(at)),
        ]
    );
    assert_eq!(
        s.get_journal(other, "k2").await.unwrap().unwrap().status,
        AgentStatus::Running,
        "another run's agents are left alone"
    );
    assert_eq!(s.stop_running_agents(r.id, 0, at).await.unwrap(), 0);

    // Pages in start order, and totals per phase and status without reading the rows.
    let keys = |j: Vec<JournalEntry>| j.into_iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(
        keys(s.journal_page(r.id, None, 3).await.unwrap()),
        ["k1", "k0", "k2"]
    );
    assert_eq!(
        keys(s.journal_page(r.id, Some(2), 3).await.unwrap()),
        ["k2", "k3"]
    );
    assert!(s.journal_page(r.id, Some(4), 3).await.unwrap().is_empty());
    assert!(s
        .journal_page(r.id, Some(i64::MAX), 3)
        .await
        .unwrap()
        .is_empty());
    let totals = s.journal_totals(r.id).await.unwrap();
    let got: Vec<_> = totals
        .iter()
        .map(|t| {
            (
                t.phase.as_deref(),
                t.status,
                t.agents,
                t.tokens,
                t.unfinished,
                t.first_seq,
                t.last_seq,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some("Find"), AgentStatus::Completed, 2, 20, 2, 1, 2),
            (Some("Find"), AgentStatus::Cancelled, 2, 20, 0, 3, 4),
        ]
    );
    assert_eq!(totals[1].last_finished, Some(at));
    assert_eq!(totals[0].first_started, now);
    assert!(s.journal_totals(RunId::new()).await.unwrap().is_empty());
}

fn queued_run(name: &str, status: baton_core::RunStatus) -> baton_core::Run {
    let now = time::now();
    baton_core::Run {
        id: RunId::new(),
        name: name.into(),
        status,
        source: "inline".into(),
        script: "return 1".into(),
        args: None,
        options: Default::default(),
        result: None,
        error: None,
        totals: Default::default(),
        log: vec![],
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
        lease: Default::default(),
    }
}

const LONG: std::time::Duration = std::time::Duration::from_secs(60);
const BRIEF: std::time::Duration = std::time::Duration::from_millis(1);

async fn lapse() {
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
}

async fn leases_are_claimed_once_renewed_fenced_and_released(kind: Kind) {
    use baton_core::{AgentStatus, JournalEntry, RunControl, RunStatus};
    let db = TestDb::new(kind).await;
    let s = db.store();
    let mut ids = Vec::new();
    for (i, status) in [
        RunStatus::Queued,
        RunStatus::AwaitingApproval,
        RunStatus::Queued,
        RunStatus::Queued,
        RunStatus::Completed,
        RunStatus::Paused,
    ]
    .into_iter()
    .enumerate()
    {
        let r = queued_run(&format!("r{i}"), status);
        s.create_run(&r).await.unwrap();
        ids.push(r.id);
        // Claims go oldest first: creation times must differ.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let a = s.claim_runs("a", LONG, 2).await.unwrap();
    assert_eq!(a.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0], ids[2]]);
    assert!(a
        .iter()
        .all(|r| r.lease.owner.as_deref() == Some("a") && r.lease.epoch == 1));
    assert!(a[0].lease.expires_at.is_some());
    let b = s.claim_runs("b", LONG, 10).await.unwrap();
    assert_eq!(
        b.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[3]],
        "only queued or running runs nobody holds; never awaiting approval, paused or finished"
    );
    assert!(s.claim_runs("c", LONG, 10).await.unwrap().is_empty());
    assert!(
        s.claim_run(ids[0], "b", LONG).await.unwrap().is_none(),
        "a live lease is never taken"
    );
    let held = s.renew_leases("a", LONG).await.unwrap();
    assert_eq!(
        held.runs.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([(ids[0], 1), (ids[2], 1)])
    );

    // The holder writes under its epoch; a stale epoch is refused and changes nothing.
    let mut mine = a[0].clone();
    mine.status = RunStatus::Running;
    s.update_run(&mine).await.unwrap();
    let mut stale = mine.clone();
    stale.lease.epoch = 0;
    stale.status = RunStatus::Failed;
    assert!(matches!(
        s.update_run(&stale).await,
        Err(StoreError::Fenced("run"))
    ));
    let mut ghost = stale.clone();
    ghost.id = RunId::new();
    assert!(matches!(
        s.update_run(&ghost).await,
        Err(StoreError::NotFound("run"))
    ));
    assert_eq!(
        s.get_run(mine.id).await.unwrap().unwrap().status,
        RunStatus::Running
    );

    // "a" stalls: its lease lapses, "b" takes the run over under epoch 2.
    let _ = s.renew_leases("a", BRIEF).await.unwrap();
    lapse().await;
    let taken = s
        .claim_run(mine.id, "b", LONG)
        .await
        .unwrap()
        .expect("lapsed");
    assert_eq!(
        (taken.lease.owner.as_deref(), taken.lease.epoch),
        (Some("b"), 2)
    );
    assert!(matches!(
        s.update_run(&mine).await,
        Err(StoreError::Fenced("run"))
    ));
    assert!(matches!(
        s.stop_running_agents(mine.id, 1, time::now()).await,
        Err(StoreError::Fenced("run"))
    ));
    let entry = |epoch, key: &str| JournalEntry {
        run_id: mine.id,
        key: key.into(),
        seq: 1,
        label: None,
        phase: None,
        status: AgentStatus::Completed,
        session_id: None,
        prompt: "p".into(),
        result: Some(json!("late")),
        error: None,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        cached: false,
        started_at: time::now(),
        finished_at: None,
        epoch,
    };
    s.put_journal(&entry(2, "k")).await.unwrap();
    let late = s.put_journal(&entry(1, "k")).await;
    match kind {
        // Several processes: the late holder's entry is refused.
        Kind::Postgres => {
            assert!(matches!(late, Err(StoreError::Fenced("run"))), "{late:?}");
            assert_eq!(s.get_journal(mine.id, "k").await.unwrap().unwrap().epoch, 2);
        }
        // One process holds the file: there is no late holder to fence.
        Kind::Sqlite => late.unwrap(),
    }
    let held = s.renew_leases("a", LONG).await.unwrap();
    assert_eq!(held.runs, vec![(ids[2], 1)], "the lost run is not renewed");

    // Control requests wait for the holder.
    s.request_run_control(mine.id, RunControl::Cancel)
        .await
        .unwrap();
    assert!(s.take_run_controls("a").await.unwrap().is_empty());
    assert_eq!(
        s.take_run_controls("b").await.unwrap(),
        vec![(mine.id, RunControl::Cancel)]
    );
    assert!(
        s.take_run_controls("b").await.unwrap().is_empty(),
        "taken once"
    );
    assert!(matches!(
        s.request_run_control(RunId::new(), RunControl::Pause).await,
        Err(StoreError::NotFound("run"))
    ));

    // Giving the run up (owner None) lets anyone claim it at once.
    let mut given = taken.clone();
    given.status = RunStatus::Queued;
    given.lease.owner = None;
    s.update_run(&given).await.unwrap();
    let back = s.get_run(given.id).await.unwrap().unwrap();
    assert_eq!((back.lease.owner, back.lease.expires_at), (None, None));
    let again = s.claim_runs("c", LONG, 10).await.unwrap();
    assert_eq!(
        again
            .iter()
            .map(|r| (r.id, r.lease.epoch))
            .collect::<Vec<_>>(),
        [(given.id, 3)]
    );

    // A clean stop releases everything the instance holds.
    assert_eq!(s.release_leases(Some("a")).await.unwrap(), 1);
    let freed = s.claim_runs("c", LONG, 10).await.unwrap();
    assert_eq!(freed.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[2]]);
    assert!(s.release_leases(None).await.unwrap() >= 2);
    assert_eq!(s.claim_runs("e", LONG, 10).await.unwrap().len(), 3);

    // Heartbeats.
    let started = time::now();
    s.heartbeat("a", started, LONG).await.unwrap();
    s.heartbeat("b", started, BRIEF).await.unwrap();
    lapse().await;
    s.heartbeat("a", started, LONG).await.unwrap();
    let live: Vec<String> = s
        .live_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(live, ["a"]);
    s.forget_instance("a").await.unwrap();
    assert!(s.live_instances().await.unwrap().is_empty());
}

async fn instances_claiming_at_once_never_share_a_run(kind: Kind) {
    use baton_core::RunStatus;
    let db = TestDb::new(kind).await;
    let s = db.store();
    let mut all = HashSet::new();
    for i in 0..24 {
        let r = queued_run(&format!("r{i}"), RunStatus::Queued);
        s.create_run(&r).await.unwrap();
        all.insert(r.id);
    }
    let claimers = (0..4).map(|n| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let page = s.claim_runs(&format!("i{n}"), LONG, 2).await.unwrap();
                if page.is_empty() {
                    return got;
                }
                got.extend(page.into_iter().map(|r| r.id));
            }
        })
    });
    let mut seen = Vec::new();
    for c in claimers {
        seen.extend(c.await.unwrap());
    }
    assert_eq!(seen.len(), 24, "every run claimed exactly once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

async fn sessions_are_leased_like_runs(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "c".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let mut idle = session(chat.id);
    idle.status = SessionStatus::Idle;
    s.create_session(&idle).await.unwrap();
    let claimed = s.claim_session(idle.id, "a", LONG).await.unwrap().unwrap();
    assert_eq!(claimed.lease.epoch, 1);
    let mut running = claimed.clone();
    running.status = SessionStatus::Running;
    s.save_session(&running, &[]).await.unwrap();
    assert!(
        s.claim_session(idle.id, "b", LONG).await.unwrap().is_none(),
        "running under a live lease"
    );
    assert!(s.claim_sessions("b", LONG, 10).await.unwrap().is_empty());
    assert_eq!(
        s.renew_leases("a", BRIEF).await.unwrap().sessions,
        vec![(idle.id, 1)]
    );
    lapse().await;
    let taken = s.claim_sessions("b", LONG, 10).await.unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|t| (t.id, t.lease.epoch))
            .collect::<Vec<_>>(),
        [(idle.id, 2)]
    );
    // The stalled holder's snapshot is refused and changes nothing.
    let mut late = running.clone();
    late.turn_number = 99;
    assert!(s.save_session(&late, &[]).await.is_err());
    assert_eq!(
        s.get_session(idle.id).await.unwrap().unwrap().turn_number,
        0
    );
    assert!(s.renew_leases("a", LONG).await.unwrap().sessions.is_empty());

    // A workflow agent's session is never claimed on its own: its run's holder closes it.
    let run = queued_run("r", baton_core::RunStatus::Running);
    s.create_run(&run).await.unwrap();
    let mut agent = session(chat.id);
    agent.chat_id = None;
    agent.run_id = Some(run.id);
    s.create_session(&agent).await.unwrap();
    let mut t = fixtures::running_llm_trace(chat.id, 1);
    t.session_id = Some(agent.id);
    t.run_id = Some(run.id);
    t.chat_id = None;
    s.insert_trace(&t).await.unwrap();
    lapse().await;
    assert!(s
        .claim_sessions("c", LONG, 10)
        .await
        .unwrap()
        .iter()
        .all(|x| x.id != agent.id));
    let closed = s.close_run_sessions(run.id, "taken over").await.unwrap();
    assert_eq!(closed.iter().map(|t| t.id).collect::<Vec<_>>(), [t.id]);
    let agent = s.get_session(agent.id).await.unwrap().unwrap();
    assert_eq!(agent.status, SessionStatus::Cancelled);
}

fn new_task(prompt: &str, parent: Option<SessionId>) -> baton_core::Task {
    baton_core::Task {
        id: baton_core::TaskId::new(),
        status: baton_core::TaskStatus::Queued,
        label: Some("a label".into()),
        prompt: prompt.to_string(),
        model: Some("mock-1".into()),
        workspace: Some("/tmp".into()),
        capabilities: baton_core::Capabilities {
            write: true,
            exec: false,
        },
        tools: Some(vec!["read_file".into(), "grep".into()]),
        parent_session_id: parent,
        chat_id: Some(ChatId::new()),
        depth: 1,
        session_id: None,
        progress: Default::default(),
        result: None,
        error: None,
        created_at: time::now(),
        started_at: None,
        finished_at: None,
        notified_at: None,
        lease: Default::default(),
    }
}

async fn tasks_round_trip_are_claimed_once_fenced_and_end_once(kind: Kind) {
    use baton_core::{TaskProgress, TaskStatus};
    let db = TestDb::new(kind).await;
    let s = db.store();
    let parent = SessionId::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let t = new_task(
            &format!("audit module {i} \u{0}"),
            (i < 3).then_some(parent),
        );
        s.create_task(&t).await.unwrap();
        let got = s.get_task(t.id).await.unwrap().unwrap();
        // NUL cannot be stored by Postgres; everything else comes back as written.
        assert_eq!(
            got.prompt.trim_end_matches(['\u{0}', '\u{FFFD}']),
            t.prompt.trim_end_matches('\u{0}')
        );
        assert_eq!(
            (
                got.label.clone(),
                got.tools.clone(),
                got.capabilities,
                got.depth
            ),
            (t.label.clone(), t.tools.clone(), t.capabilities, 1)
        );
        assert_eq!(
            (got.chat_id, got.parent_session_id, got.status),
            (t.chat_id, t.parent_session_id, TaskStatus::Queued)
        );
        ids.push(t.id);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(
        s.session_tasks(parent)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        ids[..3]
    );
    // Listing: newest first, by status, keyset-paged.
    let page = s.list_tasks(None, 3, None).await.unwrap();
    assert_eq!(
        page.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[3], ids[2], ids[1]]
    );
    let rest = s.list_tasks(None, 3, Some(ids[1])).await.unwrap();
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[0]]);

    // A queued task nobody holds can be cancelled on the spot, once.
    let gone = s
        .cancel_queued_task(ids[3], time::now(), "cancelled by a person")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.status, TaskStatus::Cancelled);
    assert!(s
        .cancel_queued_task(ids[3], time::now(), "again")
        .await
        .unwrap()
        .is_none());

    // Claimed oldest first, each by one instance; a live lease is never taken.
    let a = s.claim_tasks("a", LONG, 2).await.unwrap();
    assert_eq!(a.iter().map(|t| t.id).collect::<Vec<_>>(), ids[..2]);
    assert!(a
        .iter()
        .all(|t| t.lease.owner.as_deref() == Some("a") && t.lease.epoch == 1));
    assert!(
        s.cancel_queued_task(ids[0], time::now(), "held")
            .await
            .unwrap()
            .is_none(),
        "a held task is cancelled by its holder"
    );
    let b = s.claim_tasks("b", LONG, 10).await.unwrap();
    assert_eq!(b.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[2]]);
    assert!(s.claim_tasks("c", LONG, 10).await.unwrap().is_empty());
    let held = s.renew_leases("a", LONG).await.unwrap();
    assert_eq!(
        held.tasks.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([(ids[0], 1), (ids[1], 1)])
    );

    // The holder writes under its epoch; a stale one is refused and changes nothing.
    let mut mine = a[0].clone();
    mine.status = TaskStatus::Running;
    mine.started_at = Some(time::now());
    mine.session_id = Some(SessionId::new());
    mine.progress = TaskProgress {
        turns: 2,
        tool_calls: 3,
        input_tokens: 100,
        output_tokens: 20,
        last_tool: Some("grep".into()),
    };
    s.update_task(&mine).await.unwrap();
    let mut stale = mine.clone();
    stale.lease.epoch = 0;
    stale.status = TaskStatus::Failed;
    assert!(matches!(
        s.update_task(&stale).await,
        Err(StoreError::Fenced("task"))
    ));
    let mut ghost = mine.clone();
    ghost.id = baton_core::TaskId::new();
    assert!(matches!(
        s.update_task(&ghost).await,
        Err(StoreError::NotFound("task"))
    ));
    assert_eq!(
        s.get_task(ids[0]).await.unwrap().unwrap().progress,
        mine.progress
    );

    // Cancel requests reach the holder once.
    s.request_task_cancel(ids[1]).await.unwrap();
    assert!(s.take_task_cancels("b").await.unwrap().is_empty());
    assert_eq!(s.take_task_cancels("a").await.unwrap(), [ids[1]]);
    assert!(s.take_task_cancels("a").await.unwrap().is_empty());
    assert!(matches!(
        s.request_task_cancel(baton_core::TaskId::new()).await,
        Err(StoreError::NotFound("task"))
    ));

    // It ends once: the end gives up the lease, and no later write changes it.
    let mut done = mine.clone();
    done.status = TaskStatus::Completed;
    done.result = Some("all modules audited".into());
    done.finished_at = Some(time::now());
    s.update_task(&done).await.unwrap();
    let mut again = done.clone();
    again.status = TaskStatus::Failed;
    assert!(matches!(
        s.update_task(&again).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = s.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.result.as_deref(), stored.lease.owner),
        (TaskStatus::Completed, Some("all modules audited"), None)
    );
    assert!(!s
        .renew_leases("a", LONG)
        .await
        .unwrap()
        .tasks
        .iter()
        .any(|(id, _)| *id == ids[0]));
    let page = s
        .list_tasks(Some(TaskStatus::Completed), 10, None)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[0]]);

    // A holder that stops renewing loses its running task to the next claimer, whose
    // epoch fences the old holder out.
    let mut running = a[1].clone();
    running.status = TaskStatus::Running;
    s.update_task(&running).await.unwrap();
    s.renew_leases("a", BRIEF).await.unwrap();
    lapse().await;
    let taken = s.claim_tasks("b", LONG, 10).await.unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|t| (t.id, t.status, t.lease.epoch))
            .collect::<Vec<_>>(),
        [(ids[1], TaskStatus::Running, 2)]
    );
    running.progress.turns = 9;
    assert!(matches!(
        s.update_task(&running).await,
        Err(StoreError::Fenced("task"))
    ));
    // A clean stop hands its tasks back at once.
    assert_eq!(s.release_leases(Some("b")).await.unwrap(), 2);
    assert_eq!(s.claim_tasks("c", LONG, 10).await.unwrap().len(), 2);
}

async fn instances_claiming_at_once_never_share_a_task(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let mut all = HashSet::new();
    for i in 0..24 {
        let t = new_task(&format!("t{i}"), None);
        s.create_task(&t).await.unwrap();
        all.insert(t.id);
    }
    let claimers = (0..4).map(|n| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let page = s.claim_tasks(&format!("i{n}"), LONG, 2).await.unwrap();
                if page.is_empty() {
                    return got;
                }
                got.extend(page.into_iter().map(|t| t.id));
            }
        })
    });
    let mut seen = Vec::new();
    for c in claimers {
        seen.extend(c.await.unwrap());
    }
    assert_eq!(seen.len(), 24, "every task claimed exactly once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

async fn ended_tasks_are_told_to_their_chat_once_with_the_snapshot(kind: Kind) {
    use baton_core::TaskStatus;
    let db = TestDb::new(kind).await;
    let s = db.store();
    let new_chat = || NewChat {
        title: "t".into(),
        workspace: None,
        capabilities: Default::default(),
        auto_continue: true,
    };
    let chat = s.create_chat(new_chat()).await.unwrap();
    let other = s.create_chat(new_chat()).await.unwrap();
    let mut sess = session(chat.id);
    sess.status = SessionStatus::Idle;
    s.create_session(&sess).await.unwrap();
    let claimed = s.claim_session(sess.id, "a", LONG).await.unwrap().unwrap();
    sess.lease = claimed.lease;

    let mut tasks = Vec::new();
    for (i, c) in [chat.id, chat.id, chat.id, other.id]
        .into_iter()
        .enumerate()
    {
        let mut t = new_task(&format!("task {i}"), Some(sess.id));
        t.chat_id = Some(c);
        s.create_task(&t).await.unwrap();
        tasks.push(t);
    }
    let claimed = s.claim_tasks("a", LONG, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
    // They end in the order 1, 0, 3; task 2 keeps running.
    for i in [1usize, 0, 3, 2] {
        let mut t = claimed
            .iter()
            .find(|t| t.id == tasks[i].id)
            .unwrap()
            .clone();
        if i == 2 {
            t.status = TaskStatus::Running;
        } else {
            t.status = TaskStatus::Completed;
            t.result = Some(format!("result {i}"));
            t.finished_at = Some(time::now());
        }
        s.update_task(&t).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let untold = |c: ChatId| {
        let s = s.clone();
        async move {
            s.untold_tasks(c)
                .await
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        untold(chat.id).await,
        [tasks[1].id, tasks[0].id],
        "in the order they ended"
    );
    let mut waiting = s.chats_with_untold_tasks(10).await.unwrap();
    waiting.sort_by_key(|c| c.0);
    let mut expected = vec![chat.id, other.id];
    expected.sort_by_key(|c| c.0);
    assert_eq!(waiting, expected);

    let notice = |task: &baton_core::Task| Message {
        id: MessageId::new(),
        chat_id: chat.id,
        role: Role::Notice,
        content: format!("Background task {} completed.", task.id),
        attachments: vec![],
        turn_number: 1,
        created_at: time::now(),
        task_id: Some(task.id),
    };
    // A holder whose claim was taken tells nothing, and nothing of its write stays.
    let mut stale = sess.clone();
    stale.lease.epoch -= 1;
    stale.turn_number = 9;
    assert!(s.save_session(&stale, &[notice(&tasks[1])]).await.is_err());
    assert_eq!(untold(chat.id).await, [tasks[1].id, tasks[0].id]);
    assert!(s.list_messages(chat.id).await.unwrap().is_empty());

    // The holder's snapshot tells it, once, with the notice naming the task.
    sess.turn_number = 1;
    let told = notice(&tasks[1]);
    s.save_session(&sess, std::slice::from_ref(&told))
        .await
        .unwrap();
    assert_eq!(untold(chat.id).await, [tasks[0].id]);
    assert_eq!(s.list_messages(chat.id).await.unwrap(), vec![told.clone()]);
    let t1 = s.get_task(tasks[1].id).await.unwrap().unwrap();
    assert!(t1.notified_at.is_some());
    assert_eq!(
        s.get_session(sess.id).await.unwrap().unwrap().turn_number,
        1
    );
    // The same notice again fails as a whole (its id is taken).
    assert!(s
        .save_session(&sess, std::slice::from_ref(&told))
        .await
        .is_err());
    s.save_session(&sess, &[notice(&tasks[0])]).await.unwrap();
    assert!(untold(chat.id).await.is_empty());
    assert_eq!(s.chats_with_untold_tasks(10).await.unwrap(), [other.id]);
    // A running task is never untold; once it ends it is.
    let mut t2 = s.get_task(tasks[2].id).await.unwrap().unwrap();
    t2.status = TaskStatus::Failed;
    t2.error = Some("boom".into());
    t2.finished_at = Some(time::now());
    s.update_task(&t2).await.unwrap();
    assert_eq!(untold(chat.id).await, [tasks[2].id]);
}

async fn chat_settings_change_and_survive(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "before".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: false,
        })
        .await
        .unwrap();
    assert!(!s.get_chat(chat.id).await.unwrap().unwrap().auto_continue);
    let changed = s
        .update_chat(
            chat.id,
            baton_core::ChatPatch {
                auto_continue: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.title.as_str(), changed.auto_continue),
        ("before", true)
    );
    let renamed = s
        .update_chat(
            chat.id,
            baton_core::ChatPatch {
                title: Some("after".into()),
                auto_continue: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.title.as_str(), renamed.auto_continue),
        ("after", true)
    );
    assert_eq!(s.get_chat(chat.id).await.unwrap().unwrap(), renamed);
    assert!(s
        .update_chat(ChatId::new(), baton_core::ChatPatch::default())
        .await
        .unwrap()
        .is_none());
}

fn upload(bytes: &[u8], sha: &str) -> baton_core::NewAttachment {
    baton_core::NewAttachment {
        attachment: baton_core::Attachment {
            id: baton_core::AttachmentId::new(),
            mime: "image/png".into(),
            size: bytes.len() as i64,
            sha256: sha.into(),
            width: 3,
            height: 2,
            created_at: time::now(),
        },
        bytes: bytes.to_vec(),
        thumbnail: b"thumb".to_vec(),
    }
}

async fn attachments_are_kept_once_per_sha256_and_orphans_go(kind: Kind) {
    let db = TestDb::new(kind).await;
    let s = db.store();
    // Every byte value survives the round trip (a blob, not text).
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let first = s.put_attachment(&upload(&bytes, "aa")).await.unwrap();
    let again = s.put_attachment(&upload(&bytes, "aa")).await.unwrap();
    assert_eq!(again, first, "the same bytes answer the same attachment");
    assert_eq!(
        s.get_attachment(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        s.attachment_bytes(first.id, false)
            .await
            .unwrap()
            .as_deref(),
        Some(&bytes[..])
    );
    assert_eq!(
        s.attachment_bytes(first.id, true).await.unwrap().as_deref(),
        Some(&b"thumb"[..])
    );
    let ghost = baton_core::AttachmentId::new();
    assert_eq!(s.get_attachment(ghost).await.unwrap(), None);
    assert_eq!(s.attachment_bytes(ghost, false).await.unwrap(), None);

    // One named by a question (through a snapshot), one by a plain message, one by none.
    let named = s.put_attachment(&upload(b"named", "bb")).await.unwrap();
    let orphan = s.put_attachment(&upload(b"orphan", "cc")).await.unwrap();
    let chat = s
        .create_chat(NewChat {
            title: "pics".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let sess = session(chat.id);
    s.create_session(&sess).await.unwrap();
    let question = Message {
        id: MessageId::new(),
        chat_id: chat.id,
        role: Role::User,
        content: "what is this?".into(),
        attachments: vec![named.id],
        turn_number: 1,
        created_at: time::now(),
        task_id: None,
    };
    s.save_session(&sess, std::slice::from_ref(&question))
        .await
        .unwrap();
    s.insert_message(NewMessage {
        chat_id: chat.id,
        role: Role::User,
        content: "and this".into(),
        attachments: vec![first.id],
        turn_number: 2,
    })
    .await
    .unwrap();
    // Not yet old enough: nothing goes.
    let an_hour_ago = time::now() - std::time::Duration::from_secs(3600);
    assert_eq!(s.delete_orphan_attachments(an_hour_ago).await.unwrap(), 0);
    let later = time::now() + std::time::Duration::from_secs(1);
    assert_eq!(s.delete_orphan_attachments(later).await.unwrap(), 1);
    assert_eq!(s.get_attachment(orphan.id).await.unwrap(), None);
    assert!(s.get_attachment(named.id).await.unwrap().is_some());
    assert!(s.get_attachment(first.id).await.unwrap().is_some());
    assert_eq!(
        s.list_messages(chat.id).await.unwrap()[0].attachments,
        vec![named.id]
    );

    assert_eq!(s.image_description("bb", "eyes").await.unwrap(), None);
    s.put_image_description("bb", "eyes", "a red square")
        .await
        .unwrap();
    s.put_image_description("bb", "eyes", "a red square, again")
        .await
        .unwrap();
    assert_eq!(
        s.image_description("bb", "eyes").await.unwrap().as_deref(),
        Some("a red square, again")
    );
    assert_eq!(s.image_description("bb", "other").await.unwrap(), None);
}

async fn traces_are_found_by_kind_tool_status_duration_and_words(kind: Kind) {
    use baton_store::{search_words, StatusFilter, TraceFilter};
    let db = TestDb::new(kind).await;
    let s = db.store();
    let chat = s
        .create_chat(NewChat {
            title: "find".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let chat = chat.id;
    let t0 = time::now();
    let at = |i: i64| t0 + std::time::Duration::from_millis(i as u64);
    let mut traces = vec![];
    for i in 0..40i64 {
        let mut t = fixtures::trace(chat, i / 4 + 1, at(i));
        t.tool_name = ["read_file", "grep", "list_dir", "bash"][i as usize % 4].into();
        t.input = json!({ "path": format!("src/module_{i}.rs"), "note": if i == 17 { "Kubernetes deployment" } else { "plain" } });
        t.latency_ms = Some(i * 10);
        if i % 10 == 3 {
            t.outcome = TraceOutcome::Error;
            t.error = Some("permission denied".into());
        }
        if i == 21 {
            t.outcome = TraceOutcome::Timeout;
        }
        traces.push(t);
    }
    let mut model = fixtures::running_llm_trace(chat, 11);
    model.tool_name = "mock-1".into();
    traces.push(model.clone());
    s.insert_traces(&traces).await.unwrap();
    // Another chat's traces never show.
    let other = s
        .create_chat(NewChat {
            title: "other".into(),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await
        .unwrap();
    let mut theirs = fixtures::trace(other.id, 1, at(0));
    theirs.input = json!({ "note": "Kubernetes" });
    s.insert_trace(&theirs).await.unwrap();

    let find = |f: TraceFilter| {
        let s = s.clone();
        async move {
            s.search_traces(TraceScope::Chat(chat), &f, 500, None)
                .await
                .unwrap()
        }
    };
    let ids = |v: &[baton_core::Trace]| v.iter().map(|t| t.id).collect::<Vec<_>>();
    let failed = find(TraceFilter {
        status: Some(StatusFilter::Failed),
        ..Default::default()
    })
    .await;
    assert_eq!(
        failed
            .iter()
            .map(|t| t.latency_ms.unwrap())
            .collect::<Vec<_>>(),
        [30, 130, 210, 230, 330],
        "errors and timeouts, in order"
    );
    let running = find(TraceFilter {
        status: Some(StatusFilter::Running),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&running), [model.id]);
    let models = find(TraceFilter {
        kind: Some(baton_core::TraceKind::Llm),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&models), [model.id]);
    let greps = find(TraceFilter {
        tool: Some("grep".into()),
        min_latency_ms: Some(200),
        ..Default::default()
    })
    .await;
    assert_eq!(
        greps
            .iter()
            .map(|t| t.latency_ms.unwrap())
            .collect::<Vec<_>>(),
        [210, 250, 290, 330, 370]
    );
    // Words: whole or the start of one, in input, output or error; all of them must match.
    let words = |q: &str| TraceFilter {
        words: search_words(q),
        ..Default::default()
    };
    assert_eq!(find(words("kubernetes")).await.len(), 1);
    assert_eq!(
        find(words("KUBER")).await.len(),
        1,
        "a word's start, any case"
    );
    assert_eq!(find(words("kubernetes deploy")).await.len(), 1);
    assert!(find(words("kubernetes nowhere")).await.is_empty());
    assert_eq!(
        find(words("permission")).await.len(),
        4,
        "the error text counts"
    );
    assert_eq!(find(words("module_17")).await.len(), 1);
    assert!(
        find(words("note")).await.is_empty(),
        "a key every call has is not a word of any"
    );
    assert_eq!(
        search_words("a'); DROP TABLE x; --"),
        ["a", "drop", "table", "x"]
    );
    assert!(
        find(words("\"*")).await.len() == 41,
        "no words: no narrowing"
    );
    // A running call is found by its words (the word index keeps finished ones only).
    assert_eq!(ids(&find(words("mock")).await), [model.id]);
    // A finished call's output is searchable.
    s.finish_trace(
        model.id,
        &TraceFinish {
            output: Some(json!({ "text": "the answer mentions zanzibar" })),
            outcome: Some(TraceOutcome::Ok),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&find(words("zanzibar")).await), [model.id]);
    assert_eq!(
        ids(&find(words("mock")).await),
        [model.id],
        "once, finished"
    );
    // A word after a line break in the JSON text is a word of its own.
    let mut lines = fixtures::trace(chat, 30, at(100));
    lines.output = Some(json!("first line\nsecondline\tthird"));
    s.insert_trace(&lines).await.unwrap();
    assert_eq!(ids(&find(words("secondline third")).await), [lines.id]);
    // Keyset pages of a filtered list: the same traces, once each, in order.
    let all = find(words("plain")).await;
    assert_eq!(all.len(), 39);
    let mut paged = vec![];
    let mut after = None;
    loop {
        let page = s
            .search_traces(TraceScope::Chat(chat), &words("plain"), 7, after)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(TraceCursor {
            turn_number: last.turn_number,
            started_at: last.started_at,
            id: last.id,
        });
        paged.extend(page);
    }
    assert_eq!(ids(&paged), ids(&all));
}

/// An agent's writes as they come when it starts and ends quickly: queued one after the
/// other, then one awaited. Whether the store groups them (and writes each row once) or
/// they are made one by one, the rows read back are the same. On one thread, so the
/// store's writer runs only once all of them wait: they are one group.
#[tokio::test]
async fn sqlite_an_agents_writes_grouped_leave_what_they_leave_one_by_one() {
    an_agents_writes_grouped_leave_what_they_leave_one_by_one(Kind::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_agents_writes_grouped_leave_what_they_leave_one_by_one() {
    an_agents_writes_grouped_leave_what_they_leave_one_by_one(Kind::Postgres).await;
}

async fn an_agents_writes_grouped_leave_what_they_leave_one_by_one(kind: Kind) {
    use baton_core::{AgentStatus, JournalEntry};
    let run = queued_run("both ways", baton_core::RunStatus::Running);
    let mut s = session(ChatId::new());
    (s.chat_id, s.run_id) = (None, Some(run.id));
    let mut saved = s.clone();
    saved.status = SessionStatus::Completed;
    saved.turn_number = 1;
    saved.state = json!({ "history": ["q", "a"], "result": "done" });
    saved.updated_at = s.created_at + std::time::Duration::from_millis(7);
    let mut t = fixtures::running_llm_trace(ChatId::new(), 1);
    (t.chat_id, t.session_id, t.run_id) = (None, Some(s.id), Some(run.id));
    t.meta = json!({ "attempt": 1, "model": "mock-1" });
    let finish = TraceFinish {
        output: Some(json!({ "text": "done" })),
        // As the tracer finishes a call: its time and latency given.
        finished_at: Some(t.started_at + std::time::Duration::from_micros(2_500)),
        latency_ms: Some(3),
        input_tokens: Some(12),
        output_tokens: Some(3),
        cost_usd: Some(0.25),
        outcome: Some(TraceOutcome::Ok),
        meta: Some(json!({ "attempt": 2, "cached": true })),
        ..Default::default()
    };
    let started = JournalEntry {
        run_id: run.id,
        key: "k1".into(),
        seq: 1,
        label: Some("first".into()),
        phase: None,
        status: AgentStatus::Running,
        session_id: Some(s.id),
        prompt: "q".into(),
        result: None,
        error: None,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        cached: false,
        started_at: s.created_at,
        finished_at: None,
        epoch: 0,
    };
    let mut done = started.clone();
    done.status = AgentStatus::Completed;
    done.result = Some(json!("done"));
    done.finished_at = Some(saved.updated_at);
    done.input_tokens = 12;

    let grouped = TestDb::new(kind).await;
    let one_by_one = TestDb::new(kind).await;
    let (g, o) = (grouped.store(), one_by_one.store());
    for store in [&g, &o] {
        store.create_run(&run).await.unwrap();
    }
    // Nothing here yields before the awaited write, so the queued writes wait together.
    g.queue(Queued::Journal(started.clone())).await;
    g.queue(Queued::Session(s.clone())).await;
    g.queue(Queued::Trace(t.clone())).await;
    g.queue(Queued::Finish(t.id, finish.clone())).await;
    g.queue(Queued::Snapshot(saved.clone(), vec![])).await;
    g.put_journal(&done).await.unwrap();

    o.put_journal(&started).await.unwrap();
    o.create_session(&s).await.unwrap();
    o.insert_trace(&t).await.unwrap();
    o.finish_trace(t.id, &finish).await.unwrap();
    o.save_session(&saved, &[]).await.unwrap();
    o.put_journal(&done).await.unwrap();

    let read = |store: std::sync::Arc<dyn Store>| async move {
        (
            store.get_session(s.id).await.unwrap().unwrap(),
            store.get_trace(t.id).await.unwrap().unwrap(),
            store.list_journal(run.id).await.unwrap(),
        )
    };
    let (gs, gt, gj) = read(g.clone()).await;
    let (os, ot, oj) = read(o.clone()).await;
    assert_eq!(gs, os);
    assert_eq!(gt, ot);
    assert_eq!(gj, oj);
    assert_eq!(gt.latency_ms, Some(3));
    assert_eq!(
        gt.meta,
        json!({ "attempt": 2, "model": "mock-1", "cached": true })
    );
    assert_eq!(gs.status, SessionStatus::Completed);
    assert_eq!(gj.len(), 1);
    assert_eq!(gj[0].status, AgentStatus::Completed);
}
