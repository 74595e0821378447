//! Workflows over the API, against the scripted model, on both backends; and a run
//! that survives `kill -9`.
mod common;

use std::time::{Duration, Instant};

use baton_mock_model::{MockModel, Reply};
use baton_testkit::{Kind, TestDb};
use common::{as_env, assert_error, mock_settings, spawn_baton, TestServer};
use serde_json::{json, Value};

on_both!(
    workflows_and_runs_over_the_api,
    a_builtin_workflow_runs_after_approval,
    a_large_runs_agents_are_paged
);

async fn run_done(s: &TestServer, id: &str) -> Value {
    s.wait_for(&format!("/api/runs/{id}"), |v| {
        matches!(
            v["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    })
    .await
}

/// A run's view counts every agent but carries only its first 200, and only the newest
/// 200 lines of its log; the rest of each is paged, and a cursor the server did not issue
/// is refused.
async fn a_large_runs_agents_are_paged(kind: Kind) {
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("done"));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let script = "export const meta = { name: 'wide', phases: [{ title: 'Work' }] }\nphase('Work')\nfor (let i = 0; i < 450; i++) log('line ' + i)\nreturn (await parallel(Array.from({ length: 230 }, (_, i) => () => agent('task ' + i)))).length";
    let (status, started) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": script, "auto_approve": true, "concurrency": 64 }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["run_id"].as_str().unwrap().to_string();
    let view = run_done(&s, &id).await;
    assert_eq!(view["result"], 230, "{}", view["error"]);
    let typed: baton_core::RunView = serde_json::from_value(view.clone()).unwrap();
    assert_eq!((typed.agents.len(), typed.agents_total), (200, 230));
    assert_eq!(typed.phases[0].agents.values().sum::<u64>(), 230);
    // The phase says when it started and, all its agents done, when it finished: a client
    // runs a large run's phase clock from these, without its agents.
    let work = &typed.phases[0];
    let (started, finished) = (work.started_at.unwrap(), work.finished_at.unwrap());
    assert_eq!(
        work.elapsed_ms,
        (finished - started).num_milliseconds(),
        "{work:?}"
    );
    assert!(typed.run.started_at.unwrap() <= started && finished <= typed.run.finished_at.unwrap());
    let orders: Vec<i64> = typed.agents.iter().map(|a| a.order).collect();
    assert_eq!(orders, (1..=200).collect::<Vec<_>>());
    let next = typed.agents_next.expect("more agents follow");

    let mut keys: Vec<String> = typed.agents.iter().map(|a| a.key.clone()).collect();
    let mut cursor = Some(next);
    while let Some(c) = cursor {
        let (status, page) = s
            .get(&format!("/api/runs/{id}/agents?limit=20&cursor={c}"))
            .await;
        assert_eq!(status, 200, "{page}");
        let page: baton_core::Page<baton_core::AgentView> = serde_json::from_value(page).unwrap();
        keys.extend(page.items.iter().map(|a| a.key.clone()));
        cursor = page.next_cursor;
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 230, "every agent once");
    let (status, first) = s.get(&format!("/api/runs/{id}/agents?limit=5")).await;
    assert_eq!((status, first["next_cursor"].as_str()), (200, Some("5")));

    for bad in ["abc", "-1", "99999999999", "231", "1.5"] {
        let (status, err) = s.get(&format!("/api/runs/{id}/agents?cursor={bad}")).await;
        assert_error(status, &err, 400, "invalid_cursor");
    }
    let (status, err) = s.get(&format!("/api/runs/{id}/agents?limit=0")).await;
    assert_error(status, &err, 400, "invalid_limit");
    let (status, err) = s
        .get(&format!("/api/runs/{}/agents", baton_core::RunId::new()))
        .await;
    assert_error(status, &err, 404, "not_found");
    let lines = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let want = |r: std::ops::Range<usize>| r.map(|i| format!("line {i}")).collect::<Vec<_>>();
    assert_eq!(
        (view["log_total"].as_u64(), view["log_next"].as_str()),
        (Some(450), Some("250"))
    );
    assert_eq!(lines(&view["log"]), want(250..450));
    let (status, page) = s
        .get(&format!("/api/runs/{id}/log?cursor=250&limit=100"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(lines(&page["items"]), want(150..250));
    assert_eq!(page["next_cursor"], "150");
    let (_, page) = s
        .get(&format!("/api/runs/{id}/log?cursor=150&limit=500"))
        .await;
    assert_eq!(lines(&page["items"]), want(0..150));
    assert!(page["next_cursor"].is_null());
    for bad in ["451", "x", "-3", "99999999999"] {
        let (status, err) = s.get(&format!("/api/runs/{id}/log?cursor={bad}")).await;
        assert_error(status, &err, 400, "invalid_cursor");
    }
    // Nothing a bad request touched changed: the run reads back the same.
    let (_, again) = s.get(&format!("/api/runs/{id}")).await;
    assert_eq!(again["agents_total"], 230);
}

async fn workflows_and_runs_over_the_api(kind: Kind) {
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("done"));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let (status, list) = s.get("/api/workflows").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for n in [
        "deep-research",
        "multi-review",
        "find-issues",
        "plan-verify",
        "bounty-hunt",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let (status, def) = s.get("/api/workflows/review-code").await;
    assert_eq!(status, 200);
    assert_eq!(
        (def["name"].as_str(), def["source"].as_str()),
        (Some("multi-review"), Some("builtin"))
    );
    assert!(def["script"]
        .as_str()
        .unwrap()
        .contains("export const meta"));
    let (status, err) = s.get("/api/workflows/nope").await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.get("/api/workflows/Bad%20Name").await;
    assert_error(status, &err, 400, "invalid_request");

    let (status, err) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": "const a = 1\nconst b = a +* 2" }),
        )
        .await;
    assert_error(status, &err, 422, "invalid_script");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("line 2"),
        "{err}"
    );
    let (status, err) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": "import x from 'y'" }),
        )
        .await;
    assert_error(status, &err, 422, "invalid_script");
    let (status, err) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": "return 1", "concurrency": 0 }),
        )
        .await;
    assert_error(status, &err, 400, "invalid_request");
    let (status, err) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": "return 1", "extra": true }),
        )
        .await;
    assert_error(status, &err, 400, "invalid_body");

    let script = "export const meta = { name: 'two', phases: [{ title: 'Work' }] }\nphase('Work')\nlog('go')\nreturn await parallel([() => agent('x', { label: 'first' }), () => agent('y', { label: 'second' })])";
    let (status, started) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": script, "auto_approve": true }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["run_id"].as_str().unwrap().to_string();
    let mut ws = s.ws().await;
    ws.subscribe(&format!("run:{id}"), Some(0)).await;
    let view = run_done(&s, &id).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["result"], json!(["done", "done"]));
    assert_eq!(view["log"], json!(["go"]));
    let phase = &view["phases"][0];
    assert_eq!(
        (
            phase["title"].as_str(),
            phase["agents"]["completed"].as_u64()
        ),
        (Some("Work"), Some(2))
    );
    let agents = view["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2);
    assert!(agents
        .iter()
        .all(|a| a["session_id"].is_string() && a["cached"] == false));
    let mut events = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    loop {
        let f = ws.next().await;
        kinds.insert(f["type"].as_str().unwrap().to_string());
        if f["type"] != "run_event" {
            continue;
        }
        if f["event"] == "agent_finish" {
            // What the run's view shows of an ended agent, without its session's state.
            assert_eq!(f["status"], "completed", "{f}");
            assert!(f["output_tokens"].as_i64().unwrap() > 0, "{f}");
            assert!(f["session_id"].is_string(), "{f}");
        }
        let e = f["event"].as_str().unwrap().to_string();
        let last = e == "status" && f["status"] == "completed";
        events.push(e);
        if last {
            break;
        }
    }
    for e in ["status", "phase", "log", "agent_start", "agent_finish"] {
        assert!(events.iter().any(|x| x == e), "{e} in {events:?}");
    }
    // The agents' own calls ride on the run's topic too; their session states do not.
    assert!(kinds.contains("tool_trace"), "{kinds:?}");
    assert!(!kinds.contains("session_state"), "{kinds:?}");
    // Drill down: an agent's session and its traces.
    let session = agents[0]["session_id"].as_str().unwrap();
    let (status, sess) = s.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(status, 200);
    assert_eq!(sess["run_id"].as_str().unwrap(), id);
    let (status, traces) = s
        .get(&format!("/api/sessions/{session}/traces?limit=1"))
        .await;
    assert_eq!(status, 200);
    let items = traces["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["session_id"].as_str().unwrap(), session);
    assert_eq!(items[0]["kind"], "llm");
    let (status, err) = s
        .get(&format!(
            "/api/sessions/{}/traces",
            baton_core::SessionId::new()
        ))
        .await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s
        .get(&format!("/api/sessions/{session}/traces?cursor=%3D%3D"))
        .await;
    assert_error(status, &err, 400, "invalid_cursor");

    let (status, err) = s
        .post_json(&format!("/api/runs/{id}/cancel"), &json!({}))
        .await;
    assert_error(status, &err, 409, "conflict");
    let (status, err) = s
        .post_json(
            &format!("/api/runs/{}/approve", baton_core::RunId::new()),
            &json!({}),
        )
        .await;
    assert_error(status, &err, 404, "not_found");
    let (_, runs) = s.get("/api/runs?status=completed").await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 1);
    let (status, err) = s.get("/api/runs?cursor=xyz").await;
    assert_error(status, &err, 400, "invalid_cursor");
    let (status, err) = s.get("/api/runs?status=exploded").await;
    assert_error(status, &err, 400, "invalid_query");
}

