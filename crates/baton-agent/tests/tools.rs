//! Workspace tools: what they answer, and every way out of the workspace refused.
use std::os::unix::fs::symlink;
use std::time::Duration;

use baton_agent::tools::{self, Capabilities, ToolLimits, Workspace};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Fixture {
    _dir: tempfile::TempDir,
    ws: Workspace,
    outside: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/routes")).unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        "fn main() {\n    println!(\"hi\");\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/routes/users.ts"),
        "export const users = [];\n// TODO: auth\n",
    )
    .unwrap();
    std::fs::write(root.join("README.md"), "# demo\n").unwrap();
    std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
    std::fs::create_dir_all(root.join("target")).unwrap();
    std::fs::write(root.join("target/junk.rs"), "// TODO: ignored\n").unwrap();
    std::fs::write(root.join("blob.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP SECRET\n").unwrap();
    symlink(outside.path(), root.join("escape_dir")).unwrap();
    symlink(outside.path().join("secret.txt"), root.join("escape_file")).unwrap();
    symlink("/proc/self/environ", root.join("environ")).unwrap();
    symlink("/dev/zero", root.join("zero")).unwrap();
    symlink("src/main.rs", root.join("inner_link")).unwrap();
    let ws = Workspace::new(root).unwrap();
    Fixture {
        _dir: dir,
        ws,
        outside,
    }
}

async fn call(f: &Fixture, caps: Capabilities, name: &str, args: Value) -> tools::ToolOutput {
    tools::run(
        &f.ws,
        caps,
        ToolLimits::default(),
        name,
        &args,
        &CancellationToken::new(),
    )
    .await
}

fn read_only() -> Capabilities {
    Capabilities::default()
}

fn all() -> Capabilities {
    Capabilities {
        write: true,
        exec: true,
    }
}

#[tokio::test]
async fn read_file_numbers_lines_and_pages() {
    let f = fixture();
    let out = call(
        &f,
        read_only(),
        "read_file",
        json!({ "path": "src/main.rs" }),
    )
    .await;
    assert!(!out.is_error, "{}", out.content);
    assert!(
        out.content.contains("     2\t    println!(\"hi\");"),
        "{}",
        out.content
    );
    let page = call(
        &f,
        read_only(),
        "read_file",
        json!({ "path": "src/main.rs", "offset": 2, "limit": 1 }),
    )
    .await;
    assert!(page.content.starts_with("     2\t"), "{}", page.content);
    assert!(page.content.contains("lines 2-2 of 3"), "{}", page.content);
    let past = call(
        &f,
        read_only(),
        "read_file",
        json!({ "path": "src/main.rs", "offset": 99 }),
    )
    .await;
    assert!(past.is_error && past.content.contains("3 lines"));
    let link = call(
        &f,
        read_only(),
        "read_file",
        json!({ "path": "inner_link" }),
    )
    .await;
    assert!(!link.is_error, "a symlink that stays inside is fine");
}

#[tokio::test]
async fn escapes_are_refused() {
    let f = fixture();
    let secret = f.outside.path().join("secret.txt");
    for path in [
        "../secret.txt".to_string(),
        "src/../../etc/passwd".to_string(),
        "/etc/passwd".to_string(),
        secret.display().to_string(),
        "escape_file".to_string(),
        "escape_dir/secret.txt".to_string(),
        "environ".to_string(),
        "zero".to_string(),
        "/proc/self/environ".to_string(),
        "".to_string(),
        "a\u{0}b".to_string(),
    ] {
        for (tool, args) in [
            ("read_file", json!({ "path": path })),
            ("list_dir", json!({ "path": path })),
            ("grep", json!({ "pattern": "SECRET", "path": path })),
        ] {
            let out = call(&f, read_only(), tool, args).await;
            assert!(out.is_error, "{tool} {path:?} was allowed: {}", out.content);
            assert!(
                !out.content.contains("TOP SECRET"),
                "{tool} {path:?} leaked"
            );
        }
    }
    let grep_all = call(&f, read_only(), "grep", json!({ "pattern": "SECRET" })).await;
    assert!(
        !grep_all.content.contains("TOP SECRET"),
        "grep does not follow links out"
    );
    let glob = call(
        &f,
        read_only(),
        "glob",
        json!({ "pattern": "**/secret.txt" }),
    )
    .await;
    assert_eq!(glob.content, "no files match");
    let glob = call(&f, read_only(), "glob", json!({ "pattern": "../**" })).await;
    assert!(glob.is_error);
}

#[tokio::test]
async fn writes_cannot_escape_either() {
    let f = fixture();
    for path in [
        "../x.txt",
        "escape_dir/new.txt",
        "escape_file",
        "/tmp/baton-write-escape.txt",
    ] {
        let out = call(
            &f,
            all(),
            "write_file",
            json!({ "path": path, "content": "pwned" }),
        )
        .await;
        assert!(out.is_error, "{path}: {}", out.content);
    }
    assert_eq!(
        std::fs::read_to_string(f.outside.path().join("secret.txt")).unwrap(),
        "TOP SECRET\n"
    );
    assert!(!f.outside.path().join("new.txt").exists());
    assert!(!std::path::Path::new("/tmp/baton-write-escape.txt").exists());
}

#[tokio::test]
async fn hard_links_to_files_outside_are_not_written_through() {
    let f = fixture();
    let secret = f.outside.path().join("secret.txt");
    // Same filesystem (both temporary directories), so the link can be made.
    std::fs::hard_link(&secret, f.ws.root().join("innocent.txt")).unwrap();
    for (tool, args) in [
        (
            "write_file",
            json!({ "path": "innocent.txt", "content": "pwned" }),
        ),
        (
            "edit_file",
            json!({ "path": "innocent.txt", "old": "TOP", "new": "pwned" }),
        ),
    ] {
        let out = call(&f, all(), tool, args).await;
        assert!(out.is_error, "{tool}: {}", out.content);
        assert!(
            out.content.contains("hard links"),
            "{tool}: {}",
            out.content
        );
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOP SECRET\n");
    // Reading it stays possible: the link is inside, and reading changes nothing.
    let read = call(
        &f,
        read_only(),
        "read_file",
        json!({ "path": "innocent.txt" }),
    )
    .await;
    assert!(!read.is_error, "{}", read.content);
    // A file with one link is written as before.
    let ok = call(
        &f,
        all(),
        "write_file",
        json!({ "path": "README.md", "content": "new" }),
    )
    .await;
    assert!(!ok.is_error, "{}", ok.content);
    assert_eq!(
        std::fs::read_to_string(f.ws.root().join("README.md")).unwrap(),
        "new"
    );
}

#[tokio::test]
async fn binary_huge_and_special_files_are_refused() {
    let f = fixture();
    let bin = call(&f, read_only(), "read_file", json!({ "path": "blob.bin" })).await;
    assert!(
        bin.is_error && bin.content.contains("binary"),
        "{}",
        bin.content
    );
    let dir = call(&f, read_only(), "read_file", json!({ "path": "src" })).await;
    assert!(dir.is_error && dir.content.contains("directory"));
    let big = f.ws.root().join("big.txt");
    std::fs::write(&big, "x\n".repeat(1000)).unwrap();
    let limits = ToolLimits {
        max_file: 1000,
        ..ToolLimits::default()
    };
    let out = tools::run(
        &f.ws,
        read_only(),
        limits,
        "read_file",
        &json!({ "path": "big.txt" }),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        out.is_error && out.content.contains("limit"),
        "{}",
        out.content
    );
    let limits = ToolLimits {
        read_output: 100,
        ..ToolLimits::default()
    };
    let out = tools::run(
        &f.ws,
        read_only(),
        limits,
        "read_file",
        &json!({ "path": "big.txt" }),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        !out.is_error && out.content.len() < 300 && out.content.contains("of 1000"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn list_glob_and_grep_answer_usefully() {
    let f = fixture();
    let ls = call(&f, read_only(), "list_dir", json!({ "path": "." })).await;
    assert!(
        ls.content.contains("src/") && ls.content.contains("README.md  (7 bytes)"),
        "{}",
        ls.content
    );
    let glob = call(&f, read_only(), "glob", json!({ "pattern": "src/**/*.ts" })).await;
    assert_eq!(glob.content, "src/routes/users.ts");
    let grep = call(&f, read_only(), "grep", json!({ "pattern": "TODO" })).await;
    assert_eq!(
        grep.content.trim(),
        "src/routes/users.ts:2: // TODO: auth",
        ".gitignore'd files are skipped"
    );
    let bad = call(&f, read_only(), "grep", json!({ "pattern": "(" })).await;
    assert!(bad.is_error && bad.content.contains("regular expression"));
    let limits = ToolLimits {
        matches: 1,
        ..ToolLimits::default()
    };
    std::fs::write(f.ws.root().join("many.txt"), "hit\nhit\nhit\n").unwrap();
    let out = tools::run(
        &f.ws,
        read_only(),
        limits,
        "grep",
        &json!({ "pattern": "hit" }),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        out.content.contains("stopped at 1 matches"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn tools_not_granted_or_badly_called_are_error_results() {
    let f = fixture();
    let w = call(
        &f,
        read_only(),
        "write_file",
        json!({ "path": "a.txt", "content": "x" }),
    )
    .await;
    assert!(w.is_error && w.content.contains("write"), "{}", w.content);
    assert!(!f.ws.root().join("a.txt").exists());
    let b = call(&f, read_only(), "bash", json!({ "command": "touch pwned" })).await;
    assert!(b.is_error && b.content.contains("exec"));
    assert!(!f.ws.root().join("pwned").exists());
    for (tool, args, needle) in [
        ("read_file", json!({}), "missing argument 'path'"),
        ("read_file", json!({ "path": 5 }), "must be a string"),
        (
            "read_file",
            json!({ "path": "README.md", "offset": 0 }),
            "at least 1",
        ),
        (
            "read_file",
            json!({ "_raw": "{not json" }),
            "not a JSON object",
        ),
        ("launch", json!({}), "unknown tool"),
    ] {
        let out = call(&f, all(), tool, args).await;
        assert!(
            out.is_error && out.content.contains(needle),
            "{tool}: {}",
            out.content
        );
    }
}

#[tokio::test]
async fn write_and_edit_with_the_write_capability() {
    let f = fixture();
    let out = call(
        &f,
        all(),
        "write_file",
        json!({ "path": "new/dir/file.txt", "content": "alpha beta" }),
    )
    .await;
    assert!(!out.is_error, "{}", out.content);
    assert_eq!(
        std::fs::read_to_string(f.ws.root().join("new/dir/file.txt")).unwrap(),
        "alpha beta"
    );
    let out = call(
        &f,
        all(),
        "edit_file",
        json!({ "path": "new/dir/file.txt", "old": "beta", "new": "gamma" }),
    )
    .await;
    assert!(!out.is_error, "{}", out.content);
    assert_eq!(
        std::fs::read_to_string(f.ws.root().join("new/dir/file.txt")).unwrap(),
        "alpha gamma"
    );
    std::fs::write(f.ws.root().join("dup.txt"), "x x").unwrap();
    let out = call(
        &f,
        all(),
        "edit_file",
        json!({ "path": "dup.txt", "old": "x", "new": "y" }),
    )
    .await;
    assert!(out.is_error && out.content.contains("2 times"));
    assert_eq!(
        std::fs::read_to_string(f.ws.root().join("dup.txt")).unwrap(),
        "x x"
    );
}

#[tokio::test]
async fn bash_runs_confined_with_a_clean_environment_and_a_timeout() {
    let f = fixture();
    std::env::set_var("BATON_TEST_SECRET_KEY", "sk-should-not-leak");
    let out = call(&f, all(), "bash", json!({ "command": "pwd; env" })).await;
    assert!(!out.is_error, "{}", out.content);
    assert!(out.content.starts_with(&f.ws.root().display().to_string()));
    assert!(!out.content.contains("sk-should-not-leak"));
    let out = call(
        &f,
        all(),
        "bash",
        json!({ "command": "echo oops >&2; exit 4" }),
    )
    .await;
    assert!(out.is_error && out.content.contains("exit code 4") && out.content.contains("oops"));
    let limits = ToolLimits {
        exec_timeout: Duration::from_millis(300),
        ..ToolLimits::default()
    };
    let started = std::time::Instant::now();
    let out = tools::run(
        &f.ws,
        all(),
        limits,
        "bash",
        &json!({ "command": "sleep 30 & sleep 30" }),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        out.is_error && out.content.contains("killed"),
        "{}",
        out.content
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let limits = ToolLimits {
        exec_output: 1000,
        ..ToolLimits::default()
    };
    let out = tools::run(
        &f.ws,
        all(),
        limits,
        "bash",
        &json!({ "command": "seq 1 100000" }),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        out.content.len() < 1200
            && out.content.contains("omitted")
            && out.content.ends_with("100000\n"),
        "{}",
        out.content.len()
    );
}
