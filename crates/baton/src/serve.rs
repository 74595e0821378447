use std::sync::Arc;

use anyhow::{Context, Result};
use baton_agent::{AgentConfig, AgentRuntime, AgentSnapshots, ModelEntry, ModelRegistry};
use baton_events::{EventHub, HubConfig};
use baton_http::{AppState, HttpConfig};
use baton_llm::{
    AnthropicProvider, Client, CommandProvider, OpenAiProvider, Pricing, Provider, RetryPolicy,
};
use baton_store::Store;
use baton_store_postgres::PgStore;
use baton_store_sqlite::SqliteStore;
use baton_workflow::{ClusterConfig, EngineConfig, WorkflowEngine, WorkflowSnapshots};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{redact_url, Config, ProviderKind};

/// The configured models, each with a client for its provider.
pub fn build_models(config: &Config) -> Result<ModelRegistry> {
    let policy = RetryPolicy {
        stall_timeout: std::time::Duration::from_secs(config.limits.stall_timeout_s),
        call_timeout: std::time::Duration::from_secs(config.limits.agent_timeout_s),
        ..RetryPolicy::default()
    };
    let mut registry = ModelRegistry::default();
    for (name, m) in &config.models {
        let p = &config.providers[&m.provider];
        let provider: Arc<dyn Provider> = match p.kind {
            ProviderKind::Openai => Arc::new(OpenAiProvider::new(
                p.base_url.as_deref().unwrap_or_default(),
                p.api_key_env.clone(),
                m.vision,
            )),
            ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(
                p.base_url.as_deref().unwrap_or_default(),
                p.api_key_env.clone(),
            )),
            ProviderKind::Command => Arc::new(
                CommandProvider::new(p.command.clone().unwrap_or_default())
                    .map_err(|e| anyhow::anyhow!("providers.{}: {e}", m.provider))?,
            ),
        };
        registry.insert(ModelEntry {
            name: name.clone(),
            provider: m.provider.clone(),
            client: Client::new(provider, policy),
            pricing: Pricing {
                input: m.input_usd_per_mtok,
                cached_input: m.cached_input_usd_per_mtok,
                cache_write: m.cache_write_usd_per_mtok,
                output: m.output_usd_per_mtok,
            },
            vision: m.vision,
        });
    }
    Ok(registry.with_aliases(config.model_aliases.clone()))
}

/// Opens the backend the URL's scheme names, applying migrations.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    let shown = redact_url(url);
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url)
            .await
            .with_context(|| format!("opening SQLite database {shown}"))?;
        Ok(Arc::new(store))
    } else {
        let store = PgStore::connect(url)
            .await
            .with_context(|| format!("connecting to Postgres {shown}"))?;
        Ok(Arc::new(store))
    }
}

pub async fn migrate(config: Config) -> Result<()> {
    let url = &config.database.url;
    let shown = redact_url(url);
    let report = if url.starts_with("sqlite:") {
        SqliteStore::connect_unmigrated(url).await?.migrate().await
    } else {
        PgStore::connect_unmigrated(url).await?.migrate().await
    }
    .with_context(|| format!("migrating {shown}"))?;
    println!(
        "{shown}: applied {} migration(s){}; {} already applied",
        report.applied.len(),
        if report.applied.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.applied.join(", "))
        },
        report.already
    );
    Ok(())
}

/// Everything the server runs on, built from a configuration.
pub struct Server {
    pub state: AppState,
    pub listener: TcpListener,
    connections: baton_http::ServeConfig,
    /// Held while the server runs on a SQLite file: one process per file.
    file_lock: Option<std::fs::File>,
}

/// Takes the lock that makes this process the only Baton on SQLite file `db`: a second
/// one would run the same work twice. The lock file says who holds it.
pub fn lock_sqlite_file(db: &std::path::Path, instance: &str) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            anyhow::bail!(
                "the SQLite database {} is in use by another Baton process ({}); stop it first, \
                 or give this one another database.url (several instances need a shared Postgres)",
                db.display(),
                if holder.is_empty() {
                    "unknown pid".to_string()
                } else {
                    holder.to_string()
                }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "pid {}, instance {instance}", std::process::id())?;
    file.flush()?;
    Ok(file)
}

