//! Messages for the person at the device: `toast` and `msg` type `messagebox`
//! (docs/protocol/agent.md §5.2).
//!
//! With a graphical session (a process that has both a session bus and a display) the
//! message is a desktop notification: `notify-send` in that session, as its user. Without
//! one it goes to every terminal through `wall`. `IRONMESH_AGENT_NOTIFY_COMMAND` names a
//! program run instead with two arguments, the title and the text. Title and text are only
//! ever arguments or standard input, never shell text.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A graphical session found on the machine: whose it is, and how to reach its bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicalSession {
    pub uid: u32,
    pub gid: u32,
    /// `DBUS_SESSION_BUS_ADDRESS=…` and `DISPLAY`/`WAYLAND_DISPLAY`/`XAUTHORITY`, as found.
    pub env: Vec<(String, String)>,
}

/// The first process (in `/proc`) whose environment names a session bus and a display.
pub fn graphical_session(proc_dir: &Path) -> Option<GraphicalSession> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(proc_dir).ok()?;
    for entry in entries.flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let mut env = Vec::new();
        let mut bus = false;
        let mut display = false;
        for kv in environ.split(|b| *b == 0) {
            let Ok(kv) = std::str::from_utf8(kv) else {
                continue;
            };
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "DBUS_SESSION_BUS_ADDRESS" => bus = true,
                "DISPLAY" | "WAYLAND_DISPLAY" => display = true,
                "XAUTHORITY" | "XDG_RUNTIME_DIR" => {}
                _ => continue,
            }
            env.push((k.to_string(), v.to_string()));
        }
        if bus && display {
            let meta = entry.metadata().ok()?;
            return Some(GraphicalSession {
                uid: meta.uid(),
                gid: meta.gid(),
                env,
            });
        }
    }
    None
}

/// Shows a message; failures are logged.
pub async fn show(kind: &'static str, title: String, text: String) {
    if let Some(program) = std::env::var("IRONMESH_AGENT_NOTIFY_COMMAND")
        .ok()
        .filter(|p| !p.is_empty())
    {
        tracing::info!(kind, %program, "showing a message");
        run(Command::new(&program).arg(&title).arg(&text), None).await;
        return;
    }
    match graphical_session(Path::new("/proc")) {
        Some(session) => {
            tracing::info!(
                kind,
                uid = session.uid,
                "showing a message as a desktop notification"
            );
            let mut cmd = Command::new("notify-send");
            cmd.arg("--app-name=ironmesh")
                .arg("--")
                .arg(&title)
                .arg(&text)
                .envs(session.env.iter().map(|(k, v)| (k, v)));
            // As the session's user when the agent runs as root (the bus refuses others).
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 && session.uid != 0 {
                cmd.uid(session.uid).gid(session.gid);
            }
            run(&mut cmd, None).await;
        }
        None => {
            tracing::info!(kind, "showing a message on the terminals (wall)");
            run(
                &mut Command::new("wall"),
                Some(format!("{title}\n\n{text}\n")),
            )
            .await;
        }
    }
}

async fn run(cmd: &mut Command, stdin: Option<String>) {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(program = ?cmd.as_std().get_program(), error = %e, "message not shown");
            return;
        }
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes()).await;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => tracing::warn!(%status, "message command failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "message command failed"),
        Err(_) => tracing::warn!("message command still running after 30 s; left"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_session_with_a_bus_and_a_display() {
        let proc_dir = tempfile::tempdir().unwrap();
        let write = |pid: &str, env: &[&str]| {
            let dir = proc_dir.path().join(pid);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("environ"), env.join("\0")).unwrap();
        };
        write(
            "10",
            &[
                "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1/bus",
                "HOME=/x",
            ],
        );
        assert_eq!(graphical_session(proc_dir.path()), None);
        write(
            "11",
            &[
                "DISPLAY=:3",
                "SECRET=x",
                "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1/bus",
            ],
        );
        let s = graphical_session(proc_dir.path()).unwrap();
        assert_eq!(
            s.env,
            [
                ("DISPLAY".to_string(), ":3".to_string()),
                (
                    "DBUS_SESSION_BUS_ADDRESS".to_string(),
                    "unix:path=/run/user/1/bus".to_string()
                )
            ]
        );
    }
}
