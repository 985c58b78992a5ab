//! `runcommands` (docs/protocol/agent.md §5.2, §5.3): runs a command text in `sh` and reports its
//! output, either as one `runcommands` reply (`reply: true`) or as console messages. One
//! run at a time, as the stock agent does; a second request while busy is refused.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Output kept per run (a runaway command cannot exhaust memory).
const MAX_OUTPUT: usize = 4 << 20;

#[derive(Default)]
pub struct CommandRunner {
    busy: Arc<AtomicBool>,
}

impl CommandRunner {
    /// Starts a run in the background; its reports go to `outbox`.
    pub fn start(&self, request: &Map<String, Value>, outbox: mpsc::Sender<Value>) {
        let session = request.get("sessionid").cloned();
        let console = move |text: String| {
            let mut msg = json!({"action": "msg", "type": "console", "value": text});
            if let Some(s) = &session {
                msg["sessionid"] = s.clone();
            }
            msg
        };
        if self.busy.swap(true, Ordering::SeqCst) {
            let _ = outbox.try_send(console("Run commands can't execute, already busy.".into()));
            return;
        }
        let busy = self.busy.clone();
        let cmds = request
            .get("cmds")
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\r', "");
        let reply = request
            .get("reply")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let kind = request.get("type").and_then(Value::as_u64).unwrap_or(3);
        let run_as = request
            .get("runAsUser")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let session = request.get("sessionid").cloned();
        let responseid = request.get("responseid").cloned();
        tokio::spawn(async move {
            if !reply {
                let _ = outbox
                    .send(console(format!("Run commands ({run_as}): {cmds}")))
                    .await;
            }
            let output = if kind == 1 || kind == 2 {
                "This agent runs POSIX shell commands only (type 3).\n".to_string()
            } else {
                run_sh(&cmds).await
            };
            if reply {
                let mut msg = json!({"action": "msg", "type": "runcommands", "result": output});
                if let Some(s) = session {
                    msg["sessionid"] = s;
                }
                if let Some(r) = responseid {
                    msg["responseid"] = r;
                }
                let _ = outbox.send(msg).await;
            } else {
                if !output.is_empty() {
                    let _ = outbox.send(console(output)).await;
                }
                let _ = outbox.send(console("Run commands completed.".into())).await;
            }
            busy.store(false, Ordering::SeqCst);
        });
    }
}

/// Feeds the commands to `sh` on stdin, then `exit`; returns stdout and stderr merged in
/// arrival order as far as pipes allow.
async fn run_sh(cmds: &str) -> String {
    let child = tokio::process::Command::new("/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return format!("cannot start /bin/sh: {e}\n"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let script = format!("{cmds}\nexit\n");
        let _ = stdin.write_all(script.as_bytes()).await;
    }
    match child.wait_with_output().await {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            if text.len() > MAX_OUTPUT {
                let mut end = MAX_OUTPUT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push_str("\n[output truncated]\n");
            }
            text
        }
        Err(e) => format!("command failed: {e}\n"),
    }
}
