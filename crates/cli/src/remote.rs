//! Working on a device: `run` (runcommands with reply) and `shell` (terminal relay).

use std::io::Write;
use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::config::Store;
use crate::session::{connect, resolve_device, target};

/// Control messages inside relay sessions.
const CTRL_CHANNEL: &str = "102938";

pub async fn run(
    store: &Store,
    device: &str,
    command: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (_, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    if node["conn"].as_u64().unwrap_or(0) & 1 == 0 {
        anyhow::bail!("device {} is offline", node["name"].as_str().unwrap_or(&id));
    }
    let reply = client
        .request(json!({"action": "runcommands", "nodeids": [id], "type": 0, "cmds": command, "runAsUser": 0, "reply": true}))
        .await?;
    if let Some(err) = reply["result"]
        .as_str()
        .filter(|_| reply["action"] == "runcommands")
    {
        anyhow::bail!("{err}");
    }
    let output = reply["result"].as_str().unwrap_or("");
    if json {
        crate::output::json(&json!({"nodeid": id, "output": output}));
    } else {
        print!("{output}");
        let _ = std::io::stdout().flush();
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts the terminal in raw mode until dropped.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enable() -> RawMode {
        // SAFETY: termios calls on fd 0 with a valid struct; failure leaves `saved` None.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawMode { saved: None };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restoring attributes previously read from the same fd.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}

/// (cols, rows) of the controlling terminal, (0, 0) when unknown.
fn window_size() -> (u16, u16) {
    // SAFETY: TIOCGWINSZ writes a winsize into a valid struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 {
            (ws.ws_col, ws.ws_row)
        } else {
            (0, 0)
        }
    }
}

pub async fn shell(store: &Store, device: &str) -> anyhow::Result<()> {
    let (login, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    let (server, creds) = target(&login)?;
    let mut socket =
        ironmesh_client::relay::open_session(&server, &creds, Some(&login.tls_hash), &id, 1)
            .await?;
    let (cols, rows) = window_size();
    let options =
        json!({"ctrlChannel": CTRL_CHANNEL, "type": "options", "cols": cols, "rows": rows});
    socket
        .send(Message::Text(options.to_string().into()))
        .await?;
    socket.send(Message::Text("1".into())).await?;

    let raw = RawMode::enable();
    let mut stdin = tokio::io::stdin();
    let mut stdout = std::io::stdout();
    let mut resize = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut buf = vec![0u8; 8192];
    let mut stdin_open = true;
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            n = stdin.read(&mut buf), if stdin_open => match n {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Err(e) = socket.send(Message::Binary(buf[..n].to_vec().into())).await {
                        break Err(e.into());
                    }
                }
            },
            msg = socket.next() => match msg {
                None => break Ok(()),
                Some(Err(e)) => break Err(e.into()),
                Some(Ok(Message::Binary(data))) => {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(Value::Object(ctrl)) = serde_json::from_str::<Value>(text.as_str()) {
                        if ctrl.get("type").and_then(Value::as_str) == Some("console") {
                            if let Some(m) = ctrl.get("msg").and_then(Value::as_str) {
                                eprint!("\r\n[{m}]\r\n");
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    if let Some(f) = frame.filter(|f| u16::from(f.code) >= 4000) {
                        break Err(anyhow::anyhow!("{}", f.reason));
                    }
                    break Ok(());
                }
                Some(Ok(_)) => {}
            },
            _ = resize.recv() => {
                let (cols, rows) = window_size();
                let msg = json!({"ctrlChannel": CTRL_CHANNEL, "type": "termsize", "cols": cols, "rows": rows});
                let _ = socket.send(Message::Text(msg.to_string().into())).await;
            }
        }
    };
    drop(raw);
    eprintln!("\r\nConnection closed.");
    outcome
}
