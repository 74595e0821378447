//! The agent loop: answer pending tool calls, ask the model, repeat — snapshotting at
//! every turn boundary so a restart continues where the last snapshot stands.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    time, FrameBody, Message, MessageId, Role, Session, SessionStatus, StreamRestart, Topic,
    TraceFinish, TraceKind, TraceOutcome, TracePhase,
};
use baton_llm::{ChatMessage, ChatRequest, Delta, LlmError, ToolCall, ToolSpec};
use baton_store::Queued;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{self, Ending};
use crate::shared::{publish, publish_state, Inner};
use crate::state::SessionState;
use crate::tools::{self, Workspace};
use crate::tracing_calls::{new_trace, Tracer};

pub const STRUCTURED_OUTPUT: &str = "StructuredOutput";
const MAX_SCHEMA_RETRIES: u32 = 5;
const MAX_OUTPUT_TOKENS: u32 = 8192;

pub(crate) fn topic_of(s: &Session) -> Topic {
    match (s.chat_id, s.run_id) {
        (Some(c), _) => Topic::Chat(c),
        (None, Some(r)) => Topic::Run(r),
        (None, None) => Topic::Tasks,
    }
}

/// How a loop ended.
enum End {
    Answered,
    Cancelled,
    TimedOut,
    /// Server shutdown: the session stays `running` and resumes at the next start.
    Shutdown,
    /// Another instance claimed the session: this one writes nothing more for it.
    Lost,
    Failed(String),
}

struct Ctx<'a> {
    inner: &'a Inner,
    tracer: Tracer,
    cancel: CancellationToken,
    timed_out: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
}

impl Ctx<'_> {
    fn stopped(&self) -> Option<End> {
        if !self.cancel.is_cancelled() {
            return None;
        }
        Some(if self.lost.load(Ordering::SeqCst) {
            End::Lost
        } else if self.timed_out.load(Ordering::SeqCst) {
            End::TimedOut
        } else if self.inner.shutdown.is_cancelled() {
            End::Shutdown
        } else {
            End::Cancelled
        })
    }

    fn stop_outcome(&self) -> TraceOutcome {
        if self.timed_out.load(Ordering::SeqCst) {
            TraceOutcome::Timeout
        } else {
            TraceOutcome::Cancelled
        }
    }

    /// A snapshot between turns, queued: a crash loses at most the last few
    /// milliseconds of a session, which resumes from the one before; the final snapshot
    /// (`snapshot`) is awaited.
    async fn checkpoint(&self, session: &mut Session, state: &SessionState) {
        session.state = state.to_value();
        session.updated_at = time::now();
        self.inner
            .store
            .queue(Queued::Snapshot(session.clone(), Vec::new()))
            .await;
    }

    async fn snapshot(
        &self,
        session: &mut Session,
        state: &SessionState,
        messages: &[Message],
    ) -> bool {
        session.state = state.to_value();
        session.updated_at = time::now();
        match self.inner.store.save_session(session, messages).await {
            Ok(()) => true,
            Err(baton_store::StoreError::Fenced(_)) => {
                self.lost.store(true, Ordering::SeqCst);
                self.cancel.cancel();
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "saving the session snapshot failed");
                false
            }
        }
    }
}

/// The status an ending that is written leaves (`lifecycle::after`).
fn ended(ending: Ending, s: &Session) -> SessionStatus {
    lifecycle::after(ending, s.chat_id.is_some()).expect("a written ending has a status")
}

