//! Chat messages run real agent sessions against the scripted model server: the real
//! provider clients, tools, traces, frames and the REST views, on both backends.
mod common;

use std::time::Duration;

use baton_mock_model::{MockModel, Reply};
use baton_testkit::Kind;
use common::{mock_settings, TestServer};
use serde_json::{json, Value};

on_both!(
    a_question_that_needs_files_runs_tools_traced_live,
    the_anthropic_protocol_works_end_to_end,
    an_unconfigured_model_fails_the_turn_clearly,
    a_second_message_while_answering_is_409,
    every_question_of_a_chat_gets_its_tools_and_an_answer,
    cancel_stops_a_session_and_closes_its_calls,
    bad_message_input_is_rejected,
    a_long_session_pages_through_its_traces,
    capabilities_are_granted_per_chat,
    traces_are_found_by_filters_and_words,
);

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "pub fn answer() -> u32 { 42 }\n",
    )
    .unwrap();
    dir
}

async fn chat_on(s: &TestServer, ws: &tempfile::TempDir) -> String {
    let (status, chat) = s
        .post_json(
            "/api/chats",
            &json!({ "title": "q", "workspace": ws.path().to_str().unwrap() }),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    chat["id"].as_str().unwrap().to_string()
}

async fn session_done(s: &TestServer, session: &str) -> Value {
    s.wait_for(&format!("/api/sessions/{session}"), |v| {
        v["status"].as_str().is_some_and(|st| st != "running")
    })
    .await
}

async fn a_question_that_needs_files_runs_tools_traced_live(kind: Kind) {
    let mock = MockModel::start().await;
    mock.push(Reply::tool("list_dir", json!({ "path": "src" })));
    mock.push(Reply::tool("read_file", json!({ "path": "src/lib.rs" })));
    mock.push(Reply::text("answer() returns 42 (src/lib.rs line 1)."));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "deepseek")).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let mut ws = s.ws().await;
    ws.subscribe(&format!("chat:{chat}"), None).await;
    assert_eq!(ws.next().await["type"], "snapshot");

    let (status, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "What does answer() return?" }),
        )
        .await;
    assert_eq!(status, 202, "{posted}");
    let session = posted["session_id"].as_str().unwrap().to_string();

    // Frames until the session settles.
    let mut frames = Vec::new();
    loop {
        let f = ws.next().await;
        let done = f["type"] == "session_state" && f["session"]["status"] == "idle";
        frames.push(f);
        if done {
            break;
        }
    }
    let seqs: Vec<i64> = frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "seq strictly increases: {seqs:?}"
    );
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"message"), "{kinds:?}");
    assert!(kinds.contains(&"message_delta"), "{kinds:?}");
    let traces: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "tool_trace")
        .collect();
    assert_eq!(
        traces.len(),
        10,
        "5 calls (3 model, 2 tools), each a start and a finish"
    );
    for t in &traces {
        let id = &t["trace"]["id"];
        let phase = t["phase"].as_str().unwrap();
        let start = traces
            .iter()
            .position(|x| x["trace"]["id"] == *id && x["phase"] == "start")
            .unwrap();
        let finish = traces
            .iter()
            .position(|x| x["trace"]["id"] == *id && x["phase"] == "finish")
            .unwrap();
        assert!(start < finish, "start before finish for {id}");
        if phase == "start" {
            assert_eq!(t["trace"]["outcome"], "running");
        }
    }
    let answer = frames
        .iter()
        .rev()
        .find(|f| f["type"] == "message")
        .unwrap();
    assert_eq!(answer["message"]["role"], "assistant");
    assert_eq!(
        answer["message"]["content"],
        "answer() returns 42 (src/lib.rs line 1)."
    );

    // The same through REST.
    let (_, msgs) = s.get(&format!("/api/chats/{chat}/messages")).await;
    let roles: Vec<&str> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    let (_, page) = s.get(&format!("/api/chats/{chat}/traces")).await;
    let items = page["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|t| t["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mock-1", "list_dir", "mock-1", "read_file", "mock-1"]
    );
    let turns: Vec<i64> = items
        .iter()
        .map(|t| t["turn_number"].as_i64().unwrap())
        .collect();
    assert_eq!(turns, [1, 1, 2, 2, 3]);
    assert!(items.iter().all(|t| t["outcome"] == "ok"), "{page}");
    let read = &items[3];
    assert!(read["output"]
        .as_str()
        .unwrap()
        .contains("pub fn answer() -> u32 { 42 }"));
    let llm = &items[4];
    assert!(llm["input_tokens"].as_i64().unwrap() > 0);
    assert!(
        llm["cache_tokens"].as_i64().unwrap() > 0,
        "the third call re-sends a cached prefix: {llm}"
    );
    assert!(llm["cost_usd"].as_f64().unwrap() > 0.0);
    // The cache shape: segments in cache order, adding up to the reported input, the
    // cached prefix filling tools and system before any history.
    let shape = &llm["meta"]["cache"];
    assert_eq!(shape["calibrated"], true, "{shape}");
    let segs = shape["segments"].as_array().unwrap();
    let names: Vec<&str> = segs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tools", "system", "history", "new"]);
    let sum = |f: &str| segs.iter().map(|s| s[f].as_i64().unwrap()).sum::<i64>();
    assert_eq!(sum("tokens"), llm["input_tokens"].as_i64().unwrap());
    assert_eq!(sum("cached"), llm["cache_tokens"].as_i64().unwrap());
    assert_eq!(segs[1]["cached"], segs[1]["tokens"], "{shape}");
    assert!(segs[1]["tokens"].as_i64().unwrap() > 0);
    // What the call would have cost uncached: more, since part of it was cached.
    assert!(
        llm["meta"]["uncached_cost_usd"].as_f64().unwrap() > llm["cost_usd"].as_f64().unwrap(),
        "{llm}"
    );
    assert!(llm["latency_ms"].as_i64().is_some());
    // A finish frame is computed by the agent, not read back from the store: it must
    // show exactly the row the store holds.
    for item in items {
        let frame = traces
            .iter()
            .find(|x| x["trace"]["id"] == item["id"] && x["phase"] == "finish")
            .unwrap();
        assert_eq!(
            &frame["trace"], item,
            "the finish frame and the stored trace"
        );
    }

    let view = session_done(&s, &session).await;
    assert_eq!(view["status"], "idle");
    assert_eq!(view["turn_number"], 3);
    assert!(
        view.get("state").is_none(),
        "the history is not sent: {view}"
    );
    assert!(
        view["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{view}"
    );
    assert!(
        view["usage"]["cache_read_tokens"].as_u64().unwrap() > 0,
        "{view}"
    );
    let (_, page) = s.get(&format!("/api/sessions/{session}/turns")).await;
    let timeline = page["items"].as_array().unwrap();
    assert_eq!(timeline.len(), 3);
    assert_eq!(timeline[0]["tool_count"], 1);
    assert!(timeline[2]["cache_hit_rate"].as_f64().unwrap() > 0.0);
    // The same turns, a page of two and then the rest.
    let (_, first) = s
        .get(&format!("/api/sessions/{session}/turns?limit=2"))
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = s
        .get(&format!(
            "/api/sessions/{session}/turns?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"][0]["turn_number"], 3);
    assert!(rest["next_cursor"].is_null());
    // Forged, stale and extreme cursors are refused; nothing changes.
    for bad in ["abc", "-1", "99", "99999999999999999999", "1.5"] {
        let (status, e) = s
            .get(&format!("/api/sessions/{session}/turns?cursor={bad}"))
            .await;
        common::assert_error(status, &e, 400, "invalid_cursor");
    }
    let (status, e) = s
        .get(&format!(
            "/api/sessions/{}/turns",
            baton_core::SessionId::new()
        ))
        .await;
    common::assert_error(status, &e, 404, "not_found");

    // The tools got the workspace-relative paths the model asked for.
    assert_eq!(mock.count(), 3);
    let (_, sessions) = s.get(&format!("/api/chats/{chat}/sessions")).await;
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1);

    // A client that connects now sees the session in its snapshot.
    let mut late = s.ws().await;
    late.subscribe(&format!("chat:{chat}"), None).await;
    let snap = late.next().await;
    assert_eq!(snap["state"]["session"]["status"], "idle", "{snap}");
    assert_eq!(snap["state"]["session"]["id"].as_str().unwrap(), session);
    assert!(
        snap["state"]["session"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // A follow-up continues the same session with the whole history.
    mock.push(Reply::text("Still 42."));
    let (status, again) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "Sure?" }),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["session_id"].as_str().unwrap(), session);
    session_done(&s, &session).await;
    let last = mock.requests().pop().unwrap().body;
    assert!(
        last.to_string().contains("What does answer() return?"),
        "history is re-sent"
    );
}

