//! A small client for a Baton server's API.
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub struct Api {
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// `server` like `http://127.0.0.1:7777`; the token from `--token` or
    /// `BATON_AUTH__TOKEN`.
    pub fn new(server: &str, token: Option<String>) -> Self {
        Self {
            base: server.trim_end_matches('/').to_string(),
            token: token
                .or_else(|| std::env::var("BATON_AUTH__TOKEN").ok())
                .filter(|t| !t.is_empty()),
            // Shorter than the server's default idle keep-alive limit
            // (`server.header_timeout_s`), so a watch loop never reuses a
            // connection the server is closing.
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(4))
                .build()
                .expect("an HTTP client"),
        }
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn answer(&self, r: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let resp = self.auth(r).send().await.with_context(|| {
            format!(
                "cannot reach the Baton server at {} (is `baton serve` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("no details");
            bail!("{what}: {} {msg}", status.as_u16());
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.answer(
            self.http.get(format!("{}/api{path}", self.base)),
            &format!("GET {path}"),
        )
        .await
    }

    /// `GET /api{path}` with query parameters, encoded.
    pub async fn get_with(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.answer(
            self.http
                .get(format!("{}/api{path}", self.base))
                .query(query),
            &format!("GET {path}"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.answer(
            self.http
                .post(format!("{}/api{path}", self.base))
                .json(body),
            &format!("POST {path}"),
        )
        .await
    }

    pub fn ws_url(&self) -> Result<String> {
        let rest = self
            .base
            .strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("https://")
                    .map(|r| format!("wss://{r}"))
            })
            .ok_or_else(|| anyhow!("the server URL must start with http:// or https://"))?;
        Ok(match &self.token {
            Some(t) => format!("{rest}/ws?token={t}"),
            None => format!("{rest}/ws"),
        })
    }
}
