#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use baton::config::{self, Sources};

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
    let mut sources = Sources::standard(cli.config.as_deref());
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    let db = match &command {
        Command::Serve(a) => {
            push(&mut sources, "server.bind", &a.bind);
            push(&mut sources, "server.data_dir", &a.data_dir);
            &a.db
        }
        Command::Migrate(a) => a,
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
