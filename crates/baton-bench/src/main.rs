//! `cargo run --release -p baton-bench -- [traces|fanout|replay|agent|media|workflow|all|takeover|slowclients|tasks]`
//! (and `seed --database URL --traces N`, which writes a large chat for the web app's tests)
//!
//! Every figure is printed beside a baseline measured in the same run on the same
//! machine, and as a ratio to it, because absolute numbers mean little across machines.
#![forbid(unsafe_code)]

mod agent;
mod fanout;
mod media;
mod null_store;
mod peers;
mod replay;
mod seed;
mod server;
mod slowclients;
mod takeover;
mod tasks;
mod traces;
mod workflow;

use clap::{Parser, ValueEnum};

/// glibc's allocator serialised the agent path on its arena locks: mimalloc made a
/// 1,000-agent fan-out 1.7x faster with nothing stored (`baton-bench workflow --journal none`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Trace rows written per backend.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// WebSocket subscribers for the fan-out.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Frames published in the fan-out.
    #[arg(long, default_value_t = 1_000)]
    frames: usize,
    /// `workflow`: measure only this journal (`none` is Baton's own path, for profiling).
    #[arg(long, value_enum)]
    journal: Option<workflow::Journal>,
    /// `workflow`: agents in the fan-out.
    #[arg(long, default_value_t = workflow::AGENTS)]
    agents: usize,
    /// `seed`: the database to write the chat into.
    #[arg(long)]
    database: Option<String>,
    /// `seed`: traces in the chat.
    #[arg(long, default_value_t = 10_000)]
    traces: usize,
    /// `takeover`: how many times an instance is killed.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// `tasks`: background tasks run.
    #[arg(long, default_value_t = 1_000)]
    tasks: usize,
    /// `slowclients`: half-open connections kept open.
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// `slowclients`: how long the load lasts, in seconds.
    #[arg(long, default_value_t = 60)]
    hold_s: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Traces,
    Fanout,
    Replay,
    Agent,
    Workflow,
    All,
    /// Not a benchmark: writes a chat with `--traces` traces into `--database`.
    Seed,
    /// Takeover time after `kill -9` of an instance on Postgres (not part of `all`: it
    /// waits out the default lease TTL once per kill).
    Takeover,
    /// Health latency under a slowloris load, and how soon half-open connections are
    /// closed (not part of `all`: it holds the load for `--hold-s`).
    Slowclients,
    /// Background tasks: tasks/s and claim latency on SQLite, Postgres, and two
    /// instances on one Postgres (not part of `all`).
    Tasks,
    /// The cached share of a 16-agent fan-out's input with and without the hold for the
    /// first one's cache; uploading a 10 MB JPEG.
    Media,
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::var_os(takeover::CHILD).is_some() {
        baton::init_logging();
        return rt.block_on(takeover::serve_child());
    }
    let args = Args::parse();
    rt.block_on(async {
        if args.which == Which::Seed {
            let url = args
                .database
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("seed needs --database URL"))?;
            return seed::run(url, args.traces).await;
        }
        if args.which == Which::Takeover {
            return takeover::run(args.kills.max(1)).await;
        }
        if args.which == Which::Tasks {
            return tasks::run(args.tasks.max(1)).await;
        }
        if args.which == Which::Slowclients {
            return slowclients::run(
                args.connections.max(1),
                std::time::Duration::from_secs(args.hold_s.max(1)),
            )
            .await;
        }
        if matches!(args.which, Which::Traces | Which::All) {
            traces::run(args.rows).await?;
        }
        if matches!(args.which, Which::Fanout | Which::All) {
            fanout::run(args.subscribers, args.frames).await?;
        }
        if matches!(args.which, Which::Replay | Which::All) {
            replay::run().await?;
        }
        if matches!(args.which, Which::Agent | Which::All) {
            agent::run().await?;
        }
        if matches!(args.which, Which::Media | Which::All) {
            media::run().await?;
        }
        if matches!(args.which, Which::Workflow | Which::All) {
            workflow::run(args.journal, args.agents).await?;
        }
        Ok(())
    })
}

pub fn rate(n: usize, secs: f64) -> String {
    format!("{:.0}/s", n as f64 / secs)
}
