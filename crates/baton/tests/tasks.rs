//! Background tasks through the scripted model and the real server, on both backends: a
//! chat's agent spawns tasks and keeps answering, then collects their results; limits,
//! depth and permissions answer as tool errors; people start, list and cancel tasks.
mod common;

use std::time::Duration;

use baton_mock_model::{MockModel, Reply};
use baton_testkit::Kind;
use common::{assert_error, mock_settings, TestServer};
use serde_json::{json, Value};

on_both!(
    a_chat_agent_spawns_tasks_keeps_answering_and_collects_them,
    ended_tasks_are_told_once_at_a_turn_boundary_or_by_waking_the_agent,
    with_auto_continue_off_a_notice_waits_for_the_next_question,
    a_running_task_reports_its_progress,
    limits_depth_and_permissions_are_clear_tool_errors,
    people_start_list_and_cancel_tasks,
);

async fn ask(s: &TestServer, chat: &str, text: &str) -> Value {
    let (status, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": text }),
        )
        .await;
    assert_eq!(status, 202, "{posted}");
    let session = posted["session_id"].as_str().unwrap().to_string();
    s.wait_for(&format!("/api/sessions/{session}"), |v| {
        v["status"].as_str().is_some_and(|st| st != "running")
    })
    .await
}

async fn new_chat(s: &TestServer) -> String {
    s.create_chat("with helpers").await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A chat whose agent is not woken by its tasks' notices.
async fn quiet_chat(s: &TestServer) -> String {
    let (status, chat) = s
        .post_json(
            "/api/chats",
            &json!({ "title": "quiet", "auto_continue": false }),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    assert_eq!(chat["auto_continue"], false);
    chat["id"].as_str().unwrap().to_string()
}

async fn messages(s: &TestServer, chat: &str) -> Vec<Value> {
    let (_, page) = s.get(&format!("/api/chats/{chat}/messages")).await;
    page["items"].as_array().unwrap().clone()
}

/// The chat's messages as (role, content) once `done` holds for them.
async fn messages_where(
    s: &TestServer,
    chat: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<(String, String)> {
    let page = s
        .wait_for(&format!("/api/chats/{chat}/messages"), |v| {
            v["items"].as_array().is_some_and(|items| done(items))
        })
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn tasks_where(s: &TestServer, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    s.wait_for("/api/tasks", |v| {
        v["items"].as_array().is_some_and(|items| done(items))
    })
    .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn a_chat_agent_spawns_tasks_keeps_answering_and_collects_them(kind: Kind) {
    let mock = MockModel::start().await;
    for name in ["A", "B", "C"] {
        mock.rule(
            &format!("start {name}"),
            Reply::tool(
                "spawn_subagent",
                json!({ "prompt": format!("task work {name}"), "label": format!("crate {name}") }),
            ),
        );
        mock.rule(
            &format!("task work {name}"),
            Reply::text(format!("findings {name}")),
        );
        mock.rule(
            &format!("findings {name}\""),
            Reply::text(format!("{name} is done")),
        );
    }
    mock.rule(
        "\"queued\"",
        Reply::text("started it; ask me anything meanwhile"),
    );
    // A task that ends while the agent works is told at its next turn boundary.
    mock.rule("status=\"completed\"", Reply::text("noted"));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    // Its agent is asked again and again: notices must not wake it in between.
    let chat = quiet_chat(&s).await;
    let mut ws = s.ws().await;
    ws.subscribe(&format!("chat:{chat}"), None).await;
    let mut tasks_ws = s.ws().await;
    tasks_ws.subscribe("tasks", None).await;
    assert_eq!(tasks_ws.next().await["type"], "snapshot");

    let mut sessions = Vec::new();
    for name in ["A", "B", "C"] {
        let session = ask(&s, &chat, &format!("start {name} please")).await;
        assert_eq!(session["status"], "idle", "the agent answered: {session}");
        sessions.push(session["id"].as_str().unwrap().to_string());
    }
    let (_, messages) = s.get(&format!("/api/chats/{chat}/messages")).await;
    let answers: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| ["started it; ask me anything meanwhile", "noted"].contains(a)),
        "{answers:?}"
    );

    let tasks = tasks_where(&s, |items| {
        items.len() == 3
            && items
                .iter()
                .all(|t| t["status"] == "completed" && t["notified_at"].is_string())
    })
    .await;
    for t in &tasks {
        let label = t["label"].as_str().unwrap();
        let name = label.trim_start_matches("crate ");
        assert_eq!(t["result"], format!("findings {name}"), "{t}");
        assert_eq!(t["chat_id"], chat.as_str());
        assert_eq!(t["depth"], 1);
        assert!(sessions.contains(&t["parent_session_id"].as_str().unwrap().to_string()));
        // Its own session holds its traces.
        let sid = t["session_id"].as_str().unwrap();
        let (_, traces) = s.get(&format!("/api/sessions/{sid}/traces")).await;
        assert_eq!(traces["items"][0]["kind"], "llm", "{traces}");
    }

    // Collected through the tool: the answer is the task's result.
    let a = tasks.iter().find(|t| t["label"] == "crate A").unwrap();
    mock.push(Reply::tool(
        "subagent_result",
        json!({ "task_id": a["id"], "wait_s": 5 }),
    ));
    let session = ask(&s, &chat, "what did A find?").await;
    assert_eq!(session["status"], "idle");
    let (_, messages) = s.get(&format!("/api/chats/{chat}/messages")).await;
    let last = messages["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"], "A is done");
    let notices: Vec<&Value> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "notice")
        .collect();
    let mut told_tasks: Vec<&str> = notices
        .iter()
        .map(|m| m["task_id"].as_str().unwrap())
        .collect();
    told_tasks.sort();
    let mut all_tasks: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    all_tasks.sort();
    assert_eq!(told_tasks, all_tasks, "each task told once");

    // The chat was told of each task once; the tasks topic saw each one's life.
    let mut told = Vec::new();
    while told.len() < 3 {
        let f = ws.next().await;
        if f["type"] == "notification" {
            told.push(f["task"]["id"].as_str().unwrap().to_string());
        }
    }
    told.sort();
    told.dedup();
    assert_eq!(told.len(), 3);
    let mut phases = std::collections::HashMap::<String, Vec<String>>::new();
    while phases.values().map(Vec::len).sum::<usize>() < 9 {
        let f = tasks_ws.next().await;
        if f["type"] == "task_event" {
            phases
                .entry(f["task"]["id"].as_str().unwrap().into())
                .or_default()
                .push(f["phase"].as_str().unwrap().into());
        }
    }
    for p in phases.values() {
        assert_eq!(p, &["created", "started", "finished"]);
    }
}

async fn ended_tasks_are_told_once_at_a_turn_boundary_or_by_waking_the_agent(kind: Kind) {
    let mock = MockModel::start().await;
    // Busy: the agent spawns a quick task, then takes a while asking for a list_dir; the
    // task ends meanwhile and is told before the agent's next model call.
    mock.rule(
        "spawn quick",
        Reply::tool(
            "spawn_subagent",
            json!({ "prompt": "quick work", "label": "quick" }),
        ),
    );
    mock.rule("quick work", Reply::text("quick result"));
    mock.rule(
        "\"queued\"",
        Reply::tool("list_dir", json!({ "path": "." })).slow(Duration::from_millis(400)),
    );
    mock.rule(
        "status=\"completed\"",
        Reply::text("noted the task's result"),
    );
    mock.set_default(Reply::text("looked around"));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let chat = new_chat(&s).await;
    let mut ws = s.ws().await;
    ws.subscribe(&format!("chat:{chat}"), None).await;
    ask(&s, &chat, "spawn quick").await;
    let got = messages_where(&s, &chat, |m| m.len() >= 3).await;
    let roles: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["user", "notice", "assistant"], "{got:?}");
    assert!(
        got[1].1.starts_with("Background task “quick” completed."),
        "{got:?}"
    );
    assert!(got[1].1.contains("quick result"));
    assert_eq!(got[2].1, "noted the task's result");
    let all = messages(&s, &chat).await;
    let tasks = tasks_where(&s, |t| t.len() == 1 && t[0]["notified_at"].is_string()).await;
    assert_eq!(all[1]["task_id"], tasks[0]["id"]);
    // The model read it once, as a user turn after the tool's result.
    let told: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.body.to_string().contains("task-notification"))
        .collect();
    let first = &told[0].body["messages"];
    let last = &first[first.as_array().unwrap().len() - 1];
    assert_eq!(last["role"], "user");
    assert!(last["content"].as_str().unwrap().contains("quick result"));

    // Idle: the task ends after the answer; its notice wakes the agent.
    mock.rule(
        "spawn slow",
        Reply::tool(
            "spawn_subagent",
            json!({ "prompt": "slow work", "label": "slow" }),
        ),
    );
    mock.rule(
        "slow work",
        Reply::text("slow result ".repeat(8)).slow(Duration::from_millis(60)),
    );
    mock.push(Reply::tool(
        "spawn_subagent",
        json!({ "prompt": "slow work", "label": "slow" }),
    ));
    mock.push(Reply::text("started it"));
    let session = ask(&s, &chat, "spawn slow").await;
    assert_eq!(session["status"], "idle");
    let got = messages_where(&s, &chat, |m| m.len() >= 7).await;
    let roles: Vec<&str> = got[3..].iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "notice", "assistant"],
        "{got:?}"
    );
    assert_eq!(got[4].1, "started it");
    assert!(got[5].1.starts_with("Background task “slow” completed."));
    assert_eq!(got[6].1, "noted the task's result");
    let session_id = session["id"].as_str().unwrap();
    s.wait_for(&format!("/api/sessions/{session_id}"), |v| {
        v["status"] == "idle"
    })
    .await;

    // Once each: nothing more is told, and each task's notification frame came once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&s, &chat).await.len(), 7);
    let mut frames = Vec::new();
    while let Some(f) = ws.next_within(Duration::from_millis(300)).await {
        if f["type"] == "notification" {
            frames.push(f["task"]["label"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(frames, ["quick", "slow"]);
}

async fn with_auto_continue_off_a_notice_waits_for_the_next_question(kind: Kind) {
    let mock = MockModel::start().await;
    mock.rule(
        "spawn it",
        Reply::tool(
            "spawn_subagent",
            json!({ "prompt": "the work", "label": "job" }),
        ),
    );
    mock.rule("the work", Reply::text("job result"));
    mock.rule("\"queued\"", Reply::text("started"));
    mock.set_default(Reply::text("answered"));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let chat = new_chat(&s).await;
    let (status, changed) = s
        .patch_json(
            &format!("/api/chats/{chat}"),
            &json!({ "auto_continue": false }),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["auto_continue"], false);
    assert_eq!(changed["title"], "with helpers");
    ask(&s, &chat, "spawn it").await;
    let got = messages_where(&s, &chat, |m| m.len() >= 3).await;
    assert_eq!(got[2].0, "notice");
    let requests = mock.requests().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.requests().len(), requests, "the agent was not woken");
    assert_eq!(messages(&s, &chat).await.len(), 3);
    // The next question's call carries the notice before it.
    ask(&s, &chat, "what came of it?").await;
    let last = mock.requests().pop().unwrap();
    let msgs = last.body["messages"].as_array().unwrap().clone();
    let n = msgs.len();
    assert!(
        msgs[n - 2]["content"]
            .as_str()
            .unwrap()
            .contains("job result"),
        "{msgs:?}"
    );
    assert_eq!(msgs[n - 1]["content"], "what came of it?");

    // Bad settings are refused and change nothing.
    for (body, code) in [
        (json!({ "auto_continue": "yes" }), "invalid_body"),
        (json!({ "title": "   " }), "invalid_title"),
        (json!({ "title": "a\u{7}b" }), "invalid_title"),
        (json!({ "title": "x".repeat(201) }), "invalid_title"),
        (json!({ "colour": "red" }), "invalid_body"),
    ] {
        let (status, err) = s.patch_json(&format!("/api/chats/{chat}"), &body).await;
        assert_error(status, &err, 400, code);
    }
    let (_, now) = s.get(&format!("/api/chats/{chat}")).await;
    assert_eq!(
        (now["title"].as_str(), now["auto_continue"].as_bool()),
        (Some("with helpers"), Some(false))
    );
    let (status, err) = s
        .patch_json(
            &format!("/api/chats/{}", baton_core::ChatId::new()),
            &json!({ "auto_continue": true }),
        )
        .await;
    assert_error(status, &err, 404, "not_found");
}

async fn limits_depth_and_permissions_are_clear_tool_errors(kind: Kind) {
    let mock = MockModel::start().await;
    mock.rule(
        "spawn one",
        Reply::tool(
            "spawn_subagent",
            json!({ "prompt": "task work X", "label": "X" }),
        ),
    );
    mock.rule(
        "spawn a writer",
        Reply::tool(
            "spawn_subagent",
            json!({ "prompt": "task work W", "tools": ["write_file"] }),
        ),
    );
    // The background agent tries to go one level deeper.
    mock.rule(
        "task work X",
        Reply::tool("spawn_subagent", json!({ "prompt": "deeper" })),
    );
    mock.rule("may not start more", Reply::text("fine, no deeper"));
    mock.rule("\"queued\"", Reply::text("started"));
    mock.set_default(Reply::text("noted"));
    let mut settings = mock_settings(&mock, "openai");
    settings.push(("limits.tasks_per_session".into(), "1".into()));
    let s = TestServer::start_owned(kind, settings).await;
    let chat = quiet_chat(&s).await;
    ask(&s, &chat, "spawn one").await;
    ask(&s, &chat, "spawn one").await;
    let (_, traces) = s.get(&format!("/api/chats/{chat}/traces")).await;
    let spawns: Vec<&Value> = traces["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tool_name"] == "spawn_subagent")
        .collect();
    assert_eq!(spawns.len(), 2);
    assert_eq!(spawns[0]["outcome"], "ok");
    assert_eq!(spawns[1]["outcome"], "error");
    assert!(
        spawns[1]["output"]
            .as_str()
            .unwrap()
            .contains("limits.tasks_per_session"),
        "{}",
        spawns[1]
    );

    // A read-only chat cannot hand a task a tool it does not have.
    let other = quiet_chat(&s).await;
    ask(&s, &other, "spawn a writer").await;
    let (_, traces) = s.get(&format!("/api/chats/{other}/traces")).await;
    let spawn = traces["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool_name"] == "spawn_subagent")
        .unwrap()
        .clone();
    assert_eq!(spawn["outcome"], "error");
    assert!(
        spawn["output"]
            .as_str()
            .unwrap()
            .contains("'write_file' is not one of your tools"),
        "{spawn}"
    );

    // The one task ran; it was not offered spawning, and its attempt was an error.
    let tasks = tasks_where(&s, |items| {
        items.len() == 1 && items[0]["status"] == "completed"
    })
    .await;
    assert_eq!(tasks[0]["result"], "fine, no deeper");
    assert_eq!(
        tasks[0]["capabilities"],
        json!({ "write": false, "exec": false })
    );
    let task_request = mock
        .requests()
        .into_iter()
        .find(|r| r.body["messages"][1]["content"] == "task work X")
        .unwrap();
    let offered: Vec<&str> = task_request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(!offered.contains(&"spawn_subagent"), "{offered:?}");
    assert!(offered.contains(&"subagent_status"), "{offered:?}");
    let sid = tasks[0]["session_id"].as_str().unwrap();
    let (_, traces) = s.get(&format!("/api/sessions/{sid}/traces")).await;
    let deeper = traces["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool_name"] == "spawn_subagent")
        .unwrap()
        .clone();
    assert_eq!(deeper["outcome"], "error");
    let (_, all) = s.get("/api/tasks").await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        1,
        "nothing deeper was created"
    );
}

