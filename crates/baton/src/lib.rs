//! The `baton` binary's library half: configuration, choosing the backend, wiring the
//! layers and serving. `main.rs` only parses the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod serve;

pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
