//! The real provider clients against the scripted model server, over HTTP.
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_llm::{
    AnthropicProvider, ChatMessage, ChatRequest, Client, CommandProvider, Delta, LlmError,
    OpenAiProvider, Provider, RetryPolicy, StopReason, ToolSpec,
};
use baton_mock_model::{Fault, MockModel, Reply};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const FLAVORS: [&str; 3] = ["openai", "deepseek", "anthropic"];

fn provider(mock: &MockModel, flavor: &str) -> Arc<dyn Provider> {
    match flavor {
        "anthropic" => Arc::new(AnthropicProvider::new(&mock.base_url(flavor), None)),
        _ => Arc::new(OpenAiProvider::new(&mock.base_url(flavor), None, true)),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        max_stall_retries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        stall_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_secs(20),
    }
}

fn request(history: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        model: "mock-1".into(),
        system: "You are a careful assistant. ".repeat(40),
        tools: vec![ToolSpec {
            name: "read_file".into(),
            description: "Read a file".into(),
            parameters: json!({ "type": "object", "properties": { "path": { "type": "string" } }, "required": ["path"] }),
        }],
        messages: history,
        max_tokens: 1024,
        effort: None,
    }
}

async fn call(
    client: &Client,
    req: &ChatRequest,
) -> (Result<baton_llm::ChatResponse, LlmError>, Vec<Delta>) {
    let mut deltas = Vec::new();
    let r = client
        .complete(req, &mut |d| deltas.push(d), &CancellationToken::new())
        .await;
    (r, deltas)
}

