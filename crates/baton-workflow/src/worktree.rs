//! `isolation: 'worktree'`: an agent of a run granted `write` works in a fresh `git
//! worktree` of the workspace on a branch of its own; afterwards the worktree is removed
//! when the agent changed nothing, and kept (and reported) when it did.
use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A worktree made for one agent.
#[derive(Debug, Clone)]
pub(crate) struct Worktree {
    /// The main repository's top level.
    repo: PathBuf,
    pub path: PathBuf,
    pub branch: String,
    /// The commit it started from.
    base: String,
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("git could not be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A fresh worktree of `workspace`'s repository at its `HEAD`, on branch `branch`, under
/// `parent`. The error says why (no git repository, no commit yet, git failing).
pub(crate) async fn create(
    workspace: &Path,
    parent: &Path,
    branch: &str,
) -> Result<Worktree, String> {
    let repo = git(workspace, &["rev-parse", "--show-toplevel"])
        .await
        .map_err(|_| {
            format!(
                "isolation: 'worktree' needs the workspace to be a git repository, and {} is not one",
                workspace.display()
            )
        })?;
    let repo = PathBuf::from(repo);
    let base = git(&repo, &["rev-parse", "HEAD"]).await.map_err(|_| {
        "isolation: 'worktree' needs a repository with at least one commit".to_string()
    })?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    let path = parent.join(branch.replace('/', "-"));
    // Left over by an attempt that was interrupted: start it again from HEAD.
    if path.exists() {
        let _ = git(
            &repo,
            &["worktree", "remove", "--force", &path.display().to_string()],
        )
        .await;
    }
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-B",
            branch,
            &path.display().to_string(),
            &base,
        ],
    )
    .await?;
    Ok(Worktree {
        repo,
        path,
        branch: branch.to_string(),
        base,
    })
}

impl Worktree {
    /// Removes the worktree and its branch if the agent changed nothing; otherwise keeps
    /// them and says what changed (`git diff --stat` against the base, uncommitted
    /// changes included).
    pub(crate) async fn finish(&self) -> Result<Option<String>, String> {
        let dirty = git(&self.path, &["status", "--porcelain"]).await?;
        let head = git(&self.path, &["rev-parse", "HEAD"]).await?;
        if dirty.is_empty() && head == self.base {
            git(
                &self.repo,
                &[
                    "worktree",
                    "remove",
                    "--force",
                    &self.path.display().to_string(),
                ],
            )
            .await?;
            git(&self.repo, &["branch", "-D", &self.branch]).await?;
            return Ok(None);
        }
        // New files count too: intent-to-add makes them show in the diff.
        let _ = git(&self.path, &["add", "--intent-to-add", "--all"]).await;
        let stat = git(&self.path, &["diff", "--shortstat", &self.base]).await?;
        Ok(Some(if stat.is_empty() {
            "changes".to_string()
        } else {
            stat
        }))
    }
}