async fn the_anthropic_protocol_works_end_to_end(kind: Kind) {
    let mock = MockModel::start().await;
    mock.push(Reply::tool("read_file", json!({ "path": "src/lib.rs" })));
    mock.push(Reply::text("It returns 42."));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "anthropic")).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let (_, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "answer()?" }),
        )
        .await;
    let view = session_done(&s, posted["session_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "idle", "{view}");
    let (_, page) = s.get(&format!("/api/chats/{chat}/traces")).await;
    let llm = &page["items"][2];
    assert!(llm["cache_tokens"].as_i64().unwrap() > 0, "{llm}");
    assert!(
        llm["input_tokens"].as_i64().unwrap()
            >= llm["cache_tokens"].as_i64().unwrap() + llm["cache_write_tokens"].as_i64().unwrap()
    );
}

async fn an_unconfigured_model_fails_the_turn_clearly(kind: Kind) {
    let s = TestServer::start(kind).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let mut ws = s.ws().await;
    ws.subscribe(&format!("chat:{chat}"), None).await;
    ws.next().await;
    let (status, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "hello" }),
        )
        .await;
    assert_eq!(status, 202, "{posted}");
    let view = session_done(&s, posted["session_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "failed");
    let err = view["error"].as_str().unwrap();
    assert!(
        err.contains("deepseek-chat") && err.contains("not configured"),
        "{err}"
    );
    loop {
        let f = ws.next().await;
        if f["type"] == "error" {
            assert_eq!(f["code"], "agent_failed");
            assert!(f["message"].as_str().unwrap().contains("not configured"));
            break;
        }
    }
    let (status, err) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "x", "model": "gpt-9" }),
        )
        .await;
    common::assert_error(status, &err, 400, "invalid_request");
    assert!(err["error"]["message"].as_str().unwrap().contains("gpt-9"));
}

