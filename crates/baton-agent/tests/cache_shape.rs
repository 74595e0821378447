//! The cache shape each model call records, against the scripted model's prefix cache.
mod common;

use baton_agent::AgentSpec;
use baton_mock_model::MockModel;
use baton_store::TraceScope;
use common::runtime;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The one model call of an agent with `system` before Baton's own instructions.
async fn call(
    rt: &baton_agent::AgentRuntime,
    db: &baton_testkit::TestDb,
    system: &str,
    prompt: &str,
) -> Value {
    let out = rt
        .run_agent(
            AgentSpec {
                prompt: prompt.into(),
                system: Some(system.into()),
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    // The trace's finish is a queued write: read it once it landed.
    let mut t = None;
    for _ in 0..200 {
        let traces = db
            .store()
            .list_traces(TraceScope::Session(out.session_id), 10, None)
            .await
            .unwrap();
        if let Some(done) = traces.into_iter().find(|t| t.finished_at.is_some()) {
            t = Some(done);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let t = t.expect("the model call's trace finished");
    let mut shape = t.meta["cache"].clone();
    shape["input"] = t.input_tokens.into();
    shape["cached"] = t.cache_tokens.into();
    shape
}

fn segment<'a>(shape: &'a Value, name: &str) -> &'a Value {
    shape["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

fn n(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_system_prompt_shows_as_a_miss_in_the_system_segment() {
    let mock = MockModel::start().await;
    mock.set_default(baton_mock_model::Reply::text("ok"));
    let (db, rt, _ws) = runtime(&mock).await;
    let reviewer = "You review Rust code for soundness. ".repeat(30);
    let writer = "You write release notes for end users. ".repeat(30);
    let first = call(&rt, &db, &reviewer, "look at lib.rs").await;
    assert_eq!(n(&first, "cached"), 0, "nothing is cached yet: {first}");
    // The same system prompt: the tools and the system prompt come from the cache.
    let same = call(&rt, &db, &reviewer, "look at main.rs").await;
    let system = segment(&same, "system");
    assert!(n(system, "tokens") > 200, "{same}");
    // (The simulated cache works in blocks of 64 tokens, so a prefix's last part misses.)
    assert!(
        n(system, "cached") * 10 >= n(system, "tokens") * 8,
        "an unchanged system prompt is read from the cache: {same}"
    );
    // Another system prompt: the tools still are, the system prompt is sent fresh.
    let changed = call(&rt, &db, &writer, "look at main.rs").await;
    let tools = segment(&changed, "tools");
    let system = segment(&changed, "system");
    assert!(n(&changed, "cached") > 0, "{changed}");
    assert!(
        n(tools, "cached") * 10 >= n(tools, "tokens") * 8,
        "the tool schemas before it are still cached: {changed}"
    );
    assert!(
        n(system, "fresh") * 10 >= n(system, "tokens") * 8,
        "a changed system prompt is a miss in its segment: {changed}"
    );
    for shape in [&first, &same, &changed] {
        let segs = shape["segments"].as_array().unwrap();
        let sum = |f: &str| segs.iter().map(|s| n(s, f)).sum::<i64>();
        assert_eq!(sum("tokens"), n(shape, "input"));
        assert_eq!(sum("cached"), n(shape, "cached"));
        assert_eq!(sum("cached") + sum("written") + sum("fresh"), sum("tokens"));
    }
}
