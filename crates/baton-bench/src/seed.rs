//! `baton-bench seed --database URL --traces N`: a chat with N traces, for measuring the web
//! app's first paint of a large chat. Exchanges of one question, ten model calls of nine tool
//! calls each, and an answer. Prints `{"chat_id": …}`.
use std::sync::Arc;

use baton_core::{
    time, ChatId, Message, MessageId, NewChat, Role, Session, SessionId, SessionStatus, Trace,
    TraceId, TraceKind, TraceOutcome,
};
use baton_store::Store;
use serde_json::json;

pub async fn run(url: &str, traces: usize) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = baton::serve::open_store(url).await?;
    let chat = store
        .create_chat(NewChat {
            title: format!("{traces} traces"),
            workspace: None,
            capabilities: Default::default(),
            auto_continue: true,
        })
        .await?;
    let session = SessionId::new();
    let start = time::now() - chrono::Duration::hours(2);
    let mut at = start;
    let mut turn = 0i64;
    let mut messages = Vec::new();
    let mut batch = Vec::new();
    let mut written = 0usize;
    while written < traces {
        turn += 1;
        messages.push(message(
            chat.id,
            Role::User,
            format!("Question {}", messages.len() / 2 + 1),
            turn,
            at,
        ));
        for _ in 0..10 {
            let llm = call(
                chat.id,
                session,
                turn,
                TraceKind::Llm,
                "mock-1",
                None,
                at,
                900,
            );
            let parent = llm.id;
            at += chrono::Duration::milliseconds(900);
            batch.push(llm);
            for k in 0..9 {
                let tool = ["read_file", "grep", "list_dir"][k % 3];
                batch.push(call(
                    chat.id,
                    session,
                    turn,
                    TraceKind::Tool,
                    tool,
                    Some(parent),
                    at,
                    40 + k as i64 * 7,
                ));
                at += chrono::Duration::milliseconds(50);
            }
            turn += 1;
        }
        turn -= 1;
        messages.push(message(
            chat.id,
            Role::Assistant,
            "An answer.".into(),
            turn,
            at,
        ));
        written += 100;
        if batch.len() >= 2000 {
            store.insert_traces(&batch).await?;
            batch.clear();
        }
    }
    store.insert_traces(&batch).await?;
    let s = Session {
        id: session,
        chat_id: Some(chat.id),
        run_id: None,
        parent_id: None,
        provider: "mock".into(),
        model: "mock-1".into(),
        status: SessionStatus::Completed,
        turn_number: turn,
        // The totals a real session's snapshot keeps as it goes (what each call below adds).
        state: json!({
            "usage": {
                "input_tokens": 1200 * turn, "output_tokens": 100 * turn,
                "cache_read_tokens": 960 * turn, "cache_write_tokens": 0, "reasoning_tokens": 0,
            },
            "cost_usd": 0.0004 * turn as f64,
        }),
        error: None,
        created_at: start,
        updated_at: at,
        lease: Default::default(),
    };
    store.create_session(&s).await?;
    store.save_session(&s, &messages).await?;
    println!("{}", json!({ "chat_id": chat.id, "traces": written }));
    Ok(())
}

fn message(
    chat: ChatId,
    role: Role,
    content: String,
    turn: i64,
    at: baton_core::Timestamp,
) -> Message {
    Message {
        id: MessageId::new(),
        chat_id: chat,
        role,
        content,
        attachments: vec![],
        turn_number: turn,
        created_at: at,
        task_id: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn call(
    chat: ChatId,
    session: SessionId,
    turn: i64,
    kind: TraceKind,
    name: &str,
    parent: Option<TraceId>,
    at: baton_core::Timestamp,
    ms: i64,
) -> Trace {
    let llm = kind == TraceKind::Llm;
    Trace {
        id: TraceId::new(),
        session_id: Some(session),
        chat_id: Some(chat),
        run_id: None,
        parent_id: parent,
        turn_number: turn,
        kind,
        tool_name: name.into(),
        input: json!({ "path": "src/lib.rs" }),
        output: Some(json!("fn main() {}\n")),
        started_at: at,
        finished_at: Some(at + chrono::Duration::milliseconds(ms)),
        latency_ms: Some(ms),
        tokens_used: llm.then_some(1300),
        input_tokens: llm.then_some(1200),
        output_tokens: llm.then_some(100),
        cache_tokens: llm.then_some(960),
        cache_write_tokens: None,
        reasoning_tokens: None,
        cost_usd: llm.then_some(0.0004),
        error: None,
        outcome: TraceOutcome::Ok,
        meta: json!({}),
    }
}
