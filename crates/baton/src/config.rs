//! Layered configuration: built-in defaults, then `config/default.toml` (if present),
//! then `--config FILE`, then `BATON_<SECTION>__<KEY>` environment variables, then
//! command-line flags. The merged result is validated once, with errors that name the
//! offending key.
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub database: Database,
    pub auth: Auth,
    pub agents: Agents,
    pub providers: BTreeMap<String, Provider>,
    pub models: BTreeMap<String, Model>,
    /// Names scripts use for models (`haiku`, `gpt-4o`, …) → a configured model. Claude
    /// Code's `haiku`, `sonnet`, `opus`, `inherit` and `claude-…` ids mean the default
    /// model unless listed here.
    pub model_aliases: BTreeMap<String, String>,
    pub limits: Limits,
    pub events: Events,
    pub cluster: Cluster,
    pub attachments: Attachments,
}

/// Images people attach to chats (`POST /api/attachments`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Attachments {
    /// Largest upload in bytes (413 beyond).
    pub max_bytes: u64,
    /// Largest image in pixels, width × height: larger ones are refused unread.
    pub max_pixels: u64,
    /// An attachment no message names is removed this long after its last upload.
    pub orphan_ttl_s: u64,
}

impl Default for Attachments {
    fn default() -> Self {
        let d = baton_agent::AttachmentLimits::default();
        Self {
            max_bytes: d.max_bytes,
            max_pixels: d.max_pixels,
            orphan_ttl_s: d.orphan_ttl.as_secs(),
        }
    }
}

