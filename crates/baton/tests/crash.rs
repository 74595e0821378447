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
