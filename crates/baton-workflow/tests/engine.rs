use std::time::Duration;

use baton_core::{AgentStatus, RunStatus};
use baton_mock_model::Reply;
use baton_testkit::Kind;
use baton_workflow::{Source, StartRequest};
use serde_json::json;

mod common;

use common::{auto, finished, fixture, fixture_with, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_precedence_and_ships_the_catalog() {
    let f = fixture(Kind::Sqlite).await;
    let write = |dir: &std::path::Path, file: &str, text: &str| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    };
    let baton = f.ws.path().join(".baton/workflows");
    let claude = f.ws.path().join(".claude/workflows");
    let personal = f.home.path().join(".baton/workflows");
    write(
        &baton,
        "a.js",
        "export const meta = { name: 'shared', description: 'from .baton' }\nreturn 1",
    );
    write(
        &claude,
        "b.js",
        "export const meta = { name: 'shared', description: 'from .claude' }\nreturn 2",
    );
    write(&claude, "only-claude.js", "return 3");
    write(
        &personal,
        "mine.js",
        "export const meta = { name: 'deep-research', description: 'my override' }\nreturn 4",
    );
    write(&claude, "Bad Name.js", "return 5");
    write(&claude, "broken.js", "const ok = 1\nreturn (");
    write(&claude, "imports.js", "import fs from 'fs'\nreturn 1");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("evil.js"),
        "export const meta = { name: 'evil' }\nreturn 6",
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("evil.js"), claude.join("evil.js")).unwrap();

    let defs = f.engine.definitions(None).await;
    let find = |n: &str| defs.iter().find(|d| d.name == n);
    assert_eq!(find("shared").unwrap().description, "from .baton");
    assert_eq!(find("only-claude").unwrap().source, Source::Project);
    assert_eq!(find("deep-research").unwrap().description, "my override");
    assert_eq!(find("deep-research").unwrap().source, Source::Personal);
    assert!(
        find("evil").is_none(),
        "a link out of the folder is never read"
    );
    assert!(find("bad name").is_none() && find("Bad Name").is_none());
    // A saved script that cannot run is listed with why and where, never silently missing;
    // starting it says the same.
    let broken = find("broken").expect("a broken script is listed");
    let e = broken.error.clone().unwrap();
    assert_eq!((e.line, broken.source), (Some(2), Source::Project));
    assert!(e.message.contains("syntax error"), "{e:?}");
    let imports = find("imports").unwrap().error.clone().unwrap();
    assert_eq!((imports.line, imports.column), (Some(1), Some(1)));
    assert!(
        imports.message.contains("import is not available"),
        "{imports:?}"
    );
    let refused = f.engine.start_run("imports", auto()).await.unwrap_err();
    assert!(
        matches!(&refused, baton_workflow::WorkflowError::Unrunnable(d) if d.line == Some(1)),
        "{refused:?}"
    );
    assert!(find("shared").unwrap().error.is_none());
    for builtin in ["multi-review", "find-issues", "plan-verify", "bounty-hunt"] {
        let d = find(builtin).unwrap_or_else(|| panic!("{builtin} missing"));
        assert_eq!(d.source, Source::Builtin);
        assert!(d.phases.len() >= 3, "{builtin} declares its phases");
        assert!(!d.description.is_empty());
    }
    assert_eq!(
        f.engine.definition("review-code", None).await.unwrap().name,
        "multi-review"
    );
    assert!(f.engine.definition("../etc/passwd", None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_journals_its_agents_and_resume_skips_completed_ones() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let f = fixture(kind).await;
        f.mock.rule("alpha", Reply::text("A"));
        f.mock.rule("beta", Reply::text("B"));
        f.mock.rule("gamma", Reply::text("G"));
        let v1 = "export const meta = { name: 'j', phases: [{ title: 'One' }] }\nphase('One')\nconst r = await parallel([() => agent('alpha'), () => agent('beta', { label: 'b' })])\nlog('done one')\nreturn r";
        let run = f.engine.start_inline(v1, auto()).await.unwrap();
        let done = finished(&f, run.id).await;
        assert_eq!(
            done.status,
            RunStatus::Completed,
            "{kind:?}: {:?}",
            done.error
        );
        assert_eq!(done.result, Some(json!(["A", "B"])));
        assert_eq!(done.log, ["done one"]);
        assert_eq!(f.mock.count(), 2);
        let journal = f.engine.journal(run.id).await.unwrap();
        assert_eq!(journal.len(), 2);
        assert!(journal
            .iter()
            .all(|e| e.status == AgentStatus::Completed && !e.cached && e.session_id.is_some()));
        assert_eq!(
            journal
                .iter()
                .filter(|e| e.phase.as_deref() == Some("One"))
                .count(),
            2
        );
        assert_eq!(done.totals.agents, 2);
        // Their system prompt is kept once; each session's state names it.
        let store = f._db.store();
        let mut named = std::collections::BTreeSet::new();
        for e in &journal {
            let s = store
                .get_session(e.session_id.unwrap())
                .await
                .unwrap()
                .unwrap();
            assert!(s.state.get("system").is_none(), "{kind:?}: {}", s.state);
            named.insert(s.state["system_ref"].as_str().unwrap().to_string());
        }
        assert_eq!(named.len(), 1, "{kind:?}: {named:?}");
        let prompt = store
            .prompt(named.first().unwrap())
            .await
            .unwrap()
            .expect("the prompt is stored");
        assert!(prompt.starts_with("You are Baton's agent"), "{prompt}");
        assert!(
            f.mock.requests()[0]
                .body
                .to_string()
                .contains(&json!(prompt).to_string()),
            "the model was sent the prompt kept"
        );

        // An edited script resumed: finished agents come from the journal.
        let v2 = v1.replace(
            "return r",
            "const g = await agent('gamma')\nlog('done two')\nreturn [...r, g]",
        );
        f.engine.resume(run.id, Some(v2)).await.unwrap();
        let again = finished(&f, run.id).await;
        assert_eq!(again.result, Some(json!(["A", "B", "G"])), "{kind:?}");
        assert_eq!(
            again.log,
            ["done one", "done two"],
            "{kind:?}: the line logged before is not logged again; a new one is"
        );
        assert_eq!(f.mock.count(), 3, "only the new agent called the model");
        let journal = f.engine.journal(run.id).await.unwrap();
        assert_eq!(journal.iter().filter(|e| e.cached).count(), 2);
        assert!(
            f.engine.resume(run.id, None).await.is_err(),
            "a completed run has nothing to resume"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_runs_wait_for_approval() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        large_runs_wait_for_approval_on(kind).await;
    }
}

async fn large_runs_wait_for_approval_on(kind: Kind) {
    let f = fixture(kind).await;
    // However the source reads, the gate binds on what the run does: the 26th agent
    // waits for a person, once the ones at work are done.
    let script = "const xs = args.items\nconst n = xs.length * 2\n\
        return await parallel(Array.from({ length: n / 2 }, (_, i) => () => agent(`item ${i}`)))";
    let items: Vec<u32> = (0..30).collect();
    let run = f
        .engine
        .start_inline(
            script,
            StartRequest {
                args: Some(json!({ "items": items })),
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    let held = loop {
        let r = f.engine.get_run(run.id).await.unwrap();
        if r.status == RunStatus::AwaitingApproval || r.status.is_finished() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(held.status, RunStatus::AwaitingApproval, "{:?}", held.error);
    assert_eq!(f.mock.count(), 25, "25 agents ran; the 26th waits");
    assert!(
        held.lease.owner.is_none(),
        "nobody holds a run waiting for a person"
    );
    assert!(
        held.log.iter().any(|l| l.contains("waits for approval")),
        "{:?}",
        held.log
    );
    let journal = f.engine.journal(run.id).await.unwrap();
    assert_eq!(
        journal
            .iter()
            .filter(|e| e.status == AgentStatus::Completed)
            .count(),
        25,
        "what it did so far is kept"
    );
    f.engine.approve(run.id).await.unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(f.mock.count(), 30, "the first 25 were not run again");
    assert_eq!(done.result.unwrap().as_array().unwrap().len(), 30);
    assert!(f.engine.approve(run.id).await.is_err());

    // Denying cancels it.
    let denied = f
        .engine
        .start_inline(
            script,
            StartRequest {
                args: Some(json!({ "items": items })),
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    loop {
        let r = f.engine.get_run(denied.id).await.unwrap();
        if r.status == RunStatus::AwaitingApproval {
            break;
        }
        assert!(!r.status.is_finished(), "{r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = f.engine.cancel(denied.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);

    // Pre-approved, it never stops at the gate.
    let approved = f
        .engine
        .start_inline(
            script,
            StartRequest {
                args: Some(json!({ "items": items })),
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    let done = finished(&f, approved.id).await;
    assert_eq!(done.status, RunStatus::Completed);

    let small = f
        .engine
        .start_inline("return await agent('one')", StartRequest::default())
        .await
        .unwrap();
    assert_ne!(small.status, RunStatus::AwaitingApproval);
    let big_budget = f
        .engine
        .start_inline(
            "return 1",
            StartRequest {
                budget_tokens: Some(2_000_000),
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(big_budget.status, RunStatus::AwaitingApproval);
    let cancelled = f.engine.cancel(big_budget.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_everything_and_pause_holds_new_agents() {
    let f = fixture(Kind::Sqlite).await;
    f.mock
        .set_default(Reply::text("a b c d e f").slow(Duration::from_millis(200)));
    let script = "return await parallel([1,2,3,4].map(n => () => agent(`slow ${n}`)))";
    let run = f
        .engine
        .start_inline(
            script,
            StartRequest {
                concurrency: Some(2),
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    while f.mock.count() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f.engine.cancel(run.id).await.unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.status, RunStatus::Cancelled);
    let journal = f.engine.journal(run.id).await.unwrap();
    assert!(
        journal.iter().all(|e| e.status != AgentStatus::Running),
        "nothing is left running"
    );
    assert!(
        f.engine.cancel(run.id).await.is_err(),
        "409 on a finished run"
    );

    // Slow enough that the pause lands while the first step is still answering.
    f.mock
        .set_default(Reply::text("quick").slow(Duration::from_millis(50)));
    let before = f.mock.count();
    let run = f.engine.start_inline("const out = []\nfor (const n of [1,2,3]) out.push(await agent(`step ${n}`))\nreturn out", auto()).await.unwrap();
    while f.mock.count() < before + 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f.engine.pause(run.id).await.unwrap();
    let at_pause = f.mock.count();
    assert_eq!(at_pause, before + 1, "paused while the first step answers");
    // Long enough for the first step to finish and the next two to run, were they let.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(f.mock.count(), at_pause, "no new agent starts while paused");
    assert_eq!(
        f.engine.get_run(run.id).await.unwrap().status,
        RunStatus::Paused
    );
    f.engine.resume(run.id, None).await.unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.result, Some(json!(["quick", "quick", "quick"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_binds() {
    let f = fixture(Kind::Sqlite).await;
    // Each answer is about 50 output tokens; the budget counts output tokens only, as
    // Claude Code's does, so about four agents fit in 200.
    f.mock.set_default(Reply::text("a".repeat(200)));
    let script = "const out = []\nfor (let i = 0; i < 50; i++) {\n  try { out.push(await agent(`task ${i}`)) } catch (e) { return { done: out.length, stopped: e.message } }\n}\nreturn { done: out.length }";
    let run = f
        .engine
        .start_inline(
            script,
            StartRequest {
                budget_tokens: Some(200),
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    let done = finished(&f, run.id).await;
    let result = done.result.unwrap();
    assert!(
        result["stopped"].as_str().unwrap().contains("budget"),
        "{result}"
    );
    let agents = result["done"].as_u64().unwrap();
    assert!((3..=6).contains(&agents), "{result}");
    assert_eq!(f.mock.count() as u64, agents);
}

fn so(v: serde_json::Value) -> Reply {
    Reply::tool("StructuredOutput", v)
}

async fn run_builtin(f: &Fixture, name: &str, args: serde_json::Value) -> baton_core::Run {
    let run = f
        .engine
        .start_run(
            name,
            StartRequest {
                args: Some(args),
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    let done = finished(f, run.id).await;
    assert_eq!(
        done.status,
        RunStatus::Completed,
        "{name}: {:?}",
        done.error
    );
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_runs_against_a_model() {
    let f = fixture(Kind::Sqlite).await;
    let m = &f.mock;
    // multi-review
    m.rule(
        "List the source files a reviewer",
        so(json!({ "files": ["src/a.rs", "src/b.rs"] })),
    );
    m.rule("Review these files only for", so(json!({ "issues": [{ "file": "src/a.rs", "line": 3, "title": "t", "why": "w", "severity": "high" }] })));
    m.rule(
        "Check this reported issue",
        so(json!({ "confirmed": true, "reason": "seen" })),
    );
    // find-issues
    m.rule("Survey", so(json!({ "modules": [{ "name": "core", "paths": ["src/a.rs"] }, { "name": "io", "paths": ["src/b.rs"] }] })));
    m.rule("Hunt for bugs", so(json!({ "bugs": [{ "file": "src/a.rs", "line": 9, "summary": "panics", "trigger": "empty input" }] })));
    m.rule(
        "Independently confirm",
        so(json!({ "confirmed": true, "reason": "reproduced" })),
    );
    // plan-verify
    m.rule(
        "draft a concrete plan",
        so(json!({ "steps": [
        { "step": "rename", "files": ["a"], "assumption": "one caller" },
        { "step": "migrate", "files": ["b"], "assumption": "no data" }] })),
    );
    m.rule(
        "Verify one step",
        so(json!({ "holds": false, "problem": "two callers", "fix": "update both" })),
    );
    m.rule(
        "Revise this plan",
        so(json!({ "steps": [{ "step": "rename in both callers", "files": ["a", "c"] }] })),
    );
    // bounty-hunt
    m.rule("Map the attack surface", so(json!({ "hotspots": [{ "where": "src/http.rs", "input": "path", "risk": "traversal" }] })));
    m.rule(
        "Dig into this hotspot",
        so(
            json!({ "vulnerable": true, "title": "path traversal", "location": "src/http.rs:40",
        "reproduction": "GET /../etc/passwd", "impact": "file read" }),
        ),
    );
    m.rule(
        "You are the maintainer",
        so(json!({ "stands": true, "reason": "no check", "severity": "high" })),
    );

    let r = run_builtin(&f, "review-code", json!({ "target": "src" }))
        .await
        .result
        .unwrap();
    assert_eq!(
        (
            r["reported"].as_u64(),
            r["issues"].as_array().unwrap().len()
        ),
        (Some(4), 4),
        "{r}"
    );
    let r = run_builtin(&f, "find-issues", json!({}))
        .await
        .result
        .unwrap();
    assert_eq!(
        r["issues"].as_array().unwrap().len(),
        2,
        "one confirmed bug per module: {r}"
    );
    let r = run_builtin(&f, "plan-verify", json!({ "goal": "rename a thing" }))
        .await
        .result
        .unwrap();
    assert_eq!(
        r["plan"],
        json!([{ "step": "rename in both callers", "files": ["a", "c"] }]),
        "{r}"
    );
    assert_eq!(r["problems"].as_array().unwrap().len(), 2);
    let r = run_builtin(&f, "bounty-hunt", json!({}))
        .await
        .result
        .unwrap();
    assert_eq!(r["findings"][0]["severity"], "high", "{r}");
    let err = f
        .engine
        .start_run(
            "plan-verify",
            StartRequest {
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await
        .unwrap();
    let done = finished(&f, err.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.error.unwrap().contains("needs a goal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opts_tools_limit_what_an_agent_may_use() {
    let f = fixture(Kind::Sqlite).await;
    f.mock
        .push(Reply::tool("read_file", json!({ "path": "x" })));
    f.mock.push(Reply::text("ok"));
    let run = f
        .engine
        .start_inline("return await agent('look', { tools: ['glob'] })", auto())
        .await
        .unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.result, Some(json!("ok")));
    let reqs = f.mock.requests();
    let offered: Vec<String> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(offered, ["glob"]);
    assert!(reqs[1]
        .body
        .to_string()
        .contains("not available to this agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_and_agents_per_run_are_capped_in_rust() {
    let f = fixture_with(Kind::Sqlite, |c| {
        c.items_per_call = 5;
        c.agents_per_run = 3;
    })
    .await;
    let run = f
        .engine
        .start_inline(
            "return await parallel([1,2,3,4,5,6].map(n => () => n))",
            auto(),
        )
        .await
        .unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.error.unwrap().contains("over the limit of 5"));
    let run = f
        .engine
        .start_inline(
            "for (let i = 0; i < 4; i++) await agent(`a${i}`)\nreturn 1",
            auto(),
        )
        .await
        .unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.error.unwrap().contains("limit of 3 agents"));
    assert_eq!(f.mock.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_flight_and_concurrent_runs_are_capped() {
    let f = fixture_with(Kind::Sqlite, |c| c.concurrent_runs = 1).await;
    f.mock
        .set_default(Reply::text("one two three four five").slow(Duration::from_millis(30)));
    let wide = f
        .engine
        .start_inline(
            "return (await parallel(Array.from({ length: 9 }, (_, i) => () => agent(`item ${i}`)))).length",
            StartRequest {
                concurrency: Some(3),
                ..auto()
            },
        )
        .await
        .unwrap();
    let second = f
        .engine
        .start_inline("return await agent('after')", auto())
        .await
        .unwrap();
    // The one run slot is taken: the second run waits, queued, with no agent started.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = f.engine.get_run(second.id).await.unwrap();
    assert_eq!(waiting.status, RunStatus::Queued);
    let done = finished(&f, wide.id).await;
    assert_eq!(done.result, Some(serde_json::json!(9)));
    let journal = f.engine.journal(wide.id).await.unwrap();
    assert_eq!(
        journal
            .iter()
            .map(|e| e.prompt.as_str())
            .collect::<Vec<_>>(),
        (0..9).map(|i| format!("item {i}")).collect::<Vec<_>>(),
        "agents start, and are numbered, in the order the script asked for them"
    );
    assert_eq!(
        f.mock.peak_in_flight(),
        3,
        "at most, and at best, the run's 3 agents answered at once"
    );
    let after = finished(&f, second.id).await;
    assert_eq!(after.status, RunStatus::Completed);
    assert_eq!(f.mock.count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_nests_one_level_only() {
    let f = fixture(Kind::Sqlite).await;
    let dir = f.ws.path().join(".baton/workflows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("child.js"),
        "return { child: await agent(`child ${args.n}`) }",
    )
    .unwrap();
    std::fs::write(
        dir.join("deeper.js"),
        "return await workflow('child', { n: 1 })",
    )
    .unwrap();
    f.mock.set_default(Reply::text("hi"));
    let run = f
        .engine
        .start_inline("return await workflow('child', { n: 7 })", auto())
        .await
        .unwrap();
    assert_eq!(
        finished(&f, run.id).await.result,
        Some(json!({ "child": "hi" }))
    );
    let run = f
        .engine
        .start_inline(
            "try { return await workflow('deeper') } catch (e) { return e.message }",
            auto(),
        )
        .await
        .unwrap();
    let out = finished(&f, run.id).await.result.unwrap();
    assert!(
        out.as_str().unwrap().contains("nested more than one level"),
        "{out}"
    );
    let run = f
        .engine
        .start_inline(
            "try { return await workflow('nope') } catch (e) { return e.message }",
            auto(),
        )
        .await
        .unwrap();
    assert!(finished(&f, run.id)
        .await
        .result
        .unwrap()
        .as_str()
        .unwrap()
        .contains("not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_runs_do_not_disturb_other_runs() {
    let f = fixture_with(Kind::Sqlite, |c| c.script_memory_bytes = 16 << 20).await;
    f.mock.set_default(Reply::text("fine"));
    let spin = f
        .engine
        .start_inline("while (true) {}", auto())
        .await
        .unwrap();
    let bomb = f
        .engine
        .start_inline(
            "const a = []; while (true) a.push('x'.repeat(65536) + a.length)",
            auto(),
        )
        .await
        .unwrap();
    let normal = f
        .engine
        .start_inline(
            "return await parallel([() => agent('a'), () => agent('b')])",
            auto(),
        )
        .await
        .unwrap();
    assert_eq!(
        finished(&f, normal.id).await.result,
        Some(json!(["fine", "fine"]))
    );
    let bombed = finished(&f, bomb.id).await;
    assert_eq!(bombed.status, RunStatus::Failed);
    assert!(bombed.error.unwrap().contains("MiB of memory"));
    let started = std::time::Instant::now();
    f.engine.cancel(spin.id).await.unwrap();
    let spun = finished(&f, spin.id).await;
    assert_eq!(spun.status, RunStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_run_gives_its_slot_back_and_a_queued_run_reports_what_it_is() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let f = fixture_with(kind, |c| c.concurrent_runs = 1).await;
        f.mock
            .set_default(Reply::text("one two three").slow(Duration::from_millis(60)));
        let steps = "const out = []\nfor (const n of [1,2,3]) out.push(await agent(`step ${n}`))\nreturn out";
        let long = f.engine.start_inline(steps, auto()).await.unwrap();
        while f.mock.count() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let paused = f.engine.pause(long.id).await.unwrap();
        assert_eq!(paused.status, RunStatus::Paused, "{kind:?}");
        // The one run slot is free while `long` is paused: a new run starts and ends.
        let quick = f.engine.start_inline("return 1", auto()).await.unwrap();
        let q = finished(&f, quick.id).await;
        assert_eq!((q.status, q.result), (RunStatus::Completed, Some(json!(1))));
        assert_eq!(
            f.engine.get_run(long.id).await.unwrap().status,
            RunStatus::Paused
        );

        // `long` takes the slot again; a run started now waits, queued.
        let resumed = f.engine.resume(long.id, None).await.unwrap();
        assert_eq!(resumed.status, RunStatus::Running);
        let waiting = f.engine.start_inline("return 2", auto()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            f.engine.get_run(waiting.id).await.unwrap().status,
            RunStatus::Queued
        );
        // Pause, resume, pause of a queued run: it says what it is at every step.
        let p = f.engine.pause(waiting.id).await.unwrap();
        assert_eq!((p.status, p.started_at), (RunStatus::Paused, None));
        let r = f.engine.resume(waiting.id, None).await.unwrap();
        assert_eq!(
            (r.status, r.started_at),
            (RunStatus::Queued, None),
            "a resumed queued run is queued, not running with no start"
        );
        let p = f.engine.pause(waiting.id).await.unwrap();
        assert_eq!(p.status, RunStatus::Paused);
        let c = f.engine.cancel(waiting.id).await.unwrap();
        assert_eq!(c.status, RunStatus::Cancelled, "the answer says cancelled");
        assert!(c.finished_at.is_some());
        assert_eq!(
            f.engine.get_run(waiting.id).await.unwrap().status,
            RunStatus::Cancelled
        );

        let done = finished(&f, long.id).await;
        assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
        assert_eq!(
            done.result,
            Some(json!(["one two three", "one two three", "one two three"]))
        );
        let c = f.engine.get_run(waiting.id).await.unwrap();
        assert_eq!((c.status, c.started_at), (RunStatus::Cancelled, None));
        assert_eq!(f.mock.count(), 3, "the cancelled run never ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_the_output_token_threshold_waits_for_approval() {
    let f = fixture_with(Kind::Sqlite, |c| c.approval_tokens = 100).await;
    // About 50 output tokens per answer: the third agent would pass 100.
    f.mock.set_default(Reply::text("a".repeat(200)));
    let script = "const out = []\nfor (let i = 0; i < 5; i++) out.push(await agent('step ' + i))\nreturn out.length";
    let run = f
        .engine
        .start_inline(script, StartRequest::default())
        .await
        .unwrap();
    let held = loop {
        let r = f.engine.get_run(run.id).await.unwrap();
        if r.status == RunStatus::AwaitingApproval || r.status.is_finished() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(held.status, RunStatus::AwaitingApproval, "{:?}", held.error);
    assert_eq!(f.mock.count(), 2);
    assert!(
        held.log
            .iter()
            .any(|l| l.contains("limits.approval_tokens")),
        "{:?}",
        held.log
    );
    f.engine.approve(run.id).await.unwrap();
    let done = finished(&f, run.id).await;
    assert_eq!(done.result, Some(json!(5)));
    assert_eq!(f.mock.count(), 5);
}

/// Input tokens of a run's agents, and how many of them were read from the cache.
async fn cached_share(f: &Fixture, run: baton_core::RunId) -> (i64, i64) {
    let store = f._db.store();
    let (mut input, mut cached) = (0, 0);
    for e in f.engine.journal(run).await.unwrap() {
        let traces = store
            .list_traces(
                baton_store::TraceScope::Session(e.session_id.unwrap()),
                100,
                None,
            )
            .await
            .unwrap();
        for t in traces {
            input += t.input_tokens.unwrap_or(0);
            cached += t.cache_tokens.unwrap_or(0);
        }
    }
    (input, cached)
}

const SIXTEEN: &str =
    "return (await parallel(Array.from({ length: 16 }, (_, i) => () => agent(`item ${i}`)))).length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_wait_for_the_first_ones_cache_and_read_it() {
    let wide = StartRequest {
        concurrency: Some(16),
        ..auto()
    };
    // The scripted provider caches a prompt once it has processed it, 150 ms after it
    // arrived: siblings sent at once all miss.
    let held = fixture(Kind::Sqlite).await;
    held.mock.set_prefill(Duration::from_millis(150));
    let run = held
        .engine
        .start_inline(SIXTEEN, wide.clone())
        .await
        .unwrap();
    assert_eq!(finished(&held, run.id).await.result, Some(json!(16)));
    let (input, cached) = cached_share(&held, run.id).await;
    let with_hold = cached as f64 / input as f64;

    let unheld = fixture_with(Kind::Sqlite, |c| c.prefix_stagger = Duration::ZERO).await;
    unheld.mock.set_prefill(Duration::from_millis(150));
    let run = unheld
        .engine
        .start_inline(SIXTEEN, wide.clone())
        .await
        .unwrap();
    assert_eq!(finished(&unheld, run.id).await.result, Some(json!(16)));
    let (input, cached) = cached_share(&unheld, run.id).await;
    let without = cached as f64 / input as f64;
    assert!(
        with_hold >= 0.8 && without < 0.2,
        "cached share of input: {with_hold:.2} with the hold, {without:.2} without"
    );

    // A lone agent, and siblings whose prefixes differ, are never held.
    let f = fixture(Kind::Sqlite).await;
    f.mock.set_prefill(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let run = f
        .engine
        .start_inline(
            "return await parallel([() => agent('plain'), () => agent('shaped', { schema: { type: 'object' } })])",
            wide,
        )
        .await
        .unwrap();
    finished(&f, run.id).await;
    assert_eq!(f.mock.peak_in_flight(), 2, "both asked at once");
    let run = f
        .engine
        .start_inline("return await agent('alone')", auto())
        .await
        .unwrap();
    finished(&f, run.id).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
