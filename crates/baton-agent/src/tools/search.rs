use std::fmt::Write as _;
use std::io::{BufRead, BufReader};

use ignore::WalkBuilder;

use super::fs::text_file;
use super::paths::Workspace;
use super::{trunc, ToolLimits};

fn walker(root: &std::path::Path) -> ignore::Walk {
    WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .build()
}

pub(crate) fn glob(ws: &Workspace, pattern: &str, limits: ToolLimits) -> Result<String, String> {
    if pattern.contains("..") {
        return Err("the pattern may not contain '..'".into());
    }
    let pattern = pattern.trim_start_matches("./");
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("invalid glob: {e}"))?
        .compile_matcher();
    let mut hits = Vec::new();
    for entry in walker(ws.root()).flatten() {
        let rel = ws.relative(entry.path());
        if entry.file_type().is_some_and(|t| t.is_file()) && matcher.is_match(&rel) {
            hits.push(rel);
        }
    }
    hits.sort();
    let total = hits.len();
    if total == 0 {
        return Ok("no files match".into());
    }
    let mut out = hits
        .into_iter()
        .take(limits.matches)
        .collect::<Vec<_>>()
        .join("\n");
    if total > limits.matches {
        let _ = write!(out, "\n({} more files not shown)", total - limits.matches);
    }
    Ok(out)
}

pub(crate) fn grep(
    ws: &Workspace,
    pattern: &str,
    path: Option<&str>,
    limits: ToolLimits,
) -> Result<String, String> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))?;
    let start = match path {
        Some(p) => ws.resolve(p).map_err(|e| e.to_string())?,
        None => ws.root().to_path_buf(),
    };
    let mut out = String::new();
    let mut count = 0usize;
    let mut more = false;
    for entry in walker(&start).flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = ws.relative(entry.path());
        let Ok(file) = text_file(entry.path(), &rel, limits) else {
            continue;
        };
        for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line);
            if re.is_match(&text) {
                if count >= limits.matches {
                    more = true;
                    break;
                }
                let _ = writeln!(
                    out,
                    "{rel}:{}: {}",
                    i + 1,
                    trunc(text.trim_end_matches('\r'), 300)
                );
                count += 1;
            }
        }
        if more {
            break;
        }
    }
    if count == 0 {
        return Ok("no matches".into());
    }
    if more {
        let _ = write!(
            out,
            "(stopped at {} matches; narrow the pattern or path)",
            limits.matches
        );
    }
    Ok(out)
}
