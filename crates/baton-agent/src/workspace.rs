//! Which directory a chat, run or task works in, and whether it may be given tools that
//! change things there. Reading is confined to the workspace by the tools; granting
//! `write` or `exec` is allowed only inside the configured roots, so a request cannot
//! hand an agent a shell over `/` or someone else's home.
use std::path::{Path, PathBuf};

use baton_core::Capabilities;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace must be a directory path")]
    Invalid,
    #[error("workspace '{0}' is not an existing directory")]
    NotADirectory(String),
    #[error(
        "{granted} may be granted only for a workspace inside agents.workspace_roots ({roots}); \
         '{workspace}' is not inside any of them"
    )]
    OutsideRoots {
        granted: String,
        workspace: String,
        roots: String,
    },
}

#[derive(Debug, Clone)]
pub struct WorkspacePolicy {
    /// Where agents work when no workspace is named.
    pub default: PathBuf,
    /// Directories under which `write` and `exec` may be granted.
    pub roots: Vec<PathBuf>,
}

impl WorkspacePolicy {
    /// The default roots: the server's working directory and the user's home.
    pub fn default_roots() -> Vec<PathBuf> {
        let mut roots = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            roots.push(cwd);
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            roots.push(PathBuf::from(home));
        }
        roots
    }

    /// The canonical path of `raw` (`None`: the default workspace, and `None` back), after
    /// checking that `caps` may be granted there.
    pub fn resolve(
        &self,
        raw: Option<&Path>,
        caps: &Capabilities,
    ) -> Result<Option<PathBuf>, WorkspaceError> {
        let dir = canonical_dir(raw.unwrap_or(&self.default))?;
        self.check_grant(&dir, caps)?;
        Ok(raw.map(|_| dir))
    }

    fn check_grant(&self, dir: &Path, caps: &Capabilities) -> Result<(), WorkspaceError> {
        let granted: Vec<&str> = [("write", caps.write), ("exec", caps.exec)]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
        if granted.is_empty() {
            return Ok(());
        }
        let roots: Vec<PathBuf> = self
            .roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect();
        // The filesystem root as a root would allow everything: it is never one.
        if roots
            .iter()
            .any(|r| r.parent().is_some() && dir.starts_with(r))
        {
            return Ok(());
        }
        Err(WorkspaceError::OutsideRoots {
            granted: granted.join(" and "),
            workspace: dir.display().to_string(),
            roots: if roots.is_empty() {
                "none configured".into()
            } else {
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

fn canonical_dir(raw: &Path) -> Result<PathBuf, WorkspaceError> {
    let text = raw.as_os_str();
    if text.is_empty() || text.len() > 4096 || text.as_encoded_bytes().contains(&0) {
        return Err(WorkspaceError::Invalid);
    }
    let shown = || WorkspaceError::NotADirectory(raw.display().to_string());
    let dir = std::fs::canonicalize(raw).map_err(|_| shown())?;
    if !dir.is_dir() {
        return Err(shown());
    }
    if dir.to_str().is_none() {
        return Err(WorkspaceError::Invalid);
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(write: bool, exec: bool) -> Capabilities {
        Capabilities { write, exec }
    }

    #[test]
    fn capabilities_only_inside_roots() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("project");
        std::fs::create_dir(&inside).unwrap();
        let other = tempfile::tempdir().unwrap();
        let policy = WorkspacePolicy {
            default: inside.clone(),
            roots: vec![root.path().into()],
        };
        let got = policy.resolve(Some(&inside), &caps(true, true)).unwrap();
        assert_eq!(got, Some(std::fs::canonicalize(&inside).unwrap()));
        assert_eq!(policy.resolve(None, &caps(true, false)).unwrap(), None);
        // Reading anywhere is fine; changing things outside the roots is not.
        assert!(policy
            .resolve(Some(other.path()), &caps(false, false))
            .is_ok());
        let err = policy
            .resolve(Some(other.path()), &caps(false, true))
            .unwrap_err();
        assert!(matches!(err, WorkspaceError::OutsideRoots { .. }), "{err}");
        assert!(
            err.to_string().contains("exec may be granted only"),
            "{err}"
        );
        // `..` that leads out is resolved before the check.
        let sneaky = inside.join("../..");
        assert!(policy.resolve(Some(&sneaky), &caps(true, false)).is_err());
        // `/` as a root does not open everything.
        let slash = WorkspacePolicy {
            default: "/".into(),
            roots: vec!["/".into()],
        };
        assert!(slash.resolve(None, &caps(true, false)).is_err());
        assert_eq!(
            policy.resolve(Some(Path::new("/etc/passwd")), &caps(false, false)),
            Err(WorkspaceError::NotADirectory("/etc/passwd".into()))
        );
    }
}
