//! The run manager's settings: limits, and this instance among those sharing the store.
use std::path::PathBuf;
use std::time::Duration;

/// This instance among those sharing the store (SPEC 4.6).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Stable for the life of the process; shown in `/api/health` and in logs.
    pub instance: String,
    /// How long a claim on a run or session lasts unless renewed.
    pub lease_ttl: Duration,
    /// How often the holder renews its leases.
    pub lease_renew: Duration,
    /// How often the instance looks for work to claim (queued, or whose holder died).
    pub sweep: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            instance: instance_id(),
            lease_ttl: Duration::from_secs(15),
            lease_renew: Duration::from_secs(5),
            sweep: Duration::from_secs(2),
        }
    }
}

/// `<host>-<pid>-<random>`: readable in logs, never reused by a later process.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "baton".into());
    // The tail of a v7 id is random.
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &random[random.len() - 6..]
    )
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub run_concurrency: usize,
    pub agents_per_run: u32,
    pub items_per_call: usize,
    pub concurrent_runs: usize,
    pub script_memory_bytes: usize,
    pub run_wall_clock: Duration,
    pub agent_timeout: Duration,
    pub approval_agents: u64,
    pub approval_tokens: u64,
    /// Longest a sibling agent waits for the first one with the same request prefix to
    /// start answering, so it reads that prompt from the provider's cache (0: never).
    pub prefix_stagger: Duration,
    pub default_workspace: PathBuf,
    /// For `~/.baton/workflows`.
    pub home: Option<PathBuf>,
    pub cluster: ClusterConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            run_concurrency: 8,
            agents_per_run: 1000,
            items_per_call: 4096,
            concurrent_runs: 4,
            script_memory_bytes: 64 << 20,
            run_wall_clock: Duration::from_secs(7200),
            agent_timeout: Duration::from_secs(600),
            approval_agents: 25,
            approval_tokens: 100_000,
            prefix_stagger: Duration::from_millis(5_000),
            default_workspace: PathBuf::from("."),
            home: std::env::var_os("HOME").map(PathBuf::from),
            cluster: ClusterConfig::default(),
        }
    }
}
