//! A workflow fanning out 1,000 agents, 16 in flight, against the scripted model with no
//! delay: agents per second with the journal (and every trace, snapshot and frame) on
//! SQLite and on Postgres, beside the same run on a store that keeps nothing; and the
//! process's memory growth per run.
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_agent::{AgentConfig, AgentRuntime, ModelEntry, ModelRegistry};
use baton_events::{EventHub, HubConfig};
use baton_llm::{Client, OpenAiProvider, Pricing, RetryPolicy};
use baton_mock_model::{MockModel, Reply};
use baton_store::Store;
use baton_testkit::{Kind, TestDb};
use baton_workflow::{EngineConfig, StartRequest, WorkflowEngine};
use serde_json::json;

use crate::null_store::NullStore;

/// The figure; `--agents` changes it for profiling.
pub const AGENTS: usize = 1_000;
const IN_FLIGHT: usize = 16;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

pub(crate) async fn engine_on(
    store: Arc<dyn Store>,
    mock: &MockModel,
    ws: &std::path::Path,
    concurrent_runs: usize,
    agents_per_run: u32,
) -> anyhow::Result<WorkflowEngine> {
    engine_with(store, mock, ws, concurrent_runs, agents_per_run, |_| {}).await
}

/// `engine_on`, with the engine's configuration changed by `tweak`.
pub(crate) async fn engine_with(
    store: Arc<dyn Store>,
    mock: &MockModel,
    ws: &std::path::Path,
    concurrent_runs: usize,
    agents_per_run: u32,
    tweak: impl FnOnce(&mut EngineConfig),
) -> anyhow::Result<WorkflowEngine> {
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
    let agents = AgentRuntime::new(
        store.clone(),
        hub.clone(),
        models,
        AgentConfig {
            default_model: "mock-1".into(),
            default_workspace: ws.to_path_buf(),
            ..AgentConfig::default()
        },
    );
    let mut config = EngineConfig {
        run_concurrency: IN_FLIGHT,
        concurrent_runs,
        agents_per_run,
        items_per_call: (agents_per_run as usize).max(EngineConfig::default().items_per_call),
        default_workspace: ws.to_path_buf(),
        ..EngineConfig::default()
    };
    tweak(&mut config);
    let engine = WorkflowEngine::new(store, hub, agents, config);
    engine.start().await?;
    Ok(engine)
}