/// Runs a session until it answers, fails or stops; returns its final snapshot.
pub(crate) async fn drive(
    inner: &Inner,
    mut session: Session,
    mut state: SessionState,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
    limit: Duration,
) -> (Session, SessionState) {
    let topic = topic_of(&session);
    let timed_out = Arc::new(AtomicBool::new(false));
    let timer = {
        let (cancel, flag) = (cancel.clone(), timed_out.clone());
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            flag.store(true, Ordering::SeqCst);
            cancel.cancel();
        })
    };
    let ctx = Ctx {
        inner,
        tracer: Tracer {
            store: inner.store.clone(),
            hub: inner.hub.clone(),
            topic,
        },
        cancel,
        timed_out,
        lost,
    };
    let end = run_loop(&ctx, &mut session, &mut state).await;
    timer.abort();

    let mut messages = Vec::new();
    match &end {
        End::Lost => {
            tracing::warn!(
                epoch = session.lease.epoch,
                "another instance claimed this session; stopping here without writing"
            );
            return (session, state);
        }
        End::Shutdown => {
            tracing::info!("stopping for shutdown; the session resumes at the next start");
            let _ = inner
                .store
                .close_running_traces(session.id, "interrupted: the server shut down")
                .await;
            return (session, state);
        }
        End::Answered => {
            let text = state.final_answer().unwrap_or_default().to_string();
            if state.schema.is_none() {
                state.result = Some(Value::String(text.clone()));
            }
            session.status = ended(Ending::Answered, &session);
            if let Some(chat_id) = session.chat_id {
                messages.push(Message {
                    id: MessageId::new(),
                    chat_id,
                    role: Role::Assistant,
                    content: text,
                    attachments: vec![],
                    turn_number: session.turn_number,
                    created_at: time::now(),
                    task_id: None,
                });
            }
        }
        End::Cancelled => {
            session.status = ended(Ending::Cancelled, &session);
            session.error = Some("cancelled".into());
        }
        End::TimedOut => {
            session.status = ended(Ending::TimedOut, &session);
            session.error = Some(format!("the agent ran longer than its {limit:?} limit"));
        }
        End::Failed(msg) => {
            session.status = ended(Ending::Failed, &session);
            session.error = Some(msg.clone());
        }
    }
    // Whatever the loop left running is closed with the reason it stopped.
    if !matches!(end, End::Answered) {
        let reason = session.error.clone().unwrap_or_default();
        if let Ok(closed) = inner.store.close_running_traces(session.id, &reason).await {
            for t in &closed {
                ctx.tracer.frame(TracePhase::Finish, t).await;
            }
        }
    }
    if session.chat_id.is_some() {
        // A chat's answer is read back through REST as soon as its frames arrive.
        ctx.snapshot(&mut session, &state, &messages).await;
    } else {
        // A workflow's agent: its run journals the outcome next with an awaited write,
        // which commits after this one (`Store::queue`).
        ctx.checkpoint(&mut session, &state).await;
    }
    for m in &messages {
        publish(&inner.hub, topic, FrameBody::Message { message: m.clone() }).await;
    }
    if let Some(err) = &session.error {
        let code = if session.status == SessionStatus::Cancelled {
            "cancelled"
        } else {
            "agent_failed"
        };
        publish(
            &inner.hub,
            topic,
            FrameBody::Error {
                code: code.into(),
                message: err.clone(),
                session_id: Some(session.id),
            },
        )
        .await;
    }
    // A run's agent ends with the run's `agent_finish` (status, error, tokens, cost): its
    // session's state would say it again, in a frame stored per agent.
    if !matches!(topic, Topic::Run(_)) {
        publish_state(&inner.hub, topic, &session).await;
    }
    (session, state)
}

async fn run_loop(ctx: &Ctx<'_>, session: &mut Session, state: &mut SessionState) -> End {
    let ws = match Workspace::new(&state.workspace) {
        Ok(ws) => ws,
        Err(e) => return End::Failed(e.to_string()),
    };
    loop {
        if let Some(end) = ctx.stopped() {
            return end;
        }
        let pending = state.pending_calls();
        if !pending.is_empty() {
            let parent = None;
            for call in pending {
                if let Some(end) = ctx.stopped() {
                    return end;
                }
                run_tool(ctx, session, state, &ws, &call, parent).await;
                ctx.checkpoint(session, state).await;
            }
            if state.result.is_some() {
                return End::Answered;
            }
            continue;
        }
        if state.final_answer().is_some() {
            if state.schema.is_none() {
                return End::Answered;
            }
            // An answer in text when a structured one was asked for: ask again.
            state.schema_retries += 1;
            if state.schema_retries > MAX_SCHEMA_RETRIES {
                return End::Failed(
                    "the model did not answer through StructuredOutput after 5 retries".into(),
                );
            }
            state.history.push(ChatMessage::user_text(
                "Answer by calling the StructuredOutput tool with arguments that match its schema.",
            ));
        }
        if state.schema_retries > MAX_SCHEMA_RETRIES {
            return End::Failed("the answer did not match the schema after 5 retries".into());
        }
        if state.tool_calls_used >= state.max_tool_calls {
            return End::Failed(format!(
                "stopped after {} tool calls (the limit)",
                state.max_tool_calls
            ));
        }
        if let Some(budget) = state.budget_tokens {
            // Output tokens, as Claude Code counts a budget.
            if state.usage.output_tokens >= budget {
                return End::Failed(format!(
                    "stopped: the budget of {budget} output tokens is spent"
                ));
            }
        }
        if let Some(end) = tell_ended_tasks(ctx, session, state).await {
            return end;
        }
        if let Err(end) = model_turn(ctx, session, state).await {
            return end;
        }
        // A plain final answer is written by the end-of-session snapshot (with its
        // message, atomically); a turn that asked for tools is snapshotted here, so its
        // calls are known before any of them runs.
        let final_text = state.final_answer().is_some() && state.schema.is_none();
        if !final_text {
            ctx.checkpoint(session, state).await;
        }
    }
}

