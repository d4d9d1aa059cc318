//! The `shell` action, shared by every backend: runs a command, streams its output lines.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{ActionError, Output};

/// Runs `command` with `sh -c`; succeeds when it exits 0. Output lines go to `out`.
pub async fn run(command: &str, out: &Output) -> Result<String, ActionError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ActionError(format!("cannot start sh: {e}")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pump = |pipe: Option<tokio::process::ChildStdout>| {
        let out = out.clone();
        async move {
            if let Some(p) = pipe {
                let mut lines = BufReader::new(p).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    out.line(line);
                }
            }
        }
    };
    let pump_err = |pipe: Option<tokio::process::ChildStderr>| {
        let out = out.clone();
        async move {
            if let Some(p) = pipe {
                let mut lines = BufReader::new(p).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    out.line(format!("stderr: {line}"));
                }
            }
        }
    };
    let (_, _, status) = tokio::join!(pump(stdout), pump_err(stderr), child.wait());
    let status = status.map_err(|e| ActionError(format!("waiting for the command: {e}")))?;
    if status.success() {
        Ok("exit 0".into())
    } else {
        Err(ActionError(format!("command failed: {status}")))
    }
}