async fn agents_per_second(
    store: Arc<dyn Store>,
    mock: &MockModel,
    ws: &std::path::Path,
    agents: usize,
) -> anyhow::Result<(f64, i64)> {
    let engine = engine_on(store, mock, ws, 4, agents as u32).await?;
    let script = format!(
        "const items = Array.from({{ length: {agents} }}, (_, i) => `item ${{i}}`)\nreturn (await parallel(items.map(x => () => agent(x)))).length"
    );
    let before = rss_kib();
    let started = Instant::now();
    let run = engine
        .start_inline(
            &script,
            StartRequest {
                concurrency: Some(IN_FLIGHT),
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await?;
    loop {
        let r = engine.get_run(run.id).await;
        match r {
            Ok(r) if r.status.is_finished() => {
                anyhow::ensure!(
                    r.result == Some(json!(agents)),
                    "run ended {:?}: {:?}",
                    r.status,
                    r.error
                );
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((agents as f64 / secs, rss_kib() as i64 - before as i64))
}

/// Runs held in flight at once for the memory figure.
const HELD_RUNS: usize = 100;

/// The process's memory per run in flight, beside a baseline of no runs: `HELD_RUNS` runs,
/// each with its QuickJS runtime, journal, host state and one agent whose model call is
/// streaming slowly (so its history is one short prompt), on SQLite.
async fn memory_per_run(mock: &MockModel, ws: &std::path::Path) -> anyhow::Result<f64> {
    mock.rule(
        "hold on",
        Reply::text("held for a while, then answered").slow(Duration::from_millis(400)),
    );
    let db = TestDb::new(Kind::Sqlite).await;
    let engine = engine_on(db.store(), mock, ws, HELD_RUNS, AGENTS as u32).await?;
    let start = || {
        engine.start_inline(
            "return await agent('hold on')",
            StartRequest {
                auto_approve: true,
                ..StartRequest::default()
            },
        )
    };
    // One run first, so pools, caches and lazily built state exist before the baseline.
    let warm = start().await?;
    while !engine.get_run(warm.id).await?.status.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = rss_kib();
    let mut ids = Vec::new();
    for _ in 0..HELD_RUNS {
        ids.push(start().await?.id);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &ids {
        while engine.view(*id).await?.agents.is_empty() {
            anyhow::ensure!(Instant::now() < deadline, "runs did not start their agents");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let after = rss_kib();
    for id in &ids {
        let _ = engine.cancel(*id).await;
    }
    Ok((after as f64 - before as f64) / HELD_RUNS as f64)
}

/// Which journal to measure alone (`--journal`), for profiling one path.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Journal {
    None,
    Sqlite,
    Postgres,
}

pub async fn run(only: Option<Journal>, agents: usize) -> anyhow::Result<()> {
    println!(
        "## Workflow fan-out ({agents} agents, {IN_FLIGHT} in flight, zero-delay scripted model)\n"
    );
    let mock = MockModel::start().await;
    mock.lean();
    mock.set_default(Reply::text("done"));
    let ws = std::env::temp_dir().join(format!("baton-bench-wf-{}", std::process::id()));
    std::fs::create_dir_all(&ws)?;
    if let Some(only) = only {
        let (rate, _) = match only {
            Journal::None => {
                agents_per_second(Arc::new(NullStore::default()), &mock, &ws, agents).await?
            }
            Journal::Sqlite | Journal::Postgres => {
                let kind = if only == Journal::Sqlite {
                    Kind::Sqlite
                } else {
                    Kind::Postgres
                };
                let db = TestDb::new(kind).await;
                agents_per_second(db.store(), &mock, &ws, agents).await?
            }
        };
        println!("{rate:.0} agents/s");
        let _ = std::fs::remove_dir_all(&ws);
        return Ok(());
    }
    // Before anything else: freed memory of earlier runs would hide the growth.
    let per_run = memory_per_run(&mock, &ws).await?;
    let (base, _) = agents_per_second(Arc::new(NullStore::default()), &mock, &ws, agents).await?;
    println!("| journal | agents/s | vs nothing stored | RSS growth during the run |");
    println!("|---|---|---|---|");
    println!(
        "| none (baseline: the same run on a store that keeps nothing) | {base:.0} | 1.00 | — |"
    );
    let mut rates = vec![("no store", base)];
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::new(kind).await;
        let (rate, rss) = agents_per_second(db.store(), &mock, &ws, agents).await?;
        println!(
            "| {kind:?} | {rate:.0} | {:.2} | {:.1} MiB |",
            rate / base,
            rss as f64 / 1024.0
        );
        rates.push((
            if kind == Kind::Sqlite {
                "SQLite"
            } else {
                "Postgres"
            },
            rate,
        ));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/langgraph_fanout.py");
    match std::process::Command::new("python3").arg(script).arg(agents.to_string()).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let rate: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
            let peak: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
            println!("| LangGraph 1.x, SQLite checkpointer, fake chat model (comparison) | {rate:.0} | {:.2} | peak RSS {peak:.0} MiB (whole process) |", rate / base);
            if rate > 0.0 {
                let ratios: Vec<String> = rates
                    .iter()
                    .map(|(name, r)| format!("{name} {:.1}×", r / rate))
                    .collect();
                println!("\nBaton vs LangGraph in this run: {}.", ratios.join(", "));
            }
        }
        _ => println!("| LangGraph (comparison) | not measured: `pip install langgraph langgraph-checkpoint-sqlite aiosqlite` | | |"),
    }
    println!();
    println!(
        "Memory per run in flight ({HELD_RUNS} runs at once, each with one agent mid-answer, SQLite, \
         measured first in the process): {:.2} MiB of process RSS per run above the same process \
         with one finished run.\n",
        per_run / 1024.0
    );
    let _ = std::fs::remove_dir_all(&ws);
    Ok(())
}
