use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton_script::{parse, run, Admission, AgentCall, Host, Limits, ScriptError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

type Answer = Arc<dyn Fn(&AgentCall) -> Result<Value, String> + Send + Sync>;

struct TestHost {
    answer: Answer,
    delay: Box<dyn Fn(&AgentCall) -> Duration + Send + Sync>,
    calls: Arc<Mutex<Vec<AgentCall>>>,
    events: Arc<Mutex<Vec<String>>>,
    spent: Arc<AtomicU64>,
    max_items: usize,
    /// Agent calls dropped before they finished.
    abandoned: Arc<AtomicU64>,
}

/// Counts an agent call as abandoned unless it reaches its end.
struct Unfinished(Arc<AtomicU64>, bool);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl TestHost {
    fn new(
        answer: impl Fn(&AgentCall) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with_delay(answer, |_| Duration::ZERO)
    }

    fn with_delay(
        answer: impl Fn(&AgentCall) -> Result<Value, String> + Send + Sync + 'static,
        delay: impl Fn(&AgentCall) -> Duration + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            answer: Arc::new(answer),
            delay: Box::new(delay),
            calls: Arc::default(),
            events: Arc::default(),
            spent: Arc::default(),
            max_items: 4096,
            abandoned: Arc::default(),
        })
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait]
impl Host for TestHost {
    async fn agent(&self, call: AgentCall) -> Admission {
        let unfinished = Unfinished(self.abandoned.clone(), false);
        self.events
            .lock()
            .unwrap()
            .push(format!("start {}", call.prompt));
        let delay = (self.delay)(&call);
        let (calls, spent, events, answer) = (
            self.calls.clone(),
            self.spent.clone(),
            self.events.clone(),
            self.answer.clone(),
        );
        Admission::Running(Box::pin(async move {
            let mut unfinished = unfinished;
            tokio::time::sleep(delay).await;
            unfinished.1 = true;
            calls.lock().unwrap().push(call.clone());
            spent.fetch_add(100, Ordering::SeqCst);
            events.lock().unwrap().push(format!("end {}", call.prompt));
            answer(&call)
        }))
    }
    fn items(&self, n: usize) -> Result<(), String> {
        if n > self.max_items {
            Err(format!("{n} items is over the limit of {}", self.max_items))
        } else {
            Ok(())
        }
    }
    fn phase(&self, title: &str) -> Result<(), String> {
        self.events.lock().unwrap().push(format!("phase {title}"));
        Ok(())
    }
    fn log(&self, message: &str) -> Result<(), String> {
        self.events.lock().unwrap().push(format!("log {message}"));
        Ok(())
    }
    fn spent(&self) -> u64 {
        self.spent.load(Ordering::SeqCst)
    }
    async fn workflow(&self, name: String, args: Value) -> Result<Value, String> {
        Ok(json!({ "ran": name, "with": args }))
    }
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 32 << 20,
        stack_bytes: 512 << 10,
        wall_clock: Duration::from_secs(10),
    }
}

async fn exec(src: &str, args: Option<Value>, host: Arc<TestHost>) -> Result<Value, ScriptError> {
    let script = parse(src).await?;
    run(
        &script,
        args.as_ref(),
        None,
        host,
        limits(),
        CancellationToken::new(),
    )
    .await
}