/// A turn boundary of a chat's agent: its ended background tasks join the history (and
/// the chat) before the next model call, saved at once so each is told once.
async fn tell_ended_tasks(
    ctx: &Ctx<'_>,
    session: &mut Session,
    state: &mut SessionState,
) -> Option<End> {
    session.chat_id?;
    // Right after a question (or a notice that woke the agent) nothing is to tell: what
    // had ended was told with it, and the question stays the last thing the model reads.
    if matches!(state.history.last(), Some(ChatMessage::User { .. })) {
        return None;
    }
    let before = state.history.len();
    let messages = match crate::notices::take(ctx.inner, session, state).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "reading the chat's ended tasks failed");
            return None;
        }
    };
    if messages.is_empty() {
        return None;
    }
    if !ctx.snapshot(session, state, &messages).await {
        // Not stored: they stay untold, and out of the history, until the next boundary.
        state.history.truncate(before);
        return ctx.stopped();
    }
    crate::notices::publish_messages(ctx.inner, &messages).await;
    None
}

fn allowed(state: &SessionState, name: &str) -> bool {
    state
        .tool_allowlist
        .as_ref()
        .is_none_or(|list| list.iter().any(|t| t == name))
}

fn tool_specs(state: &SessionState, limits: &crate::tasks::TaskLimits) -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = tools::specs(state.caps)
        .into_iter()
        .filter(|s| allowed(state, &s.name))
        .collect();
    specs.extend(
        crate::tasks::specs(state.task_depth, limits)
            .into_iter()
            .filter(|s| allowed(state, &s.name)),
    );
    if let Some(schema) = &state.schema {
        specs.push(ToolSpec {
            name: STRUCTURED_OUTPUT.into(),
            description:
                "Give your final answer by calling this tool; its arguments must match the schema."
                    .into(),
            parameters: schema.clone(),
        });
    }
    specs
}

