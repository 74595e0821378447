//! `kill -9` in the middle of an answer, then a restart on the same database: the
//! session resumes by itself from its last snapshot and the chat ends with one answer.
mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use baton_mock_model::{MockModel, Reply};
use baton_testkit::{Kind, TestDb};
use common::{as_env, get_at as get, mock_settings, post_at as post, spawn_baton};
use serde_json::{json, Value};

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

async fn killed_mid_answer_resumes_and_answers_once(kind: Kind) {
    let db = TestDb::new(kind).await;
    let mock = MockModel::start().await;
    mock.push(Reply::tool("read_file", json!({ "path": "notes.txt" })));
    // The call the kill interrupts: it would take 5 s.
    mock.push(
        Reply::text("this answer never completes because the server dies")
            .slow(Duration::from_millis(500)),
    );
    mock.push(Reply::text("The notes say: ship it."));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "ship it\n").unwrap();
    let mut env = as_env(&mock_settings(&mock, "deepseek"));
    env.extend(as_env(&common::short_leases()));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));

    let (mut first, addr) = spawn_baton(work.path(), &env);
    let chat = post(
        &addr,
        "/api/chats",
        json!({ "title": "crash", "workspace": work.path() }),
    )
    .await;
    let chat = chat["id"].as_str().unwrap().to_string();
    let posted = post(
        &addr,
        &format!("/api/chats/{chat}/messages"),
        json!({ "content": "What do the notes say?" }),
    )
    .await;
    let session = posted["session_id"].as_str().unwrap().to_string();
    wait_until("the second model call is streaming", || mock.count() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill9(&mut first);

    let (mut second, addr) = spawn_baton(work.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let v = get(&addr, &format!("/api/sessions/{session}")).await;
        if v["status"] != "running" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the session did not finish after restart: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(view["status"], "idle", "{view}");

    let msgs = get(&addr, &format!("/api/chats/{chat}/messages")).await;
    let msgs: Vec<(String, String)> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        msgs,
        [
            ("user".to_string(), "What do the notes say?".to_string()),
            (
                "assistant".to_string(),
                "The notes say: ship it.".to_string()
            )
        ]
    );
    let traces = get(&addr, &format!("/api/chats/{chat}/traces")).await;
    let traces = traces["items"].as_array().unwrap();
    assert!(
        traces.iter().all(|t| t["outcome"] != "running"),
        "no call is left running"
    );
    let reads = traces
        .iter()
        .filter(|t| t["tool_name"] == "read_file")
        .count();
    assert_eq!(reads, 1, "the completed tool call was not run again");
    let interrupted: Vec<&Value> = traces
        .iter()
        .filter(|t| t["outcome"] == "cancelled")
        .collect();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["kind"], "llm");
    assert!(interrupted[0]["error"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
    assert_eq!(interrupted[0]["turn_number"], 2);
    assert_eq!(
        mock.count(),
        3,
        "the interrupted model call was made again, once"
    );
    let last_turn = traces.last().unwrap();
    assert_eq!(
        (
            last_turn["turn_number"].as_i64(),
            last_turn["outcome"].as_str()
        ),
        (Some(2), Some("ok"))
    );
    kill9(&mut second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_mid_answer_resumes_and_answers_once() {
    killed_mid_answer_resumes_and_answers_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_answer_resumes_and_answers_once() {
    killed_mid_answer_resumes_and_answers_once(Kind::Postgres).await;
}

/// A background task `kill -9`ed mid-call is claimed again after the restart and goes on
/// from its snapshot: it ends once, and its finished tool call is not made again.
async fn killed_mid_task_resumes_and_ends_once(kind: Kind) {
    let db = TestDb::new(kind).await;
    let mock = MockModel::start().await;
    mock.push(Reply::tool("read_file", json!({ "path": "notes.txt" })));
    mock.push(
        Reply::text("this answer never completes because the server dies")
            .slow(Duration::from_millis(500)),
    );
    mock.push(Reply::text("The notes say: ship it."));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "ship it\n").unwrap();
    let mut env = as_env(&mock_settings(&mock, "deepseek"));
    env.extend(as_env(&common::short_leases()));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));

    let (mut first, addr) = spawn_baton(work.path(), &env);
    let task = post(
        &addr,
        "/api/tasks",
        json!({ "prompt": "What do the notes say?", "workspace": work.path() }),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_string();
    wait_until("the task's second model call is streaming", || {
        mock.count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill9(&mut first);

    let (mut second, addr) = spawn_baton(work.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let t = get(&addr, &format!("/api/tasks/{id}")).await;
        if t["status"] != "running" && t["status"] != "queued" {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the task did not end after restart: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"], "The notes say: ship it.");
    let session = done["session_id"].as_str().unwrap();
    let traces = get(&addr, &format!("/api/sessions/{session}/traces")).await;
    let traces = traces["items"].as_array().unwrap();
    let reads = traces
        .iter()
        .filter(|t| t["tool_name"] == "read_file")
        .count();
    assert_eq!(reads, 1, "the completed tool call was not run again");
    assert!(traces.iter().all(|t| t["outcome"] != "running"));
    assert_eq!(
        mock.count(),
        3,
        "the interrupted model call was made again, once"
    );
    let all = get(&addr, "/api/tasks").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    kill9(&mut second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_mid_task_resumes_and_ends_once() {
    killed_mid_task_resumes_and_ends_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_task_resumes_and_ends_once() {
    killed_mid_task_resumes_and_ends_once(Kind::Postgres).await;
}

/// A chat's agent spawned two tasks — one mid-call, one queued behind it — when the
/// server was `kill -9`ed: after the restart both end once, each is told to the chat once,
/// and the notices wake the agent, which answers them.
async fn killed_with_a_chats_tasks_in_flight_tells_each_once(kind: Kind) {
    let db = TestDb::new(kind).await;
    let mock = MockModel::start().await;
    for n in ["one", "two"] {
        mock.rule(
            &format!("spawn {n}"),
            Reply::tool(
                "spawn_subagent",
                json!({ "prompt": format!("job {n}"), "label": n }),
            ),
        );
    }
    mock.rule("\"queued\"", Reply::text("started"));
    mock.rule(
        "job one",
        Reply::tool("read_file", json!({ "path": "notes.txt" })),
    );
    // The call the kill interrupts (and that is made again, whole, after the restart).
    mock.rule(
        "ship it",
        Reply::text("result one ".repeat(8)).slow(Duration::from_millis(150)),
    );
    mock.rule("job two", Reply::text("result two"));
    mock.rule("status=\"completed\"", Reply::text("noted"));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "ship it\n").unwrap();
    let mut env = as_env(&mock_settings(&mock, "deepseek"));
    env.extend(as_env(&common::short_leases()));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    // One task at a time: the second waits in the queue.
    env.push(("BATON_LIMITS__TASKS_PER_INSTANCE".into(), "1".into()));

    let (mut first, addr) = spawn_baton(work.path(), &env);
    let chat = post(
        &addr,
        "/api/chats",
        json!({ "title": "crash", "workspace": work.path() }),
    )
    .await;
    let chat = chat["id"].as_str().unwrap().to_string();
    let messages = |addr: String| {
        let chat = chat.clone();
        async move {
            get(&addr, &format!("/api/chats/{chat}/messages")).await["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    for n in ["one", "two"] {
        post(
            &addr,
            &format!("/api/chats/{chat}/messages"),
            json!({ "content": format!("spawn {n}") }),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while messages(addr.clone()).await.last().unwrap()["role"] != "assistant" {
            assert!(Instant::now() < deadline, "the agent did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_until("task one's answer is streaming", || {
        mock.requests()
            .iter()
            .any(|r| r.body.to_string().contains("ship it"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = get(&addr, "/api/tasks").await;
    let statuses: Vec<&str> = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "running"], "{before}");
    kill9(&mut first);

    let (mut second, addr) = spawn_baton(work.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let tasks = get(&addr, "/api/tasks").await;
        let items = tasks["items"].as_array().unwrap().clone();
        let msgs = messages(addr.clone()).await;
        let settled = items.iter().all(|t| t["notified_at"].is_string())
            && msgs.last().is_some_and(|m| m["role"] == "assistant");
        if settled {
            break (items, msgs);
        }
        assert!(
            Instant::now() < deadline,
            "not settled after restart: {tasks}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (tasks, _) = done;
    assert!(
        tasks.iter().all(|t| t["status"] == "completed"),
        "{tasks:?}"
    );
    // Nothing more arrives: each task was told once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let msgs = messages(addr.clone()).await;
    let mut told: Vec<&str> = msgs
        .iter()
        .filter(|m| m["role"] == "notice")
        .map(|m| m["task_id"].as_str().unwrap())
        .collect();
    told.sort();
    let mut ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(told, ids, "{msgs:?}");
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(&roles[..4], ["user", "assistant", "user", "assistant"]);
    assert_eq!(roles.last(), Some(&"assistant"));
    assert!(
        msgs.iter()
            .filter(|m| m["role"] == "assistant")
            .skip(2)
            .all(|m| m["content"] == "noted"),
        "{msgs:?}"
    );
    let one = tasks.iter().find(|t| t["label"] == "one").unwrap();
    let session = one["session_id"].as_str().unwrap();
    let traces = get(&addr, &format!("/api/sessions/{session}/traces")).await;
    let traces = traces["items"].as_array().unwrap();
    let reads = traces
        .iter()
        .filter(|t| t["tool_name"] == "read_file")
        .count();
    assert_eq!(reads, 1, "the finished tool call was not made again");
    assert!(
        traces.iter().any(|t| t["outcome"] == "cancelled"),
        "the interrupted call is closed: {traces:?}"
    );
    kill9(&mut second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_with_a_chats_tasks_in_flight_tells_each_once() {
    killed_with_a_chats_tasks_in_flight_tells_each_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_with_a_chats_tasks_in_flight_tells_each_once() {
    killed_with_a_chats_tasks_in_flight_tells_each_once(Kind::Postgres).await;
}