/// Leases on work when several instances share a store (SPEC 4.6).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// How long an instance's claim on a run or session lasts unless renewed; a dead
    /// instance's work is taken over this long after its last renewal.
    pub lease_ttl_s: f64,
    /// How often an instance renews its leases; less than half the TTL, so one lost
    /// renewal does not lose the work.
    pub lease_renew_s: f64,
    /// How often an instance looks for work to claim (queued, or whose holder died).
    pub sweep_s: f64,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            lease_ttl_s: 15.0,
            lease_renew_s: 5.0,
            sweep_s: 2.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    pub bind: String,
    pub data_dir: String,
    /// Largest JSON request body accepted; larger ones get 413.
    pub max_body_bytes: u64,
    /// Frames a WebSocket client may have queued before it is cut off (it can resume
    /// with `since`).
    pub ws_queue_frames: u64,
    pub ws_max_message_bytes: u64,
    /// Host names the server answers to besides its loopback names and bound address
    /// (`"*"`: any). Other names get 403: that is what stops DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host:port`) whose web pages may change things and open
    /// WebSockets, besides the server's own; they also get CORS access.
    pub allowed_origins: Vec<String>,
    /// Longest a connection may take to send a request head, from connecting and
    /// again after each response (an idle keep-alive connection).
    pub header_timeout_s: f64,
    /// Longest a request body may take to arrive (408 after).
    pub body_timeout_s: f64,
    /// Connections open at once, WebSockets included; more get 503.
    pub max_connections: u64,
    /// How often a quiet WebSocket is pinged; one silent for two intervals is closed.
    pub ws_ping_s: f64,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:7777".into(),
            data_dir: "data".into(),
            max_body_bytes: 4 * 1024 * 1024,
            ws_queue_frames: 4096,
            ws_max_message_bytes: 64 * 1024,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            header_timeout_s: 10.0,
            body_timeout_s: 30.0,
            max_connections: 1024,
            ws_ping_s: 20.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    pub url: String,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            url: "sqlite://data/baton.db".into(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub token: String,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.token.is_empty() {
            "<none>"
        } else {
            "<redacted>"
        };
        f.debug_struct("Auth").field("token", &shown).finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Agents {
    pub default_model: String,
    pub workspace: String,
    /// Tool calls one answer may make before the agent is stopped.
    pub max_tool_calls: u64,
    /// Directories under which chats, runs and tasks may be granted `write` or `exec`
    /// (`~` is the user's home; relative paths are from the working directory).
    pub workspace_roots: Vec<String>,
    /// A configured model with `vision = true` that describes images for models without
    /// it ("": none, and a text-only model refuses images).
    pub vision_model: String,
}

impl Default for Agents {
    fn default() -> Self {
        Self {
            default_model: "deepseek-chat".into(),
            workspace: ".".into(),
            max_tool_calls: 50,
            workspace_roots: vec![".".into(), "~".into()],
            vision_model: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The name of the environment variable holding the API key; the key itself is
    /// never part of the configuration.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Command,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub provider: String,
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    #[serde(default)]
    pub cached_input_usd_per_mtok: f64,
    #[serde(default)]
    pub cache_write_usd_per_mtok: Option<f64>,
    #[serde(default)]
    pub output_usd_per_mtok: f64,
    #[serde(default)]
    pub vision: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub run_concurrency: u64,
    pub agents_per_run: u64,
    pub items_per_call: u64,
    pub concurrent_runs: u64,
    pub script_memory_mib: u64,
    pub run_wall_clock_s: u64,
    pub agent_timeout_s: u64,
    pub stall_timeout_s: u64,
    pub approval_agents: u64,
    pub approval_tokens: u64,
    /// Longest a sibling agent waits for the first one with the same request prefix to
    /// start answering, so it reads that prompt from the cache (0: never waits).
    pub prefix_stagger_ms: u64,
    /// How deep background tasks nest: 1 lets chats and workflow agents start tasks,
    /// and tasks start none.
    pub task_depth: u64,
    /// Background tasks one instance runs at once.
    pub tasks_per_instance: u64,
    /// Background tasks one agent session may start.
    pub tasks_per_session: u64,
    /// Longest one background task may run.
    pub task_timeout_s: u64,
    /// Tokens one background task may use (0: no limit).
    pub task_budget_tokens: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            run_concurrency: 8,
            agents_per_run: 1000,
            items_per_call: 4096,
            concurrent_runs: 4,
            script_memory_mib: 64,
            run_wall_clock_s: 7200,
            agent_timeout_s: 600,
            stall_timeout_s: 120,
            approval_agents: 25,
            approval_tokens: 100_000,
            prefix_stagger_ms: 5_000,
            task_depth: 1,
            tasks_per_instance: 4,
            tasks_per_session: 16,
            task_timeout_s: 1800,
            task_budget_tokens: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    /// Frames kept per topic for reconnect replay; a client further behind gets a
    /// `reset` snapshot.
    pub retain_per_topic: u64,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            retain_per_topic: 100_000,
        }
    }
}

/// The layers above the defaults, in order of increasing precedence.
#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<PathBuf>,
    /// `(NAME, value)` pairs; only `BATON_*` names with a `__` are configuration.
    pub env: Vec<(String, String)>,
    /// Dotted keys set by flags.
    pub flags: Vec<(String, String)>,
}

impl Sources {
    /// `config/default.toml` when it exists, then `--config` (which must exist).
    pub fn standard(explicit: Option<&Path>) -> Self {
        let mut files = Vec::new();
        let default = PathBuf::from("config/default.toml");
        if default.is_file() {
            files.push(default);
        }
        if let Some(p) = explicit {
            files.push(p.to_path_buf());
        }
        Self {
            files,
            env: std::env::vars().collect(),
            flags: Vec::new(),
        }
    }
}

pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut tree = Value::try_from(Config::default()).expect("defaults serialize");
    for path in &sources.files {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let layer: Value = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.message().to_string(),
        })?;
        merge(&mut tree, layer);
    }
    for (name, raw) in &sources.env {
        if let Some(key) = env_key(name) {
            set(&mut tree, &key, raw)?;
        }
    }
    for (key, raw) in &sources.flags {
        set(&mut tree, key, raw)?;
    }
    let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        invalid(&key, e.into_inner().to_string())
    })?;
    validate(&config)?;
    Ok(config)
}

/// `BATON_SERVER__BIND` → `server.bind`.
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix("BATON_")?;
    if !rest.contains("__") {
        return None;
    }
    Some(
        rest.split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn merge(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Table(b), Value::Table(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, l) => *b = l,
    }
}

