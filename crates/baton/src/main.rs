#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use baton::config::{self, Sources};

/// glibc's allocator serialised the agent path on its arena locks: mimalloc made a
/// 1,000-agent fan-out 1.7x faster with nothing stored (`baton-bench workflow --journal none`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Durable AI agents and multi-agent workflows, traced and streamed live"
)]
struct Cli {
    /// A TOML configuration file, applied after config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Start a workflow run on a server and follow it with progress bars; prints the
    /// result as JSON.
    Run(RunCmd),
    /// List the workflows a server can run.
    Workflows(ServerArgs),
    /// Check a workflow script: does it parse, what are its meta and phases.
    Check {
        /// The script file.
        file: PathBuf,
    },
    /// List a server's runs (newest first) with the instance running each.
    Runs {
        /// Only runs with this status (queued, running, paused, …).
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a run, through any instance; prints the run as it ended.
    Cancel(RunIdArgs),
    /// Pause a run: no new agent starts; running ones finish.
    Pause(RunIdArgs),
    /// Resume a paused or stopped run (completed agents come from its journal).
    Resume(RunIdArgs),
    /// Approve a run held for approval.
    Approve(RunIdArgs),
    /// Print a fresh random token for auth.token (BATON_AUTH__TOKEN).
    Token,
    /// Print the OpenAPI document of the HTTP API and the WebSocket's frames.
    Openapi,
    /// List a server's background tasks, newest first.
    Tasks {
        /// Only tasks with this status (queued, running, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Keep the list on screen, redrawn every second.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One background task: status, progress, then its result (exit 0), its error (1),
    /// or nothing yet (3).
    Task {
        /// The task's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a background agent on a task; prints its id.
    Spawn {
        /// What the agent is to do.
        prompt: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// The workspace (default: the server's).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(clap::Args)]
struct RunIdArgs {
    /// The run's id.
    run: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// The Baton server.
    #[arg(long, default_value = "http://127.0.0.1:7777", env = "BATON_SERVER")]
    server: String,
    /// Bearer token (default: BATON_AUTH__TOKEN).
    #[arg(long)]
    token: Option<String>,
}

#[derive(clap::Args)]
struct RunCmd {
    /// A workflow name, or a path to a .js script.
    workflow: String,
    /// The run's args: JSON, or else the text as a string (as Claude Code passes it).
    #[arg(long, value_name = "JSON|TEXT")]
    args: Option<String>,
    /// Approve a large run without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Let the run's agents write and edit files (inside agents.workspace_roots).
    #[arg(long)]
    write: bool,
    /// Let the run's agents run shell commands (inside agents.workspace_roots).
    #[arg(long)]
    exec: bool,
    #[arg(long)]
    budget_tokens: Option<u64>,
    #[arg(long)]
    concurrency: Option<usize>,
    /// The workspace (default: the current directory).
    #[arg(long)]
    workspace: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Address to listen on (server.bind).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Folder for the SQLite file and attachments (server.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Args, Default)]
struct DbArgs {
    /// sqlite://FILE or postgres://… (database.url).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Serve(_)) | Some(Command::Migrate(_)) => {}
        Some(_) => return client_command(cli.command.expect("matched")),
    }
    let mut sources = Sources::standard(cli.config.as_deref());
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    let db = match &command {
        Command::Serve(a) => {
            push(&mut sources, "server.bind", &a.bind);
            push(&mut sources, "server.data_dir", &a.data_dir);
            &a.db
        }
        Command::Migrate(a) => a,
        _ => unreachable!("client commands return earlier"),
    };
    push(&mut sources, "database.url", &db.database_url);
    baton::init_logging();
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("baton: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) => baton::serve::run(config).await,
            Command::Migrate(_) => baton::serve::migrate(config).await,
            _ => unreachable!("client commands return earlier"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn push(sources: &mut Sources, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        sources.flags.push((key.to_string(), v.clone()));
    }
}

async fn control(action: &str, r: RunIdArgs) -> anyhow::Result<i32> {
    let api = baton::cli::client::Api::new(&r.server.server, r.server.token);
    baton::cli::control::act(&api, action, &r.run).await
}

/// Commands that talk to a server (or to nothing) rather than run one.
fn client_command(command: Command) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: anyhow::Result<i32> = runtime.block_on(async move {
        match command {
            Command::Check { file } => {
                let (report, ok) = baton::cli::check::check(&file).await?;
                print!("{report}");
                Ok(if ok { 0 } else { 1 })
            }
            Command::Workflows(s) => {
                let api = baton::cli::client::Api::new(&s.server, s.token);
                let here = std::env::current_dir()?.display().to_string();
                baton::cli::workflows::list(&api, &here).await
            }
            Command::Run(r) => {
                let args = r.args.as_deref().map(baton::cli::run::args_value);
                let api = baton::cli::client::Api::new(&r.server.server, r.server.token);
                baton::cli::run::run(
                    &api,
                    baton::cli::run::RunArgs {
                        workflow: r.workflow,
                        args,
                        yes: r.yes,
                        budget_tokens: r.budget_tokens,
                        concurrency: r.concurrency,
                        workspace: r.workspace,
                        write: r.write,
                        exec: r.exec,
                    },
                )
                .await
            }
            Command::Runs { status, server } => {
                let api = baton::cli::client::Api::new(&server.server, server.token);
                baton::cli::control::list(&api, status.as_deref()).await
            }
            Command::Cancel(r) => control("cancel", r).await,
            Command::Pause(r) => control("pause", r).await,
            Command::Resume(r) => control("resume", r).await,
            Command::Approve(r) => control("approve", r).await,
            Command::Tasks {
                status,
                watch,
                server,
            } => {
                let api = baton::cli::client::Api::new(&server.server, server.token);
                baton::cli::tasks::list(&api, status.as_deref(), watch).await
            }
            Command::Task { id, server } => {
                let api = baton::cli::client::Api::new(&server.server, server.token);
                baton::cli::tasks::show(&api, &id).await
            }
            Command::Spawn {
                prompt,
                label,
                model,
                workspace,
                server,
            } => {
                let api = baton::cli::client::Api::new(&server.server, server.token);
                baton::cli::tasks::spawn(
                    &api,
                    &prompt,
                    label.as_deref(),
                    model.as_deref(),
                    workspace.as_deref(),
                )
                .await
            }
            Command::Token => {
                println!("{}", baton::cli::fresh_token()?);
                Ok(0)
            }
            Command::Openapi => {
                print!("{}", baton::openapi_document());
                Ok(0)
            }
            _ => unreachable!("server commands are handled in main"),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::FAILURE
        }
    }
}
