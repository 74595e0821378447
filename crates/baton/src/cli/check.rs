//! `baton check <file.js>`: parse a workflow script without running it.
use anyhow::Result;

/// Returns the report and whether the script is usable.
pub async fn check(path: &std::path::Path) -> Result<(String, bool)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let shown = path.display();
    let script = match baton_script::parse(&text).await {
        Ok(s) => s,
        Err(e) => return Ok((format!("{shown}: {e}\n"), false)),
    };
    let mut out = String::new();
    let meta = &script.meta;
    let name = meta
        .name
        .clone()
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()));
    out.push_str(&format!(
        "{shown}: ok\n  name: {}\n",
        name.as_deref().unwrap_or("(none)")
    ));
    if let Some(d) = &meta.description {
        out.push_str(&format!("  description: {d}\n"));
    }
    let declared: Vec<&str> = meta.phases.iter().map(|p| p.title.as_str()).collect();
    out.push_str(&format!(
        "  phases declared: {}\n",
        if declared.is_empty() {
            "(none)".into()
        } else {
            declared.join(", ")
        }
    ));
    out.push_str(&format!(
        "  phases used: {}\n",
        if script.phase_calls.is_empty() {
            "(none)".into()
        } else {
            script.phase_calls.join(", ")
        }
    ));
    let mut ok = true;
    if let Some(n) = &name {
        if !baton_workflow::discovery::valid_name(n) {
            out.push_str(&format!(
                "  error: '{n}' is not a valid workflow name ([a-z0-9][a-z0-9-_:]*)\n"
            ));
            ok = false;
        }
    }
    for used in &script.phase_calls {
        if !declared.is_empty() && !declared.contains(&used.as_str()) {
            out.push_str(&format!(
                "  warning: phase('{used}') is not declared in meta.phases\n"
            ));
        }
    }
    for d in &declared {
        if !script.phase_calls.iter().any(|u| u == d) {
            out.push_str(&format!(
                "  warning: meta.phases declares '{d}' but the script never calls phase('{d}')\n"
            ));
        }
    }
    for t in &script.tool_names {
        let known =
            baton_agent::tools::canonical(t).is_some() || baton_agent::tasks::is_task_tool(t);
        if !known {
            out.push_str(&format!(
                "  warning: tools: '{t}' is not a Baton tool and would be left out (Baton's: {}; Claude Code's Read, Grep, Glob, LS, Edit, MultiEdit, Write and Bash map to them)\n",
                baton_agent::tools::NAMES.join(", ")
            ));
        }
    }
    Ok((out, ok))
}
