//! Child agents with a schema answer through StructuredOutput, validated and re-asked.
mod common;

use std::time::{Duration, Instant};

use baton_agent::AgentSpec;
use baton_core::SessionStatus;
use baton_mock_model::{MockModel, Reply};
use common::runtime;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn schema() -> serde_json::Value {
    json!({ "type": "object", "required": ["answer"], "additionalProperties": false,
            "properties": { "answer": { "type": "integer" } } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structured_answer_is_validated_and_re_asked() {
    let mock = MockModel::start().await;
    mock.push(Reply::text("It is 42."));
    mock.push(Reply::tool(
        "StructuredOutput",
        json!({ "answer": "forty-two" }),
    ));
    mock.push(Reply::tool("StructuredOutput", json!({ "answer": 42 })));
    let (_db, rt, _ws) = runtime(&mock).await;
    let out = rt
        .run_agent(
            AgentSpec {
                prompt: "What is 6 × 7?".into(),
                schema: Some(schema()),
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.result, Some(json!({ "answer": 42 })));
    assert_eq!(mock.count(), 3);
    let reqs = mock.requests();
    let second = reqs[1].body.to_string();
    assert!(
        second.contains("Answer by calling the StructuredOutput tool"),
        "the text answer was re-asked"
    );
    let third = reqs[2].body.to_string();
    assert!(
        third.contains("does not match the schema") && third.contains("/answer"),
        "{third}"
    );
    let tools = reqs[0].body["tools"].as_array().unwrap();
    let so = tools
        .iter()
        .find(|t| t["function"]["name"] == "StructuredOutput")
        .unwrap();
    assert_eq!(so["function"]["parameters"], schema());
    assert!(out.usage.input_tokens > 0 && out.cost_usd > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_retries_fail_the_agent() {
    let mock = MockModel::start().await;
    mock.set_default(Reply::tool(
        "StructuredOutput",
        json!({ "answer": "never a number" }),
    ));
    let (_db, rt, _ws) = runtime(&mock).await;
    let out = rt
        .run_agent(
            AgentSpec {
                prompt: "?".into(),
                schema: Some(schema()),
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, SessionStatus::Failed);
    assert!(out.error.unwrap().contains("schema"));
    assert!(out.result.is_none());
    assert_eq!(mock.count(), 6, "the first answer and five retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_schema_is_refused_before_any_call() {
    let mock = MockModel::start().await;
    let (_db, rt, _ws) = runtime(&mock).await;
    let err = rt
        .run_agent(
            AgentSpec {
                prompt: "?".into(),
                schema: Some(json!({ "type": "no-such-type" })),
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid schema"), "{err}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_stop_an_agent() {
    let mock = MockModel::start().await;
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    let (_db, rt, _ws) = runtime(&mock).await;
    let out = rt
        .run_agent(
            AgentSpec {
                prompt: "loop forever".into(),
                max_tool_calls: Some(3),
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, SessionStatus::Failed);
    assert!(
        out.error.as_deref().unwrap().contains("3 tool calls"),
        "{:?}",
        out.error
    );
    assert_eq!(mock.count(), 3);

    mock.set_default(Reply::text("a b c d e f g h").slow(Duration::from_millis(500)));
    let started = Instant::now();
    let out = rt
        .run_agent(
            AgentSpec {
                prompt: "slow".into(),
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, SessionStatus::Failed);
    assert!(
        out.error.as_deref().unwrap().contains("longer than"),
        "{:?}",
        out.error
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.cancel();
    });
    let out = rt
        .run_agent(
            AgentSpec {
                prompt: "slow".into(),
                ..Default::default()
            },
            cancel,
        )
        .await
        .unwrap();
    assert_eq!(out.status, SessionStatus::Cancelled);
}
