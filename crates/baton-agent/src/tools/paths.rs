//! Confinement: every path a tool touches resolves, symlinks followed, to a place inside
//! the workspace root, and never into the kernel's pseudo-filesystems.
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the workspace root '{0}' is not an existing directory")]
    BadRoot(String),
    #[error("'{0}' leaves the workspace ('..' is not allowed)")]
    ParentDir(String),
    #[error("'{0}' is outside the workspace")]
    Outside(String),
    #[error("'{0}' is not a usable path")]
    Invalid(String),
    #[error("'{0}' does not exist")]
    Missing(String),
}

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

const FORBIDDEN: [&str; 3] = ["/proc", "/sys", "/dev"];

impl Workspace {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, PathError> {
        let shown = root.as_ref().display().to_string();
        let root =
            std::fs::canonicalize(root.as_ref()).map_err(|_| PathError::BadRoot(shown.clone()))?;
        if !root.is_dir() {
            return Err(PathError::BadRoot(shown));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The canonical path of an existing file or directory inside the workspace.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, PathError> {
        let joined = self.lexical(raw)?;
        let real =
            std::fs::canonicalize(&joined).map_err(|_| PathError::Missing(raw.to_string()))?;
        self.check_inside(raw, &real)?;
        Ok(real)
    }

    /// Where a file to be created would go: its parent must exist inside the workspace
    /// and, if the file exists, it must resolve inside too.
    pub fn resolve_for_write(&self, raw: &str) -> Result<PathBuf, PathError> {
        let joined = self.lexical(raw)?;
        if joined.exists() || joined.is_symlink() {
            return self.resolve(raw);
        }
        let name = joined
            .file_name()
            .ok_or_else(|| PathError::Invalid(raw.to_string()))?
            .to_owned();
        let parent = joined
            .parent()
            .ok_or_else(|| PathError::Invalid(raw.to_string()))?;
        // Create missing parents only after checking the deepest existing ancestor.
        let mut existing = parent.to_path_buf();
        while !existing.exists() {
            existing = existing
                .parent()
                .ok_or_else(|| PathError::Invalid(raw.to_string()))?
                .to_path_buf();
        }
        let real_existing =
            std::fs::canonicalize(&existing).map_err(|_| PathError::Missing(raw.to_string()))?;
        self.check_inside(raw, &real_existing)?;
        std::fs::create_dir_all(parent).map_err(|_| PathError::Invalid(raw.to_string()))?;
        let real_parent =
            std::fs::canonicalize(parent).map_err(|_| PathError::Missing(raw.to_string()))?;
        self.check_inside(raw, &real_parent)?;
        Ok(real_parent.join(name))
    }

    /// Joins without touching the disk, refusing what can never be inside.
    fn lexical(&self, raw: &str) -> Result<PathBuf, PathError> {
        if raw.is_empty() || raw.contains('\0') || raw.len() > 4096 {
            return Err(PathError::Invalid(raw.chars().take(100).collect()));
        }
        let p = Path::new(raw);
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(PathError::ParentDir(raw.to_string()));
        }
        if p.is_absolute() {
            if !p.starts_with(&self.root) {
                return Err(PathError::Outside(raw.to_string()));
            }
            return Ok(p.to_path_buf());
        }
        Ok(self.root.join(p))
    }

    fn check_inside(&self, raw: &str, real: &Path) -> Result<(), PathError> {
        if !real.starts_with(&self.root) || FORBIDDEN.iter().any(|f| real.starts_with(f)) {
            return Err(PathError::Outside(raw.to_string()));
        }
        Ok(())
    }

    /// The path as the model should see it: relative to the root.
    pub fn relative(&self, real: &Path) -> String {
        real.strip_prefix(&self.root)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    ".".to_string()
                } else {
                    p.display().to_string()
                }
            })
            .unwrap_or_else(|_| real.display().to_string())
    }
}
