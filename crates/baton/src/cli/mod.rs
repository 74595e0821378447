//! Client commands: `baton run`, `baton workflows`, `baton check`, `baton runs`, the
//! run controls, background tasks and `baton token`.
pub mod check;
pub mod client;
pub mod control;
pub mod progress;
pub mod run;
pub mod tasks;
pub mod workflows;

/// A fresh bearer token for `auth.token`: 32 random bytes from the OS, base64url.
pub fn fresh_token() -> anyhow::Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
