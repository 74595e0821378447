//! The `baton` executable as a user runs it.
mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn baton(dir: &std::path::Path) -> Command {
    common::baton_command(dir)
}

fn start(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> (Child, String) {
    let env: Vec<(String, String)> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    common::spawn_baton(dir, &env)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "baton did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_creates_its_sqlite_file_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path(), &[]);
    assert!(dir.path().join("data/baton.db").is_file());
    let (status, body) = get(&addr, "/api/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"database\":\"sqlite\""), "{body}");
    let status = terminate(&mut child);
    assert!(status.success(), "{status}");
}

#[test]
fn serve_uses_postgres_when_the_url_says_so() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(baton_testkit::TestDb::new(baton_testkit::Kind::Postgres));
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path(), &[("BATON_DATABASE__URL", &db.url)]);
    let (status, body) = get(&addr, "/api/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"database\":\"postgres\""), "{body}");
    assert!(!dir.path().join("data/baton.db").exists());
    assert!(terminate(&mut child).success());
    drop(db);
}

#[test]
fn refuses_a_public_bind_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton(dir.path())
        .args(["serve", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.token"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created before the config is valid"
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/default.toml"),
        "[server]\nbind = \"127.0.0.1:0\"\nworkers = 3\n",
    )
    .unwrap();
    let out = baton(dir.path()).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workers"), "{err}");

    let out = baton(dir.path())
        .args(["--config", "missing.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn migrate_reports_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = baton(dir.path())
            .args(["migrate", "--database-url", "sqlite://x/y.db"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run()
        .contains("applied 11 migration(s) (0001_init, 0002_chat_capabilities, 0003_run_log_and_journal_order, 0004_leases, 0005_task_leases, 0006_task_notices, 0007_attachment_bytes, 0008_trace_search, 0009_trace_words, 0010_prompts, 0011_event_log_rows); 0 already applied"));
    assert!(run().contains("applied 0 migration(s); 11 already applied"));
    assert!(dir.path().join("x/y.db").is_file());
}

const AUDIT_ROUTES: &str = r#"export const meta = { name: 'audit-routes', description: 'Audit route handlers',
                      phases: [{ title: 'Find' }, { title: 'Audit' }] }
const found = await agent('List every .ts file under src/routes/.', {
  schema: { type: 'object', required: ['files'],
            properties: { files: { type: 'array', items: { type: 'string' } } } } })
phase('Audit')
const audits = await pipeline(found.files, f => agent(`Audit ${f}`, { label: f }))
return audits.filter(Boolean)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_run_runs_a_claude_code_workflow_unchanged_with_progress() {
    use baton_mock_model::{MockModel, Reply};
    let mock = MockModel::start().await;
    mock.rule(
        "List every .ts file",
        Reply::tool(
            "StructuredOutput",
            serde_json::json!({ "files": ["users.ts", "posts.ts"] }),
        ),
    );
    mock.rule(
        "Audit users.ts",
        Reply::text("users.ts: no auth check on DELETE"),
    );
    mock.rule("Audit posts.ts", Reply::text("posts.ts: fine"));
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".claude/workflows")).unwrap();
    std::fs::write(
        repo.path().join(".claude/workflows/audit-routes.js"),
        AUDIT_ROUTES,
    )
    .unwrap();
    // Thirty agents, from a source that does not say so: the gate binds on what it does.
    std::fs::write(
        repo.path().join(".claude/workflows/wide.js"),
        "const n = [1, 2, 3].length * 10\nreturn await parallel(Array.from({ length: n }, (_, i) => () => agent('wide ' + i)))",
    )
    .unwrap();
    // The text is passed to the script as a string.
    std::fs::write(
        repo.path().join(".claude/workflows/echo-args.js"),
        "return { got: args, type: typeof args }",
    )
    .unwrap();
    let mut env = common::as_env(&common::mock_settings(&mock, "openai"));
    env.push((
        "BATON_AGENTS__WORKSPACE".into(),
        repo.path().display().to_string(),
    ));
    let (mut server, addr) = common::spawn_baton(repo.path(), &env);
    let url = format!("http://{addr}");

    let out = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), repo.path().to_path_buf());
        move || {
            baton(&dir)
                .args(["workflows", "--server", &url])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("audit-routes")
            && listing.contains("project")
            && listing.contains("deep-research"),
        "{listing}"
    );

    let out = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), repo.path().to_path_buf());
        move || {
            baton(&dir)
                .args(["run", "audit-routes", "--server", &url])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result,
        serde_json::json!(["users.ts: no auth check on DELETE", "posts.ts: fine"])
    );
    assert!(stderr.contains("audit-routes · completed"), "{stderr}");
    assert!(
        stderr.contains("Audit") && stderr.contains("2/2"),
        "progress per phase: {stderr}"
    );

    // A large run stops at the 26th agent and waits for approval unless --yes.
    let out = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), repo.path().to_path_buf());
        move || {
            baton(&dir)
                .args(["run", "wide", "--server", &url])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("started 25 agents and waits for approval")
            && stderr.contains("baton approve"),
        "{stderr}"
    );
    let out = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), repo.path().to_path_buf());
        move || {
            baton(&dir)
                .args(["run", "echo-args", "--args", "diff low", "--server", &url])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echoed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        echoed,
        serde_json::json!({ "got": "diff low", "type": "string" })
    );
    // Text that is not JSON is passed as a string, as Claude Code passes it.
    let out = baton(repo.path())
        .args([
            "run",
            "missing-workflow",
            "--args",
            "diff low",
            "--server",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("JSON"), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn baton_check_reports_meta_phases_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("audit-routes.js");
    std::fs::write(
        &good,
        AUDIT_ROUTES.replace("phase('Audit')", "phase('Audit')\nphase('Extra')"),
    )
    .unwrap();
    let out = baton(dir.path())
        .args(["check", good.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("name: audit-routes") && text.contains("phases declared: Find, Audit"),
        "{text}"
    );
    assert!(text.contains("phase('Extra') is not declared"), "{text}");
    assert!(
        text.contains("declares 'Find' but the script never calls phase('Find')"),
        "{text}"
    );
    let bad = dir.path().join("bad.js");
    std::fs::write(&bad, "const a = 1\nconst b = a +* 2\n").unwrap();
    let out = baton(dir.path())
        .args(["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_tasks_from_the_command_line() {
    use baton_mock_model::{MockModel, Reply};
    let mock = MockModel::start().await;
    mock.rule("summarise the crate", Reply::text("it is small and tidy"));
    let dir = tempfile::tempdir().unwrap();
    let env = common::as_env(&common::mock_settings(&mock, "openai"));
    let (mut server, addr) = common::spawn_baton(dir.path(), &env);
    let url = format!("http://{addr}");
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || baton(&dir).args(args).output().unwrap())
    };
    let args = |list: &[&str]| -> Vec<String> {
        list.iter()
            .map(|s| s.to_string())
            .chain(["--server".to_string(), url.clone()])
            .collect()
    };
    let out = run(args(&[
        "spawn",
        "summarise the crate",
        "--label",
        "summary",
    ]))
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains("summary"), "{printed}");
    let id = printed.split_whitespace().next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let out = run(args(&["task", &id])).await.unwrap();
        if out.status.code() != Some(3) {
            break out;
        }
        assert!(Instant::now() < deadline, "the task did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let shown = String::from_utf8_lossy(&done.stdout);
    assert!(
        shown.contains("completed") && shown.contains("it is small and tidy"),
        "{shown}"
    );
    let out = run(args(&["tasks", "--status", "completed"]))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let out = run(args(&["task", "not-an-id"])).await.unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