async fn model_turn(
    ctx: &Ctx<'_>,
    session: &mut Session,
    state: &mut SessionState,
) -> Result<(), End> {
    let inner = ctx.inner;
    let Some(model) = inner.models.get(&session.model) else {
        let why = inner
            .model_for(Some(&session.model))
            .err()
            .unwrap_or_else(|| format!("model '{}' is not configured", session.model));
        return Err(End::Failed(why));
    };
    if crate::attachments::has_images(&state.history) {
        crate::attachments::check_vision(inner, &model).map_err(End::Failed)?;
    }
    session.turn_number += 1;
    let turn = session.turn_number;
    let mut req = ChatRequest {
        model: model.name.clone(),
        system: state.system.clone(),
        tools: tool_specs(state, &ctx.inner.config.task_limits),
        messages: state.history.clone(),
        max_tokens: MAX_OUTPUT_TOKENS,
        effort: state.effort,
    };
    let shape = crate::cache_shape::measure(&req);
    let changed = crate::cache_shape::changed(state.prefix.as_ref(), &shape.key);
    state.prefix = Some(shape.key.clone());
    let sent = &state.history[crate::cache_shape::new_from(&state.history)..];
    let input = json!({ "model": model.name, "provider": model.provider,
                        "history_len": req.messages.len(), "new_messages": sent });
    // Images go in before the call's trace starts, so a description made for them is
    // its own call, ahead of the one that uses it.
    let spent =
        crate::attachments::load_images(inner, &ctx.tracer, session, &model, &mut req, &ctx.cancel)
            .await
            .map_err(|why| ctx.stopped().unwrap_or(End::Failed(why)))?;
    state.usage.add(&spent.usage);
    state.cost_usd += spent.cost_usd;
    let mut trace = new_trace(TraceKind::Llm, &model.name, turn, input);
    trace.session_id = Some(session.id);
    trace.chat_id = session.chat_id;
    trace.run_id = session.run_id;
    trace.meta = json!({ "cache": crate::cache_shape::estimated(&shape, &changed) });
    if let Some(e) = req.effort {
        trace.meta["effort"] = match model.client.effort_control() {
            Some(param) => json!({ "requested": e, "sent_as": param }),
            None => json!({ "requested": e,
                "not_sent": format!("provider '{}' has no effort control Baton can send", model.provider) }),
        };
    }
    let trace = ctx.tracer.start(trace).await;
    // Whoever waits to read this prompt from the provider's cache goes once it streams.
    let started = inner
        .running
        .lock()
        .expect("running lock")
        .get(&session.id)
        .and_then(|r| r.response_started.clone())
        .filter(|t| !t.is_cancelled());
    let deltas = DeltaForwarder::start(ctx.tracer.clone(), session.id, turn);
    let sender = deltas.sender();
    let result = model
        .client
        .complete(
            &req,
            &mut |d| {
                if let Some(t) = &started {
                    t.cancel();
                }
                let _ = sender.send(d);
            },
            &ctx.cancel,
        )
        .await;
    if let Some(t) = &started {
        t.cancel();
    }
    drop(sender);
    deltas.finish().await;

    match result {
        Ok(resp) => {
            let cost = model.pricing.cost(&resp.usage);
            state.usage.add(&resp.usage);
            state.cost_usd += cost;
            let u = resp.usage;
            ctx.tracer
                .finish(
                    &trace,
                    TraceFinish {
                        output: Some(json!({ "text": resp.text, "tool_calls": resp.tool_calls,
                                             "stop_reason": resp.stop_reason })),
                        tokens_used: Some(u.total() as i64),
                        input_tokens: Some(u.input_tokens as i64),
                        output_tokens: Some(u.output_tokens as i64),
                        cache_tokens: Some(u.cache_read_tokens as i64),
                        cache_write_tokens: Some(u.cache_write_tokens as i64),
                        reasoning_tokens: Some(u.reasoning_tokens as i64),
                        cost_usd: Some(cost),
                        outcome: Some(TraceOutcome::Ok),
                        meta: Some(json!({ "attempts": resp.attempts,
                            "cache": crate::cache_shape::settled(&shape, &changed, &u),
                            // What this call would have cost with nothing cached.
                            "uncached_cost_usd": model.pricing.cost(&baton_llm::Usage {
                                cache_read_tokens: 0, cache_write_tokens: 0, ..u }) })),
                        ..Default::default()
                    },
                )
                .await;
            state.tool_calls_used += resp
                .tool_calls
                .iter()
                .filter(|c| c.name != STRUCTURED_OUTPUT)
                .count() as u32;
            state.history.push(ChatMessage::Assistant {
                text: resp.text,
                tool_calls: resp.tool_calls,
                thinking: resp.thinking,
            });
            Ok(())
        }
        Err(e) => {
            let outcome = match e {
                LlmError::Cancelled => ctx.stop_outcome(),
                LlmError::Timeout(_) => TraceOutcome::Timeout,
                _ => TraceOutcome::Error,
            };
            ctx.tracer
                .finish(
                    &trace,
                    TraceFinish {
                        error: Some(e.to_string()),
                        outcome: Some(outcome),
                        ..Default::default()
                    },
                )
                .await;
            Err(match e {
                LlmError::Cancelled => ctx.stopped().unwrap_or(End::Cancelled),
                other => End::Failed(format!(
                    "the call to model '{}' failed: {other}",
                    model.name
                )),
            })
        }
    }
}

