//! What the workflow engine's tests share: an engine on a real store, with the scripted
//! model server as its one model (`mock-1`).
#![allow(dead_code)]
use std::sync::Arc;
use std::time::Duration;

use baton_agent::{AgentConfig, AgentRuntime, ModelEntry, ModelRegistry};
use baton_events::{EventHub, HubConfig};
use baton_llm::{Client, OpenAiProvider, Pricing, RetryPolicy};
use baton_mock_model::MockModel;
use baton_testkit::{Kind, TestDb};
use baton_workflow::{EngineConfig, StartRequest, WorkflowEngine};

pub struct Fixture {
    pub _db: TestDb,
    pub engine: WorkflowEngine,
    pub mock: MockModel,
    pub ws: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

pub async fn fixture(kind: Kind) -> Fixture {
    fixture_with(kind, |_| {}).await
}

pub async fn fixture_with(kind: Kind, tweak: impl FnOnce(&mut EngineConfig)) -> Fixture {
    let db = TestDb::new(kind).await;
    let mock = MockModel::start().await;
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
    let home = tempfile::tempdir().unwrap();
    let agents = AgentRuntime::new(
        db.store(),
        hub.clone(),
        models,
        AgentConfig {
            default_model: "mock-1".into(),
            default_workspace: ws.path().into(),
            // Tests may grant write and exec in their temporary workspace.
            workspace_roots: vec![ws.path().into()],
            ..AgentConfig::default()
        },
    );
    let mut config = EngineConfig {
        default_workspace: ws.path().into(),
        home: Some(home.path().into()),
        ..EngineConfig::default()
    };
    tweak(&mut config);
    let engine = WorkflowEngine::new(db.store(), hub, agents, config);
    engine.start().await.unwrap();
    Fixture {
        _db: db,
        engine,
        mock,
        ws,
        home,
    }
}

pub fn auto() -> StartRequest {
    StartRequest {
        auto_approve: true,
        ..StartRequest::default()
    }
}

pub async fn finished(f: &Fixture, id: baton_core::RunId) -> baton_core::Run {
    for _ in 0..500 {
        let r = f.engine.get_run(id).await.unwrap();
        if r.status.is_finished() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {id} did not finish");
}