async fn people_start_list_and_cancel_tasks(kind: Kind) {
    let mock = MockModel::start().await;
    mock.rule(
        "slow job",
        Reply::text("a long answer ".repeat(50)).slow(Duration::from_millis(100)),
    );
    mock.rule("quick job", Reply::text("quick answer"));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let (status, slow) = s
        .post_json(
            "/api/tasks",
            &json!({ "prompt": "slow job", "label": "slow" }),
        )
        .await;
    assert_eq!(status, 201, "{slow}");
    assert_eq!(slow["status"], "queued");
    assert_eq!(slow["depth"], 0);
    let id = slow["id"].as_str().unwrap().to_string();
    s.wait_for(&format!("/api/tasks/{id}"), |t| t["status"] == "running")
        .await;
    let (status, _) = s
        .post_json(&format!("/api/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let t = s
        .wait_for(&format!("/api/tasks/{id}"), |t| t["status"] == "cancelled")
        .await;
    assert!(t["finished_at"].is_string());
    let (status, err) = s
        .post_json(&format!("/api/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_error(status, &err, 409, "conflict");

    let (status, quick) = s
        .post_json("/api/tasks", &json!({ "prompt": "quick job" }))
        .await;
    assert_eq!(status, 201);
    assert_eq!(quick["label"], "quick job", "the prompt's start labels it");
    let qid = quick["id"].as_str().unwrap();
    let done = s
        .wait_for(&format!("/api/tasks/{qid}"), |t| t["status"] == "completed")
        .await;
    assert_eq!(done["result"], "quick answer");
    assert!(done["progress"]["turns"].as_u64().unwrap() >= 1, "{done}");

    let (_, page) = s.get("/api/tasks?status=cancelled").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = s.get("/api/tasks?limit=1").await;
    assert_eq!(page["items"][0]["id"], qid);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, page) = s.get(&format!("/api/tasks?limit=1&cursor={next}")).await;
    assert_eq!(page["items"][0]["id"], id.as_str());

    // Bad input is refused and creates nothing.
    for (body, want, code) in [
        (json!({ "prompt": "   " }), 400, "invalid_request"),
        (
            json!({ "prompt": "x", "model": "nope" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "prompt": "x", "workspace": "/definitely/not/here" }),
            400,
            "invalid_workspace",
        ),
        (
            json!({ "prompt": "x", "workspace": "/", "capabilities": { "exec": true } }),
            403,
            "capability_not_allowed",
        ),
        (json!({ "prompt": "x", "extra": 1 }), 400, "invalid_body"),
    ] {
        let (status, err) = s.post_json("/api/tasks", &body).await;
        assert_error(status, &err, want, code);
    }
    let (_, page) = s.get("/api/tasks").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (status, err) = s
        .get(&format!("/api/tasks/{}", baton_core::TaskId::new()))
        .await;
    assert_error(status, &err, 404, "not_found");
}

async fn a_running_task_reports_its_progress(kind: Kind) {
    let mock = MockModel::start().await;
    mock.rule(
        "look then write",
        Reply::tool("list_dir", json!({ "path": "." })),
    );
    mock.after_tool_result(
        Reply::text("a long answer ".repeat(40)).slow(Duration::from_millis(500)),
    );
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let mut ws = s.ws().await;
    ws.subscribe("tasks", None).await;
    assert_eq!(ws.next().await["type"], "snapshot");
    let (status, task) = s
        .post_json(
            "/api/tasks",
            &json!({ "prompt": "look then write", "label": "watch me" }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let progress = loop {
        let f = ws.next().await;
        if f["type"] == "task_event" && f["phase"] == "progress" {
            break f;
        }
        assert_ne!(
            f["phase"], "finished",
            "it ended before telling its progress: {f}"
        );
    };
    assert_eq!(progress["task"]["id"], task["id"]);
    assert_eq!(progress["task"]["status"], "running");
    let p = &progress["task"]["progress"];
    assert!(p["turns"].as_u64().unwrap() >= 1, "{p}");
    assert_eq!(p["tool_calls"], 1, "{p}");
    assert_eq!(p["last_tool"], "list_dir");
    let id = task["id"].as_str().unwrap();
    s.post_json(&format!("/api/tasks/{id}/cancel"), &json!({}))
        .await;
}
