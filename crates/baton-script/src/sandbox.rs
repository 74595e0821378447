use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::prelude::Async;
use rquickjs::{
    AsyncContext, AsyncRuntime, CatchResultExt, CaughtError, Ctx, Function, Object, Promise, Value,
};
use serde_json::{json, Value as Json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::source::{self, Meta, Script, PREFIX};
use crate::{Admission, AgentCall, Host, Limits, ScriptError};

const PRELUDE: &str = include_str!("prelude.js");
/// Calls the wrapped script with its args and serializes the result, with the JSON
/// functions captured before the script could replace them.
const RUNNER: &str = "((stringify, parse) => async (fn, argsJson) => {
    const r = await fn(argsJson == null ? undefined : parse(argsJson));
    const s = stringify(r);
    return s === undefined ? 'null' : s;
})(JSON.stringify, JSON.parse)";
const MAX_SOURCE: usize = 1 << 20;

const RUNNING: u8 = 0;
const DEADLINE: u8 = 1;
const CANCELLED: u8 = 2;

fn engine(e: impl std::fmt::Display) -> ScriptError {
    ScriptError::Engine(e.to_string())
}

fn envelope(r: Result<Json, String>) -> String {
    match r {
        Ok(v) => json!({ "value": v }).to_string(),
        Err(e) => json!({ "error": e }).to_string(),
    }
}

/// What the script threw, as a developer would want to read it: an Error's message and
/// stack, or a thrown string itself, or another value as JSON.
fn caught(e: CaughtError<'_>) -> String {
    match e {
        CaughtError::Value(v) => {
            if let Some(s) = v.as_string().and_then(|s| s.to_string().ok()) {
                return s;
            }
            let ctx = v.ctx().clone();
            match ctx.json_stringify(v.clone()) {
                Ok(Some(s)) => s
                    .to_string()
                    .unwrap_or_else(|_| format!("a thrown {}", v.type_name())),
                _ => format!("a thrown {}", v.type_name()),
            }
        }
        other => other.to_string().trim().to_string(),
    }
}

