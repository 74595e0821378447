//! Retries, the stall watchdog, the per-call timeout and cancellation, around any
//! provider.
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::{ChatRequest, ChatResponse, Delta, DeltaSink, LlmError, Provider};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt for 429, 5xx and connection errors.
    pub max_retries: u32,
    /// Retries after a stalled or truncated stream (each one re-sends the whole
    /// request, so they are capped separately and low).
    pub max_stall_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No bytes for this long: the attempt is abandoned.
    pub stall_timeout: Duration,
    /// The whole call, retries and waits included.
    pub call_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            max_stall_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
            call_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    provider: Arc<dyn Provider>,
    policy: RetryPolicy,
}

impl Client {
    pub fn new(provider: Arc<dyn Provider>, policy: RetryPolicy) -> Self {
        Self { provider, policy }
    }

    pub fn accepts_images(&self) -> bool {
        self.provider.accepts_images()
    }

    /// See `Provider::effort_control`.
    pub fn effort_control(&self) -> Option<&'static str> {
        self.provider.effort_control()
    }

    pub async fn complete(
        &self,
        req: &ChatRequest,
        on_delta: DeltaSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError> {
        let limit = self.policy.call_timeout;
        match tokio::time::timeout(limit, self.with_retries(req, on_delta, cancel)).await {
            Ok(r) => r,
            Err(_) => Err(LlmError::Timeout(limit)),
        }
    }

    async fn with_retries(
        &self,
        req: &ChatRequest,
        on_delta: DeltaSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError> {
        let p = &self.policy;
        let mut attempt = 1u32;
        let mut retries = 0u32;
        let mut stall_retries = 0u32;
        loop {
            let err = match self
                .provider
                .attempt(req, on_delta, p.stall_timeout, cancel)
                .await
            {
                Ok(mut resp) => {
                    resp.attempts = attempt;
                    return Ok(resp);
                }
                Err(e) => e,
            };
            let stream_fault = matches!(err, LlmError::Stalled(_) | LlmError::Truncated);
            let allowed = if stream_fault {
                stall_retries < p.max_stall_retries
            } else {
                retries < p.max_retries
            };
            if !err.retryable() || !allowed || cancel.is_cancelled() {
                return Err(err);
            }
            if stream_fault {
                stall_retries += 1;
            } else {
                retries += 1;
            }
            let wait = self.delay(retries + stall_retries, &err);
            tracing::warn!(attempt, error = %err, wait_ms = wait.as_millis() as u64, "model call failed; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return Err(LlmError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
            on_delta(Delta::Restart {
                attempt,
                reason: err.to_string(),
            });
        }
    }

    /// Exponential backoff with full jitter; a server's `Retry-After` wins when longer.
    fn delay(&self, n: u32, err: &LlmError) -> Duration {
        let p = &self.policy;
        let exp = p
            .base_delay
            .saturating_mul(1u32 << n.min(16))
            .min(p.max_delay);
        let jittered = exp.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        match err {
            LlmError::Status {
                retry_after: Some(ra),
                ..
            } => (*ra).max(jittered).min(p.max_delay.max(*ra)),
            _ => jittered,
        }
    }
}
