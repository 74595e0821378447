//! Workspace tools. Every path is resolved inside the workspace root; a tool that is not
//! granted, gets bad arguments or fails answers the model with an error result and never
//! takes the session down.
mod exec;
mod fs;
mod paths;
mod search;

use std::time::Duration;

use baton_llm::ToolSpec;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use paths::{PathError, Workspace};

pub use baton_core::Capabilities;

#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
        }
    }

    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

/// Limits of the tools (all bytes unless named otherwise).
#[derive(Debug, Clone, Copy)]
pub struct ToolLimits {
    pub read_output: usize,
    pub max_file: u64,
    pub list_entries: usize,
    pub matches: usize,
    pub write_content: usize,
    pub exec_timeout: Duration,
    pub exec_output: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            read_output: 256 * 1024,
            max_file: 50 * 1024 * 1024,
            list_entries: 1_000,
            matches: 500,
            write_content: 1024 * 1024,
            exec_timeout: Duration::from_secs(120),
            exec_output: 64 * 1024,
        }
    }
}

/// Every tool a session may be given, whatever its capabilities grant.
pub const NAMES: [&str; 7] = [
    "read_file",
    "list_dir",
    "glob",
    "grep",
    "write_file",
    "edit_file",
    "bash",
];

/// The Baton tool a name in an agent's `tools` list means: Baton's own names, and Claude
/// Code's (`Read`, `Grep`, `Glob`, `LS`, `Edit`, `MultiEdit`, `Write`, `Bash`). `None`
/// when it means none of them.
pub fn canonical(name: &str) -> Option<&'static str> {
    if let Some(n) = NAMES.iter().find(|n| **n == name) {
        return Some(n);
    }
    Some(match name {
        "Read" => "read_file",
        "Grep" => "grep",
        "Glob" => "glob",
        "LS" => "list_dir",
        "Edit" | "MultiEdit" => "edit_file",
        "Write" => "write_file",
        "Bash" => "bash",
        _ => return None,
    })
}

/// The tools a session may call, in a stable order (part of the cacheable prompt prefix).
pub fn specs(caps: Capabilities) -> Vec<ToolSpec> {
    let mut out = vec![
        spec("read_file", "Read a text file of the workspace. Lines are numbered from 1; use offset (first line) and limit (line count) for large files.",
            json!({ "type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                "path": { "type": "string", "description": "Path relative to the workspace root" },
                "offset": { "type": "integer", "minimum": 1 },
                "limit": { "type": "integer", "minimum": 1 } } })),
        spec("list_dir", "List a directory of the workspace: sub-directories end with '/', files show their size.",
            json!({ "type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                "path": { "type": "string", "description": "Path relative to the workspace root; '.' for the root" } } })),
        spec("glob", "Find files whose workspace-relative path matches a glob such as 'src/**/*.rs'. Honours .gitignore.",
            json!({ "type": "object", "required": ["pattern"], "additionalProperties": false, "properties": {
                "pattern": { "type": "string" } } })),
        spec("grep", "Search file contents with a regular expression; answers path:line: text. Honours .gitignore.",
            json!({ "type": "object", "required": ["pattern"], "additionalProperties": false, "properties": {
                "pattern": { "type": "string", "description": "A Rust regular expression" },
                "path": { "type": "string", "description": "A file or directory to search; the whole workspace when absent" } } })),
    ];
    if caps.write {
        out.push(spec("write_file", "Create or replace a file of the workspace with the given content.",
            json!({ "type": "object", "required": ["path", "content"], "additionalProperties": false, "properties": {
                "path": { "type": "string" }, "content": { "type": "string" } } })));
        out.push(spec("edit_file", "Replace the one occurrence of `old` in a file with `new`.",
            json!({ "type": "object", "required": ["path", "old", "new"], "additionalProperties": false, "properties": {
                "path": { "type": "string" }, "old": { "type": "string" }, "new": { "type": "string" } } })));
    }
    if caps.exec {
        out.push(spec("bash", "Run a shell command in the workspace root (time-limited, output capped).",
            json!({ "type": "object", "required": ["command"], "additionalProperties": false, "properties": {
                "command": { "type": "string" } } })));
    }
    out
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters,
    }
}

/// Runs one tool call.
pub async fn run(
    ws: &Workspace,
    caps: Capabilities,
    limits: ToolLimits,
    name: &str,
    args: &Value,
    cancel: &CancellationToken,
) -> ToolOutput {
    let granted = match name {
        "read_file" | "list_dir" | "glob" | "grep" => true,
        "write_file" | "edit_file" => caps.write,
        "bash" => caps.exec,
        _ => return ToolOutput::error(format!("unknown tool '{name}'")),
    };
    if !granted {
        let cap = if name == "bash" { "exec" } else { "write" };
        return ToolOutput::error(format!(
            "the tool '{name}' is not granted to this agent (needs the '{cap}' capability)"
        ));
    }
    if let Some(raw) = args.get("_raw") {
        return ToolOutput::error(format!(
            "arguments are not a JSON object: {}",
            trunc(&raw.to_string(), 200)
        ));
    }
    if name == "bash" {
        return match str_arg(args, "command") {
            Ok(cmd) => exec::bash(ws.root(), &cmd, limits, cancel).await,
            Err(e) => ToolOutput::error(e),
        };
    }
    let ws = ws.clone();
    let name = name.to_string();
    let args = args.clone();
    let job = tokio::task::spawn_blocking(move || blocking(&ws, &name, &args, limits));
    match job.await {
        Ok(Ok(out)) => ToolOutput::ok(out),
        Ok(Err(e)) => ToolOutput::error(e),
        Err(_) => ToolOutput::error("the tool failed unexpectedly"),
    }
}

fn blocking(
    ws: &Workspace,
    name: &str,
    args: &Value,
    limits: ToolLimits,
) -> Result<String, String> {
    match name {
        "read_file" => fs::read_file(
            ws,
            &str_arg(args, "path")?,
            opt_usize(args, "offset")?,
            opt_usize(args, "limit")?,
            limits,
        ),
        "list_dir" => fs::list_dir(ws, &str_arg(args, "path")?, limits),
        "glob" => search::glob(ws, &str_arg(args, "pattern")?, limits),
        "grep" => search::grep(
            ws,
            &str_arg(args, "pattern")?,
            opt_str(args, "path")?.as_deref(),
            limits,
        ),
        "write_file" => fs::write_file(
            ws,
            &str_arg(args, "path")?,
            &str_arg(args, "content")?,
            limits,
        ),
        "edit_file" => fs::edit_file(
            ws,
            &str_arg(args, "path")?,
            &str_arg(args, "old")?,
            &str_arg(args, "new")?,
            limits,
        ),
        _ => Err(format!("unknown tool '{name}'")),
    }
}

fn str_arg(args: &Value, key: &str) -> Result<String, String> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("'{key}' must be a string")),
        None => Err(format!("missing argument '{key}'")),
    }
}

fn opt_str(args: &Value, key: &str) -> Result<Option<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("'{key}' must be a string")),
    }
}

fn opt_usize(args: &Value, key: &str) -> Result<Option<usize>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("'{key}' must be a whole number of at least 1")),
    }
}

pub(crate) fn trunc(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
