//! `baton-mock-model [ADDR]`: the scripted model server for demos. Every question is
//! answered like a small agent would: first a `list_dir` of the workspace, then, once
//! the tool result is back, a short answer (or, when the agent was asked for structured
//! output, a value made up from the schema, so the built-in workflows run end to end).
//! A message containing `[fast]` is answered at once, without a tool (for load tests).
use baton_mock_model::{MockModel, Reply};
use serde_json::json;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let mock = MockModel::start_on(addr.parse().expect("ADDR like 127.0.0.1:8099")).await;
    mock.after_tool_result(
        Reply::text("I listed the workspace root; the entries are in the list_dir call above.")
            .slow(std::time::Duration::from_millis(150)),
    );
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    mock.schema_answers();
    mock.rule("[fast]", Reply::text("Done at once."));
    println!("mock model on http://{}", mock.addr);
    println!("  openai-compatible: {}", mock.base_url("openai"));
    println!("  deepseek-style:    {}", mock.base_url("deepseek"));
    println!("  anthropic:         {}", mock.base_url("anthropic"));
    std::future::pending::<()>().await;
}
