//! Orchestration overhead per turn: agents against the scripted model with no delay
//! (every reply asks for `list_dir`, so each turn is one model call and one tool call),
//! with traces, snapshots and frames persisted, beside the same loop on a store that
//! keeps nothing.
use std::sync::Arc;
use std::time::Instant;

use baton_agent::{AgentConfig, AgentRuntime, AgentSpec, ModelEntry, ModelRegistry};
use baton_events::{EventHub, HubConfig};
use baton_llm::{Client, OpenAiProvider, Pricing, RetryPolicy};
use baton_mock_model::{MockModel, Reply};
use baton_store::Store;
use baton_testkit::{Kind, TestDb};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::null_store::NullStore;

const AGENTS: usize = 64;
const TURNS: u32 = 10;
const IN_FLIGHT: usize = 8;

async fn turns_per_second(
    store: Arc<dyn Store>,
    mock: &MockModel,
    ws: &std::path::Path,
) -> anyhow::Result<f64> {
    let hub = Arc::new(EventHub::new(store.clone(), HubConfig::default()));
    let mut models = ModelRegistry::default();
    models.insert(ModelEntry {
        name: "mock-1".into(),
        provider: "mock".into(),
        client: Client::new(
            Arc::new(OpenAiProvider::new(&mock.base_url("openai"), None, false)),
            RetryPolicy::default(),
        ),
        pricing: Pricing {
            input: 1.0,
            cached_input: 0.1,
            cache_write: None,
            output: 2.0,
        },
        vision: false,
    });
    let config = AgentConfig {
        default_model: "mock-1".into(),
        default_workspace: ws.to_path_buf(),
        ..AgentConfig::default()
    };
    let rt = AgentRuntime::new(store, hub, models, config);
    let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..AGENTS {
        let rt = rt.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let spec = AgentSpec {
                prompt: format!("agent {i}: look around"),
                max_tool_calls: Some(TURNS),
                ..Default::default()
            };
            rt.run_agent(spec, CancellationToken::new()).await.unwrap()
        }));
    }
    for t in tasks {
        let out = t.await?;
        anyhow::ensure!(
            out.error
                .as_deref()
                .is_some_and(|e| e.contains("tool calls")),
            "unexpected end: {:?}",
            out.error
        );
    }
    Ok((AGENTS * TURNS as usize) as f64 / started.elapsed().as_secs_f64())
}

pub async fn run() -> anyhow::Result<()> {
    println!("## Orchestration overhead per turn ({AGENTS} agents × {TURNS} turns, {IN_FLIGHT} in flight, zero-delay scripted model)\n");
    let mock = MockModel::start().await;
    mock.lean();
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    let ws = std::env::temp_dir().join(format!("baton-bench-ws-{}", std::process::id()));
    std::fs::create_dir_all(ws.join("src"))?;
    std::fs::write(ws.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n")?;
    std::fs::write(ws.join("README.md"), "# bench\n")?;
    let base = turns_per_second(Arc::new(NullStore::default()), &mock, &ws).await?;
    println!("| persistence | turns/s | vs no persistence |");
    println!("|---|---|---|");
    println!("| none (baseline: the same loop on a store that keeps nothing) | {base:.0} | 1.00 |");
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::new(kind).await;
        let rate = turns_per_second(db.store(), &mock, &ws).await?;
        println!(
            "| {kind:?}: traces, snapshots and frames written | {rate:.0} | {:.2} |",
            rate / base
        );
    }
    println!();
    let _ = std::fs::remove_dir_all(&ws);
    Ok(())
}
