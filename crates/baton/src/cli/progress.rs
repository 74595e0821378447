//! Drawing a run's progress in a terminal: a line for the run, a bar per phase.
use serde_json::Value;

const BAR: usize = 20;

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
                .sum()
        })
        .unwrap_or(0.0);
    let mut lines = vec![format!(
        "{} · {} · {agents} agents · {} tokens · ${cost:.4} · {elapsed_s:.0}s",
        view["name"].as_str().unwrap_or("run"),
        view["status"].as_str().unwrap_or("?"),
        tokens(total_tokens),
    )];
    let phases = view["phases"].as_array().cloned().unwrap_or_default();
    let width = phases
        .iter()
        .map(|p| p["title"].as_str().unwrap_or("").len())
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
            Some("") | None => "(no phase)",
            Some(t) => t,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
