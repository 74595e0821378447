//! Finding workflow definitions: `<workspace>/.baton/workflows`, then
//! `<workspace>/.claude/workflows` (so Claude Code workflows run unchanged), then
//! `~/.baton/workflows`, then the built-in catalog. The first definition of a name wins.
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::catalog::BUILTINS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Builtin,
    Project,
    Personal,
    Inline,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::Project => "project",
            Source::Personal => "personal",
            Source::Inline => "inline",
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Definition {
    pub name: String,
    pub description: String,
    pub source: Source,
    /// The file it was read from; `null` for built-in and inline scripts.
    pub path: Option<String>,
    pub phases: Vec<String>,
    pub script: String,
}

const MAX_FILE: u64 = 1 << 20;

/// `[a-z0-9][a-z0-9-_:]*`, at most 100 characters.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 100
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b':')
        })
}

/// The folders searched, in precedence order, with the source they count as.
pub fn folders(workspace: &Path, home: Option<&Path>) -> Vec<(PathBuf, Source)> {
    let mut out = vec![
        (workspace.join(".baton/workflows"), Source::Project),
        (workspace.join(".claude/workflows"), Source::Project),
    ];
    if let Some(h) = home {
        out.push((h.join(".baton/workflows"), Source::Personal));
    }
    out
}

/// Every definition visible from `workspace`, the first of each name only. Files that
/// do not parse are skipped with a warning.
pub async fn discover(workspace: &Path, home: Option<&Path>) -> Vec<Definition> {
    let mut found: Vec<Definition> = Vec::new();
    for (dir, source) in folders(workspace, home) {
        for path in script_files(&dir) {
            match load(&path, source).await {
                Ok(d) if !found.iter().any(|f| f.name == d.name) => found.push(d),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a workflow file")
                }
            }
        }
    }
    for d in builtins().await {
        if !found.iter().any(|f| f.name == d.name) {
            found.push(d.clone());
        }
    }
    found
}

/// The built-in definitions, parsed once: they are compiled into the binary.
async fn builtins() -> &'static [Definition] {
    static PARSED: tokio::sync::OnceCell<Vec<Definition>> = tokio::sync::OnceCell::const_new();
    PARSED
        .get_or_init(|| async {
            let mut out = Vec::new();
            for (name, src) in BUILTINS {
                match from_source(src, Source::Builtin, None, None).await {
                    Ok(d) => out.push(d),
                    Err(e) => tracing::error!(workflow = name, error = %e, "a built-in workflow does not parse"),
                }
            }
            out
        })
        .await
}

/// The `.js` files directly in `dir` that really live there (a symlink pointing out of
/// the folder is never read).
fn script_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(real_dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&real_dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "js"))
        .filter(|p| {
            std::fs::canonicalize(p)
                .ok()
                .is_some_and(|real| real.parent() == Some(real_dir.as_path()) && real.is_file())
        })
        .collect();
    files.sort();
    files
}

async fn load(path: &Path, source: Source) -> Result<Definition, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FILE {
        return Err(format!("over {MAX_FILE} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string);
    from_source(&text, source, Some(path), stem).await
}

/// A definition from script text.
pub async fn from_source(
    text: &str,
    source: Source,
    path: Option<&Path>,
    stem: Option<String>,
) -> Result<Definition, String> {
    let script = baton_script::parse(text).await.map_err(|e| e.to_string())?;
    let name = script
        .meta
        .name
        .clone()
        .or(stem)
        .ok_or("the script has no meta.name")?;
    if !valid_name(&name) {
        return Err(format!(
            "'{name}' is not a valid workflow name ([a-z0-9][a-z0-9-_:]*)"
        ));
    }
    Ok(Definition {
        name,
        description: script.meta.description.clone().unwrap_or_default(),
        source,
        path: path.map(|p| p.display().to_string()),
        phases: script.meta.phases.iter().map(|p| p.title.clone()).collect(),
        script: text.to_string(),
    })
}

/// `review-code` is the old name of `multi-review`.
pub fn canonical_name(name: &str) -> &str {
    match name {
        "review-code" => "multi-review",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["deep-research", "a", "x1:y_z", "0go"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "Upper",
            "a b",
            "../x",
            "a/b",
            "ünï",
            &"x".repeat(101),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
