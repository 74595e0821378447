//! A model server on loopback that speaks the OpenAI chat-completions protocol (at
//! `/openai/v1` and, with DeepSeek's usage fields, `/deepseek/v1`) and the Anthropic
//! Messages protocol (at `/anthropic/v1`), always streaming. Replies are scripted: a
//! queue consumed in order, then rules matched on the latest message, then a default.
//! Faults can be injected per reply. Prompt caching is simulated honestly: the cached
//! part of a prompt is its longest common prefix with any earlier prompt, in whole
//! 64-token blocks, as DeepSeek does.
#![forbid(unsafe_code)]

mod cache;
mod example;
mod protocol;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::Value;

pub use cache::PrefixCache;

/// What one request gets.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub text: String,
    /// `(name, arguments)` of tool calls to make.
    pub tool_calls: Vec<(String, Value)>,
    pub fault: Option<Fault>,
    /// Pause before each streamed chunk.
    pub chunk_delay: Duration,
    pub reasoning_tokens: u64,
}

impl Reply {
    pub fn text(t: impl Into<String>) -> Self {
        Self {
            text: t.into(),
            ..Default::default()
        }
    }

    pub fn tool(name: &str, arguments: Value) -> Self {
        Self {
            tool_calls: vec![(name.to_string(), arguments)],
            ..Default::default()
        }
    }

    pub fn fault(f: Fault) -> Self {
        Self {
            fault: Some(f),
            ..Default::default()
        }
    }

    pub fn slow(mut self, per_chunk: Duration) -> Self {
        self.chunk_delay = per_chunk;
        self
    }
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// An HTTP error status, with `Retry-After` seconds if given.
    Status { code: u16, retry_after: Option<u32> },
    /// Streams this many chunks, then sends nothing more while keeping the connection open.
    StallAfter(usize),
    /// Streams this many chunks, then ends the body without the end marker.
    TruncateAfter(usize),
}

/// A reply chosen by what the latest message (user text or tool result) contains.
#[derive(Debug, Clone)]
pub struct Rule {
    pub contains: String,
    pub reply: Reply,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    /// `openai`, `deepseek` or `anthropic`.
    pub flavor: &'static str,
    pub body: Value,
}

#[derive(Default)]
pub(crate) struct State {
    queue: VecDeque<Reply>,
    rules: Vec<Rule>,
    default: Option<Reply>,
    after_tool: Option<Reply>,
    pub(crate) requests: Vec<Recorded>,
    pub(crate) cache: PrefixCache,
    pub(crate) no_cache: bool,
    pub(crate) no_record: bool,
    /// How long processing a prompt takes before the reply starts; only then can a later
    /// request read the prompt from the cache.
    pub(crate) prefill: Duration,
    pub(crate) schema_answers: bool,
    /// Requests being answered now (until the last chunk is sent), and the most at once.
    pub(crate) in_flight: usize,
    pub(crate) peak_in_flight: usize,
}

#[derive(Clone)]
pub struct MockModel {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl MockModel {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::try_start_on(addr).await.expect("bind mock model")
    }

    /// `start_on`, answering the error when the address cannot be bound.
    pub async fn try_start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let app = axum::Router::new()
            .route("/openai/v1/chat/completions", post(protocol::openai))
            .route("/deepseek/v1/chat/completions", post(protocol::deepseek))
            .route("/anthropic/v1/messages", post(protocol::anthropic))
            // Requests carry images as base64: far beyond axum's 2 MB default.
            .layer(axum::extract::DefaultBodyLimit::max(256 << 20))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, state })
    }

    /// Base URL for a provider of that flavor (`openai`, `deepseek`, `anthropic`).
    pub fn base_url(&self, flavor: &str) -> String {
        format!("http://{}/{flavor}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) -> &Self {
        self.state.lock().unwrap().queue.push_back(reply);
        self
    }

    pub fn rule(&self, contains: &str, reply: Reply) -> &Self {
        self.state.lock().unwrap().rules.push(Rule {
            contains: contains.into(),
            reply,
        });
        self
    }

    /// The reply when the latest message is a tool result (and the queue is empty and
    /// no rule matches).
    pub fn after_tool_result(&self, reply: Reply) -> &Self {
        self.state.lock().unwrap().after_tool = Some(reply);
        self
    }

    /// The reply when the queue is empty and no rule matches (plain "ok" otherwise).
    pub fn set_default(&self, reply: Reply) -> &Self {
        self.state.lock().unwrap().default = Some(reply);
        self
    }

    /// Demos: a request offering a `StructuredOutput` tool whose scripted reply would be
    /// plain text gets a call of that tool with a value made up from its schema.
    pub fn schema_answers(&self) -> &Self {
        self.state.lock().unwrap().schema_answers = true;
        self
    }

    /// Each request's prompt takes `d` to process before its reply starts streaming, and
    /// enters the prefix cache only then (as a provider's does): requests arriving in the
    /// meantime with the same prefix miss it.
    pub fn set_prefill(&self, d: Duration) -> &Self {
        self.state.lock().unwrap().prefill = d;
        self
    }

    /// Benchmarks: skip the prefix-cache simulation and the request log, whose cost
    /// grows with every request.
    pub fn lean(&self) -> &Self {
        let mut s = self.state.lock().unwrap();
        s.no_cache = true;
        s.no_record = true;
        self
    }

    /// How many requests arrived, faulted ones included.
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// The most requests answered at once so far: a request counts from its arrival to
    /// its last streamed chunk.
    pub fn peak_in_flight(&self) -> usize {
        self.state.lock().unwrap().peak_in_flight
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub(crate) fn next_reply(state: &mut State, latest: &str, after_tool: bool) -> Reply {
        if let Some(r) = state.queue.pop_front() {
            return r;
        }
        if let Some(rule) = state.rules.iter().find(|r| latest.contains(&r.contains)) {
            return rule.reply.clone();
        }
        if let (true, Some(r)) = (after_tool, &state.after_tool) {
            return r.clone();
        }
        state.default.clone().unwrap_or_else(|| Reply::text("ok"))
    }
}
