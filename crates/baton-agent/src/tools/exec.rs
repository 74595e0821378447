//! `bash`: a command in the workspace root with a clean environment (no API keys), a
//! timeout, an output cap, and the whole process group killed when it ends early.
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::{ToolLimits, ToolOutput};

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Head and tail of long output, so both the start and the verdict stay visible.
fn cap(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let half = max / 2;
    format!(
        "{}\n… ({} bytes omitted) …\n{}",
        String::from_utf8_lossy(&bytes[..half]),
        bytes.len() - max,
        String::from_utf8_lossy(&bytes[bytes.len() - half..])
    )
}

pub(crate) async fn bash(
    root: &Path,
    command: &str,
    limits: ToolLimits,
    cancel: &CancellationToken,
) -> ToolOutput {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(command)
        .current_dir(root)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", root)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ToolOutput::error(format!("cannot start bash: {e}")),
    };
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = tokio::select! {
        _ = cancel.cancelled() => {
            kill_group(pid);
            return ToolOutput::error("cancelled");
        }
        _ = tokio::time::sleep(limits.exec_timeout) => {
            kill_group(pid);
            return ToolOutput::error(format!("the command ran longer than {:?} and was killed", limits.exec_timeout));
        }
        r = work => r,
    };
    let code = status.ok().and_then(|s| s.code());
    let mut text = cap(&out, limits.exec_output);
    if !err.is_empty() {
        text.push_str("\n[stderr]\n");
        text.push_str(&cap(&err, limits.exec_output / 2));
    }
    match code {
        Some(0) => ToolOutput::ok(text),
        Some(c) => ToolOutput::error(format!("exit code {c}\n{text}")),
        None => ToolOutput::error(format!("killed by a signal\n{text}")),
    }
}