async fn run_tool(
    ctx: &Ctx<'_>,
    session: &Session,
    state: &mut SessionState,
    ws: &Workspace,
    call: &ToolCall,
    parent: Option<baton_core::TraceId>,
) {
    let mut trace = new_trace(
        TraceKind::Tool,
        &call.name,
        session.turn_number,
        call.arguments.clone(),
    );
    trace.session_id = Some(session.id);
    trace.chat_id = session.chat_id;
    trace.run_id = session.run_id;
    trace.parent_id = parent;
    trace.meta = json!({ "call_id": call.id });
    let trace = ctx.tracer.start(trace).await;
    let out = if call.name == STRUCTURED_OUTPUT && state.schema.is_some() {
        structured(state, &call.arguments)
    } else if crate::tasks::is_task_tool(&call.name) {
        let offered: Vec<String> = tool_specs(state, &ctx.inner.config.task_limits)
            .into_iter()
            .map(|s| s.name)
            .collect();
        if offered.contains(&call.name) {
            crate::tasks::tool(ctx.inner, session, state, &offered, call).await
        } else {
            tools::ToolOutput::error(format!(
                "the tool '{}' is not available to this agent (background agents may not start more)",
                call.name
            ))
        }
    } else if !allowed(state, &call.name) {
        tools::ToolOutput::error(format!(
            "the tool '{}' is not available to this agent",
            call.name
        ))
    } else {
        tools::run(
            ws,
            state.caps,
            ctx.inner.config.tool_limits,
            &call.name,
            &call.arguments,
            &ctx.cancel,
        )
        .await
    };
    let outcome = if ctx.cancel.is_cancelled() {
        ctx.stop_outcome()
    } else if out.is_error {
        TraceOutcome::Error
    } else {
        TraceOutcome::Ok
    };
    ctx.tracer
        .finish(
            &trace,
            TraceFinish {
                output: Some(Value::String(out.content.clone())),
                error: out.is_error.then(|| first_line(&out.content)),
                outcome: Some(outcome),
                ..Default::default()
            },
        )
        .await;
    state.history.push(ChatMessage::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: out.content,
        is_error: out.is_error,
    });
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// Validates a structured answer against the session's schema; accepted answers become
/// the session's result.
fn structured(state: &mut SessionState, args: &Value) -> tools::ToolOutput {
    let schema = state.schema.clone().unwrap_or(Value::Null);
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => return tools::ToolOutput::error(format!("the requested schema is invalid: {e}")),
    };
    let errors: Vec<String> = validator
        .iter_errors(args)
        .take(10)
        .map(|e| {
            let path = e.instance_path.to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        state.result = Some(args.clone());
        return tools::ToolOutput::ok("accepted");
    }
    state.schema_retries += 1;
    tools::ToolOutput::error(format!(
        "the answer does not match the schema; call StructuredOutput again with corrected arguments:\n- {}",
        errors.join("\n- ")
    ))
}

/// Forwards streamed text as `message_delta` frames, coalesced so a fast stream makes a
/// frame every ~50 ms rather than one per token.
struct DeltaForwarder {
    tx: mpsc::UnboundedSender<Delta>,
    task: tokio::task::JoinHandle<()>,
}

impl DeltaForwarder {
    fn start(tracer: Tracer, session: baton_core::SessionId, turn: i64) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delta>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut text = String::new();
                let mut restart = None;
                let mut next = Some(first);
                let window = tokio::time::sleep(Duration::from_millis(50));
                tokio::pin!(window);
                loop {
                    match next.take() {
                        Some(Delta::Text(t)) => text.push_str(&t),
                        Some(Delta::Restart { attempt, reason }) => {
                            text.clear();
                            restart = Some(StreamRestart { attempt, reason });
                        }
                        None => {}
                    }
                    tokio::select! {
                        _ = &mut window => break,
                        d = rx.recv() => match d {
                            Some(d) => next = Some(d),
                            None => break,
                        },
                    }
                }
                let body = FrameBody::MessageDelta {
                    session_id: session,
                    turn_number: turn,
                    text,
                    restart,
                };
                publish(&tracer.hub, tracer.topic, body).await;
            }
        });
        Self { tx, task }
    }

    fn sender(&self) -> mpsc::UnboundedSender<Delta> {
        self.tx.clone()
    }

    async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}
