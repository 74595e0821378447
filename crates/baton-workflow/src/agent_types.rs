//! Agent types (`agent(prompt, { agentType })`): subagents defined the way Claude Code
//! defines them, as Markdown files with YAML front matter (`name`, `description`, `tools`,
//! `model`) whose body is the agent's system prompt. Looked up in
//! `<workspace>/.baton/agents`, then `<workspace>/.claude/agents`, then `~/.claude/agents`;
//! the first file named `<type>.md` wins.
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::discovery::{valid_name, DefinitionError, Source};

/// Largest agent file read.
const MAX_FILE: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AgentType {
    pub name: String,
    pub description: String,
    /// The tools it may use, as written (Claude Code's names or Baton's); all the run
    /// grants when absent.
    pub tools: Option<Vec<String>>,
    /// Its model (aliases allowed); the run's default when absent.
    pub model: Option<String>,
    /// The system prompt: the file's body.
    pub prompt: String,
    pub source: Source,
    pub path: String,
    /// Why the file cannot be used; `null` when it can.
    pub error: Option<DefinitionError>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Front {
    name: Option<String>,
    description: Option<String>,
    tools: Option<Tools>,
    model: Option<String>,
}

/// `tools: Read, Grep` or `tools: [Read, Grep]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Tools {
    List(Vec<String>),
    Text(String),
}

/// The folders searched, in precedence order.
fn folders(workspace: &Path, home: Option<&Path>) -> Vec<(PathBuf, Source)> {
    let mut out = vec![
        (workspace.join(".baton/agents"), Source::Project),
        (workspace.join(".claude/agents"), Source::Project),
    ];
    if let Some(h) = home {
        out.push((h.join(".claude/agents"), Source::Personal));
    }
    out
}

/// Splits `---\n<yaml>\n---\n<body>`; a file without front matter is all body.
fn split(text: &str) -> Result<(&str, &str), String> {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return Ok(("", text));
    };
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Ok((&rest[..at], &rest[at + line.len()..]));
        }
        at += line.len();
    }
    Err("the front matter starts with --- but never ends with a --- line".into())
}

/// Reads one agent file; `Err` names what is wrong with it.
fn parse(text: &str) -> Result<(Front, String), String> {
    let (yaml, body) = split(text)?;
    let front: Front = if yaml.trim().is_empty() {
        Front::default()
    } else {
        yaml_serde::from_str(yaml).map_err(|e| format!("its front matter is not valid: {e}"))?
    };
    Ok((front, body.trim().to_string()))
}

fn tool_list(t: Tools) -> Vec<String> {
    match t {
        Tools::List(l) => l,
        Tools::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

fn load(path: &Path, name: &str, source: Source) -> AgentType {
    let text = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => Err(format!("the file is over {MAX_FILE} bytes")),
        Ok(_) => std::fs::read_to_string(path).map_err(|e| format!("the file cannot be read: {e}")),
        Err(e) => Err(format!("the file cannot be read: {e}")),
    };
    let mut out = AgentType {
        name: name.to_string(),
        description: String::new(),
        tools: None,
        model: None,
        prompt: String::new(),
        source,
        path: path.display().to_string(),
        error: None,
    };
    match text.and_then(|t| parse(&t)) {
        Ok((front, prompt)) if prompt.is_empty() => {
            out.description = front.description.unwrap_or_default();
            out.error = Some(plain_error("its body (the system prompt) is empty"));
        }
        Ok((front, prompt)) => {
            out.description = front.description.unwrap_or_default();
            out.tools = front.tools.map(tool_list);
            out.model = front.model.filter(|m| !m.trim().is_empty());
            out.prompt = prompt;
            if let Some(n) = front.name.filter(|n| n != name) {
                tracing::debug!(file = %out.path, front = %n, "an agent file's name differs from its file name; the file name counts");
            }
        }
        Err(e) => out.error = Some(plain_error(e)),
    }
    out
}

fn plain_error(message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        message: message.into(),
        line: None,
        column: None,
    }
}

/// The `.md` files directly in `dir` that really live there (a symlink out of the folder
/// is never read), with their names.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(real_dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&real_dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, String)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| {
            std::fs::canonicalize(p)
                .ok()
                .is_some_and(|real| real.parent() == Some(real_dir.as_path()) && real.is_file())
        })
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            valid_name(&stem).then_some((p, stem))
        })
        .collect();
    out.sort();
    out
}

/// Every agent type visible from `workspace`, the first of each name only.
pub fn list(workspace: &Path, home: Option<&Path>) -> Vec<AgentType> {
    let mut out: Vec<AgentType> = Vec::new();
    for (dir, source) in folders(workspace, home) {
        for (path, name) in files(&dir) {
            if !out.iter().any(|a| a.name == name) {
                out.push(load(&path, &name, source));
            }
        }
    }
    out
}

/// The agent type `name`, ready to use; the error says what is wrong and where to look.
pub fn find(name: &str, workspace: &Path, home: Option<&Path>) -> Result<AgentType, String> {
    if !valid_name(name) {
        return Err(format!(
            "agentType '{name}' is not a valid agent name ([a-z0-9][a-z0-9-_:]*)"
        ));
    }
    let found = list(workspace, home).into_iter().find(|a| a.name == name);
    match found {
        Some(AgentType {
            error: Some(e),
            path,
            ..
        }) => Err(format!("agentType '{name}' ({path}) cannot be used: {}", e.message)),
        Some(a) => Ok(a),
        None => Err(format!(
            "agentType '{name}' is not defined: add {name}.md to .baton/agents or .claude/agents in the workspace, or to ~/.claude/agents"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_body() {
        let (front, body) = parse(
            "---\nname: ticker-scout\ndescription: |\n  Finds tickers.\n  Quickly.\ntools: Read, Grep, Glob\nmodel: haiku\n---\nYou scout tickers.\n",
        )
        .unwrap();
        assert_eq!(
            front.description.as_deref(),
            Some("Finds tickers.\nQuickly.\n")
        );
        assert_eq!(tool_list(front.tools.unwrap()), ["Read", "Grep", "Glob"]);
        assert_eq!(front.model.as_deref(), Some("haiku"));
        assert_eq!(body, "You scout tickers.");
        let (front, _) = parse("---\ntools:\n  - Read\n  - Bash\n---\nx").unwrap();
        assert_eq!(tool_list(front.tools.unwrap()), ["Read", "Bash"]);
        let (front, body) = parse("Just a prompt.").unwrap();
        assert!(front.tools.is_none());
        assert_eq!(body, "Just a prompt.");
        assert!(parse("---\nname: x\nno end")
            .unwrap_err()
            .contains("never ends"));
        assert!(parse("---\ntools: [unclosed\n---\nx")
            .unwrap_err()
            .contains("front matter is not valid"));
    }
}