async fn a_second_message_while_answering_is_409(kind: Kind) {
    let mock = MockModel::start().await;
    mock.push(Reply::text("slow answer here").slow(Duration::from_millis(300)));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let (_, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "one" }),
        )
        .await;
    let (status, err) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "two" }),
        )
        .await;
    common::assert_error(status, &err, 409, "conflict");
    session_done(&s, posted["session_id"].as_str().unwrap()).await;
    let (_, msgs) = s.get(&format!("/api/chats/{chat}/messages")).await;
    assert_eq!(
        msgs["items"].as_array().unwrap().len(),
        2,
        "the refused message was not stored"
    );
}

/// A found bug: the second question of a chat stopped after its first tool call, with an
/// empty answer, because the first answer was still held as the session's result.
async fn every_question_of_a_chat_gets_its_tools_and_an_answer(kind: Kind) {
    let mock = MockModel::start().await;
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    mock.after_tool_result(Reply::text("Listed."));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    for question in ["one", "two", "three"] {
        let (status, posted) = s
            .post_json(
                &format!("/api/chats/{chat}/messages"),
                &json!({ "content": question }),
            )
            .await;
        assert_eq!(status, 202, "{posted}");
        let done = session_done(&s, posted["session_id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "idle", "{done}");
    }
    let (_, msgs) = s.get(&format!("/api/chats/{chat}/messages")).await;
    let got: Vec<(String, i64, String)> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["turn_number"].as_i64().unwrap(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, i64, String)> = [
        ("user", 1, "one"),
        ("assistant", 2, "Listed."),
        ("user", 3, "two"),
        ("assistant", 4, "Listed."),
        ("user", 5, "three"),
        ("assistant", 6, "Listed."),
    ]
    .iter()
    .map(|(r, t, c)| (r.to_string(), *t, c.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(mock.count(), 6, "two model calls per question");
}

async fn cancel_stops_a_session_and_closes_its_calls(kind: Kind) {
    let mock = MockModel::start().await;
    mock.push(Reply::text("a b c d e f g h i j").slow(Duration::from_secs(1)));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let (_, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "go" }),
        )
        .await;
    let session = posted["session_id"].as_str().unwrap().to_string();
    s.wait_for(&format!("/api/chats/{chat}/traces"), |v| {
        v["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    // Cancel while the model is streaming its (slow) answer.
    while mock.count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = s
        .post_json(&format!("/api/sessions/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let view = session_done(&s, &session).await;
    assert_eq!(view["status"], "cancelled");
    let (_, page) = s.get(&format!("/api/chats/{chat}/traces")).await;
    assert_eq!(page["items"][0]["outcome"], "cancelled");
    let (status, err) = s
        .post_json(&format!("/api/sessions/{session}/cancel"), &json!({}))
        .await;
    common::assert_error(status, &err, 409, "conflict");
    let (status, err) = s
        .post_json(
            &format!("/api/sessions/{}/cancel", baton_core::SessionId::new()),
            &json!({}),
        )
        .await;
    common::assert_error(status, &err, 404, "not_found");
    // The chat goes on after a cancel.
    mock.push(Reply::text("fresh"));
    let (status, _) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "again" }),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(session_done(&s, &session).await["status"], "idle");
}

async fn bad_message_input_is_rejected(kind: Kind) {
    let s = TestServer::start(kind).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let path = format!("/api/chats/{chat}/messages");
    for (body, code) in [
        (json!({}), "invalid_body"),
        (json!({ "content": "" }), "invalid_content"),
        (json!({ "content": "   " }), "invalid_content"),
        (json!({ "content": 5 }), "invalid_body"),
        (
            json!({ "content": "hi", "attachments": ["not-a-uuid"] }),
            "invalid_body",
        ),
        (
            json!({ "content": "hi", "attachments": [baton_core::AttachmentId::new()] }),
            "invalid_attachment",
        ),
        (json!({ "content": "nul \u{0}" }), "invalid_content"),
        (json!({ "content": "hi", "extra": 1 }), "invalid_body"),
    ] {
        let (status, err) = s.post_json(&path, &body).await;
        common::assert_error(status, &err, 400, code);
    }
    let (status, err) = s
        .post_json(
            &format!("/api/chats/{}/messages", baton_core::ChatId::new()),
            &json!({ "content": "hi" }),
        )
        .await;
    common::assert_error(status, &err, 404, "not_found");
    let (_, msgs) = s.get(&format!("/api/chats/{chat}/messages")).await;
    assert!(msgs["items"].as_array().unwrap().is_empty());
    let (status, err) = s.get("/api/sessions/nope").await;
    common::assert_error(status, &err, 400, "invalid_id");
}

async fn a_long_session_pages_through_its_traces(kind: Kind) {
    let mock = MockModel::start().await;
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    let mut settings = mock_settings(&mock, "openai");
    settings.push(("agents.max_tool_calls".into(), "60".into()));
    let s = TestServer::start_owned(kind, settings).await;
    let dir = workspace();
    let chat = chat_on(&s, &dir).await;
    let (_, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "keep looking" }),
        )
        .await;
    let view = session_done(&s, posted["session_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "failed");
    assert!(
        view["error"].as_str().unwrap().contains("60 tool calls"),
        "{view}"
    );
    let (_, turns) = s
        .get(&format!(
            "/api/sessions/{}/turns?limit=500",
            posted["session_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(turns["items"].as_array().unwrap().len(), 60);
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut path = format!("/api/chats/{chat}/traces?limit=7");
    loop {
        let (_, page) = s.get(&path).await;
        for t in page["items"].as_array().unwrap() {
            seen.push((
                t["turn_number"].as_i64().unwrap(),
                t["kind"].as_str().unwrap().to_string(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/chats/{chat}/traces?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    for (i, pair) in seen.chunks(2).enumerate() {
        let turn = i as i64 + 1;
        assert_eq!(
            pair,
            [(turn, "llm".to_string()), (turn, "tool".to_string())],
            "turn {turn}"
        );
    }
}

async fn capabilities_are_granted_per_chat(kind: Kind) {
    let mock = MockModel::start().await;
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let dir = workspace();
    let write = json!({ "path": "out.txt", "content": "written by the agent" });
    for (caps, allowed) in [(json!({}), false), (json!({ "write": true }), true)] {
        mock.push(Reply::tool("write_file", write.clone()));
        mock.push(Reply::text("done"));
        let (status, chat) = s
            .post_json(
                "/api/chats",
                &json!({ "workspace": dir.path().to_str().unwrap(), "capabilities": caps }),
            )
            .await;
        assert_eq!(status, 201, "{chat}");
        assert_eq!(chat["capabilities"]["write"], allowed);
        let chat = chat["id"].as_str().unwrap();
        let (_, posted) = s
            .post_json(
                &format!("/api/chats/{chat}/messages"),
                &json!({ "content": "write it" }),
            )
            .await;
        session_done(&s, posted["session_id"].as_str().unwrap()).await;
        let (_, page) = s.get(&format!("/api/chats/{chat}/traces")).await;
        let tool = &page["items"][1];
        assert_eq!(tool["tool_name"], "write_file");
        assert_eq!(
            tool["outcome"],
            if allowed { "ok" } else { "error" },
            "{tool}"
        );
        assert_eq!(dir.path().join("out.txt").exists(), allowed);
        // The model saw which tools it has.
        let offered = mock.requests().iter().rev().nth(1).unwrap().body["tools"].to_string();
        assert_eq!(offered.contains("write_file"), allowed);
    }
    let (status, err) = s
        .post_json("/api/chats", &json!({ "capabilities": { "root": true } }))
        .await;
    common::assert_error(status, &err, 400, "invalid_body");
}

async fn traces_are_found_by_filters_and_words(kind: Kind) {
    let mock = MockModel::start().await;
    mock.push(Reply::tool("read_file", json!({ "path": "src/lib.rs" })));
    mock.push(Reply::tool(
        "read_file",
        json!({ "path": "no/such/file.rs" }),
    ));
    mock.push(Reply::tool("list_dir", json!({ "path": "src" })));
    mock.push(Reply::text("Done looking."));
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let ws = workspace();
    let chat = chat_on(&s, &ws).await;
    let (status, posted) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "look around" }),
        )
        .await;
    assert_eq!(status, 202, "{posted}");
    session_done(&s, posted["session_id"].as_str().unwrap()).await;
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    t["kind"].as_str().unwrap(),
                    t["tool_name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let path = |q: &str| format!("/api/chats/{chat}/traces?{q}");
    // Wait for the last call's finish to be stored.
    s.wait_for(&path("kind=llm"), |v| {
        v["items"]
            .as_array()
            .is_some_and(|a| a.len() == 4 && a.iter().all(|t| t["outcome"] != "running"))
    })
    .await;
    let (_, all) = s.get(&path("limit=100")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    let (_, tools) = s.get(&path("kind=tool")).await;
    assert_eq!(
        names(&tools),
        ["tool:read_file", "tool:read_file", "tool:list_dir"]
    );
    let (_, failed) = s.get(&path("status=failed")).await;
    assert_eq!(names(&failed), ["tool:read_file"], "{failed}");
    // The file's text is in the tool's output, and in the next model call's input.
    let (_, found) = s.get(&path("q=answer%2042")).await;
    assert_eq!(names(&found), ["tool:read_file", "llm:mock-1"], "{found}");
    let (_, found) = s.get(&path("q=answer%2042&kind=tool")).await;
    assert_eq!(names(&found), ["tool:read_file"]);
    let (_, found) = s.get(&path("q=SUCH&tool=read_file")).await;
    assert_eq!(names(&found), ["tool:read_file"]);
    let (_, none) = s.get(&path("q=zanzibar")).await;
    assert!(none["items"].as_array().unwrap().is_empty());
    assert!(none["next_cursor"].is_null());
    // Pages of a search follow each other.
    let (_, first) = s.get(&path("kind=tool&limit=2")).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = s
        .get(&path(&format!("kind=tool&limit=2&cursor={cursor}")))
        .await;
    assert_eq!(names(&rest), ["tool:list_dir"]);
    // Bad filters are refused in the JSON shape.
    for bad in [
        "kind=robot",
        "status=broken",
        "min_ms=-1",
        "min_ms=86400001",
        "q=%2A%2A%2A",
        "tool=",
        "tool=%00%C3%8C",
        "tool=read%0Afile",
        "cursor=forged",
        "colour=red",
    ] {
        let (status, e) = s.get(&path(bad)).await;
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(e["error"]["code"].is_string(), "{bad}: {e}");
    }
    // And nothing they touched changed: the search reads back as before.
    let (_, again) = s.get(&path("q=SUCH&tool=read_file")).await;
    assert_eq!(again, found);
}
