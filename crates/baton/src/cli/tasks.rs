//! `baton tasks`, `baton task <id>` and `baton spawn "<prompt>"`: background tasks on a
//! server, whichever instance runs them.
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::client::Api;

/// One line per task, newest first; with `watch`, redrawn every second until interrupted.
pub async fn list(api: &Api, status: Option<&str>, watch: bool) -> Result<i32> {
    let path = match status {
        Some(s) => format!("/tasks?status={s}&limit=100"),
        None => "/tasks?limit=100".to_string(),
    };
    loop {
        let page = api.get(&path).await?;
        let lines: Vec<String> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(line)
            .collect();
        if watch {
            // Clear the screen and draw again: a live list.
            print!("\x1b[2J\x1b[H");
        }
        for l in &lines {
            println!("{l}");
        }
        if lines.is_empty() {
            println!("(no tasks)");
        }
        if !watch {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The task's status and progress, then its result or error. Exit 0 when it completed,
/// 1 when it failed or was cancelled, 3 while it is still queued or running.
pub async fn show(api: &Api, id: &str) -> Result<i32> {
    let t = api.get(&format!("/tasks/{id}")).await?;
    println!("{}", line(&t));
    let p = &t["progress"];
    println!(
        "turns {} · tool calls {} · tokens {} in / {} out{}",
        p["turns"],
        p["tool_calls"],
        p["input_tokens"],
        p["output_tokens"],
        p["last_tool"]
            .as_str()
            .map(|l| format!(" · last tool {l}"))
            .unwrap_or_default()
    );
    if let Some(s) = t["session_id"].as_str() {
        println!("session {s} (its traces: /api/sessions/{s}/traces)");
    }
    match t["status"].as_str() {
        Some("completed") => {
            println!("\n{}", t["result"].as_str().unwrap_or(""));
            Ok(0)
        }
        Some("failed") | Some("cancelled") => {
            eprintln!("{}", t["error"].as_str().unwrap_or("(no error given)"));
            Ok(1)
        }
        _ => Ok(3),
    }
}

/// Starts a task and prints its id.
pub async fn spawn(
    api: &Api,
    prompt: &str,
    label: Option<&str>,
    model: Option<&str>,
    workspace: Option<&str>,
) -> Result<i32> {
    let mut body = json!({ "prompt": prompt });
    for (key, v) in [("label", label), ("model", model), ("workspace", workspace)] {
        if let Some(v) = v {
            body[key] = json!(v);
        }
    }
    let t = api.post("/tasks", &body).await?;
    println!("{}", line(&t));
    Ok(0)
}

fn line(t: &Value) -> String {
    let owner = t["lease"]["owner"].as_str();
    format!(
        "{}  {:<9} {:<40} {}",
        t["id"].as_str().unwrap_or("?"),
        t["status"].as_str().unwrap_or("?"),
        t["label"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect::<String>(),
        owner.map(|o| format!("on {o}")).unwrap_or_default()
    )
    .trim_end()
    .to_string()
}