fn echo() -> Arc<TestHost> {
    TestHost::new(|c| Ok(json!(format!("re: {}", c.prompt))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_example_runs_unchanged() {
    let src = r#"export const meta = { name: 'audit-routes', description: 'Audit route handlers',
                      phases: [{ title: 'Find' }, { title: 'Audit' }] }
const found = await agent('List every .ts file under src/routes/.', {
  schema: { type: 'object', required: ['files'],
            properties: { files: { type: 'array', items: { type: 'string' } } } } })
phase('Audit')
const audits = await pipeline(found.files, f => agent(`Audit ${f}`, { label: f }))
return audits.filter(Boolean)
"#;
    let host = TestHost::new(|c| match c.prompt.as_str() {
        p if p.starts_with("List") => Ok(json!({ "files": ["a.ts", "b.ts", "c.ts"] })),
        "Audit b.ts" => Ok(Value::Null),
        p => Ok(json!(format!("{p}: fine"))),
    });
    let script = parse(src).await.unwrap();
    assert_eq!(script.meta.name.as_deref(), Some("audit-routes"));
    assert_eq!(
        script
            .meta
            .phases
            .iter()
            .map(|p| p.title.as_str())
            .collect::<Vec<_>>(),
        ["Find", "Audit"]
    );
    assert_eq!(script.phase_calls, ["Audit"]);
    let out = run(
        &script,
        None,
        None,
        host.clone(),
        limits(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["Audit a.ts: fine", "Audit c.ts: fine"]));
    let calls = host.calls.lock().unwrap().clone();
    let first = calls.iter().find(|c| c.prompt.starts_with("List")).unwrap();
    assert_eq!(first.phase, None);
    assert_eq!(first.opts["schema"]["required"], json!(["files"]));
    let audit = calls.iter().find(|c| c.prompt == "Audit a.ts").unwrap();
    assert_eq!(
        (audit.phase.as_deref(), audit.opts["label"].as_str()),
        (Some("Audit"), Some("a.ts"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_export_form_gets_args() {
    let src = "export default { name: 'x', description: 'd', async run(args) { return [args.n * 2, await agent('hi')] } }";
    assert_eq!(
        exec(src, Some(json!({ "n": 21 })), echo()).await.unwrap(),
        json!([42, "re: hi"])
    );
    let src = "export default { name: 'x' }";
    let err = exec(src, None, echo()).await.unwrap_err();
    assert!(err.to_string().contains("run(args)"), "{err}");
    assert_eq!(
        exec("return args", None, echo()).await.unwrap(),
        Value::Null,
        "args is undefined without input"
    );
    let src =
        "export const meta = { name: 'm', phases: [{ title: 'A' }] }\nreturn meta.phases[0].title";
    assert_eq!(
        exec(src, None, echo()).await.unwrap(),
        json!("A"),
        "the body can read its meta"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_is_a_barrier_that_never_rejects() {
    let src = "return await parallel([() => agent('a'), async () => { throw new Error('x') }, () => agent('b'), () => 7])";
    assert_eq!(
        exec(src, None, echo()).await.unwrap(),
        json!(["re: a", null, "re: b", 7])
    );
    let err = exec("return await parallel('nope')", None, echo())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("array of functions"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_stages_flow_per_item_without_a_barrier() {
    let src = r#"
const out = await pipeline(['fast', 'slow'],
  (prev, item, i) => agent(`one ${item}`),
  (prev, item, i) => { if (item === 'bad') throw new Error('no'); return agent(`two ${item} ${i} <${prev}>`) })
return out"#;
    let host = TestHost::with_delay(
        |c| Ok(json!(c.prompt.clone())),
        |c| {
            if c.prompt == "one slow" {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            }
        },
    );
    let out = exec(src, None, host.clone()).await.unwrap();
    assert_eq!(
        out,
        json!(["two fast 0 <one fast>", "two slow 1 <one slow>"])
    );
    let ev = host.events();
    let fast_two = ev
        .iter()
        .position(|e| e == "end two fast 0 <one fast>")
        .unwrap();
    let slow_one = ev.iter().position(|e| e == "end one slow").unwrap();
    assert!(fast_two < slow_one, "no barrier between stages: {ev:?}");

    let src = r#"return await pipeline(['ok', 'bad', 'ok2'],
      (p, item) => { if (item === 'bad') throw new Error('stage one failed'); return item },
      (p, item) => agent(`second ${p}`))"#;
    let host = echo();
    let out = exec(src, None, host.clone()).await.unwrap();
    assert_eq!(out, json!(["re: second ok", null, "re: second ok2"]));
    assert_eq!(
        host.calls.lock().unwrap().len(),
        2,
        "a failed item skips its later stages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_log_budget_and_workflow_reach_the_host() {
    let src = r#"
phase('Gather'); log('starting')
const before = budget.remaining()
await agent('x')
const w = await workflow('child', { a: 1 })
return [budget.total, budget.spent(), before, budget.remaining(), w]"#;
    let script = parse(src).await.unwrap();
    let host = echo();
    let out = run(
        &script,
        None,
        Some(250),
        host.clone(),
        limits(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([250, 100, 250, 150, { "ran": "child", "with": { "a": 1 } }])
    );
    assert_eq!(
        host.events()[..2],
        ["phase Gather".to_string(), "log starting".to_string()]
    );
    let out = exec(
        "return [budget.total, budget.remaining() === Infinity]",
        None,
        echo(),
    )
    .await
    .unwrap();
    assert_eq!(out, json!([null, true]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_refusals_become_exceptions() {
    let host = TestHost::new(|_| Err("the token budget is spent".into()));
    let out = exec(
        "try { await agent('x') } catch (e) { return e.message }",
        None,
        host,
    )
    .await
    .unwrap();
    assert_eq!(out, json!("the token budget is spent"));
    let mut h = TestHost::new(|_| Ok(Value::Null));
    Arc::get_mut(&mut h).unwrap().max_items = 3;
    let err = exec(
        "return await parallel([1,2,3,4].map(n => () => n))",
        None,
        h.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("over the limit of 3"), "{err}");
    let err = exec("return await pipeline([1,2,3,4], x => x)", None, h)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    let err = exec("return await agent(42)", None, echo())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("prompt must be a string"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_and_randomness_throw_with_the_reason() {
    for src in [
        "return Date.now()",
        "return new Date().getTime()",
        "return Date()",
        "return Math.random()",
        "return new (new Date(0).constructor)().getTime()",
        "return new Date(0).constructor.now()",
        "return Reflect.construct(Date, [])",
    ] {
        let err = exec(src, None, echo()).await.unwrap_err().to_string();
        assert!(err.contains("break resume"), "{src}: {err}");
    }
    let out = exec(
        "return [new Date(0).toISOString(), Date.UTC(2020, 0, 1), typeof Date.parse]",
        None,
        echo(),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!(["1970-01-01T00:00:00.000Z", 1577836800000i64, "function"])
    );
    let out = exec("Math.random = () => 4; return 1", None, echo()).await;
    assert!(out.is_ok() || out.unwrap_err().to_string().contains("read-only"));
    let err = exec("return Math.random()", None, echo())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("break resume"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_carry_line_and_column() {
    match parse("export const meta = { name: 'x' }\nconst a = 1;\nconst b = a +* 2;\n")
        .await
        .unwrap_err()
    {
        ScriptError::Syntax {
            line,
            column,
            message,
        } => {
            assert_eq!(line, 3, "{message}");
            assert!((13..=16).contains(&column), "column {column}");
        }
        other => panic!("{other:?}"),
    }
    match parse("let x = ;").await.unwrap_err() {
        ScriptError::Syntax { line, column, .. } => assert_eq!((line, column), (1, 9)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_requires_and_impure_meta_are_refused_before_running() {
    for (src, line) in [
        ("import fs from 'fs'\nreturn 1", 1),
        ("const a = 1\nconst m = await import('fs')", 2),
        ("return require('child_process')", 1),
        ("export function f() {}", 1),
    ] {
        match parse(src).await.unwrap_err() {
            ScriptError::Forbidden { line: l, .. } => assert_eq!(l, line, "{src}"),
            other => panic!("{src}: {other:?}"),
        }
    }
    assert!(
        parse("const s = 'import and require in a string are fine' // import\nreturn s")
            .await
            .is_ok()
    );
    for src in [
        "export const meta = { name: makeName() }",
        "export const meta = { name: `a${b}` }",
        "export const meta = { name: x }",
    ] {
        assert!(
            matches!(parse(src).await.unwrap_err(), ScriptError::Meta(_)),
            "{src}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_loop_stops_at_the_deadline_and_on_cancel() {
    let script = parse("while (true) {}").await.unwrap();
    let started = Instant::now();
    let l = Limits {
        wall_clock: Duration::from_millis(500),
        ..limits()
    };
    let err = run(&script, None, None, echo(), l, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ScriptError::Deadline(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let started = Instant::now();
    let err = run(&script, None, None, echo(), limits(), cancel)
        .await
        .unwrap_err();
    assert_eq!(err, ScriptError::Cancelled);
    assert!(started.elapsed() < Duration::from_millis(1300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promises_that_never_settle_end_at_the_deadline() {
    let script = parse(
        "await parallel(Array.from({ length: 1000 }, () => () => new Promise(() => {}))); return 1",
    )
    .await
    .unwrap();
    let l = Limits {
        wall_clock: Duration::from_millis(400),
        ..limits()
    };
    let err = run(&script, None, None, echo(), l, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ScriptError::Deadline(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_huge_strings_and_deep_recursion_fail_cleanly() {
    let err = exec(
        "const a = []; while (true) a.push('x'.repeat(4096) + a.length)",
        None,
        echo(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ScriptError::OutOfMemory(32)), "{err:?}");
    let err = exec("return 'x'.repeat(2 ** 31).length", None, echo())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScriptError::Thrown(_) | ScriptError::OutOfMemory(_)),
        "{err:?}"
    );
    let err = exec(
        "function f(n) { return f(n + 1) + 1 } return f(0)",
        None,
        echo(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("stack"), "{err}");
    // The next run is unaffected.
    assert_eq!(exec("return 1 + 1", None, echo()).await.unwrap(), json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_cannot_be_subverted_from_the_script() {
    let src = r#"
const attempts = [
  () => { agent.hacked = true },
  () => { globalThis.agent = () => 'fake' },
  () => { Object.defineProperty(globalThis, 'agent', { value: () => 'fake' }) },
  () => { budget.spent = () => 0 },
  () => { delete globalThis.parallel },
]
for (const a of attempts) { try { a() } catch (e) {} }
Array.prototype.map = function () { throw new Error('poisoned map') }
Object.prototype.opts = 'polluted'
JSON.stringify = () => 'garbage'
JSON.parse = () => 'garbage'
const r = await parallel([() => agent('real')])
return [r[0], agent.hacked === undefined]"#;
    assert_eq!(
        exec(src, None, echo()).await.unwrap(),
        json!(["re: real", true])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constructor_chains_reach_nothing_outside() {
    let src = r#"
const g = Function('return this')()
const probes = ['require', 'process', 'os', 'std', 'setTimeout', 'fetch', 'XMLHttpRequest', 'WebAssembly', 'Deno', 'Bun']
const seen = probes.filter(p => { try { return typeof (0, eval)(p) !== 'undefined' || g[p] !== undefined } catch (e) { return false } })
const viaCtor = (async () => {}).constructor('return typeof require')
return [seen, await viaCtor()]"#;
    assert_eq!(
        exec(src, None, echo()).await.unwrap(),
        json!([[], "undefined"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwing_getters_and_odd_results_end_in_clean_errors() {
    let src = r#"const o = {}; Object.defineProperty(o, 'x', { enumerable: true, get() { throw new Error('boom getter') } })
return await agent('p', { label: o })"#;
    let err = exec(src, None, echo()).await.unwrap_err();
    assert!(err.to_string().contains("boom getter"), "{err}");
    let src = "Object.defineProperty(args, 'y', { enumerable: true, get() { throw new Error('args getter') } }); return args";
    let err = exec(src, Some(json!({ "a": 1 })), echo())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("args getter"), "{err}");
    let err = exec("return 10n", None, echo()).await.unwrap_err();
    assert!(matches!(err, ScriptError::Thrown(_)), "{err:?}");
    assert_eq!(
        exec("return undefined", None, echo()).await.unwrap(),
        Value::Null
    );
    assert_eq!(
        exec("throw 'plain string'", None, echo())
            .await
            .unwrap_err()
            .to_string(),
        "the script failed: plain string"
    );
}

/// QuickJS throws a bare `null` when the heap is too full to build its own error; the user
/// must still read that the script ran out of memory.
#[tokio::test]
async fn a_fan_out_too_big_for_the_heap_is_reported_as_out_of_memory() {
    let mut h = TestHost::new(|c| Ok(json!(c.prompt)));
    Arc::get_mut(&mut h).unwrap().max_items = 100_000;
    let src = "const items = Array.from({ length: 20000 }, (_, i) => `item ${i}`)\n\
               return (await parallel(items.map(x => () => agent(x)))).length";
    let err = exec(src, None, h.clone()).await.unwrap_err();
    assert_eq!(err, ScriptError::OutOfMemory(32));
    assert_eq!(
        err.to_string(),
        "the script used more than its 32 MiB of memory"
    );
    // The same host and limits still run a fan-out that fits.
    let ok = "return (await parallel(Array.from({ length: 1000 }, (_, i) => () => agent(`a${i}`)))).length";
    assert_eq!(exec(ok, None, h).await.unwrap(), json!(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_a_script_leaves_behind_stop_before_its_run_returns() {
    let slow = |c: &AgentCall| {
        if c.prompt == "slow" {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        }
    };
    let host = TestHost::with_delay(|c| Ok(json!(c.prompt)), slow);
    let out = exec(
        "agent('slow'); agent('slow')\nreturn await agent('fast')",
        None,
        host.clone(),
    )
    .await
    .unwrap();
    assert_eq!(out, json!("fast"));
    assert_eq!(host.abandoned.load(Ordering::SeqCst), 2);

    let host = TestHost::with_delay(|c| Ok(json!(c.prompt)), slow);
    let err = exec("agent('slow')\nthrow new Error('boom')", None, host.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(host.abandoned.load(Ordering::SeqCst), 1);
}

/// A host whose agents cancel the run, as a user's cancel arriving mid-answer would, and
/// answer null at once, as stopped agents do.
struct CancellingHost(CancellationToken);

#[async_trait]
impl Host for CancellingHost {
    async fn agent(&self, _: AgentCall) -> Admission {
        self.0.cancel();
        Admission::Answered(Ok(Value::Null))
    }
    fn items(&self, _: usize) -> Result<(), String> {
        Ok(())
    }
    fn phase(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn log(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn spent(&self) -> u64 {
        0
    }
    async fn workflow(&self, _: String, _: Value) -> Result<Value, String> {
        Ok(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_as_its_script_finishes_is_cancelled() {
    let script = parse("return await agent('x')").await.unwrap();
    for _ in 0..50 {
        let cancel = CancellationToken::new();
        let host = Arc::new(CancellingHost(cancel.clone()));
        let out = run(&script, None, None, host, limits(), cancel).await;
        assert!(matches!(out, Err(ScriptError::Cancelled)), "{out:?}");
    }
}
