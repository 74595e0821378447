//! The `baton` binary's library half: configuration, choosing the backend, wiring the
//! layers and serving. `main.rs` only parses the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod serve;

/// The OpenAPI document of this version's HTTP API and WebSocket frames, as
/// `GET /api/openapi.json` answers it without a token configured. The web app's types
/// are generated from it (`scripts/gen-types`).
pub fn openapi_document() -> String {
    let (_, doc) = baton_http::api(env!("CARGO_PKG_VERSION"), false);
    serde_json::to_string_pretty(&doc).expect("the document serializes") + "\n"
}

pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