/// `line:column` of `at eval_script:L:C` in a QuickJS message.
fn position(message: &str) -> Option<(u32, u32)> {
    let at = message.find("eval_script:")? + "eval_script:".len();
    let rest = &message[at..];
    let mut parts = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

async fn fresh_runtime(limits: &Limits) -> Result<(AsyncRuntime, AsyncContext), ScriptError> {
    let rt = AsyncRuntime::new().map_err(engine)?;
    rt.set_memory_limit(limits.memory_bytes).await;
    rt.set_max_stack_size(limits.stack_bytes).await;
    let ctx = AsyncContext::full(&rt).await.map_err(engine)?;
    Ok((rt, ctx))
}

/// Reads a workflow script: its `meta`, and whether it compiles. Nothing of the body
/// runs. Syntax errors carry the line and column in the file as given.
pub async fn parse(src: &str) -> Result<Script, ScriptError> {
    if src.len() > MAX_SOURCE {
        return Err(ScriptError::Forbidden {
            line: 1,
            column: 1,
            message: format!("the script is over {MAX_SOURCE} bytes"),
        });
    }
    let source::Prepared {
        meta: meta_text,
        body,
        default_export,
        phase_calls,
        tool_names,
    } = source::prepare(src)?;
    let wrapped = source::wrap(&body, default_export);
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let (rt, ctx) = fresh_runtime(&limits).await?;
    let started = Instant::now();
    rt.set_interrupt_handler(Some(Box::new(move || started.elapsed().as_secs() >= 2)))
        .await;
    let compiled: Result<Option<String>, ScriptError> = ctx
        .async_with(async |ctx| {
            // Evaluating the wrapper only creates the function: the body does not run.
            let r: Result<Value, _> = ctx.eval(wrapped.as_str());
            if let Err(e) = r.catch(&ctx) {
                let message = caught(e);
                let (line, column) = position(&message).unwrap_or((1, 1));
                let column = if line == 1 {
                    column.saturating_sub(PREFIX.len() as u32).max(1)
                } else {
                    column
                };
                let first = message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("SyntaxError: ")
                    .trim_start_matches("Error: ");
                return Err(ScriptError::Syntax {
                    line,
                    column,
                    message: first.to_string(),
                });
            }
            match &meta_text {
                None => Ok(None),
                Some(text) => {
                    let r: Result<String, _> = ctx.eval(format!("JSON.stringify(({text}))"));
                    r.catch(&ctx)
                        .map(Some)
                        .map_err(|e| ScriptError::Meta(caught(e)))
                }
            }
        })
        .await;
    let meta_json = compiled?;
    let meta: Meta = match &meta_json {
        None => Meta::default(),
        Some(j) => serde_json::from_str(j).map_err(|e| ScriptError::Meta(e.to_string()))?,
    };
    Ok(Script {
        meta,
        meta_json: meta_json.unwrap_or_else(|| "null".into()),
        wrapped,
        phase_calls,
        tool_names,
    })
}

/// The agents a script started, each its own task. When the script ends, however it
/// ends, they stop, and the run waits until none is left: nothing of a finished run
/// writes after it.
#[derive(Clone, Default)]
struct AgentTasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

/// How long the agents of a cancelled run get to end on their own (closing their
/// traces and journal entries) before they are stopped where they are.
const GRACE: Duration = Duration::from_secs(5);

impl AgentTasks {
    async fn stop_all(&self, cancelled: bool) {
        self.tracker.close();
        if cancelled {
            // The host's agents see the run's cancel too and end promptly.
            let _ = tokio::time::timeout(GRACE, self.tracker.wait()).await;
        }
        self.stop.cancel();
        self.tracker.wait().await;
    }
}

fn install<'js>(
    ctx: &Ctx<'js>,
    host: Arc<dyn Host>,
    budget_total: Option<u64>,
    tasks: AgentTasks,
) -> rquickjs::Result<()> {
    let obj = Object::new(ctx.clone())?;
    let h = host.clone();
    obj.set(
        "agent",
        Function::new(
            ctx.clone(),
            Async(move |payload: String| {
                let host = h.clone();
                let tasks = tasks.clone();
                async move {
                    let r = match serde_json::from_str::<Json>(&payload) {
                        Ok(v) => {
                            let call = AgentCall {
                                prompt: v["prompt"].as_str().unwrap_or_default().to_string(),
                                opts: v["opts"].clone(),
                                phase: v["phase"].as_str().map(str::to_string),
                            };
                            match host.agent(call).await {
                                Admission::Answered(r) => r,
                                // The agent runs as its own task: futures the script's
                                // runtime polls share one thread, and a run's agents
                                // would then take turns on one core.
                                Admission::Running(work) => {
                                    let stop = tasks.stop.clone();
                                    let task = tasks.tracker.spawn(async move {
                                        tokio::select! {
                                            r = work => r,
                                            _ = stop.cancelled() => Err("the script ended first".into()),
                                        }
                                    });
                                    task.await.unwrap_or_else(|e| {
                                        Err(format!("the agent's task ended abnormally: {e}"))
                                    })
                                }
                            }
                        }
                        Err(e) => Err(format!("agent(): unreadable arguments: {e}")),
                    };
                    Ok::<String, rquickjs::Error>(envelope(r))
                }
            }),
        )?,
    )?;
    let h = host.clone();
    obj.set(
        "workflow",
        Function::new(
            ctx.clone(),
            Async(move |payload: String| {
                let host = h.clone();
                async move {
                    let r = match serde_json::from_str::<Json>(&payload) {
                        Ok(v) => {
                            host.workflow(
                                v["name"].as_str().unwrap_or_default().to_string(),
                                v["args"].clone(),
                            )
                            .await
                        }
                        Err(e) => Err(format!("workflow(): unreadable arguments: {e}")),
                    };
                    Ok::<String, rquickjs::Error>(envelope(r))
                }
            }),
        )?,
    )?;
    let h = host.clone();
    obj.set(
        "items",
        Function::new(ctx.clone(), move |n: f64| {
            envelope(h.items(n.max(0.0) as usize).map(|_| Json::Null))
        })?,
    )?;
    let h = host.clone();
    obj.set(
        "phase",
        Function::new(ctx.clone(), move |t: String| {
            envelope(h.phase(&t).map(|_| Json::Null))
        })?,
    )?;
    let h = host.clone();
    obj.set(
        "log",
        Function::new(ctx.clone(), move |m: String| {
            envelope(h.log(&m).map(|_| Json::Null))
        })?,
    )?;
    let h = host;
    obj.set(
        "spent",
        Function::new(ctx.clone(), move || h.spent() as f64)?,
    )?;
    let config = Object::new(ctx.clone())?;
    match budget_total {
        Some(t) => config.set("budgetTotal", t as f64)?,
        None => config.set("budgetTotal", rquickjs::Null)?,
    }
    let prelude: Function = ctx.eval(PRELUDE)?;
    prelude.call::<_, ()>((obj, config))?;
    Ok(())
}

