//! A Baton server on 127.0.0.1:0, built as `baton serve` builds it.
use baton::config::{self, Sources};
use baton::serve::Server;
use baton_http::AppState;
use baton_testkit::{Kind, TestDb};
use tokio_util::sync::CancellationToken;

pub struct Running {
    pub ws_url: String,
    pub state: AppState,
    pub stop: CancellationToken,
    /// The database, dropped with the first server started on it.
    pub _db: Option<TestDb>,
}

pub async fn start(kind: Kind) -> anyhow::Result<Running> {
    let db = TestDb::new(kind).await;
    let url = db.url.clone();
    start_with(Some(db), &url, vec![]).await
}

/// A server on `url` (kept alive by `db`, when given) with `extra` dotted config keys.
pub async fn start_with(
    db: Option<TestDb>,
    url: &str,
    extra: Vec<(String, String)>,
) -> anyhow::Result<Running> {
    let mut flags = vec![
        ("database.url".to_string(), url.to_string()),
        ("server.bind".to_string(), "127.0.0.1:0".to_string()),
    ];
    flags.extend(extra);
    let config = config::load(&Sources {
        files: vec![],
        env: vec![],
        flags,
    })?;
    let server = Server::build(&config).await?;
    let addr = server.listener.local_addr()?;
    let state = server.state.clone();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone()));
    Ok(Running {
        ws_url: format!("ws://{addr}/ws"),
        state,
        stop,
        _db: db,
    })
}