#[tokio::test]
async fn text_streams_and_usage_is_read_exactly() {
    for flavor in FLAVORS {
        let mock = MockModel::start().await;
        mock.push(Reply {
            reasoning_tokens: 7,
            ..Reply::text("The answer is forty two, as computed.")
        });
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let (r, deltas) = call(
            &client,
            &request(vec![ChatMessage::user_text("What is six times seven?")]),
        )
        .await;
        let r = r.unwrap();
        assert_eq!(r.text, "The answer is forty two, as computed.", "{flavor}");
        let streamed: String = deltas
            .iter()
            .map(|d| match d {
                Delta::Text(t) => t.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(streamed, r.text, "{flavor}");
        assert!(deltas.len() > 1, "{flavor}: streamed in pieces");
        assert_eq!(r.stop_reason, StopReason::EndTurn);
        assert!(r.usage.input_tokens > 100, "{flavor}: {:?}", r.usage);
        assert!(r.usage.output_tokens > 0);
        assert_eq!(
            r.usage.cache_read_tokens, 0,
            "{flavor}: nothing cached on the first call"
        );
        if flavor != "anthropic" {
            assert_eq!(r.usage.reasoning_tokens, 7, "{flavor}");
        }
        let sent = &mock.requests()[0].body;
        assert_eq!(sent["stream"], true);
        if flavor != "anthropic" {
            assert_eq!(sent["stream_options"]["include_usage"], true);
            assert_eq!(sent["messages"][0]["role"], "system");
        } else {
            assert_eq!(sent["system"][0]["cache_control"]["type"], "ephemeral");
        }
    }
}

#[tokio::test]
async fn tool_calls_are_assembled_and_results_fed_back() {
    for flavor in FLAVORS {
        let mock = MockModel::start().await;
        mock.push(Reply::tool(
            "read_file",
            json!({ "path": "src/ünïcode.rs", "limit": 20 }),
        ));
        mock.push(Reply::text("done"));
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let mut history = vec![ChatMessage::user_text("read it")];
        let (r, _) = call(&client, &request(history.clone())).await;
        let r = r.unwrap();
        assert_eq!(r.stop_reason, StopReason::ToolUse, "{flavor}");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "read_file");
        assert_eq!(
            r.tool_calls[0].arguments,
            json!({ "path": "src/ünïcode.rs", "limit": 20 })
        );
        history.push(ChatMessage::Assistant {
            text: r.text.clone(),
            tool_calls: r.tool_calls.clone(),
            thinking: vec![],
        });
        history.push(ChatMessage::Tool {
            call_id: r.tool_calls[0].id.clone(),
            name: "read_file".into(),
            content: "fn main() {}".into(),
            is_error: false,
        });
        let (r2, _) = call(&client, &request(history)).await;
        assert_eq!(r2.unwrap().text, "done");
        let second = &mock.requests()[1].body;
        let text = second.to_string();
        assert!(
            text.contains(&r.tool_calls[0].id),
            "{flavor}: the result names its call"
        );
        assert!(text.contains("fn main() {}"));
    }
}

#[tokio::test]
async fn a_repeated_prefix_is_read_from_cache() {
    for flavor in FLAVORS {
        let mock = MockModel::start().await;
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let first = request(vec![ChatMessage::user_text("first question")]);
        let (r1, _) = call(&client, &first).await;
        let r1 = r1.unwrap();
        let mut history = first.messages.clone();
        history.push(ChatMessage::Assistant {
            text: r1.text,
            tool_calls: vec![],
            thinking: vec![],
        });
        history.push(ChatMessage::user_text("second question"));
        let (r2, _) = call(&client, &request(history)).await;
        let u = r2.unwrap().usage;
        assert!(u.cache_read_tokens >= 64, "{flavor}: {u:?}");
        assert_eq!(u.cache_read_tokens % 64, 0);
        assert!(u.cache_read_tokens < u.input_tokens);
        if flavor == "anthropic" {
            // Total input = fresh + written + read; the first call wrote the cache.
            assert!(r1.usage.cache_write_tokens > 0, "{:?}", r1.usage);
        }
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    for flavor in FLAVORS {
        let mock = MockModel::start().await;
        mock.push(Reply::fault(Fault::Status {
            code: 429,
            retry_after: Some(1),
        }));
        mock.push(Reply::fault(Fault::Status {
            code: 503,
            retry_after: None,
        }));
        mock.push(Reply::text("finally"));
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let started = Instant::now();
        let (r, deltas) = call(&client, &request(vec![ChatMessage::user_text("hi")])).await;
        let r = r.unwrap();
        assert_eq!(r.text, "finally");
        assert_eq!(r.attempts, 3);
        assert_eq!(mock.count(), 3);
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "Retry-After: 1 was honoured"
        );
        let restarts = deltas
            .iter()
            .filter(|d| matches!(d, Delta::Restart { .. }))
            .count();
        assert_eq!(restarts, 2, "{flavor}");
    }
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mock = MockModel::start().await;
    mock.push(Reply::fault(Fault::Status {
        code: 400,
        retry_after: None,
    }));
    let client = Client::new(provider(&mock, "openai"), fast_policy());
    let (r, _) = call(&client, &request(vec![ChatMessage::user_text("hi")])).await;
    match r {
        Err(LlmError::Status {
            status: 400,
            message,
            ..
        }) => assert!(message.contains("mock fault 400")),
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn stalled_and_truncated_streams_are_retried_at_most_twice() {
    for flavor in FLAVORS {
        let mock = MockModel::start().await;
        mock.push(Reply {
            fault: Some(Fault::StallAfter(2)),
            ..Reply::text("one two three four five six")
        });
        mock.push(Reply {
            fault: Some(Fault::TruncateAfter(3)),
            ..Reply::text("one two three four five six")
        });
        mock.push(Reply::text("recovered answer"));
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let (r, deltas) = call(&client, &request(vec![ChatMessage::user_text("hi")])).await;
        assert_eq!(r.unwrap().text, "recovered answer", "{flavor}");
        assert!(matches!(deltas.last(), Some(Delta::Text(_))));
        assert_eq!(mock.count(), 3);

        // A third stall in a row is the end.
        for _ in 0..3 {
            mock.push(Reply::fault(Fault::StallAfter(1)));
        }
        let (r, _) = call(&client, &request(vec![ChatMessage::user_text("again")])).await;
        assert!(matches!(r, Err(LlmError::Stalled(_))), "{flavor}: {r:?}");
        assert_eq!(mock.count(), 6);
    }
}

#[tokio::test]
async fn cancel_stops_the_stream_at_once() {
    let mock = MockModel::start().await;
    mock.push(Reply::text("a b c d e f g h").slow(Duration::from_secs(2)));
    let client = Client::new(provider(&mock, "openai"), fast_policy());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.cancel();
    });
    let started = Instant::now();
    let r = client
        .complete(
            &request(vec![ChatMessage::user_text("hi")]),
            &mut |_| {},
            &cancel,
        )
        .await;
    assert!(matches!(r, Err(LlmError::Cancelled)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn the_whole_call_has_a_timeout() {
    let mock = MockModel::start().await;
    mock.push(Reply::text("a b c d e f").slow(Duration::from_millis(250)));
    let policy = RetryPolicy {
        call_timeout: Duration::from_millis(600),
        stall_timeout: Duration::from_secs(5),
        ..fast_policy()
    };
    let client = Client::new(provider(&mock, "openai"), policy);
    let (r, _) = call(&client, &request(vec![ChatMessage::user_text("hi")])).await;
    assert!(matches!(r, Err(LlmError::Timeout(_))), "{r:?}");
}

#[tokio::test]
async fn a_missing_api_key_is_a_clear_error() {
    let mock = MockModel::start().await;
    let p = Arc::new(OpenAiProvider::new(
        &mock.base_url("openai"),
        Some("BATON_TEST_SURELY_UNSET_KEY".into()),
        true,
    ));
    let client = Client::new(p, fast_policy());
    let (r, _) = call(&client, &request(vec![ChatMessage::user_text("hi")])).await;
    let err = r.unwrap_err().to_string();
    assert!(err.contains("BATON_TEST_SURELY_UNSET_KEY"), "{err}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn images_become_vendor_image_parts() {
    for flavor in ["openai", "anthropic"] {
        let mock = MockModel::start().await;
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let msg = ChatMessage::User {
            content: vec![
                baton_llm::ContentPart::Text {
                    text: "what is this?".into(),
                },
                baton_llm::ContentPart::Image {
                    mime: "image/png".into(),
                    data: "iVBORw0KGgo=".into(),
                },
            ],
        };
        call(&client, &request(vec![msg])).await.0.unwrap();
        let body = mock.requests()[0].body.to_string();
        if flavor == "openai" {
            assert!(
                body.contains("data:image/png;base64,iVBORw0KGgo="),
                "{body}"
            );
        } else {
            assert!(
                body.contains(r#""media_type":"image/png""#) && body.contains(r#""type":"base64""#),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn command_provider_passes_the_prompt_on_stdin_and_reads_json() {
    let dir = std::env::temp_dir().join(format!("baton-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seen = dir.join("stdin.txt");
    let script = format!(
        "cat > '{}'; printf '%s' '{{\"type\":\"result\",\"result\":\"from the cli\",\"usage\":{{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":0,\"output_tokens\":3}}}}'",
        seen.display()
    );
    let p = Arc::new(CommandProvider::new(vec!["sh".into(), "-c".into(), script]).unwrap());
    let client = Client::new(p, fast_policy());
    let hostile = "$(touch /tmp/baton-pwned) `id` ; rm -rf / && echo hi";
    let (r, _) = call(&client, &request(vec![ChatMessage::user_text(hostile)])).await;
    let r = r.unwrap();
    assert_eq!(r.text, "from the cli");
    assert_eq!(
        (
            r.usage.input_tokens,
            r.usage.cache_read_tokens,
            r.usage.output_tokens
        ),
        (15, 5, 3)
    );
    assert!(
        std::fs::read_to_string(&seen).unwrap().contains(hostile),
        "the prompt arrives verbatim"
    );
    assert!(!std::path::Path::new("/tmp/baton-pwned").exists());
}

#[tokio::test]
async fn command_provider_failures_keep_stderr_and_cancel_kills_the_group() {
    let p = Arc::new(
        CommandProvider::new(vec![
            "sh".into(),
            "-c".into(),
            "echo broken tool >&2; exit 3".into(),
        ])
        .unwrap(),
    );
    let client = Client::new(p, fast_policy());
    let (r, _) = call(&client, &request(vec![ChatMessage::user_text("hi")])).await;
    let err = r.unwrap_err().to_string();
    assert!(err.contains("broken tool") && err.contains("3"), "{err}");

    let pidfile = std::env::temp_dir().join(format!("baton-grandchild-{}", std::process::id()));
    let script = format!("sleep 60 & echo $! > '{}'; wait", pidfile.display());
    let p = Arc::new(CommandProvider::new(vec!["sh".into(), "-c".into(), script]).unwrap());
    let client = Client::new(p, fast_policy());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let pf = pidfile.clone();
    tokio::spawn(async move {
        for _ in 0..100 {
            if pf.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        c2.cancel();
    });
    let r = client
        .complete(
            &request(vec![ChatMessage::user_text("hi")]),
            &mut |_| {},
            &cancel,
        )
        .await;
    assert!(matches!(r, Err(LlmError::Cancelled)));
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the grandchild {pid} was killed with its group");
}

#[tokio::test]
async fn effort_reaches_each_vendor_and_anthropic_thinking_goes_on_across_tool_calls() {
    for flavor in FLAVORS {
        let mock = MockModel::start().await;
        mock.push(Reply::tool("read_file", json!({ "path": "a.rs" })));
        mock.push(Reply::text("done"));
        let client = Client::new(provider(&mock, flavor), fast_policy());
        let mut first = request(vec![ChatMessage::user_text("read it")]);
        first.effort = Some(baton_llm::Effort::High);
        let (r, _) = call(&client, &first).await;
        let r = r.unwrap();
        let sent = &mock.requests()[0].body;
        if flavor == "anthropic" {
            assert_eq!(sent["thinking"]["type"], "enabled", "{flavor}");
            assert_eq!(
                r.thinking.len(),
                1,
                "{flavor}: the signed thinking block is kept"
            );
            assert_eq!(r.thinking[0]["signature"], "mock-signature");
            assert_eq!(r.thinking[0]["thinking"], "Let me think about this.");
        } else {
            assert_eq!(sent["reasoning_effort"], "high", "{flavor}");
            assert!(r.thinking.is_empty());
        }
        let mut history = first.messages.clone();
        history.push(ChatMessage::Assistant {
            text: r.text.clone(),
            tool_calls: r.tool_calls.clone(),
            thinking: r.thinking.clone(),
        });
        history.push(ChatMessage::Tool {
            call_id: r.tool_calls[0].id.clone(),
            name: "read_file".into(),
            content: "fn main() {}".into(),
            is_error: false,
        });
        let mut second = request(history);
        second.effort = first.effort;
        let (r2, _) = call(&client, &second).await;
        assert_eq!(r2.unwrap().text, "done");
        if flavor == "anthropic" {
            let sent = &mock.requests()[1].body;
            assert_eq!(sent["messages"][1]["content"][0]["type"], "thinking");
            assert_eq!(
                sent["messages"][1]["content"][0]["signature"],
                "mock-signature"
            );
        }
    }
}
