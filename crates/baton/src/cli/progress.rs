//! Drawing a run's progress in a terminal: a line for the run, a bar per phase.
use serde_json::Value;

const BAR: usize = 20;

/// Text a script chose (names, titles, errors), safe for a terminal: control characters
/// (escape sequences among them) become spaces.
pub fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn tokens(n: i64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// The lines for one view of a run (`GET /api/runs/:id`).
pub fn render(view: &Value, elapsed_s: f64) -> Vec<String> {
    let agents = view["agents"].as_array().map(Vec::len).unwrap_or(0);
    let total_tokens: i64 = view["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    x["input_tokens"].as_i64().unwrap_or(0)
                        + x["output_tokens"].as_i64().unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0);
    let cost: f64 = view["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["cost_usd"].as_f64().unwrap_or(0.0))
                .sum::<f64>()
        })
        .unwrap_or(0.0)
        // An empty sum is -0.0; `+ 0.0` makes it 0.0, never "$-0.0000".
        + 0.0;
    let mut lines = vec![format!(
        "{} · {} · {agents} agents · {} tokens · ${cost:.4} · {elapsed_s:.0}s",
        plain(view["name"].as_str().unwrap_or("run")),
        view["status"].as_str().unwrap_or("?"),
        tokens(total_tokens),
    )];
    let phases = view["phases"].as_array().cloned().unwrap_or_default();
    let width = phases
        .iter()
        .map(|p| plain(p["title"].as_str().unwrap_or("")).chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    for p in &phases {
        let counts = &p["agents"];
        let n = |k: &str| counts[k].as_u64().unwrap_or(0);
        let (done, failed, running) = (n("completed"), n("failed") + n("cancelled"), n("running"));
        let all = done + failed + running;
        let filled = if all == 0 {
            0
        } else {
            ((done + failed) as usize * BAR) / all as usize
        };
        let title = match p["title"].as_str() {
            Some("") | None => "(no phase)".to_string(),
            Some(t) => plain(t),
        };
        let mut line = format!(
            "  {title:<width$} {}{} {}/{}",
            "█".repeat(filled),
            "░".repeat(BAR - filled),
            done,
            all
        );
        if running > 0 {
            line.push_str(&format!(" ({running} running)"));
        }
        if failed > 0 {
            line.push_str(&format!(" ({failed} failed)"));
        }
        line.push_str(&format!(
            "  {} tok  {:.1}s",
            tokens(p["tokens"].as_i64().unwrap_or(0)),
            p["elapsed_ms"].as_i64().unwrap_or(0) as f64 / 1000.0
        ));
        lines.push(line);
    }
    lines
}

/// Why a run ended as it did: its error, then its failed agents and each one's error (the
/// first few), for the terminal.
pub fn failure(view: &Value) -> Vec<String> {
    const SHOWN: usize = 5;
    let status = view["status"].as_str().unwrap_or("?");
    let mut out = vec![format!(
        "run {status}: {}",
        plain(view["error"].as_str().unwrap_or("(no error given)"))
    )];
    let failed: Vec<&Value> = view["agents"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["status"] == "failed").collect())
        .unwrap_or_default();
    if !failed.is_empty() {
        out.push(format!("{} agent(s) failed:", failed.len()));
        for a in failed.iter().take(SHOWN) {
            let name = a["label"].as_str().or(a["key"].as_str()).unwrap_or("agent");
            let error = a["error"].as_str().unwrap_or("(no error given)");
            let first = error.lines().next().unwrap_or_default();
            out.push(format!("  {}: {}", plain(name), plain(first)));
        }
        if failed.len() > SHOWN {
            out.push(format!(
                "  … and {} more (GET /api/runs/:id)",
                failed.len() - SHOWN
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn script_text_reaches_the_terminal_plain_and_no_cost_is_negative() {
        let view = json!({ "name": "evil\u{1b}[2Jname", "status": "running", "agents": [],
            "phases": [{ "title": "\u{1b}]0;pwned\u{7}Find", "agents": {}, "tokens": 0, "elapsed_ms": 0 }] });
        let lines = render(&view, 0.0);
        assert!(
            lines
                .iter()
                .all(|l| !l.contains('\u{1b}') && !l.contains('\u{7}')),
            "{lines:?}"
        );
        assert!(
            lines[0].contains("$0.0000") && !lines[0].contains("-0"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn a_failed_run_says_which_agents_failed_and_why() {
        let view = json!({ "status": "failed", "error": "the script threw: boom", "agents": [
            { "label": "scan a", "status": "failed", "error": "model 'gpt-9' is not configured: add …\nmore" },
            { "label": "scan b", "status": "completed" },
            { "key": "k3", "status": "failed", "error": "\u{1b}[31mred" } ] });
        let lines = failure(&view);
        assert_eq!(lines[0], "run failed: the script threw: boom");
        assert_eq!(lines[1], "2 agent(s) failed:");
        assert_eq!(lines[2], "  scan a: model 'gpt-9' is not configured: add …");
        assert_eq!(lines[3], "  k3:  [31mred");
    }

    #[test]
    fn phases_become_bars() {
        let view = json!({ "name": "wf", "status": "running", "agents": [
            { "input_tokens": 1500, "output_tokens": 500, "cost_usd": 0.01 }],
            "phases": [
                { "title": "Find", "agents": { "completed": 1 }, "tokens": 2000, "elapsed_ms": 1200 },
                { "title": "Audit", "agents": { "completed": 1, "running": 2, "failed": 1 }, "tokens": 0, "elapsed_ms": 0 } ] });
        let lines = render(&view, 3.0);
        assert_eq!(
            lines[0],
            "wf · running · 1 agents · 2.0k tokens · $0.0100 · 3s"
        );
        assert!(
            lines[1].contains(&"█".repeat(20)) && lines[1].contains("1/1"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("1/4 (2 running) (1 failed)"),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].contains(&format!("{}{}", "█".repeat(10), "░".repeat(10))),
            "{}",
            lines[2]
        );
    }
}
