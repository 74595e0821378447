//! `baton-mock-model [ADDR]`: the scripted model server for demos. With no script it
//! answers every request by asking for `list_dir` of the workspace when tools are
//! offered and the latest message is the user's, and otherwise with a short answer
//! that quotes what the tool returned.
use baton_mock_model::{MockModel, Reply};
use serde_json::json;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let mock = MockModel::start_on(addr.parse().expect("ADDR like 127.0.0.1:8099")).await;
    mock.rule("[", Reply::text("Here is what I found in the workspace."));
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    println!("mock model on http://{}", mock.addr);
    println!("  openai-compatible: {}", mock.base_url("openai"));
    println!("  deepseek-style:    {}", mock.base_url("deepseek"));
    println!("  anthropic:         {}", mock.base_url("anthropic"));
    std::future::pending::<()>().await;
}
