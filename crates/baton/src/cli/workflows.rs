//! `baton workflows`: what a server can run from the current directory, and what it
//! cannot (saved scripts that do not parse, with where).
use anyhow::Result;
use serde_json::Value;

use super::client::Api;
use super::progress::plain;

/// One line per definition; a broken one says why and where instead of its description.
pub fn line(d: &Value) -> String {
    let name = plain(d["name"].as_str().unwrap_or(""));
    let source = d["source"].as_str().unwrap_or("");
    let about = match d.get("error").filter(|e| !e.is_null()) {
        Some(e) => {
            let at = match (e["line"].as_u64(), e["column"].as_u64()) {
                (Some(l), Some(c)) => format!(" ({}:{l}:{c})", d["path"].as_str().unwrap_or("")),
                _ => String::new(),
            };
            format!(
                "cannot run: {}{at}",
                plain(e["message"].as_str().unwrap_or("?"))
            )
        }
        None => plain(d["description"].as_str().unwrap_or("")),
    };
    format!("{name:<20} {source:<9} {about}")
}

/// Lists the workflows visible from `workspace`; exit code 1 when some cannot run.
pub async fn list(api: &Api, workspace: &str) -> Result<i32> {
    let list = api
        .get_with("/workflows", &[("workspace", workspace)])
        .await?;
    let mut broken = 0;
    for d in list["items"].as_array().into_iter().flatten() {
        if d.get("error").is_some_and(|e| !e.is_null()) {
            broken += 1;
        }
        println!("{}", line(d));
    }
    Ok(if broken > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_broken_script_says_why_and_where() {
        let d = json!({ "name": "audit", "source": "project", "path": "/w/.claude/workflows/audit.js",
            "description": "", "error": { "message": "syntax error at line 3, column 7: unexpected token", "line": 3, "column": 7 } });
        assert_eq!(
            line(&d),
            "audit                project   cannot run: syntax error at line 3, column 7: unexpected token (/w/.claude/workflows/audit.js:3:7)"
        );
        let ok = json!({ "name": "x", "source": "builtin", "description": "does \u{1b}[2Jthings", "error": null });
        assert_eq!(line(&ok), "x                    builtin   does  [2Jthings");
    }
}
