//! The frameworks Baton is compared with, installed by the bench itself (pip, into a
//! cache folder, once) and each given the same scripted model server over HTTP that Baton
//! calls, the same 16 agents in flight, and a durable result per agent.
use std::path::{Path, PathBuf};
use std::process::Command;

/// Pinned, so that figures from different days compare the same code.
const PACKAGES: &[&str] = &[
    "langgraph==1.2.24",
    "langgraph-checkpoint-sqlite==3.1.2",
    "aiosqlite==0.22.1",
    "langchain-openai==1.7.4",
    "dbos==3.4.0",
];

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("baton").join("bench-peers-1")
}

/// The Python that has the peers, installing them on first use; why not, when it cannot.
pub fn python() -> Result<PathBuf, String> {
    let dir = cache_dir();
    let python = dir.join("bin").join("python");
    let stamp = dir.join("installed");
    if stamp.exists() {
        return Ok(python);
    }
    eprintln!("installing the peer frameworks into {} …", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
    let venv = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .map_err(|e| format!("python3 is not available ({e})"))?;
    if !venv.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&venv.stderr).trim()
        ));
    }
    let pip = Command::new(dir.join("bin").join("pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PACKAGES)
        .output()
        .map_err(|e| format!("pip did not start ({e})"))?;
    if !pip.status.success() {
        let why = String::from_utf8_lossy(&pip.stderr);
        let last = why.lines().last().unwrap_or("").trim().to_string();
        return Err(format!("pip install failed: {last}"));
    }
    std::fs::write(&stamp, PACKAGES.join("\n")).map_err(|e| e.to_string())?;
    Ok(python)
}

/// One peer run: `script` from `crates/baton-bench/py` with `args`; its agents per
/// second and its process's peak RSS in MiB.
pub fn run(python: &Path, script: &str, args: &[String]) -> Result<(f64, f64), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_string();
        return Err(format!("{script} failed: {last}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let rate: f64 = parts.next().and_then(|p| p.parse().ok()).ok_or("no rate")?;
    let peak: f64 = parts.next().and_then(|p| p.parse().ok()).ok_or("no RSS")?;
    Ok((rate, peak))
}
