//! A CLI agent run as a subprocess per call (for example `claude -p --output-format
//! json`). The prompt goes to its stdin, never through a shell; the whole process group
//! is killed on cancel or timeout; stderr is kept for the error.
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, Delta, DeltaSink, LlmError, Provider,
    StopReason, Usage,
};

pub struct CommandProvider {
    argv: Vec<String>,
}

impl CommandProvider {
    pub fn new(argv: Vec<String>) -> Result<Self, LlmError> {
        if argv.is_empty() {
            return Err(LlmError::Config(
                "a command provider needs a command".into(),
            ));
        }
        Ok(Self { argv })
    }
}

/// The conversation as one plain-text prompt.
pub(crate) fn render(req: &ChatRequest) -> String {
    let mut out = String::new();
    if !req.system.is_empty() {
        out.push_str(&req.system);
        out.push_str("\n\n");
    }
    for m in &req.messages {
        match m {
            ChatMessage::User { content } => {
                for p in content {
                    match p {
                        ContentPart::Text { text } => {
                            out.push_str(text);
                            out.push('\n');
                        }
                        ContentPart::Image { mime, .. } => {
                            out.push_str(&format!("[image: {mime}]\n"))
                        }
                        ContentPart::ImageRef(r) => {
                            out.push_str(&r.placeholder());
                            out.push('\n');
                        }
                    }
                }
            }
            ChatMessage::Assistant { text, .. } => {
                out.push_str("\nAssistant: ");
                out.push_str(text);
                out.push_str("\n\n");
            }
            ChatMessage::Tool { name, content, .. } => {
                out.push_str(&format!("[{name} result]\n{content}\n"));
            }
        }
    }
    out
}

fn parse_output(stdout: &str) -> Result<(String, Usage), LlmError> {
    let trimmed = stdout.trim();
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(trimmed) else {
        return Ok((trimmed.to_string(), Usage::default()));
    };
    if obj.get("is_error").and_then(Value::as_bool) == Some(true) {
        let msg = obj
            .get("result")
            .and_then(Value::as_str)
            .unwrap_or("the command reported an error");
        return Err(LlmError::Provider(msg.to_string()));
    }
    let text = obj
        .get("result")
        .or_else(|| obj.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let u = obj.get("usage").cloned().unwrap_or(Value::Null);
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage {
        input_tokens: n("input_tokens")
            + n("cache_creation_input_tokens")
            + n("cache_read_input_tokens"),
        output_tokens: n("output_tokens"),
        cache_read_tokens: n("cache_read_input_tokens"),
        cache_write_tokens: n("cache_creation_input_tokens"),
        reasoning_tokens: 0,
    };
    Ok((text, usage))
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[async_trait]
impl Provider for CommandProvider {
    async fn attempt(
        &self,
        req: &ChatRequest,
        on_delta: DeltaSink<'_>,
        _stall: Duration,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError> {
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| LlmError::Config(format!("cannot run '{}': {e}", self.argv[0])))?;
        let pid = child.id();
        let prompt = render(req);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let io = async {
            let write = async {
                let _ = stdin.write_all(prompt.as_bytes()).await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (_, o, e) = tokio::join!(
                write,
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err)
            );
            o.and(e).map_err(|e| LlmError::Protocol(e.to_string()))?;
            let status = child
                .wait()
                .await
                .map_err(|e| LlmError::Protocol(e.to_string()))?;
            Ok::<_, LlmError>((status, out, err))
        };
        // Dropping `io` on cancel drops the child; the group kill takes its children too.
        let (status, out, err) = tokio::select! {
            _ = cancel.cancelled() => {
                kill_group(pid);
                return Err(LlmError::Cancelled);
            }
            r = io => r.inspect_err(|_| kill_group(pid))?,
        };
        if !status.success() {
            let tail: String = String::from_utf8_lossy(&err)
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(LlmError::Provider(format!(
                "'{}' exited with {status}: {}",
                self.argv[0],
                tail.trim()
            )));
        }
        let (text, usage) = parse_output(&String::from_utf8_lossy(&out))?;
        on_delta(Delta::Text(text.clone()));
        Ok(ChatResponse {
            thinking: Vec::new(),
            text,
            tool_calls: Vec::new(),
            usage,
            stop_reason: StopReason::EndTurn,
            attempts: 1,
        })
    }

    fn accepts_images(&self) -> bool {
        false
    }
}
