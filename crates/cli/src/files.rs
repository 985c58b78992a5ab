//! File work over a `p=5` relay session, with MeshCentral's file protocol: listing; mkdir,
//! rm and rename (which the protocol does not acknowledge, so each is checked with a fresh
//! listing); upload in a window of 16 chunks acknowledged one by one; download in 16 KiB
//! blocks, several in flight.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Store;
use crate::session::{connect, resolve_device, target};
use ironmesh_client::connect::Socket;

/// Data bytes per upload frame (meshctrl uses the same).
const UPLOAD_CHUNK: usize = 65_564;
/// Upload frames in flight.
const UPLOAD_WINDOW: usize = 16;
/// Download blocks asked for at once.
const DOWNLOAD_WINDOW: u64 = 8;
/// Longest wait for any answer during a transfer.
const STALL: Duration = Duration::from_secs(60);

async fn open_files_session(store: &Store, device: &str) -> anyhow::Result<Socket> {
    let (login, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    let (server, creds) = target(&login)?;
    let mut socket =
        ironmesh_client::relay::open_session(&server, &creds, Some(&login.tls_hash), &id, 5)
            .await?;
    socket.send(Message::Text("5".into())).await?;
    Ok(socket)
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The next JSON message (text or binary frame) from the agent.
async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let msg = tokio::time::timeout(STALL, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("the device stopped answering"))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Binary(b))) if b.first() == Some(&b'{') => {
                if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(f))) => anyhow::bail!(
                "the session closed{}",
                f.map(|f| format!(": {}", f.reason)).unwrap_or_default()
            ),
            None => anyhow::bail!("the session closed"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

pub async fn upload(
    store: &Store,
    device: &str,
    local: &Path,
    remote_dir: &str,
) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", local.display()))?;
    let size = file.metadata().await?.len();
    let name = local
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("{} has no file name", local.display()))?
        .to_string();
    let mut socket = open_files_session(store, device).await?;
    let request =
        json!({"action": "upload", "reqid": "up", "path": remote_dir, "name": name, "size": size});
    socket
        .send(Message::Text(request.to_string().into()))
        .await?;
    let answer = next_json(&mut socket).await?;
    if answer["action"] != "uploadstart" {
        anyhow::bail!(
            "the device cannot write {remote_dir}/{name} (is the folder there and writable?)"
        );
    }
    let bar = progress(size);
    let (mut sent, mut in_flight, mut eof) = (0u64, 0usize, false);
    let mut chunk = vec![0u8; UPLOAD_CHUNK];
    let outcome: anyhow::Result<()> = async {
        loop {
            while !eof && in_flight < UPLOAD_WINDOW {
                let n = read_full(&mut file, &mut chunk).await?;
                if n == 0 {
                    eof = true;
                    break;
                }
                // A chunk starting with 0x00 or `{` gets an escape byte (docs/protocol/control.md
                // §3.5).
                let mut frame = Vec::with_capacity(n + 1);
                if chunk[0] == 0 || chunk[0] == b'{' {
                    frame.push(0);
                }
                frame.extend_from_slice(&chunk[..n]);
                socket.send(Message::Binary(frame.into())).await?;
                sent += n as u64;
                in_flight += 1;
            }
            if eof && in_flight == 0 {
                break;
            }
            let ack = next_json(&mut socket).await?;
            match ack["action"].as_str() {
                Some("uploadack") => {
                    in_flight -= 1;
                    bar.set_position(sent - (in_flight as u64 * UPLOAD_CHUNK as u64).min(sent));
                }
                Some("uploaderror") => anyhow::bail!("the device could not write the file"),
                _ => {}
            }
        }
        socket
            .send(Message::Text(
                json!({"action": "uploaddone", "reqid": "up"})
                    .to_string()
                    .into(),
            ))
            .await?;
        loop {
            if next_json(&mut socket).await?["action"] == "uploaddone" {
                break;
            }
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    let _ = socket.close(None).await;
    match outcome {
        Ok(()) => {
            eprintln!(
                "Uploaded {sent} bytes to {}/{name}.",
                remote_dir.trim_end_matches('/')
            );
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "upload failed after {sent} of {size} bytes: {e:#}. The remote file is incomplete; run \
             the same upload again to replace it"
        )),
    }
}

async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

pub async fn download(
    store: &Store,
    device: &str,
    remote: &str,
    local: &Path,
) -> anyhow::Result<()> {
    let target = if local.is_dir() {
        local.join(
            Path::new(remote)
                .file_name()
                .ok_or_else(|| anyhow::anyhow!("{remote} names no file"))?,
        )
    } else {
        local.to_path_buf()
    };
    let partial = target.with_extension(match target.extension() {
        Some(ext) => format!("{}.part", ext.to_string_lossy()),
        None => "part".into(),
    });
    let mut socket = open_files_session(store, device).await?;
    let start = json!({"action": "download", "sub": "start", "id": "dl", "path": remote});
    socket.send(Message::Text(start.to_string().into())).await?;
    let answer = next_json(&mut socket).await?;
    if answer["sub"] != "start" {
        anyhow::bail!("the device cannot read {remote} (does it exist?)");
    }
    let mut out = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?;
    let ack = json!({"action": "download", "sub": "startack", "id": "dl", "ack": DOWNLOAD_WINDOW});
    socket.send(Message::Text(ack.to_string().into())).await?;
    let bar = progress(0);
    let mut received = 0u64;
    let outcome: anyhow::Result<()> = async {
        loop {
            let msg = tokio::time::timeout(STALL, socket.next())
                .await
                .map_err(|_| anyhow::anyhow!("the device stopped sending"))?;
            let data = match msg {
                Some(Ok(Message::Binary(b))) if b.first() != Some(&b'{') => b,
                Some(Ok(Message::Close(_))) | None => anyhow::bail!("the session closed early"),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => continue,
            };
            anyhow::ensure!(data.len() >= 4, "malformed data frame");
            out.write_all(&data[4..]).await?;
            received += (data.len() - 4) as u64;
            bar.set_position(received);
            if data[3] & 1 == 1 {
                return Ok(());
            }
            let next = json!({"action": "download", "sub": "ack", "id": "dl"});
            socket.send(Message::Text(next.to_string().into())).await?;
        }
    }
    .await;
    bar.finish_and_clear();
    let _ = socket.close(None).await;
    match outcome {
        Ok(()) => {
            out.flush().await?;
            drop(out);
            tokio::fs::rename(&partial, &target).await?;
            eprintln!("Downloaded {received} bytes to {}.", target.display());
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "download interrupted after {received} bytes: {e:#}. The partial data is in {}; run the \
             same download again to fetch the whole file",
            partial.display()
        )),
    }
}

