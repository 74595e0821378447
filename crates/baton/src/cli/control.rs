//! `baton runs` and `baton cancel|pause|resume|approve <run>`: any instance of a team's
//! Baton answers them, whichever instance runs the run.
use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::client::Api;

/// One line per run: id, status, name, and the instance that runs (or ran) it.
pub async fn list(api: &Api, status: Option<&str>) -> Result<i32> {
    let path = match status {
        Some(s) => format!("/runs?status={s}&limit=100"),
        None => "/runs?limit=100".to_string(),
    };
    let page = api.get(&path).await?;
    for r in page["items"].as_array().into_iter().flatten() {
        println!("{}", line(r));
    }
    Ok(0)
}

/// Sends `action` (cancel, pause, resume, approve) for run `id` and prints the outcome.
pub async fn act(api: &Api, action: &str, id: &str) -> Result<i32> {
    let run = api
        .post(&format!("/runs/{id}/{action}"), &json!({}))
        .await?;
    println!("{}", line(&run));
    Ok(0)
}

fn line(r: &Value) -> String {
    let owner = r["lease"]["owner"].as_str();
    format!(
        "{}  {:<17} {:<20} {}",
        r["id"].as_str().unwrap_or("?"),
        r["status"].as_str().unwrap_or("?"),
        r["name"].as_str().unwrap_or(""),
        owner.map(|o| format!("on {o}")).unwrap_or_default()
    )
    .trim_end()
    .to_string()
}
