//! `baton run <workflow> [--args JSON]`: start a run on a server, follow it live with
//! progress bars per phase, then print its result as JSON.
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::client::Api;
use super::progress::render;

pub struct RunArgs {
    pub workflow: String,
    pub args: Option<Value>,
    pub yes: bool,
    pub budget_tokens: Option<u64>,
    pub concurrency: Option<usize>,
    pub workspace: Option<String>,
    pub write: bool,
    pub exec: bool,
}

/// `--args`: JSON when it parses as JSON, else the text itself as a string (Claude Code
/// passes a workflow's arguments as text).
pub fn args_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Returns the process exit code: 0 when the run completed.
pub async fn run(api: &Api, a: RunArgs) -> Result<i32> {
    let mut body = json!({ "auto_approve": a.yes });
    if let Some(v) = a.args {
        body["args"] = v;
    }
    if let Some(b) = a.budget_tokens {
        body["budget_tokens"] = json!(b);
    }
    if let Some(c) = a.concurrency {
        body["concurrency"] = json!(c);
    }
    if a.write || a.exec {
        body["capabilities"] = json!({ "write": a.write, "exec": a.exec });
    }
    let workspace = a.workspace.or_else(|| {
        std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string())
    });
    if let Some(w) = workspace {
        body["workspace"] = json!(w);
    }
    let path = std::path::Path::new(&a.workflow);
    let started = if a.workflow.ends_with(".js") && path.is_file() {
        body["script"] =
            json!(std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?);
        api.post("/workflows/runs", &body).await?
    } else {
        api.post(&format!("/workflows/{}/runs", a.workflow), &body)
            .await?
    };
    let id = started["run_id"]
        .as_str()
        .context("the server did not return a run id")?
        .to_string();
    eprintln!("run {id} started");
    if started["status"] == "awaiting_approval" {
        eprintln!(
            "This run asks for more than runs get without approval (its budget or its concurrency) and waits for it.\n\
             Approve it with `--yes`, in the web app, or: baton approve {id}"
        );
        return Ok(2);
    }
    follow(api, &id).await
}

async fn follow(api: &Api, id: &str) -> Result<i32> {
    let (mut ws, _) = tokio_tungstenite::connect_async(api.ws_url()?)
        .await
        .context("connecting to the server's WebSocket")?;
    let sub = json!({ "type": "subscribe", "topic": format!("run:{id}"), "since": null });
    ws.send(Message::Text(sub.to_string().into())).await?;
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut drawn = 0usize;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut last_plain = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
        let finished_event = match frame {
            Ok(Some(Ok(Message::Text(t)))) => {
                let f: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                f["type"] == "run_event"
                    && f["event"] == "status"
                    && matches!(
                        f["status"].as_str(),
                        Some("completed" | "failed" | "cancelled" | "awaiting_approval")
                    )
            }
            Ok(Some(Ok(_))) | Err(_) => false,
            Ok(None) | Ok(Some(Err(_))) => bail!("the server closed the connection; the run goes on: baton run follows it with GET {}/api/runs/{id}", api.base),
        };
        if !finished_event && last_draw.elapsed() < Duration::from_millis(200) {
            continue;
        }
        let view = api.get(&format!("/runs/{id}")).await?;
        let lines = render(&view, started.elapsed().as_secs_f64());
        let mut err = std::io::stderr();
        if tty {
            if drawn > 0 {
                write!(err, "\x1b[{drawn}A")?;
            }
            for l in &lines {
                writeln!(err, "\x1b[2K{l}")?;
            }
            drawn = lines.len();
        } else if lines[0] != last_plain {
            writeln!(err, "{}", lines.join("\n"))?;
            last_plain = lines[0].clone();
        }
        last_draw = Instant::now();
        let status = view["status"].as_str().unwrap_or("");
        if status == "awaiting_approval" {
            eprintln!(
                "The run started {} agents and waits for approval to start more (limits.approval_agents).\n\
                 What it did so far is kept. Approve it with `baton approve {id}` or in the web app (it goes on\n\
                 from there; `baton runs` shows it), or start runs with `--yes`; `baton cancel {id}` denies it.",
                view["agents"].as_array().map_or(0, Vec::len)
            );
            return Ok(2);
        }
        if matches!(status, "completed" | "failed" | "cancelled") {
            if status == "completed" {
                println!("{}", serde_json::to_string_pretty(&view["result"])?);
                return Ok(0);
            }
            for line in super::progress::failure(&view) {
                eprintln!("{line}");
            }
            return Ok(1);
        }
    }
}