/// Splits `/a/b/c` into (`/a/b`, `c`).
fn split_path(path: &str) -> anyhow::Result<(String, String)> {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = trimmed
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("use an absolute path (got {path})"))?;
    anyhow::ensure!(!name.is_empty(), "{path} names no file or folder");
    Ok((
        if dir.is_empty() {
            "/".into()
        } else {
            dir.to_string()
        },
        name.to_string(),
    ))
}

/// Lists `dir`; `None` when the device cannot read it.
async fn list(socket: &mut Socket, dir: &str) -> anyhow::Result<Option<Vec<Value>>> {
    let req = json!({"action": "ls", "reqid": 1, "path": dir});
    socket.send(Message::Text(req.to_string().into())).await?;
    loop {
        let v = next_json(socket).await?;
        if v.get("dir").is_some() {
            return Ok(v["dir"].as_array().cloned());
        }
    }
}

fn has_entry(entries: &Option<Vec<Value>>, name: &str) -> bool {
    entries
        .as_ref()
        .is_some_and(|e| e.iter().any(|x| x["n"] == name))
}

pub async fn ls(store: &Store, device: &str, path: &str, json_out: bool) -> anyhow::Result<()> {
    let mut socket = open_files_session(store, device).await?;
    let entries = list(&mut socket, path)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the device cannot list {path}"))?;
    let _ = socket.close(None).await;
    if json_out {
        crate::output::json(&Value::Array(entries));
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let folder = e["t"] == 2;
            vec![
                if folder { "dir".into() } else { "file".into() },
                if folder {
                    String::new()
                } else {
                    e["s"].as_u64().unwrap_or(0).to_string()
                },
                e["d"].as_str().unwrap_or("").to_string(),
                e["n"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    rows.sort_by(|a, b| a[3].cmp(&b[3]));
    crate::output::table(&["TYPE", "SIZE", "MODIFIED", "NAME"], &rows);
    Ok(())
}

pub async fn mkdir(store: &Store, device: &str, path: &str) -> anyhow::Result<()> {
    let (parent, name) = split_path(path)?;
    let mut socket = open_files_session(store, device).await?;
    socket
        .send(Message::Text(
            json!({"action": "mkdir", "reqid": 1, "path": path})
                .to_string()
                .into(),
        ))
        .await?;
    let entries = list(&mut socket, &parent).await?;
    let _ = socket.close(None).await;
    anyhow::ensure!(
        has_entry(&entries, &name),
        "could not create {path} (does the parent exist, is it writable?)"
    );
    eprintln!("Created {path}.");
    Ok(())
}

pub async fn rm(store: &Store, device: &str, path: &str, recursive: bool) -> anyhow::Result<()> {
    let (parent, name) = split_path(path)?;
    let mut socket = open_files_session(store, device).await?;
    let before = list(&mut socket, &parent).await?;
    anyhow::ensure!(has_entry(&before, &name), "{path} does not exist");
    let req =
        json!({"action": "rm", "reqid": 1, "path": parent, "delfiles": [name], "rec": recursive});
    socket.send(Message::Text(req.to_string().into())).await?;
    let after = list(&mut socket, &parent).await?;
    let _ = socket.close(None).await;
    if has_entry(&after, &name) {
        anyhow::bail!(
            "could not delete {path}{}",
            if recursive {
                ""
            } else {
                " (a folder that is not empty needs --recursive)"
            }
        );
    }
    eprintln!("Deleted {path}.");
    Ok(())
}

pub async fn mv(store: &Store, device: &str, from: &str, to: &str) -> anyhow::Result<()> {
    let (parent, old) = split_path(from)?;
    let new = match to.rsplit_once('/') {
        Some((dir, name)) => {
            anyhow::ensure!(
                dir.trim_end_matches('/') == parent.trim_end_matches('/') || dir.is_empty(),
                "mv renames within a folder: {to} is in another folder"
            );
            name.to_string()
        }
        None => to.to_string(),
    };
    let mut socket = open_files_session(store, device).await?;
    let req =
        json!({"action": "rename", "reqid": 1, "path": parent, "oldname": old, "newname": new});
    socket.send(Message::Text(req.to_string().into())).await?;
    let after = list(&mut socket, &parent).await?;
    let _ = socket.close(None).await;
    anyhow::ensure!(
        has_entry(&after, &new) && !has_entry(&after, &old),
        "could not rename {from} to {new}"
    );
    eprintln!("Renamed {from} to {new}.");
    Ok(())
}
