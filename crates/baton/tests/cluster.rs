//! Several instances on one real Postgres database: every run has one holder, control
//! reaches it from any instance, a dead or stalled holder's work is taken over without
//! any agent paid twice, and queued runs spread over the instances with room.
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton_mock_model::{MockModel, Reply};
use baton_testkit::{Kind, TestDb};
use common::{
    as_env, get_at, mock_settings, post_at, prompts, short_leases, spawn_baton, TestServer,
};
use serde_json::{json, Value};

fn settings(mock: &MockModel, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut s = mock_settings(mock, "openai");
    s.extend(short_leases());
    s.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    s
}

fn counts(prompts: &[String]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for p in prompts {
        *c.entry(p.clone()).or_insert(0) += 1;
    }
    c
}

const FAN_OUT: &str = "const items = Array.from({ length: N }, (_, i) => `item ${i}`)\nreturn await parallel(items.map(x => () => agent(x, { label: x })))";

fn fan_out(n: usize) -> String {
    FAN_OUT.replace("N", &n.to_string())
}

async fn start_run(s: &TestServer, script: &str, concurrency: u64) -> String {
    let (status, v) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": script, "concurrency": concurrency, "auto_approve": true }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["run_id"].as_str().unwrap().to_string()
}

async fn wait_run(s: &TestServer, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = s.get(&format!("/api/runs/{id}")).await;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn completed(v: &Value) -> usize {
    v["agents"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["status"] == "completed").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starting_while_another_runs_takes_nothing_over() {
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("done").slow(Duration::from_millis(120)));
    let a = TestServer::start_owned(Kind::Postgres, settings(&mock, &[])).await;
    let id = start_run(&a, &fan_out(20), 4).await;
    let v = wait_run(&a, &id, "some agents", |v| completed(v) >= 4).await;
    let a_id = a.get("/api/health").await.1["instance"].clone();
    assert_eq!(v["lease"]["owner"], a_id, "{v}");

    let b = TestServer::join(&a, &settings(&mock, &[])).await;
    let health = b.get("/api/health").await.1;
    assert_ne!(health["instance"], a_id);
    let live: Vec<Value> = health["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert!(
        live.contains(&a_id) && live.contains(&health["instance"]),
        "both instances are live: {health}"
    );

    let done = wait_run(&b, &id, "the run to complete", |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["result"].as_array().unwrap().len(), 20);
    let c = counts(&prompts(&mock));
    assert_eq!(c.len(), 20, "{c:?}");
    assert!(
        c.values().all(|n| *n == 1),
        "every agent requested exactly once: {c:?}"
    );
    assert_eq!(done["lease"]["owner"], a_id, "it ran where it started");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_sent_to_another_instance_acts_on_the_run_at_once() {
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("done").slow(Duration::from_millis(300)));
    let a = TestServer::start_owned(Kind::Postgres, settings(&mock, &[])).await;
    let id = start_run(&a, &fan_out(16), 2).await;
    wait_run(&a, &id, "agents in flight", |v| {
        v["agents"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let b = TestServer::join(&a, &settings(&mock, &[])).await;

    let t = Instant::now();
    let (status, paused) = b
        .post_json(&format!("/api/runs/{id}/pause"), &json!({}))
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(
        paused["status"], "paused",
        "the answer is the outcome: {paused}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    // Agents already asking finish; no new one starts while paused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_pause = mock.count();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(mock.count(), at_pause, "no agent starts while paused");

    let (status, resumed) = b
        .post_json(&format!("/api/runs/{id}/resume"), &json!({}))
        .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "running", "{resumed}");
    wait_run(&a, &id, "more agents", |v| completed(v) > at_pause).await;

    // Cancelled from the CLI pointed at B.
    let t = Instant::now();
    let (b_base, run) = (b.base.clone(), id.clone());
    let out = tokio::task::spawn_blocking(move || {
        common::baton_command(std::path::Path::new("."))
            .args(["cancel", &run, "--server", &b_base])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.starts_with(&id) && printed.contains("cancelled"),
        "{printed}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    let at_cancel = mock.count();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        mock.count(),
        at_cancel,
        "no model request after the cancel settled"
    );
    let (status, again) = b
        .post_json(&format!("/api/runs/{id}/cancel"), &json!({}))
        .await;
    common::assert_error(status, &again, 409, "conflict");
    let view = a.get(&format!("/api/runs/{id}")).await.1;
    assert!(
        view["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] != "running"),
        "{view}"
    );

    // Held for approval on A, approved through B: some instance with room runs it.
    let (status, held) = a
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": "return await agent('approved one')", "concurrency": 64 }),
        )
        .await;
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["status"], "awaiting_approval");
    let held = held["run_id"].as_str().unwrap().to_string();
    let (status, approved) = b
        .post_json(&format!("/api/runs/{held}/approve"), &json!({}))
        .await;
    assert_eq!(status, 200, "{approved}");
    let done = wait_run(&a, &held, "the approved run", |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["result"], "done");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_run_is_finished_by_another_without_paying_twice() {
    let db = TestDb::new(Kind::Postgres).await;
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("result of the item").slow(Duration::from_millis(150)));
    let work = tempfile::tempdir().unwrap();
    let mut env = as_env(&settings(&mock, &[]));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    let (a, a_addr) = spawn_baton(work.path(), &env);
    let (b, b_addr) = spawn_baton(work.path(), &env);
    let started = post_at(
        &a_addr,
        "/api/workflows/runs",
        json!({ "script": fan_out(20), "concurrency": 4, "auto_approve": true }),
    )
    .await;
    let id = started["run_id"].as_str().unwrap().to_string();
    let get = |addr: String| {
        let path = format!("/api/runs/{id}");
        async move { get_at(&addr, &path).await }
    };
    let (done_before, holder): (Vec<String>, Value) = loop {
        let v = get(a_addr.clone()).await;
        if completed(&v) >= 8 {
            break (
                v["agents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["status"] == "completed")
                    .map(|a| a["label"].as_str().unwrap().to_string())
                    .collect(),
                v["lease"]["owner"].clone(),
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Either instance may have claimed the run (both heard it was queued): the holder dies.
    let health = get_at(&a_addr, "/api/health").await;
    let (mut dead, mut alive, alive_addr) = if health["instance"] == holder {
        (a, b, b_addr)
    } else {
        (b, a, a_addr)
    };
    dead.kill().unwrap(); // SIGKILL
    dead.wait().unwrap();
    let killed = Instant::now();
    let before = mock.count();
    let deadline = killed + Duration::from_secs(20);
    let mut first_new = None;
    let view = loop {
        if first_new.is_none() && mock.count() > before + 4 {
            first_new = Some(killed.elapsed());
        }
        let v = get(alive_addr.clone()).await;
        if v["status"] == "completed" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after the kill: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Lease TTL 2 s, sweep 0.25 s: taken over well before the default TTL would allow.
    let took = first_new.unwrap_or_else(|| killed.elapsed());
    assert!(took < Duration::from_secs(5), "takeover took {took:?}");
    assert_eq!(view["result"].as_array().unwrap().len(), 20);
    let c = counts(&prompts(&mock));
    for label in &done_before {
        assert_eq!(
            c[label], 1,
            "{label} completed before the kill; asked again"
        );
    }
    assert_eq!(c.len(), 20);
    assert!(
        c.values().all(|n| *n <= 2),
        "an interrupted agent is asked again once at most: {c:?}"
    );
    let log = view["log"].as_array().unwrap();
    assert!(
        log.iter().any(|l| l
            .as_str()
            .unwrap_or_default()
            .starts_with("taken over by instance")),
        "the takeover is a line in the run's log: {log:?}"
    );
    assert!(
        view["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "completed"),
        "{view}"
    );
    assert_ne!(view["lease"]["owner"], holder);
    alive.kill().unwrap();
    alive.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_holder_loses_its_run_and_its_late_writes_are_refused() {
    let mock = MockModel::start().await;
    // Longer than the lease (~3.5 s, in six chunks): A's agents answer after B has
    // taken the run over.
    mock.set_default(Reply::text("slow answer").slow(Duration::from_millis(600)));
    let a = TestServer::start_owned(Kind::Postgres, settings(&mock, &[])).await;
    let id = start_run(&a, &fan_out(3), 3).await;
    while mock.count() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A stalls: its renewals stop while its agents keep going. B's agents answer at
    // once, so B finishes the run before A's answers arrive.
    a.state.workflows.hold_renewals(true);
    mock.set_default(Reply::text("fresh answer"));
    let b = TestServer::join(&a, &settings(&mock, &[])).await;
    let b_id = b.get("/api/health").await.1["instance"].clone();
    let done = wait_run(&b, &id, "the run to complete on B", |v| {
        v["status"] == "completed" && v["lease"]["owner"] == b_id
    })
    .await;
    let fresh = json!(["fresh answer", "fresh answer", "fresh answer"]);
    assert_eq!(done["result"], fresh);
    assert!(mock.count() == 6, "A's three, then B's three");
    // A's agents answer after that: their journal entries are refused, A stops the run
    // it lost, and nothing of B's is overwritten.
    tokio::time::timeout(Duration::from_secs(10), a.state.workflows.idle())
        .await
        .expect("A stops the run it lost");
    let journal = a
        .state
        .workflows
        .journal(id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(journal.len(), 3);
    assert!(
        journal.iter().all(|e| e.epoch == 2
            && e.status == baton_core::AgentStatus::Completed
            && e.result == Some(json!("fresh answer"))),
        "{journal:?}"
    );
    let run = a.get(&format!("/api/runs/{id}")).await.1;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["result"], fresh, "A's late state did not overwrite B's");
    assert_eq!(run["lease"]["owner"], b_id);
    assert_eq!(mock.count(), 6, "A asked nothing more after losing the run");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_runs_spread_over_instances_with_room() {
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("ok").slow(Duration::from_millis(250)));
    let cap = [("limits.concurrent_runs", "2")];
    let a = TestServer::start_owned(Kind::Postgres, settings(&mock, &cap)).await;
    let b = TestServer::join(&a, &settings(&mock, &cap)).await;
    let c = TestServer::join(&a, &settings(&mock, &cap)).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(start_run(&a, &format!("return await agent('run {n}')"), 1).await);
    }
    let mut owners = HashMap::new();
    for id in &ids {
        let v = wait_run(&a, id, "every run", |v| v["status"] == "completed").await;
        *owners
            .entry(v["lease"]["owner"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(owners.len(), 3, "every instance ran some: {owners:?}");
    assert!(owners.values().all(|n| *n <= 6), "{owners:?}");
    let c_ = counts(&prompts(&mock));
    assert_eq!(c_.len(), 12);
    assert!(c_.values().all(|n| *n == 1), "no run ran twice: {c_:?}");
    c.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_its_runs_over_at_once() {
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("done").slow(Duration::from_millis(150)));
    // A TTL far longer than the test: only the release can explain a quick takeover.
    let long = [
        ("cluster.lease_ttl_s", "60"),
        ("cluster.lease_renew_s", "5"),
        ("cluster.sweep_s", "0.25"),
    ];
    let a = TestServer::start_owned(Kind::Postgres, settings(&mock, &long)).await;
    let id = start_run(&a, &fan_out(12), 2).await;
    let a_id = a.get("/api/health").await.1["instance"].clone();
    wait_run(&a, &id, "A to run it", |v| {
        v["lease"]["owner"] == a_id && completed(v) >= 2
    })
    .await;
    // B starts once A holds the run (started together, either could have claimed it).
    let b = TestServer::join(&a, &settings(&mock, &long)).await;
    a.shutdown().await;
    let stopped = Instant::now();
    let done = wait_run(&b, &id, "B to finish it", |v| v["status"] == "completed").await;
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopped.elapsed()
    );
    assert_ne!(done["lease"]["owner"], a_id);
    assert!(counts(&prompts(&mock)).values().all(|n| *n <= 2));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_one_sqlite_file_is_refused_with_the_holder_named() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("data").join("baton.db");
    let env = vec![(
        "BATON_DATABASE__URL".to_string(),
        format!("sqlite://{}", db.display()),
    )];
    let (mut first, addr) = spawn_baton(work.path(), &env);
    let mut second = common::baton_command(work.path());
    second.args(["serve", "--bind", "127.0.0.1:0"]);
    for (k, v) in &env {
        second.env(k, v);
    }
    let out = second.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&db.display().to_string())
            && err.contains(&format!("pid {}", first.id()))
            && err.contains("in use by another Baton process"),
        "{err}"
    );
    // The first is untouched.
    let health: Value = reqwest::get(format!("http://{addr}/api/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    first.kill().unwrap();
    first.wait().unwrap();
}

async fn session_status(s: &TestServer, id: &str) -> Value {
    s.get(&format!("/api/sessions/{id}")).await.1["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_answering_on_one_instance_stays_there_and_cancels_from_another() {
    let mock = MockModel::start().await;
    mock.set_default(
        Reply::text("one two three four five six seven eight").slow(Duration::from_millis(300)),
    );
    let a = TestServer::start_owned(Kind::Postgres, settings(&mock, &[])).await;
    let chat = a.create_chat("team").await;
    let (status, posted) = a
        .post_json(
            &format!("/api/chats/{}/messages", chat["id"].as_str().unwrap()),
            &json!({ "content": "[fast] tell me slowly" }),
        )
        .await;
    assert_eq!(status, 202, "{posted}");
    let session = posted["session_id"].as_str().unwrap().to_string();
    while mock.count() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = TestServer::join(&a, &settings(&mock, &[])).await;
    // Longer than B's first sweeps: B leaves A's live session alone.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(mock.count(), 1, "B did not answer A's question again");
    assert_eq!(session_status(&b, &session).await, "running");
    let a_id = a.get("/api/health").await.1["instance"].clone();
    assert_eq!(
        b.get(&format!("/api/sessions/{session}")).await.1["lease"]["owner"],
        a_id
    );

    let t = Instant::now();
    let (status, body) = b
        .post_json(&format!("/api/sessions/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while session_status(&a, &session).await == "running" {
        assert!(Instant::now() < deadline, "not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(session_status(&a, &session).await, "cancelled");
    let (status, again) = b
        .post_json(&format!("/api/sessions/{session}/cancel"), &json!({}))
        .await;
    common::assert_error(status, &again, 409, "conflict");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.count(), 1);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_chat_is_answered_once_by_another() {
    let db = TestDb::new(Kind::Postgres).await;
    let mock = MockModel::start().await;
    mock.push(Reply::tool("read_file", json!({ "path": "notes.txt" })));
    // The call the kill interrupts.
    mock.push(
        Reply::text("this answer never completes because its instance dies")
            .slow(Duration::from_millis(400)),
    );
    mock.push(Reply::text("The notes say: ship it."));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "ship it\n").unwrap();
    let mut env = as_env(&settings(&mock, &[]));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    let (mut a, a_addr) = spawn_baton(work.path(), &env);
    let (mut b, b_addr) = spawn_baton(work.path(), &env);
    let chat = post_at(
        &a_addr,
        "/api/chats",
        json!({ "title": "crash", "workspace": work.path() }),
    )
    .await;
    let chat = chat["id"].as_str().unwrap().to_string();
    let posted = post_at(
        &a_addr,
        &format!("/api/chats/{chat}/messages"),
        json!({ "content": "What do the notes say?" }),
    )
    .await;
    let session = posted["session_id"].as_str().unwrap().to_string();
    while mock.count() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.kill().unwrap();
    a.wait().unwrap();
    let get = |path: String| {
        let addr = b_addr.clone();
        async move { get_at(&addr, &path).await }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get(format!("/api/sessions/{session}")).await;
        if v["status"] == "idle" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not finish the answer: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let msgs = get(format!("/api/chats/{chat}/messages")).await;
    let texts: Vec<&str> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["What do the notes say?", "The notes say: ship it."]);
    assert_eq!(mock.count(), 3, "the finished tool call was not repeated");
    b.kill().unwrap();
    b.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_dead_instances_run_ends_it_without_running_it_again() {
    let db = TestDb::new(Kind::Postgres).await;
    let mock = MockModel::start().await;
    mock.set_default(Reply::text("slow").slow(Duration::from_millis(300)));
    let work = tempfile::tempdir().unwrap();
    let mut env = as_env(&settings(&mock, &[]));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    let (mut a, a_addr) = spawn_baton(work.path(), &env);
    let started = post_at(
        &a_addr,
        "/api/workflows/runs",
        json!({ "script": fan_out(12), "concurrency": 3, "auto_approve": true }),
    )
    .await;
    let id = started["run_id"].as_str().unwrap().to_string();
    while mock.count() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut b, b_addr) = spawn_baton(work.path(), &env);
    a.kill().unwrap(); // SIGKILL, agents in flight
    a.wait().unwrap();
    let killed = Instant::now();
    let at_kill = mock.count();
    let cancelled = post_at(&b_addr, &format!("/api/runs/{id}/cancel"), json!({})).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    // Bounded by the lease (2 s) and a sweep, not by the run's remaining work.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        mock.count() <= at_kill + 3,
        "the cancelled run was not run again: {} requests after the kill",
        mock.count() - at_kill
    );
    let view = get_at(&b_addr, &format!("/api/runs/{id}")).await;
    assert_eq!(view["status"], "cancelled");
    assert!(
        view["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] != "running"),
        "nothing of it is left running: {view}"
    );
    b.kill().unwrap();
    b.wait().unwrap();
}

/// Three background tasks on two instances; the instance running the first is killed.
/// The other takes its tasks over from their snapshots: every task ends once, completed,
/// and no finished tool call is made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_tasks_are_finished_once_by_another() {
    let db = TestDb::new(Kind::Postgres).await;
    let mock = MockModel::start().await;
    mock.rule(
        "task work",
        Reply::tool("read_file", json!({ "path": "notes.txt" })),
    );
    mock.rule(
        "ship it",
        Reply::text("The notes say: ship it. ".repeat(4)).slow(Duration::from_millis(150)),
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "ship it\n").unwrap();
    let mut env = as_env(&settings(&mock, &[]));
    env.push(("BATON_DATABASE__URL".into(), db.url.clone()));
    let (a, a_addr) = spawn_baton(work.path(), &env);
    let (b, b_addr) = spawn_baton(work.path(), &env);
    let mut procs = vec![(a, a_addr.clone()), (b, b_addr.clone())];
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = post_at(
            &a_addr,
            "/api/tasks",
            json!({ "prompt": format!("task work {i}"), "workspace": work.path() }),
        )
        .await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    // Every task has read its file and is streaming its answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    let owner = loop {
        let t = get_at(&a_addr, &format!("/api/tasks/{}", ids[0])).await;
        let reads = mock.requests().len();
        if t["status"] == "running" && reads >= 6 {
            break t["lease"]["owner"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the tasks did not get going: {t}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut victim = None;
    for (i, (_, addr)) in procs.iter().enumerate() {
        if get_at(addr, "/api/health").await["instance"] == owner.as_str() {
            victim = Some(i);
        }
    }
    let (mut dead, _) = procs.remove(victim.expect("the owner is one of the two"));
    dead.kill().unwrap();
    dead.wait().unwrap();
    let (mut alive, addr) = procs.remove(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let tasks = loop {
        let page = get_at(&addr, "/api/tasks").await;
        let items = page["items"].as_array().unwrap().clone();
        if items.iter().all(|t| t["status"] == "completed") {
            break items;
        }
        if Instant::now() >= deadline {
            for entry in std::fs::read_dir(work.path()).unwrap().flatten() {
                if entry.file_name().to_string_lossy().ends_with(".log") {
                    let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = log
                        .lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("task"))
                        .collect();
                    eprintln!("== {:?}\n{}", entry.file_name(), tail.join("\n"));
                }
            }
            panic!("not all tasks ended: {page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        assert!(t["result"]
            .as_str()
            .unwrap()
            .starts_with("The notes say: ship it."));
        let sid = t["session_id"].as_str().unwrap();
        let traces = get_at(&addr, &format!("/api/sessions/{sid}/traces")).await;
        let reads = traces["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["tool_name"] == "read_file")
            .count();
        assert_eq!(
            reads, 1,
            "task {}: the finished read was not made again",
            t["id"]
        );
    }
    alive.kill().unwrap();
    alive.wait().unwrap();
}
