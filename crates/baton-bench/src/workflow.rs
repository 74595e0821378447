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

/// Baton and its peers, each running the same fan-out of `n` and of `10 × n` agents
/// against the same scripted model server over HTTP, 16 in flight, each agent one
/// streamed model call and one durable result.
async fn peer_comparison(mock: &MockModel, ws: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let sizes = [n, n * 10];
    println!(
        "\n### The same fan-out in each framework: {} and {} agents, 16 in flight, one streamed call each to the same model server over HTTP (Baton: the median of {BATON_ROUNDS} runs of each, the stores taking turns)\n",
        sizes[0], sizes[1]
    );
    struct Row {
        name: String,
        rates: Vec<Option<f64>>,
        memory: String,
        note: Option<String>,
    }
    let mut rows: Vec<Row> = Vec::new();
    // Baton's runs are short, and this machine's rate moves from one to the next: each
    // store runs `BATON_ROUNDS` times, the stores taking turns, and its median counts.
    let kinds = [None, Some(Kind::Sqlite), Some(Kind::Postgres)];
    let mut measured = vec![vec![Vec::new(); sizes.len()]; kinds.len()];
    let mut growth = vec![0i64; kinds.len()];
    for _ in 0..BATON_ROUNDS {
        for (k, kind) in kinds.iter().enumerate() {
            for (i, &size) in sizes.iter().enumerate() {
                let (rate, rss) = match kind {
                    None => {
                        agents_per_second(Arc::new(NullStore::default()), mock, ws, size).await?
                    }
                    Some(kind) => {
                        let db = TestDb::new(*kind).await;
                        agents_per_second(db.store(), mock, ws, size).await?
                    }
                };
                measured[k][i].push(rate);
                growth[k] = growth[k].max(rss);
            }
        }
    }
    for (k, kind) in kinds.iter().enumerate() {
        let name = match kind {
            None => "Baton, nothing stored (baseline)",
            Some(Kind::Sqlite) => "Baton, journal on SQLite",
            Some(Kind::Postgres) => "Baton, journal on Postgres",
        };
        rows.push(Row {
            name: name.into(),
            rates: measured[k].iter().map(|r| Some(median(r))).collect(),
            memory: format!(
                "+{:.0} MiB (growth of the bench process)",
                growth[k] as f64 / 1024.0
            ),
            note: None,
        });
    }
    let base_url = mock.base_url("openai");
    match crate::peers::python() {
        Err(why) => println!("Peers skipped: {why}.\n"),
        Ok(python) => {
            let tmp =
                std::env::temp_dir().join(format!("baton-bench-peers-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            let peers: [(&str, &str, Option<Kind>); 3] = [
                (
                    "LangGraph 1.2, ChatOpenAI, SQLite checkpointer",
                    "langgraph_http.py",
                    None,
                ),
                (
                    "DBOS 3.4, queue of 16, SQLite",
                    "dbos_http.py",
                    Some(Kind::Sqlite),
                ),
                (
                    "DBOS 3.4, queue of 16, Postgres",
                    "dbos_http.py",
                    Some(Kind::Postgres),
                ),
            ];
            for (name, script, db) in peers {
                let mut rates = Vec::new();
                let mut peak: f64 = 0.0;
                let mut note = None;
                for (k, &size) in sizes.iter().enumerate() {
                    let mut args = vec![size.to_string(), base_url.clone()];
                    // Kept until the peer is done with it (a Postgres database is dropped after).
                    let mut _pg = None;
                    match db {
                        Some(Kind::Sqlite) => args.push(format!(
                            "sqlite:///{}",
                            tmp.join(format!("dbos-{k}.db")).display()
                        )),
                        Some(Kind::Postgres) => {
                            let d = TestDb::new(Kind::Postgres).await;
                            args.push(d.url.clone());
                            _pg = Some(d);
                        }
                        None => {}
                    }
                    match crate::peers::run(&python, script, &args) {
                        Ok((rate, rss)) => {
                            rates.push(Some(rate));
                            peak = peak.max(rss);
                        }
                        Err(why) => {
                            rates.push(None);
                            note = Some(why);
                        }
                    }
                }
                rows.push(Row {
                    name: name.into(),
                    rates,
                    memory: format!("{peak:.0} MiB peak (whole process)"),
                    note,
                });
            }
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    let fmt = |r: &Option<f64>| r.map(|r| format!("{r:.0}")).unwrap_or_else(|| "—".into());
    println!(
        "| | agents/s at {} | agents/s at {} | {} vs {} | memory |",
        sizes[0], sizes[1], sizes[1], sizes[0]
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        let linear = match (r.rates[0], r.rates[1]) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "—".into(),
        };
        println!(
            "| {} | {} | {} | {linear} | {} |",
            r.name,
            fmt(&r.rates[0]),
            fmt(&r.rates[1]),
            r.memory
        );
    }
    for r in rows.iter().filter(|r| r.note.is_some()) {
        println!("\n{}: {}", r.name, r.note.as_deref().unwrap_or_default());
    }
    let base = &rows[0].rates;
    println!();
    for (i, &size) in sizes.iter().enumerate() {
        let Some(b) = base[i] else { continue };
        let of = |name: &str| {
            rows.iter()
                .find(|r| r.name.contains(name))
                .and_then(|r| r.rates[i])
        };
        let mut parts = vec![];
        for baton in ["SQLite", "Postgres"] {
            let Some(mine) = of(&format!("journal on {baton}")) else {
                continue;
            };
            let mut vs = vec![format!("{:.2} of nothing stored", mine / b)];
            for peer in rows.iter().skip(3) {
                if let Some(p) = peer.rates[i] {
                    vs.push(format!("{:.1}× {}", mine / p, peer.name));
                }
            }
            parts.push(format!("Baton on {baton}: {}", vs.join(", ")));
        }
        println!("At {size} agents — {}.", parts.join("; "));
    }
    Ok(())
}

/// How many times each of Baton's rows is measured in the comparison (its median counts).
const BATON_ROUNDS: usize = 3;

/// The middle value (of an odd count; the upper middle of an even one).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
    peer_comparison(&mock, &ws, agents).await?;
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
