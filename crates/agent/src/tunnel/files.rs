//! File sessions (`p=5`), MeshCentral's file protocol: JSON commands (`ls`, `mkdir`, `rm`,
//! `rename`, `upload…`, `download`) and raw binary upload chunks. Replies are JSON in binary
//! frames, except the download handshake which is text, as the stock agent does.

use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::CTRL_CHANNEL;
use ironmesh_client::connect::Socket as AgentSocket;

/// Data bytes per download frame (after the 4-byte header).
pub const DOWNLOAD_BLOCK: usize = 16_380;

struct Upload {
    file: tokio::fs::File,
    reqid: Value,
    path: PathBuf,
}

struct Download {
    file: tokio::fs::File,
    id: Value,
    done: bool,
}

pub async fn run(socket: &mut AgentSocket) -> anyhow::Result<()> {
    let mut upload: Option<Upload> = None;
    let mut download: Option<Download> = None;
    while let Some(msg) = socket.next().await {
        let (bytes, binary) = match msg? {
            Message::Binary(b) => (b.to_vec(), true),
            Message::Text(t) => (t.as_bytes().to_vec(), false),
            Message::Close(_) => break,
            _ => continue,
        };
        // Upload data: binary, while an upload is open, not starting with `{`; a leading
        // 0x00 is an escape byte (docs/protocol/control.md §3.5).
        if binary && bytes.first() != Some(&b'{') {
            if let Some(up) = upload.as_mut() {
                let data = if bytes.first() == Some(&0) {
                    &bytes[1..]
                } else {
                    &bytes[..]
                };
                match up.file.write_all(data).await {
                    Ok(()) => {
                        send_bin(socket, json!({"action": "uploadack", "reqid": up.reqid})).await?
                    }
                    Err(e) => {
                        tracing::warn!(path = %up.path.display(), error = %e, "upload write failed");
                        upload = None;
                        send_bin(socket, json!({"action": "uploaderror"})).await?;
                    }
                }
            }
            continue;
        }
        let Ok(Value::Object(cmd)) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if cmd.get("ctrlChannel").is_some() {
            if cmd.get("type").and_then(Value::as_str) == Some("close") {
                break;
            }
            if cmd.get("type").and_then(Value::as_str) == Some("ping") {
                let pong = json!({"ctrlChannel": CTRL_CHANNEL, "type": "pong"});
                socket.send(Message::Text(pong.to_string().into())).await?;
            }
            continue;
        }
        let action = cmd.get("action").and_then(Value::as_str).unwrap_or("");
        let path = absolute(cmd.get("path").and_then(Value::as_str).unwrap_or(""));
        match action {
            "ls" => {
                let dir = list(&path).await;
                send_bin(socket, json!({"path": cmd.get("path").cloned().unwrap_or(Value::Null), "dir": dir, "reqid": cmd.get("reqid").cloned().unwrap_or(Value::Null)})).await?;
            }
            "mkdir" => {
                if let Err(e) = tokio::fs::create_dir_all(&path).await {
                    tracing::info!(path = %path.display(), error = %e, "mkdir failed");
                }
            }
            "rm" => {
                let recursive = cmd.get("rec").and_then(Value::as_bool).unwrap_or(false);
                let names = cmd
                    .get("delfiles")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for name in names.iter().filter_map(Value::as_str) {
                    remove(&path.join(name), recursive).await;
                }
            }
            "rename" => {
                let (Some(old), Some(new)) = (
                    cmd.get("oldname").and_then(Value::as_str),
                    cmd.get("newname").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if let Err(e) = tokio::fs::rename(path.join(old), path.join(new)).await {
                    tracing::info!(error = %e, "rename failed");
                }
            }
            "upload" => {
                upload = None;
                let reqid = cmd.get("reqid").cloned().unwrap_or(Value::Null);
                let target = match cmd.get("name").and_then(Value::as_str) {
                    Some(name) => path.join(name),
                    None => path.clone(),
                };
                let append = cmd.get("append").and_then(Value::as_bool).unwrap_or(false);
                let opened = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .append(append)
                    .truncate(!append)
                    .open(&target)
                    .await;
                match opened {
                    Ok(file) => {
                        upload = Some(Upload {
                            file,
                            reqid: reqid.clone(),
                            path: target,
                        });
                        send_bin(socket, json!({"action": "uploadstart", "reqid": reqid})).await?;
                    }
                    Err(e) => {
                        tracing::info!(path = %target.display(), error = %e, "upload refused");
                        send_bin(socket, json!({"action": "uploaderror", "reqid": reqid})).await?;
                    }
                }
            }
            "uploaddone" | "uploadcancel" => {
                if let Some(mut up) = upload.take() {
                    let _ = up.file.flush().await;
                    drop(up.file);
                    if action == "uploadcancel" {
                        let _ = tokio::fs::remove_file(&up.path).await;
                    }
                    send_bin(socket, json!({"action": action, "reqid": up.reqid})).await?;
                }
            }
            "download" => match cmd.get("sub").and_then(Value::as_str).unwrap_or("") {
                "start" => {
                    let id = cmd.get("id").cloned().unwrap_or(Value::Null);
                    if let Some(old) = download.take() {
                        send_text(
                            socket,
                            json!({"action": "download", "sub": "cancel", "id": old.id}),
                        )
                        .await?;
                    }
                    match tokio::fs::File::open(&path).await {
                        Ok(file) => {
                            download = Some(Download {
                                file,
                                id: id.clone(),
                                done: false,
                            });
                            send_text(
                                socket,
                                json!({"action": "download", "sub": "start", "id": id}),
                            )
                            .await?;
                        }
                        Err(_) => {
                            send_text(
                                socket,
                                json!({"action": "download", "sub": "cancel", "id": id}),
                            )
                            .await?
                        }
                    }
                }
                // `startack` sends `ack` blocks (default 1: stop-and-wait, as meshctrl
                // expects); each `ack` one more.
                "startack" | "ack" => {
                    let blocks = if cmd.get("sub").and_then(Value::as_str) == Some("startack") {
                        cmd.get("ack")
                            .and_then(Value::as_u64)
                            .unwrap_or(1)
                            .clamp(1, 64)
                    } else {
                        1
                    };
                    if let Some(dl) = download.as_mut() {
                        for _ in 0..blocks {
                            if dl.done {
                                break;
                            }
                            let frame = next_block(dl).await?;
                            socket.send(Message::Binary(frame.into())).await?;
                        }
                        if dl.done {
                            download = None;
                        }
                    }
                }
                "stop" | "cancel" => download = None,
                _ => {}
            },
            _ => {}
        }
    }
    if let Some(mut up) = upload {
        let _ = up.file.flush().await;
    }
    Ok(())
}

/// One download frame: `01 00 00 0x` + up to 16,380 bytes; bit 0 of byte 3 marks the last.
async fn next_block(dl: &mut Download) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![1, 0, 0, 0];
    frame.resize(4 + DOWNLOAD_BLOCK, 0);
    let mut filled = 0;
    while filled < DOWNLOAD_BLOCK {
        let n = dl.file.read(&mut frame[4 + filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    frame.truncate(4 + filled);
    if filled < DOWNLOAD_BLOCK {
        frame[3] = 1;
        dl.done = true;
    }
    Ok(frame)
}

/// A path from the user; relative paths are taken from the root, as the stock agent does.
fn absolute(path: &str) -> PathBuf {
    if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        PathBuf::from("/").join(path)
    }
}

/// Directory entries as `{n, t, s, d}`: t 2 = folder, 3 = file; `d` ISO-8601 UTC. `None`
/// (null) when the folder cannot be read.
async fn list(path: &Path) -> Option<Vec<Value>> {
    let mut entries = tokio::fs::read_dir(path).await.ok()?;
    let mut out = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Follow links, like the stock agent; skip what cannot be read.
        let Ok(meta) = tokio::fs::metadata(entry.path()).await else {
            continue;
        };
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| iso(d.as_secs() as i64))
            .unwrap_or_default();
        let mut e = Map::new();
        e.insert("n".into(), name.into());
        if meta.is_dir() {
            e.insert("t".into(), 2.into());
        } else {
            e.insert("t".into(), 3.into());
            e.insert("s".into(), meta.len().into());
        }
        e.insert("d".into(), modified.into());
        out.push(Value::Object(e));
    }
    Some(out)
}

fn iso(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

async fn remove(path: &Path, recursive: bool) {
    let result = match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() && recursive => tokio::fs::remove_dir_all(path).await,
        Ok(m) if m.is_dir() => tokio::fs::remove_dir(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::info!(path = %path.display(), error = %e, "rm failed");
    }
}

async fn send_bin(socket: &mut AgentSocket, v: Value) -> anyhow::Result<()> {
    socket
        .send(Message::Binary(v.to_string().into_bytes().into()))
        .await?;
    Ok(())
}

async fn send_text(socket: &mut AgentSocket, v: Value) -> anyhow::Result<()> {
    socket.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}
