//! An agent runtime on a fresh SQLite store with the scripted model as `mock-1`.
#![allow(dead_code)]
use std::sync::Arc;

use baton_agent::{AgentConfig, AgentRuntime, ModelEntry, ModelRegistry};
use baton_events::{EventHub, HubConfig};
use baton_llm::{Client, OpenAiProvider, Pricing, RetryPolicy};
use baton_mock_model::MockModel;
use baton_testkit::{Kind, TestDb};

pub async fn runtime(mock: &MockModel) -> (TestDb, AgentRuntime, tempfile::TempDir) {
    let db = TestDb::new(Kind::Sqlite).await;
    let hub = Arc::new(EventHub::new(db.store(), HubConfig::default()));
    let mut models = ModelRegistry::default();
    models.insert(ModelEntry {
        name: "mock-1".into(),
        provider: "mock".into(),
        client: Client::new(
            Arc::new(OpenAiProvider::new(&mock.base_url("openai"), None, false)),
            RetryPolicy::default(),
        ),
        pricing: Pricing {
            input: 1.0,
            cached_input: 0.1,
            cache_write: None,
            output: 2.0,
        },
        vision: false,
    });
    let ws = tempfile::tempdir().unwrap();
    let config = AgentConfig {
        default_model: "mock-1".into(),
        default_workspace: ws.path().to_path_buf(),
        ..AgentConfig::default()
    };
    let rt = AgentRuntime::new(db.store(), hub, models, config);
    (db, rt, ws)
}