/// Sets a dotted key from a string, typed like the value it replaces (so a token made
/// of digits stays a string and a port-like number becomes an integer).
fn set(tree: &mut Value, key: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        let table = node
            .as_table_mut()
            .ok_or_else(|| invalid(&parts[..i].join("."), "is not a section"))?;
        if i + 1 == parts.len() {
            let value = typed(table.get(*part), raw).map_err(|m| invalid(key, m))?;
            table.insert((*part).to_string(), value);
            return Ok(());
        }
        node = table
            .entry((*part).to_string())
            .or_insert_with(|| Value::Table(Default::default()));
    }
    Ok(())
}

fn typed(existing: Option<&Value>, raw: &str) -> Result<Value, String> {
    let parse_toml = |raw: &str| -> Result<Value, String> {
        let doc: toml::Table = toml::from_str(&format!("v = {raw}"))
            .map_err(|_| format!("'{raw}' is not a valid value"))?;
        Ok(doc["v"].clone())
    };
    match existing {
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("'{raw}' is not a whole number")),
        Some(Value::Float(_)) => raw
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("'{raw}' is not a number")),
        Some(Value::Boolean(_)) => match raw.trim() {
            "true" | "1" => Ok(Value::Boolean(true)),
            "false" | "0" => Ok(Value::Boolean(false)),
            _ => Err(format!("'{raw}' is not true or false")),
        },
        Some(Value::Array(_)) => parse_toml(raw),
        Some(Value::String(_)) | None => {
            // Arrays, numbers and booleans for keys without a default (model pricing,
            // provider commands) are written in TOML syntax; anything else is text.
            match parse_toml(raw) {
                Ok(
                    v @ (Value::Array(_) | Value::Integer(_) | Value::Float(_) | Value::Boolean(_)),
                ) if existing.is_none() => Ok(v),
                _ => Ok(Value::String(raw.to_string())),
            }
        }
        Some(Value::Table(_)) => Err("is a section, not a value".into()),
        Some(Value::Datetime(_)) => Ok(Value::String(raw.to_string())),
    }
}

/// Shortest token accepted on a non-loopback bind.
pub const MIN_TOKEN_CHARS: usize = 16;

