//! Claude Code's documented workflow behaviours, each as a script of our own run through
//! the real engine and the scripted model server. The README's compatibility table names
//! these tests.
mod common;

use baton_core::AgentStatus;
use baton_mock_model::Reply;
use baton_testkit::Kind;
use common::{auto, finished, fixture, fixture_with, Fixture};
use serde_json::{json, Value};

async fn run(f: &Fixture, script: &str) -> baton_core::Run {
    let run = f.engine.start_inline(script, auto()).await.unwrap();
    finished(f, run.id).await
}

/// The tool names a model request offered.
fn offered(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn logged(run: &baton_core::Run, needle: &str) -> usize {
    run.log.iter().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_aliases_and_claude_model_ids_run_on_the_default_model() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("answered"));
    let done = run(
        &f,
        "const out = []\n\
         for (const model of ['haiku', 'sonnet', 'opus', 'inherit', 'claude-sonnet-4-5-20250929', 'mock/mock-1'])\n\
           out.push(await agent('q ' + model, { model }))\n\
         out.push(await agent('q unknown', { model: 'gpt-9', label: 'odd one' }))\n\
         return out",
    )
    .await;
    assert_eq!(
        done.status,
        baton_core::RunStatus::Completed,
        "{:?}",
        done.error
    );
    let result = done.result.clone().unwrap();
    assert_eq!(
        result.as_array().unwrap()[..6],
        vec![json!("answered"); 6][..]
    );
    assert_eq!(result[6], Value::Null, "an unknown model fails its agent");
    // Said on the run, not only on the agent, with the key to set.
    assert_eq!(
        logged(&done, "agent 'odd one': model 'gpt-9' is not configured"),
        1,
        "{:?}",
        done.log
    );
    assert_eq!(
        logged(&done, "model_aliases.\"gpt-9\""),
        1,
        "{:?}",
        done.log
    );
    let journal = f.engine.journal(done.id).await.unwrap();
    let failed = journal
        .iter()
        .find(|e| e.status == AgentStatus::Failed)
        .unwrap();
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("[models.\"gpt-9\"]"),
        "{failed:?}"
    );
    assert_eq!(f.mock.count(), 6, "the unknown model was never called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_tool_names_map_to_baton_tools_and_unknown_ones_are_reported() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("done"));
    let done = run(
        &f,
        "return await agent('look', { label: 'scout', tools: ['LS', 'Read', 'Grep', 'WebSearch'] })",
    )
    .await;
    assert_eq!(done.result, Some(json!("done")));
    assert_eq!(
        offered(&f.mock.requests()[0].body),
        ["read_file", "list_dir", "grep"]
    );
    assert_eq!(
        logged(&done, "agent 'scout': tools WebSearch are not Baton tools"),
        1,
        "{:?}",
        done.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_tools_stay_subject_to_the_runs_capabilities() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("done"));
    run(
        &f,
        "return await agent('edit it', { tools: ['Read', 'Edit', 'Write', 'Bash'] })",
    )
    .await;
    assert_eq!(
        offered(&f.mock.requests()[0].body),
        ["read_file"],
        "a read-only run grants no writing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_counts_output_tokens() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("x".repeat(40)));
    let done = run(
        &f,
        "await agent('one')\nawait agent('two')\nreturn budget.spent()",
    )
    .await;
    let journal = f.engine.journal(done.id).await.unwrap();
    let output: i64 = journal.iter().map(|e| e.output_tokens).sum();
    let input: i64 = journal.iter().map(|e| e.input_tokens).sum();
    assert!(
        input > output * 5,
        "the prompts are much larger than the answers"
    );
    assert_eq!(done.result, Some(json!(output)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_cap_throws_a_catchable_error_and_says_so_on_the_run() {
    let f = fixture_with(Kind::Sqlite, |c| c.agents_per_run = 3).await;
    f.mock.set_default(Reply::text("ok"));
    let done = run(
        &f,
        "const out = []\n\
         for (let i = 0; i < 5; i++) {\n\
           try { out.push(await agent('task ' + i)) } catch (e) { out.push('threw: ' + e.message) }\n\
         }\n\
         return out",
    )
    .await;
    let out = done.result.clone().unwrap();
    let out = out.as_array().unwrap();
    assert_eq!(out[..3], [json!("ok"), json!("ok"), json!("ok")]);
    for v in &out[3..] {
        let text = v.as_str().unwrap();
        assert!(
            text.starts_with("threw: the run reached its limit of 3 agents"),
            "{text}"
        );
    }
    assert_eq!(
        logged(&done, "the run reached its limit of 3 agents"),
        1,
        "{:?}",
        done.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_takes_thunks_or_promises_and_names_anything_else() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("ok"));
    let done = run(
        &f,
        "const a = await parallel([agent('one'), () => agent('two')])\n\
         let err = null\n\
         try { await parallel([() => agent('three'), 42]) } catch (e) { err = e.name + ': ' + e.message }\n\
         return { a, err }",
    )
    .await;
    let r = done.result.unwrap();
    assert_eq!(r["a"], json!(["ok", "ok"]));
    assert_eq!(
        r["err"],
        "TypeError: parallel(thunks): item 1 is number, not a function or a promise; write () => agent(…)"
    );
    assert_eq!(f.mock.count(), 2, "nothing of the refused call ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_joins_its_arguments_like_console_log() {
    let f = fixture(Kind::Sqlite).await;
    let done = run(
        &f,
        "log('count:', 3, { a: 1 }, [true], null, undefined)\nreturn 1",
    )
    .await;
    assert_eq!(
        logged(&done, "count: 3 {\"a\":1} [true] null undefined"),
        1,
        "{:?}",
        done.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_and_require_are_refused_with_line_and_column_and_the_words_alone_are_fine() {
    let f = fixture(Kind::Sqlite).await;
    let fine = "const hasRequire = typeof require === 'function'\n\
                const o = { import: 1, require: 2 }\n\
                const re = /\"require\\(/\n\
                log(\"don't import or require anything\")\n\
                return { hasRequire, o }";
    let done = run(&f, fine).await;
    assert_eq!(
        done.status,
        baton_core::RunStatus::Completed,
        "{:?}",
        done.error
    );
    assert_eq!(done.result.unwrap()["hasRequire"], false);
    for (script, at) in [
        ("const a = 1\nconst fs = require('fs')", "line 2, column 12"),
        ("const m = await import('x')", "line 1, column 17"),
        ("import x from 'y'\nreturn 1", "line 1, column 1"),
    ] {
        let err = f
            .engine
            .start_inline(script, auto())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(at), "{script}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effort_is_sent_as_reasoning_effort_and_recorded_on_the_trace() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("ok"));
    let done = run(
        &f,
        "await agent('a', { label: 'hard', effort: 'high' })\n\
         await agent('b', { label: 'odd', effort: 'extreme' })\n\
         await agent('c')\nreturn 1",
    )
    .await;
    let requests = f.mock.requests();
    assert_eq!(requests[0].body["reasoning_effort"], "high");
    assert!(requests[1].body.get("reasoning_effort").is_none());
    assert!(requests[2].body.get("reasoning_effort").is_none());
    assert_eq!(
        logged(
            &done,
            "agent 'odd': effort \"extreme\" is not low, medium or high"
        ),
        1,
        "{:?}",
        done.log
    );
    let journal = f.engine.journal(done.id).await.unwrap();
    let hard = journal
        .iter()
        .find(|e| e.label.as_deref() == Some("hard"))
        .unwrap();
    let traces = f
        ._db
        .store()
        .list_traces(
            baton_store::TraceScope::Session(hard.session_id.unwrap()),
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        traces[0].meta["effort"],
        json!({ "requested": "high", "sent_as": "reasoning_effort" })
    );
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn writing() -> baton_workflow::StartRequest {
    baton_workflow::StartRequest {
        capabilities: baton_core::Capabilities {
            write: true,
            exec: false,
        },
        ..auto()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worktree_isolation_keeps_changes_on_a_branch_and_removes_what_changed_nothing() {
    let f = fixture(Kind::Sqlite).await;
    let ws = f.ws.path();
    git(ws, &["init", "-q", "-b", "main"]);
    std::fs::write(ws.join("README.md"), "hello\n").unwrap();
    git(ws, &["add", "."]);
    git(ws, &["commit", "-q", "-m", "start"]);
    f.mock.rule(
        "add a note",
        Reply::tool(
            "write_file",
            json!({ "path": "NOTE.md", "content": "a note\n" }),
        ),
    );
    f.mock.set_default(Reply::text("done"));
    let script =
        "const a = await agent('add a note', { label: 'writer', isolation: 'worktree' })\n\
                  const b = await agent('only look', { label: 'reader', isolation: 'worktree' })\n\
                  return [a, b]";
    let run = f.engine.start_inline(script, writing()).await.unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.result, Some(json!(["done", "done"])), "{:?}", done.log);
    assert!(
        !ws.join("NOTE.md").exists(),
        "the workspace itself is untouched"
    );
    let kept = done
        .log
        .iter()
        .find(|l| l.starts_with("agent 'writer' left its changes in the worktree"))
        .unwrap_or_else(|| panic!("{:?}", done.log));
    assert!(kept.contains("1 file changed"), "{kept}");
    let branches = git(ws, &["branch", "--list", "baton/*"]);
    let worktrees = git(ws, &["worktree", "list"]);
    assert_eq!(
        branches.lines().count(),
        1,
        "only the writer's branch stays: {branches}"
    );
    assert_eq!(worktrees.lines().count(), 2, "{worktrees}");
    let kept_path = worktrees
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(kept_path).join("NOTE.md")).unwrap(),
        "a note\n"
    );
    assert!(
        !done.log.iter().any(|l| l.contains("'reader' left")),
        "{:?}",
        done.log
    );
    git(ws, &["worktree", "remove", "--force", kept_path]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worktree_isolation_without_git_fails_the_agent_and_without_write_is_noted() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("done"));
    let script = "return await agent('write', { label: 'w', isolation: 'worktree' })";
    let done = finished(
        &f,
        f.engine.start_inline(script, writing()).await.unwrap().id,
    )
    .await;
    assert_eq!(done.result, Some(Value::Null));
    assert_eq!(
        logged(
            &done,
            "agent 'w': isolation: 'worktree' needs the workspace to be a git repository"
        ),
        1,
        "{:?}",
        done.log
    );
    assert_eq!(f.mock.count(), 0);
    let journal = f.engine.journal(done.id).await.unwrap();
    assert!(journal[0]
        .error
        .as_deref()
        .unwrap()
        .contains("git repository"));
    // A read-only run has nothing to isolate: it runs in the workspace, and says so.
    let done = run(
        &f,
        "return await agent('look', { label: 'r', isolation: 'worktree' })",
    )
    .await;
    assert_eq!(done.result, Some(json!("done")));
    assert_eq!(
        logged(&done, "matters only for a run granted write"),
        1,
        "{:?}",
        done.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_types_load_from_claude_agents_files() {
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_default(Reply::text("AAPL, MSFT"));
    let dir = f.ws.path().join(".claude/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ticker-scout.md"),
        "---\nname: ticker-scout\ndescription: Finds ticker symbols\ntools: Read, Grep\nmodel: haiku\n---\nYou scout ticker symbols in the files you are given.\n",
    )
    .unwrap();
    // The project's .baton/agents wins over .claude/agents.
    let baton = f.ws.path().join(".baton/agents");
    std::fs::create_dir_all(&baton).unwrap();
    std::fs::write(baton.join("reviewer.md"), "You review carefully.").unwrap();
    std::fs::write(dir.join("reviewer.md"), "You are the other reviewer.").unwrap();
    std::fs::write(dir.join("broken.md"), "---\ntools: [unclosed\n---\nbody").unwrap();

    let done = run(
        &f,
        "const a = await agent('find tickers', { agentType: 'ticker-scout' })\n\
         const b = await agent('review', { agentType: 'reviewer', tools: ['LS'] })\n\
         let missing = null\n\
         try { await agent('x', { agentType: 'no-such-agent', label: 'lost' }) } catch (e) { missing = e.message }\n\
         let broken = null\n\
         try { await agent('y', { agentType: 'broken' }) } catch (e) { broken = e.message }\n\
         return { a, b, missing, broken }",
    )
    .await;
    assert_eq!(
        done.status,
        baton_core::RunStatus::Completed,
        "{:?}",
        done.error
    );
    let r = done.result.clone().unwrap();
    assert_eq!(r["a"], "AAPL, MSFT");
    let requests = f.mock.requests();
    let system = |i: usize| {
        requests[i].body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let tools = |i: usize| offered(&requests[i].body);
    assert!(
        system(0).starts_with("You scout ticker symbols"),
        "{}",
        system(0)
    );
    assert_eq!(
        tools(0),
        ["read_file", "grep"],
        "the type's tools, in Baton's names"
    );
    assert!(
        system(1).starts_with("You review carefully."),
        "{}",
        system(1)
    );
    assert_eq!(
        tools(1),
        ["list_dir"],
        "the call's tools win over the type's"
    );
    let missing = r["missing"].as_str().unwrap();
    assert!(
        missing.contains("agentType 'no-such-agent' is not defined")
            && missing.contains(".claude/agents"),
        "{missing}"
    );
    assert!(
        r["broken"]
            .as_str()
            .unwrap()
            .contains("front matter is not valid"),
        "{r}"
    );
    assert_eq!(
        logged(
            &done,
            "agent 'lost': agentType 'no-such-agent' is not defined"
        ),
        1,
        "{:?}",
        done.log
    );
    assert_eq!(f.mock.count(), 2);

    let listed = f.engine.agent_types(None);
    let names: Vec<&str> = listed.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["reviewer", "broken", "ticker-scout"]);
    assert_eq!(listed[0].prompt, "You review carefully.");
    assert!(listed[1].error.is_some());
    assert_eq!(
        listed[2].tools.as_deref(),
        Some(&["Read".to_string(), "Grep".to_string()][..])
    );
}