/// Runs a parsed script to its end and returns its result as JSON.
pub async fn run(
    script: &Script,
    args: Option<&Json>,
    budget_total: Option<u64>,
    host: Arc<dyn Host>,
    limits: Limits,
    cancel: CancellationToken,
) -> Result<Json, ScriptError> {
    let (rt, ctx) = fresh_runtime(&limits).await?;
    let tasks = AgentTasks::default();
    // Should this future be dropped instead of finishing, its agents stop all the same.
    let _stop_agents = tasks.stop.clone().drop_guard();
    let deadline = Instant::now() + limits.wall_clock;
    let stop = Arc::new(AtomicU8::new(RUNNING));
    {
        // Checked by QuickJS while JavaScript executes, so a tight loop stops too.
        let (stop, cancel) = (stop.clone(), cancel.clone());
        rt.set_interrupt_handler(Some(Box::new(move || {
            if cancel.is_cancelled() {
                stop.store(CANCELLED, Ordering::SeqCst);
            } else if Instant::now() >= deadline {
                stop.store(DEADLINE, Ordering::SeqCst);
            }
            stop.load(Ordering::SeqCst) != RUNNING
        })))
        .await;
    }
    let args_json = args.map(|a| a.to_string());
    let wrapped = script.wrapped.clone();
    let meta_json = script.meta_json.clone();
    let work = ctx.async_with(async |ctx| {
        install(&ctx, host, budget_total, tasks.clone())
            .catch(&ctx)
            .map_err(|e| ScriptError::Engine(caught(e)))?;
        let _ = meta_json;
        let f: Result<Value, _> = ctx.eval(wrapped.as_str());
        let f = f.catch(&ctx).map_err(|e| ScriptError::Thrown(caught(e)))?;
        let runner: Function = ctx
            .eval(RUNNER)
            .catch(&ctx)
            .map_err(|e| ScriptError::Engine(caught(e)))?;
        let promise: Promise = runner
            .call((f, args_json))
            .catch(&ctx)
            .map_err(|e| ScriptError::Thrown(caught(e)))?;
        let out: Result<String, _> = promise.into_future::<String>().await;
        out.catch(&ctx).map_err(|e| ScriptError::Thrown(caught(e)))
    });
    // A script waiting on promises that never settle is not executing, so the
    // interrupt handler never runs: the deadline and the cancel are also awaited here.
    let outcome = tokio::select! {
        _ = cancel.cancelled() => {
            stop.store(CANCELLED, Ordering::SeqCst);
            Err(ScriptError::Cancelled)
        }
        _ = tokio::time::sleep_until(deadline.into()) => {
            stop.store(DEADLINE, Ordering::SeqCst);
            Err(ScriptError::Deadline(limits.wall_clock))
        }
        r = work => r,
    };
    // A cancel wins over an end it caused: once cancelled, agents answer null at once
    // and the script can finish within the same poll.
    let outcome = if cancel.is_cancelled() {
        stop.store(CANCELLED, Ordering::SeqCst);
        Err(ScriptError::Cancelled)
    } else {
        outcome
    };
    // When QuickJS runs out of memory while building its own "out of memory" error, the
    // script sees a bare `null` thrown; how full the heap is tells the two apart.
    let heap_full = rt.memory_usage().await.malloc_size as usize >= limits.memory_bytes / 10 * 9;
    drop(ctx);
    drop(rt);
    tasks.stop_all(cancel.is_cancelled()).await;
    let text = match outcome {
        Ok(t) => t,
        Err(ScriptError::Thrown(m)) => {
            return Err(match stop.load(Ordering::SeqCst) {
                DEADLINE => ScriptError::Deadline(limits.wall_clock),
                CANCELLED => ScriptError::Cancelled,
                _ if heap_full || m.contains("out of memory") => {
                    ScriptError::OutOfMemory(limits.memory_bytes >> 20)
                }
                _ => ScriptError::Thrown(m),
            })
        }
        Err(e) => return Err(e),
    };
    serde_json::from_str(&text).map_err(|e| ScriptError::Result(e.to_string()))
}
