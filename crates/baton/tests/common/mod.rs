//! A real Baton server on 127.0.0.1:0 over a fresh database, built exactly as
//! `baton serve` builds it, plus small HTTP and WebSocket client helpers.
#![allow(dead_code)]

use std::time::Duration;

use baton::config::{self, Config, Sources};
use baton::serve::Server;
use baton_http::AppState;
use baton_testkit::{Kind, TestDb};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub base: String,
    pub ws_url: String,
    pub state: AppState,
    pub http: reqwest::Client,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: std::sync::Arc<TestDb>,
}

impl TestServer {
    pub async fn start(kind: Kind) -> Self {
        Self::start_with(kind, &[]).await
    }

    /// `settings` are dotted config keys, as flags would set them.
    pub async fn start_with(kind: Kind, settings: &[(&str, &str)]) -> Self {
        let db = std::sync::Arc::new(TestDb::new(kind).await);
        Self::start_on(db, settings).await
    }

    /// Another instance on `other`'s database, with `settings`.
    pub async fn join(other: &TestServer, settings: &[(String, String)]) -> Self {
        let refs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Self::start_on(other.db.clone(), &refs).await
    }

    async fn start_on(db: std::sync::Arc<TestDb>, settings: &[(&str, &str)]) -> Self {
        let mut flags = vec![
            ("database.url".to_string(), db.url.clone()),
            ("server.bind".to_string(), "127.0.0.1:0".to_string()),
            // Tests' workspaces are temporary directories.
            ("agents.workspace_roots".to_string(), temp_root()),
        ];
        flags.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config: Config = config::load(&Sources {
            files: vec![],
            env: vec![],
            flags,
        })
        .expect("config");
        // The server closes idle keep-alive connections after its header
        // timeout; a client that reuses one at that moment gets a reset.
        let idle = Duration::from_secs_f64(config.server.header_timeout_s / 2.0);
        let server = Server::build(&config).await.expect("server builds");
        let addr = server.listener.local_addr().unwrap();
        let state = server.state.clone();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(server.serve(stop.clone()));
        Self {
            base: format!("http://{addr}"),
            ws_url: format!("ws://{addr}/ws"),
            state,
            http: reqwest::Client::builder()
                .pool_idle_timeout(idle)
                .build()
                .unwrap(),
            stop,
            handle: Some(handle),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_chat(&self, title: &str) -> Value {
        let (status, chat) = self
            .post_json("/api/chats", &serde_json::json!({ "title": title }))
            .await;
        assert_eq!(status, 201, "{chat}");
        chat
    }

    pub async fn ws(&self) -> Ws {
        Ws::connect(&self.ws_url, None).await.expect("ws connects")
    }

    /// Stops the server as SIGTERM would and waits until it has returned.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A frame from the server as JSON, after checking it is one the contract describes:
/// every frame must read back as `baton_core::WireFrame`, the type the web app's types
/// are generated from.
pub fn typed_frame(text: &str) -> Value {
    if let Err(e) = serde_json::from_str::<baton_core::WireFrame>(text) {
        panic!("the server sent a frame outside the contract ({e}): {text}");
    }
    serde_json::from_str(text).unwrap()
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    pub async fn connect(
        url: &str,
        bearer: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut req = url.into_client_request()?;
        if let Some(t) = bearer {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Self { stream })
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.stream.send(m).await.unwrap();
    }

    pub async fn subscribe(&mut self, topic: &str, since: Option<i64>) {
        self.send(serde_json::json!({ "type": "subscribe", "topic": topic, "since": since }))
            .await;
    }

    /// The next text frame as JSON; panics on close or after 10 s.
    pub async fn next(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within 10 s")
            {
                Some(Ok(Message::Text(t))) => return typed_frame(&t),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame within `wait`, if one comes.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(typed_frame(&t)),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Reads until a close frame arrives; returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("close within 10 s")
            {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before close: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    /// Asserts nothing arrives for a short while.
    pub async fn quiet(&mut self) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), self.stream.next()).await
        {
            panic!("unexpected frame {t}");
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Kind)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(baton_testkit::Kind::Sqlite).await }) *
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(baton_testkit::Kind::Postgres).await }) *
        }
    };
}

/// Settings that point the server at a scripted model server as model `mock-1`.
pub fn mock_settings(mock: &baton_mock_model::MockModel, flavor: &str) -> Vec<(String, String)> {
    vec![
        (
            "providers.mock.kind".into(),
            if flavor == "anthropic" {
                "anthropic".into()
            } else {
                "openai".into()
            },
        ),
        ("providers.mock.base_url".into(), mock.base_url(flavor)),
        ("models.mock-1.provider".into(), "mock".into()),
        ("models.mock-1.input_usd_per_mtok".into(), "1.0".into()),
        (
            "models.mock-1.cached_input_usd_per_mtok".into(),
            "0.1".into(),
        ),
        ("models.mock-1.output_usd_per_mtok".into(), "2.0".into()),
        ("agents.default_model".into(), "mock-1".into()),
        ("limits.stall_timeout_s".into(), "5".into()),
    ]
}

impl TestServer {
    pub async fn start_owned(kind: Kind, settings: Vec<(String, String)>) -> Self {
        let refs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Self::start_with(kind, &refs).await
    }

    /// Polls `GET path` until `done` holds (10 s at most).
    pub async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (_, v) = self.get(path).await;
            if done(&v) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting on {path}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `agents.workspace_roots` covering the system's temporary directory, as TOML.
pub fn temp_root() -> String {
    format!("[{:?}]", std::env::temp_dir().display().to_string())
}

/// The `baton` executable, run from `dir` with a clean `BATON_*` environment.
pub fn baton_command(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.current_dir(dir)
        .env_remove("BATON_DATABASE__URL")
        .env_remove("BATON_SERVER__BIND")
        .env_remove("BATON_AUTH__TOKEN")
        .env("BATON_LOG", "info");
    cmd
}

/// Starts `baton serve` on a free port with `env`; returns once it prints its address.
pub fn spawn_baton(
    dir: &std::path::Path,
    env: &[(String, String)],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut cmd = baton_command(dir);
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // The whole log is kept beside the test's files, for reading when a test fails.
    let log_path = dir.join(format!("baton-{}.log", child.id()));
    std::thread::spawn(move || {
        use std::io::Write;
        let mut log = std::fs::File::create(log_path).ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("baton prints its address");
    (child, addr)
}

/// Leases short enough that a test sees a dead instance's work taken over in a few
/// seconds instead of the default 15.
pub fn short_leases() -> Vec<(String, String)> {
    vec![
        ("cluster.lease_ttl_s".into(), "2".into()),
        ("cluster.lease_renew_s".into(), "0.5".into()),
        ("cluster.sweep_s".into(), "0.25".into()),
    ]
}

/// The mock settings as `BATON_*` environment variables.
pub fn as_env(settings: &[(String, String)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| {
            (
                format!(
                    "BATON_{}",
                    k.split('.')
                        .map(str::to_uppercase)
                        .collect::<Vec<_>>()
                        .join("__")
                ),
                v.clone(),
            )
        })
        .collect()
}

/// `GET http://{addr}{path}` as JSON (a server started with `spawn_baton`).
pub async fn get_at(addr: &str, path: &str) -> Value {
    reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST http://{addr}{path}` with a JSON body; the answer as JSON.
pub async fn post_at(addr: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The user prompt of each model request the scripted model got so far, in order.
pub fn prompts(mock: &baton_mock_model::MockModel) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|r| {
            r.body["messages"][1]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