impl Server {
    pub async fn build(config: &Config) -> Result<Self> {
        let cluster = ClusterConfig {
            lease_ttl: Duration::from_secs_f64(config.cluster.lease_ttl_s),
            lease_renew: Duration::from_secs_f64(config.cluster.lease_renew_s),
            sweep: Duration::from_secs_f64(config.cluster.sweep_s),
            ..ClusterConfig::default()
        };
        let file_lock = match baton_store_sqlite::path_from_url(&config.database.url) {
            Some(path) if config.database.url.starts_with("sqlite:") => {
                Some(lock_sqlite_file(&path, &cluster.instance)?)
            }
            _ => None,
        };
        let store = open_store(&config.database.url).await?;
        let hub = Arc::new(EventHub::new(
            store.clone(),
            HubConfig {
                retain_per_topic: config.events.retain_per_topic as i64,
            },
        ));
        let sv = &config.server;
        let http = HttpConfig {
            auth_token: Some(config.auth.token.clone()).filter(|t| !t.is_empty()),
            access: baton_http::Access::new(
                config.bind_addr(),
                &sv.allowed_hosts,
                &sv.allowed_origins,
            ),
            body_timeout: Duration::from_secs_f64(sv.body_timeout_s),
            ws_ping: Duration::from_secs_f64(sv.ws_ping_s),
            max_body_bytes: config.server.max_body_bytes as usize,
            ws_queue_frames: config.server.ws_queue_frames as usize,
            ws_max_message_bytes: config.server.ws_max_message_bytes as usize,
            version: env!("CARGO_PKG_VERSION"),
        };
        let agents = AgentRuntime::new(
            store.clone(),
            hub.clone(),
            build_models(config)?,
            AgentConfig {
                default_model: config.agents.default_model.clone(),
                default_workspace: config.agents.workspace.clone().into(),
                workspace_roots: config.workspace_roots(),
                agent_timeout: std::time::Duration::from_secs(config.limits.agent_timeout_s),
                max_tool_calls: config.agents.max_tool_calls.min(u64::from(u32::MAX)) as u32,
                instance: cluster.instance.clone(),
                lease_ttl: cluster.lease_ttl,
                task_limits: baton_agent::TaskLimits {
                    max_depth: config.limits.task_depth.min(16) as u32,
                    per_instance: config.limits.tasks_per_instance as usize,
                    per_session: config.limits.tasks_per_session as usize,
                    timeout: std::time::Duration::from_secs(config.limits.task_timeout_s),
                    budget_tokens: Some(config.limits.task_budget_tokens).filter(|b| *b > 0),
                    ..Default::default()
                },
                attachments: baton_agent::AttachmentLimits {
                    max_bytes: config.attachments.max_bytes,
                    max_pixels: config.attachments.max_pixels,
                    orphan_ttl: std::time::Duration::from_secs(config.attachments.orphan_ttl_s),
                    ..Default::default()
                },
                vision_model: Some(config.agents.vision_model.clone()).filter(|m| !m.is_empty()),
                ..AgentConfig::default()
            },
        );
        let l = &config.limits;
        let workflows = WorkflowEngine::new(
            store.clone(),
            hub.clone(),
            agents.clone(),
            EngineConfig {
                run_concurrency: l.run_concurrency as usize,
                agents_per_run: l.agents_per_run.min(u64::from(u32::MAX)) as u32,
                items_per_call: l.items_per_call as usize,
                concurrent_runs: l.concurrent_runs as usize,
                script_memory_bytes: (l.script_memory_mib as usize) << 20,
                run_wall_clock: std::time::Duration::from_secs(l.run_wall_clock_s),
                agent_timeout: std::time::Duration::from_secs(l.agent_timeout_s),
                approval_agents: l.approval_agents,
                approval_tokens: l.approval_tokens,
                prefix_stagger: std::time::Duration::from_millis(l.prefix_stagger_ms),
                default_workspace: config.agents.workspace.clone().into(),
                cluster,
                ..EngineConfig::default()
            },
        );
        let state = AppState {
            snapshots: Arc::new(WorkflowSnapshots {
                agents: AgentSnapshots(store.clone()),
                engine: workflows.clone(),
            }),
            store,
            hub,
            agents,
            workflows,
            config: Arc::new(http),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let addr = config.bind_addr();
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (server.bind)"))?;
        Ok(Self {
            state,
            listener,
            connections: baton_http::ServeConfig {
                header_timeout: Duration::from_secs_f64(config.server.header_timeout_s),
                max_connections: config.server.max_connections as usize,
            },
            file_lock,
        })
    }

    /// Serves until `stop` is cancelled: stops accepting, lets in-flight requests
    /// finish, sends WebSockets a close frame, then returns.
    pub async fn serve(self, stop: CancellationToken) -> Result<()> {
        let state = self.state.clone();
        let _file_lock = self.file_lock;
        tracing::info!(instance = state.workflows.instance(), "this instance");
        // Claims queued work, and work whose holder died (with SQLite: everything an
        // earlier process left), and keeps this instance's leases.
        state
            .workflows
            .start()
            .await
            .context("starting to claim work")?;
        let app = baton_http::app(self.state);
        // WebSockets close on the state's token, in-flight requests on `stop`.
        let shutdown = state.shutdown.clone();
        let on_stop = stop.clone();
        tokio::spawn(async move {
            on_stop.cancelled().await;
            shutdown.cancel();
        });
        baton_http::serve(self.listener, app, self.connections, stop)
            .await
            .context("server failed")?;
        state.workflows.shutdown(baton_http::SHUTDOWN_GRACE).await;
        state.agents.shutdown(baton_http::SHUTDOWN_GRACE).await;
        // Queued rows first, then the leases: a successor claims at once and reads them.
        state.hub.flush().await;
        state.workflows.release().await;
        state.tasks.close();
        if tokio::time::timeout(baton_http::SHUTDOWN_GRACE, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some WebSocket connections did not close in time");
        }
        // Frames and rows queued by the last agents are committed before the exit.
        state.hub.flush().await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

pub async fn run(config: Config) -> Result<()> {
    let server = Server::build(&config).await?;
    let addr = server.listener.local_addr()?;
    tracing::info!(
        %addr,
        database = %redact_url(&config.database.url),
        auth = if config.auth.token.is_empty() { "off" } else { "bearer token" },
        "Baton listening on http://{addr}"
    );
    let stop = CancellationToken::new();
    tokio::spawn(wait_for_signal(stop.clone()));
    server.serve(stop).await
}

async fn wait_for_signal(stop: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
    stop.cancel();
}
