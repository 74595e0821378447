//! Background tasks: `--tasks` tasks against the zero-delay scripted model, kept 16 in
//! flight by submitters that start a new one as each ends (a closed loop, so the figure is
//! the claim path, not a queue's wait). Measured per setup: tasks/s, and the claim
//! latency (created → started) p50/p99. Setups: SQLite, Postgres with one instance, and
//! Postgres with two instances on one database (in one process; each its own claim loop).
use std::time::{Duration, Instant};

use baton_agent::SpawnRequest;
use baton_core::TaskStatus;
use baton_mock_model::{MockModel, Reply};
use baton_testkit::{Kind, TestDb};

use crate::server::{self, Running};

const IN_FLIGHT: usize = 16;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn settings(mock: &MockModel, ws: &std::path::Path) -> Vec<(String, String)> {
    [
        ("providers.mock.kind", "openai".to_string()),
        ("providers.mock.base_url", mock.base_url("openai")),
        ("models.mock-1.provider", "mock".into()),
        ("agents.default_model", "mock-1".into()),
        ("agents.workspace", ws.display().to_string()),
        ("limits.tasks_per_instance", IN_FLIGHT.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Runs `n` tasks through `servers` (spawned round-robin); (tasks/s, claim latencies ms).
async fn measure(servers: &[Running], n: usize) -> anyhow::Result<(f64, Vec<f64>)> {
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut loops = Vec::new();
    for s in 0..IN_FLIGHT {
        let agents = servers[s % servers.len()].state.agents.clone();
        let store = servers[0].state.store.clone();
        let next = next.clone();
        loops.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                let t = agents
                    .spawn_task(SpawnRequest {
                        prompt: "[bench] answer at once".into(),
                        ..Default::default()
                    })
                    .await?;
                let done = loop {
                    let got = store.get_task(t.id).await?.expect("task exists");
                    if got.status.is_finished() {
                        break got;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                };
                anyhow::ensure!(
                    done.status == TaskStatus::Completed,
                    "task ended {:?}: {:?}",
                    done.status,
                    done.error
                );
                let claim = done.started_at.expect("started") - done.created_at;
                lat.push(claim.num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for l in loops {
        all.extend(l.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((n as f64 / secs, all))
}

pub async fn run(n: usize) -> anyhow::Result<()> {
    let mock = MockModel::start().await;
    mock.lean();
    mock.set_default(Reply::text("done"));
    let ws = std::env::temp_dir().join(format!("baton-bench-tasks-{}", std::process::id()));
    std::fs::create_dir_all(&ws)?;
    println!("\n## Background tasks ({n} tasks, {IN_FLIGHT} in flight, zero-delay model)\n");
    println!("| setup | tasks/s | claim p50 | claim p99 |");
    println!("|---|---|---|---|");
    let mut one_pg = None;
    for (name, kind, instances) in [
        ("SQLite", Kind::Sqlite, 1),
        ("Postgres, one instance", Kind::Postgres, 1),
        ("Postgres, two instances", Kind::Postgres, 2),
    ] {
        let db = TestDb::new(kind).await;
        let url = db.url.clone();
        let mut servers = vec![server::start_with(Some(db), &url, settings(&mock, &ws)).await?];
        for _ in 1..instances {
            servers.push(server::start_with(None, &url, settings(&mock, &ws)).await?);
        }
        let (rate, lat) = measure(&servers, n).await?;
        let vs = match (instances, one_pg) {
            (1, _) if kind == Kind::Postgres => {
                one_pg = Some(rate);
                String::new()
            }
            (2, Some(one)) => format!(" ({:.2}x one instance)", rate / one),
            _ => String::new(),
        };
        println!(
            "| {name} | {rate:.0}{vs} | {:.1} ms | {:.1} ms |",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        for s in servers.into_iter().rev() {
            s.stop.cancel();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = std::fs::remove_dir_all(&ws);
    Ok(())
}