fn validate(c: &Config) -> Result<(), ConfigError> {
    let bind: SocketAddr = c.server.bind.parse().map_err(|_| {
        invalid(
            "server.bind",
            format!("'{}' is not an address like 127.0.0.1:7777", c.server.bind),
        )
    })?;
    let token = &c.auth.token;
    if token
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(invalid(
            "auth.token",
            "must not contain spaces or control characters (`baton token` prints a good one)",
        ));
    }
    if !bind.ip().is_loopback() && token.chars().count() < MIN_TOKEN_CHARS {
        return Err(invalid(
            "auth.token",
            format!(
                "a token of at least {MIN_TOKEN_CHARS} characters is required when server.bind ({bind}) \
                 is not a loopback address; `baton token` prints one to put in BATON_AUTH__TOKEN"
            ),
        ));
    }
    for (name, v) in [
        ("server.header_timeout_s", c.server.header_timeout_s),
        ("server.body_timeout_s", c.server.body_timeout_s),
        ("server.ws_ping_s", c.server.ws_ping_s),
    ] {
        if !(v.is_finite() && (0.05..=3600.0).contains(&v)) {
            return Err(invalid(
                name,
                "must be a number of seconds from 0.05 to 3600",
            ));
        }
    }
    for (i, o) in c.server.allowed_origins.iter().enumerate() {
        let ok = (o.starts_with("http://") || o.starts_with("https://"))
            && !o.trim_end_matches('/').ends_with("://")
            && o.trim_end_matches('/').matches('/').count() == 2;
        if !ok {
            return Err(invalid(
                &format!("server.allowed_origins[{i}]"),
                format!("'{o}' is not an origin like http://localhost:5173"),
            ));
        }
    }
    let url = &c.database.url;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        return Err(invalid(
            "database.url",
            format!(
                "'{}' must start with sqlite:// or postgres://",
                redact_url(url)
            ),
        ));
    }
    if url.starts_with("sqlite:") && baton_store_sqlite::path_from_url(url).is_none() {
        return Err(invalid(
            "database.url",
            "a SQLite URL must name a file, e.g. sqlite://data/baton.db",
        ));
    }
    for (name, v) in [
        ("server.max_body_bytes", c.server.max_body_bytes),
        ("server.max_connections", c.server.max_connections),
        ("agents.max_tool_calls", c.agents.max_tool_calls),
        ("server.ws_queue_frames", c.server.ws_queue_frames),
        ("server.ws_max_message_bytes", c.server.ws_max_message_bytes),
        ("events.retain_per_topic", c.events.retain_per_topic),
        ("limits.run_concurrency", c.limits.run_concurrency),
        ("limits.agents_per_run", c.limits.agents_per_run),
        ("limits.items_per_call", c.limits.items_per_call),
        ("limits.concurrent_runs", c.limits.concurrent_runs),
        ("limits.script_memory_mib", c.limits.script_memory_mib),
        ("limits.run_wall_clock_s", c.limits.run_wall_clock_s),
        ("limits.agent_timeout_s", c.limits.agent_timeout_s),
        ("limits.stall_timeout_s", c.limits.stall_timeout_s),
        ("limits.tasks_per_instance", c.limits.tasks_per_instance),
        ("limits.tasks_per_session", c.limits.tasks_per_session),
        ("limits.task_timeout_s", c.limits.task_timeout_s),
        ("attachments.max_bytes", c.attachments.max_bytes),
        ("attachments.max_pixels", c.attachments.max_pixels),
        ("attachments.orphan_ttl_s", c.attachments.orphan_ttl_s),
    ] {
        if v == 0 {
            return Err(invalid(name, "must be greater than 0"));
        }
    }
    let cl = &c.cluster;
    for (name, v) in [
        ("cluster.lease_ttl_s", cl.lease_ttl_s),
        ("cluster.lease_renew_s", cl.lease_renew_s),
        ("cluster.sweep_s", cl.sweep_s),
    ] {
        if !(v.is_finite() && (0.05..=86_400.0).contains(&v)) {
            return Err(invalid(
                name,
                "must be a number of seconds from 0.05 to 86400",
            ));
        }
    }
    if cl.lease_renew_s * 2.0 > cl.lease_ttl_s {
        return Err(invalid(
            "cluster.lease_renew_s",
            format!(
                "({}) must be at most half of cluster.lease_ttl_s ({}), so one late renewal does not lose the work",
                cl.lease_renew_s, cl.lease_ttl_s
            ),
        ));
    }
    if cl.sweep_s > cl.lease_ttl_s {
        return Err(invalid(
            "cluster.sweep_s",
            "must be at most cluster.lease_ttl_s",
        ));
    }
    for (name, p) in &c.providers {
        let key = format!("providers.{name}");
        match p.kind {
            ProviderKind::Command if p.command.as_ref().is_none_or(|c| c.is_empty()) => {
                return Err(invalid(
                    &format!("{key}.command"),
                    "a command provider needs a command",
                ));
            }
            ProviderKind::Openai | ProviderKind::Anthropic if p.base_url.is_none() => {
                return Err(invalid(&format!("{key}.base_url"), "is required"));
            }
            _ => {}
        }
    }
    for (name, m) in &c.models {
        if !c.providers.contains_key(&m.provider) {
            return Err(invalid(
                &format!("models.{name}.provider"),
                format!("names no configured provider '{}'", m.provider),
            ));
        }
        for (field, price) in [
            ("input_usd_per_mtok", m.input_usd_per_mtok),
            ("cached_input_usd_per_mtok", m.cached_input_usd_per_mtok),
            ("output_usd_per_mtok", m.output_usd_per_mtok),
        ] {
            if !(price >= 0.0 && price.is_finite()) {
                return Err(invalid(
                    &format!("models.{name}.{field}"),
                    "must be a price of 0 or more",
                ));
            }
        }
    }
    for (alias, target) in &c.model_aliases {
        if !c.models.contains_key(target) {
            return Err(invalid(
                &format!("model_aliases.{alias}"),
                format!("names no configured model '{target}' (a [models.\"{target}\"] table)"),
            ));
        }
    }
    let vm = &c.agents.vision_model;
    if !vm.is_empty() {
        match c.models.get(vm) {
            None => {
                return Err(invalid(
                    "agents.vision_model",
                    format!("names no configured model '{vm}' (a [models.\"{vm}\"] table)"),
                ))
            }
            Some(m) if !m.vision => {
                return Err(invalid(
                    "agents.vision_model",
                    format!(
                    "model '{vm}' cannot see images: set vision = true on it, or name one that can"
                ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A database URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl Config {
    /// `agents.workspace_roots` as paths: `~` expanded, relative ones from the working
    /// directory.
    pub fn workspace_roots(&self) -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        self.agents
            .workspace_roots
            .iter()
            .filter_map(|r| match r.strip_prefix('~') {
                Some(rest) => home.as_ref().map(|h| h.join(rest.trim_start_matches('/'))),
                None => Some(PathBuf::from(r)),
            })
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect()
    }

    pub fn bind_addr(&self) -> SocketAddr {
        self.server.bind.parse().expect("validated at load")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            paths.push(p);
        }
        load(&Sources {
            files: paths,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = load_with(&[], &[], &[]).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:7777");
        assert_eq!(c.database.url, "sqlite://data/baton.db");
        assert_eq!(c.limits.run_concurrency, 8);
        assert_eq!(c.limits.approval_tokens, 100_000);
    }

    #[test]
    fn layers_apply_in_order() {
        let c = load_with(
            &[("a.toml", "[server]\nbind = \"127.0.0.1:1\"\ndata_dir = \"d1\"\n[limits]\nrun_concurrency = 3"),
              ("b.toml", "[server]\nbind = \"127.0.0.1:2\"")],
            &[("BATON_SERVER__BIND", "127.0.0.1:3"), ("BATON_LIMITS__RUN_CONCURRENCY", "5"),
              ("BATON_AUTH__TOKEN", "12345"), ("BATON_TEST_POSTGRES_URL", "ignored")],
            &[("server.bind", "127.0.0.1:4")],
        )
        .unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:4");
        assert_eq!(c.server.data_dir, "d1");
        assert_eq!(c.limits.run_concurrency, 5);
        assert_eq!(c.auth.token, "12345", "a numeric token stays a string");
    }

    #[test]
    fn providers_and_models_from_file_and_env() {
        let c = load_with(
            &[("a.toml", "[providers.deepseek]\nkind = \"openai\"\nbase_url = \"https://api.deepseek.com/v1\"\napi_key_env = \"DEEPSEEK_API_KEY\"\n[models.\"deepseek-chat\"]\nprovider = \"deepseek\"\ninput_usd_per_mtok = 0.27\ncached_input_usd_per_mtok = 0.07\noutput_usd_per_mtok = 1.10\n")],
            &[("BATON_PROVIDERS__LOCAL__KIND", "command"), ("BATON_PROVIDERS__LOCAL__COMMAND", r#"["claude", "-p"]"#)],
            &[],
        )
        .unwrap();
        assert_eq!(c.models["deepseek-chat"].output_usd_per_mtok, 1.10);
        assert_eq!(
            c.providers["local"].command.as_deref().unwrap(),
            ["claude", "-p"]
        );
        let c = load_with(
            &[("a.toml", "[providers.p]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\n[models.small]\nprovider = \"p\"\n[model_aliases]\nhaiku = \"small\"\n")],
            &[("BATON_MODEL_ALIASES__GPT4", "small")],
            &[],
        )
        .unwrap();
        assert_eq!(c.model_aliases["haiku"], "small");
        assert_eq!(c.model_aliases["gpt4"], "small");
    }

    #[test]
    fn errors_name_the_key() {
        let msg = |r: Result<Config, ConfigError>| r.unwrap_err().to_string();
        assert!(msg(load_with(&[("a.toml", "[server]\nbnd = 1")], &[], &[])).contains("server"));
        assert!(msg(load_with(&[("a.toml", "[server]\nbnd = 1")], &[], &[])).contains("bnd"));
        assert!(msg(load_with(
            &[],
            &[("BATON_LIMITS__RUN_CONCURRENCY", "many")],
            &[]
        ))
        .starts_with("limits.run_concurrency"));
        assert!(
            msg(load_with(&[], &[("BATON_SERVER__BIND", "nowhere")], &[]))
                .starts_with("server.bind")
        );
        assert!(
            msg(load_with(&[], &[("BATON_DATABASE__URL", "mysql://x")], &[]))
                .starts_with("database.url")
        );
        assert!(msg(load_with(
            &[],
            &[("BATON_LIMITS__AGENT_TIMEOUT_S", "0")],
            &[]
        ))
        .starts_with("limits.agent_timeout_s"));
        assert!(msg(load_with(
            &[("a.toml", "[models.m]\nprovider = \"nope\"")],
            &[],
            &[]
        ))
        .starts_with("models.m.provider"));
        assert!(msg(load_with(&[("a.toml", "not toml [")], &[], &[])).contains("not valid TOML"));
        assert!(msg(load_with(
            &[("a.toml", "[model_aliases]\nhaiku = \"missing\"")],
            &[],
            &[]
        ))
        .starts_with("model_aliases.haiku"));
        assert!(msg(load_with(
            &[("a.toml", "[agents]\nvision_model = \"ghost\"")],
            &[],
            &[]
        ))
        .starts_with("agents.vision_model"));
        assert!(msg(load_with(
            &[("a.toml", "[providers.p]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\n[models.blind]\nprovider = \"p\"\n[agents]\nvision_model = \"blind\"")],
            &[],
            &[]
        ))
        .contains("vision = true"));
        assert!(msg(load_with(
            &[],
            &[("BATON_ATTACHMENTS__MAX_BYTES", "0")],
            &[]
        ))
        .starts_with("attachments.max_bytes"));
    }

    #[test]
    fn public_bind_needs_a_token() {
        let err = load_with(&[], &[("BATON_SERVER__BIND", "0.0.0.0:7777")], &[]).unwrap_err();
        assert!(err.to_string().starts_with("auth.token"), "{err}");
        for bad in [
            "s3cret",
            "                    ",
            "fifteen-chars-x",
            "has a space in it ok",
        ] {
            let err = load_with(
                &[],
                &[
                    ("BATON_SERVER__BIND", "0.0.0.0:7777"),
                    ("BATON_AUTH__TOKEN", bad),
                ],
                &[],
            )
            .unwrap_err();
            assert!(err.to_string().starts_with("auth.token"), "{bad:?}: {err}");
        }
        let ok = load_with(
            &[],
            &[
                ("BATON_SERVER__BIND", "0.0.0.0:7777"),
                ("BATON_AUTH__TOKEN", "s3cret-s3cret-16"),
            ],
            &[],
        )
        .unwrap();
        assert!(
            !format!("{ok:?}").contains("s3cret"),
            "Debug never prints the token"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://data/baton.db"),
            "sqlite://data/baton.db"
        );
    }
}

#[cfg(test)]
mod shipped_file {
    use super::*;

    /// The shipped `config/default.toml` documents the built-in defaults; it must parse
    /// and agree with them (its provider and model are the only additions).
    #[test]
    fn config_default_toml_matches_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let loaded = load(&Sources {
            files: vec![path],
            env: vec![],
            flags: vec![],
        })
        .unwrap();
        let expected = Config {
            providers: loaded.providers.clone(),
            models: loaded.models.clone(),
            ..Config::default()
        };
        assert_eq!(loaded, expected);
        assert_eq!(loaded.models["deepseek-chat"].provider, "deepseek");
    }
}
