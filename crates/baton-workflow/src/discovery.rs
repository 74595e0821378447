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
    /// Why a saved script cannot run (it does not parse, or it is too large); starting it
    /// answers 422 with this. `null` for one that can run.
    pub error: Option<DefinitionError>,
}

/// What is wrong with a saved script, and where.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DefinitionError {
    pub message: String,
    /// 1-based, when the error has a place in the file.
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl From<baton_script::ScriptError> for DefinitionError {
    fn from(e: baton_script::ScriptError) -> Self {
        use baton_script::ScriptError as E;
        let (line, column) = match &e {
            E::Syntax { line, column, .. } | E::Forbidden { line, column, .. } => {
                (Some(*line), Some(*column))
            }
            _ => (None, None),
        };
        Self {
            message: e.to_string(),
            line,
            column,
        }
    }
}

impl DefinitionError {
    fn plain(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: None,
            column: None,
        }
    }
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

/// Every definition visible from `workspace`, the first of each name only. A file that
/// does not parse is listed under its file name with its error (so it is never silently
/// missing); one whose file name is no workflow name is skipped with a warning.
pub async fn discover(workspace: &Path, home: Option<&Path>) -> Vec<Definition> {
    let mut found: Vec<Definition> = Vec::new();
    for (dir, source) in folders(workspace, home) {
        for path in script_files(&dir) {
            match load(&path, source).await {
                Some(d) if !found.iter().any(|f| f.name == d.name) => found.push(d),
                _ => {}
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
                    Err(e) => tracing::error!(workflow = name, error = %e.message, "a built-in workflow does not parse"),
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

async fn load(path: &Path, source: Source) -> Option<Definition> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string);
    let text = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => Err(DefinitionError::plain(format!(
            "the file is over {MAX_FILE} bytes"
        ))),
        Ok(_) => std::fs::read_to_string(path)
            .map_err(|e| DefinitionError::plain(format!("the file cannot be read: {e}"))),
        Err(e) => Err(DefinitionError::plain(format!(
            "the file cannot be read: {e}"
        ))),
    };
    let outcome = match &text {
        Ok(t) => from_source(t, source, Some(path), stem.clone()).await,
        Err(e) => Err(e.clone()),
    };
    match outcome {
        Ok(d) => Some(d),
        Err(error) => match stem.filter(|s| valid_name(s)) {
            Some(name) => {
                tracing::warn!(path = %path.display(), error = %error.message, "a workflow file cannot run");
                Some(Definition {
                    name,
                    description: String::new(),
                    source,
                    path: Some(path.display().to_string()),
                    phases: Vec::new(),
                    script: text.unwrap_or_default(),
                    error: Some(error),
                })
            }
            None => {
                tracing::warn!(path = %path.display(), error = %error.message, "skipping a workflow file whose name is no workflow name");
                None
            }
        },
    }
}

/// A definition from script text.
pub async fn from_source(
    text: &str,
    source: Source,
    path: Option<&Path>,
    stem: Option<String>,
) -> Result<Definition, DefinitionError> {
    let script = baton_script::parse(text).await?;
    let name = script
        .meta
        .name
        .clone()
        .or(stem)
        .ok_or_else(|| DefinitionError::plain("the script has no meta.name"))?;
    if !valid_name(&name) {
        return Err(DefinitionError::plain(format!(
            "'{name}' is not a valid workflow name ([a-z0-9][a-z0-9-_:]*)"
        )));
    }
    Ok(Definition {
        name,
        description: script.meta.description.clone().unwrap_or_default(),
        source,
        path: path.map(|p| p.display().to_string()),
        phases: script.meta.phases.iter().map(|p| p.title.clone()).collect(),
        script: text.to_string(),
        error: None,
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