async fn a_builtin_workflow_runs_after_approval(kind: Kind) {
    let mock = MockModel::start().await;
    mock.rule("Break the question", Reply::tool("StructuredOutput", json!({ "angles": [
        { "title": "storage", "focus": "where data lives" }, { "title": "api", "focus": "what is exposed" }] })));
    mock.rule(
        "Research one angle",
        Reply::tool(
            "StructuredOutput",
            json!({ "findings": [
        { "claim": "it uses SQLite", "evidence": "src/db.rs:1" }] }),
        ),
    );
    mock.rule(
        "skeptical reviewer",
        Reply::tool(
            "StructuredOutput",
            json!({ "verdicts": [
        { "claim": "it uses SQLite", "verdict": "supported" }] }),
        ),
    );
    mock.rule(
        "Answer the question using only",
        Reply::text("It stores data in SQLite (src/db.rs:1)."),
    );
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let (status, started) = s
        .post_json(
            "/api/workflows/deep-research/runs",
            // More concurrency than the default is asked up front: approved before it starts.
            &json!({ "args": { "question": "How is data stored?" }, "concurrency": 16 }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["status"], "awaiting_approval");
    let id = started["run_id"].as_str().unwrap().to_string();
    let (_, view) = s.get(&format!("/api/runs/{id}")).await;
    assert_eq!(
        view["phases"].as_array().unwrap().len(),
        4,
        "declared phases show before anything runs"
    );
    assert_eq!(mock.count(), 0);
    let (status, _) = s
        .post_json(&format!("/api/runs/{id}/approve"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let view = run_done(&s, &id).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        view["result"]["report"],
        "It stores data in SQLite (src/db.rs:1)."
    );
    assert_eq!(view["result"]["verified_claims"], 2);
    assert_eq!(
        view["agents"].as_array().unwrap().len(),
        6,
        "plan, 2 researchers, 2 checks, synthesis"
    );
}

async fn killed_mid_fan_out_finishes_without_repeating_agents(kind: Kind) {
    let db = TestDb::new(kind).await;
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("result of the item").slow(Duration::from_millis(150)));
    let work = tempfile::tempdir().unwrap();
    let mut env = as_env(&mock_settings(&mock, "openai"));
    env.extend(as_env(&common::short_leases()));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    let (mut first, addr) = spawn_baton(work.path(), &env);
    let http = reqwest::Client::new();
    let script = "const items = Array.from({ length: 20 }, (_, i) => `item ${i}`)\nreturn await parallel(items.map(x => () => agent(x, { label: x })))";
    let started: Value = http
        .post(format!("http://{addr}/api/workflows/runs"))
        .json(&json!({ "script": script, "concurrency": 4, "auto_approve": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["run_id"].as_str().unwrap().to_string();
    let completed_before = loop {
        let v: Value = http
            .get(format!("http://{addr}/api/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done: Vec<String> = v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "completed")
            .map(|a| a["label"].as_str().unwrap().to_string())
            .collect();
        if done.len() >= 8 {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill().unwrap();
    first.wait().unwrap();
    let requests_before = mock.count();

    let (mut second, addr) = spawn_baton(work.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(15);
    let view = loop {
        let v: Value = http
            .get(format!("http://{addr}/api/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "completed" {
            break v;
        }
        if Instant::now() > deadline {
            for e in std::fs::read_dir(work.path()).unwrap().flatten() {
                if e.file_name().to_string_lossy().ends_with(".log") {
                    eprintln!(
                        "== {}\n{}",
                        e.path().display(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    );
                }
            }
            panic!("the run did not finish after restart: {}", v["status"]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(view["result"].as_array().unwrap().len(), 20);
    assert!(view["result"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r == "result of the item"));
    let after = common::prompts(&mock)[requests_before..].to_vec();
    for label in &completed_before {
        assert!(
            !after.contains(label),
            "{label} had completed before the kill but was asked again"
        );
    }
    let cached = view["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["cached"] == true)
        .count();
    assert!(
        cached >= completed_before.len(),
        "{cached} cached < {}",
        completed_before.len()
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_mid_fan_out_finishes_without_repeating_agents() {
    killed_mid_fan_out_finishes_without_repeating_agents(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_fan_out_finishes_without_repeating_agents() {
    killed_mid_fan_out_finishes_without_repeating_agents(Kind::Postgres).await;
}

/// `agent()` resolves only once its journal entry is committed: the server is `kill -9`ed
/// the moment the script has gone on to its next agent, and the first one's `completed`
/// entry, with its result, is in the database.
async fn an_awaited_journal_entry_survives_a_kill_right_after(kind: Kind) {
    let db = TestDb::new(kind).await;
    let mock = MockModel::start().await;
    mock.rule("the first question", Reply::text("first answer"));
    // Still streaming when the server dies.
    mock.set_default(Reply::text("never finished").slow(Duration::from_secs(30)));
    let work = tempfile::tempdir().unwrap();
    let mut env = as_env(&mock_settings(&mock, "openai"));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    let (mut server, addr) = spawn_baton(work.path(), &env);
    let script = "const a = await agent('the first question', { label: 'first' })\nreturn await agent(`next, after ${a}`, { label: 'second' })";
    let started: Value = reqwest::Client::new()
        .post(format!("http://{addr}/api/workflows/runs"))
        .json(&json!({ "script": script, "auto_approve": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["run_id"].as_str().unwrap().to_string();
    // The second request can only be made after the first `agent()` resolved.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !common::prompts(&mock)
        .iter()
        .any(|p| p.contains("after first answer"))
    {
        assert!(Instant::now() < deadline, "the second agent never asked");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let run = baton_core::RunId(id.parse().unwrap());
    let journal = db.store().list_journal(run).await.unwrap();
    let first = journal
        .iter()
        .find(|e| e.label.as_deref() == Some("first"))
        .expect("the first agent is journaled");
    assert_eq!(first.status, baton_core::AgentStatus::Completed);
    assert_eq!(first.result, Some(json!("first answer")));
}

#[tokio::test]
async fn sqlite_an_awaited_journal_entry_survives_a_kill_right_after() {
    an_awaited_journal_entry_survives_a_kill_right_after(Kind::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_awaited_journal_entry_survives_a_kill_right_after() {
    an_awaited_journal_entry_survives_a_kill_right_after(Kind::Postgres).await;
}
