//! A remote desktop viewer's session (docs/protocol/desktop.md): opens relay protocol 2,
//! sends the image settings, and hands out the agent's commands one by one, checked (tiles
//! must lie on the screen). Decoding images is the caller's business.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_proto::desktop::{image_type, tile_fits, Deframer, ToAgent, ToViewer};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::Socket;
use crate::control::{Credentials, ServerAddress};

/// Image settings a viewer asks for (desktop.md §4, command 5).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// 1024 = full size.
    pub scaling: u16,
    /// Least time between two captures.
    pub frame_ms: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quality: 50,
            scaling: 1024,
            frame_ms: 100,
        }
    }
}

/// One desktop session, from the viewer's side.
pub struct DesktopSession {
    socket: Socket,
    stream: Deframer,
    /// The screen size the agent last announced.
    pub size: Option<(u16, u16)>,
    /// Bytes received (all frames), for rates.
    pub bytes_received: u64,
    settings: Settings,
}

impl DesktopSession {
    /// Opens a session with `node_id` and starts the pictures.
    pub async fn open(
        server: &ServerAddress,
        creds: &Credentials,
        pinned: Option<&str>,
        node_id: &str,
        settings: Settings,
    ) -> anyhow::Result<DesktopSession> {
        let socket = crate::relay::open_session(server, creds, pinned, node_id, 2).await?;
        DesktopSession::start(socket, settings).await
    }

    /// Starts the desktop protocol on a relay socket that has just been paired.
    pub async fn start(mut socket: Socket, settings: Settings) -> anyhow::Result<DesktopSession> {
        socket.send(Message::Text("2".into())).await?;
        Ok(DesktopSession {
            socket,
            stream: Deframer::default(),
            size: None,
            bytes_received: 0,
            settings,
        })
    }

    pub async fn send(&mut self, command: &ToAgent) -> anyhow::Result<()> {
        self.socket
            .send(Message::Binary(command.to_bytes().into()))
            .await?;
        Ok(())
    }

    /// The agent's next command. A screen size is answered with the settings and "resume"
    /// (as MeshCentral's viewer does), so pictures start. Errors end the session: a
    /// malformed stream, a tile off the screen, a refusal or the agent's error message, or
    /// no command within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<ToViewer> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(raw) = self.stream.next_command()? {
                let command = ToViewer::decode(&raw)?;
                match &command {
                    ToViewer::ScreenSize { width, height } => {
                        anyhow::ensure!(
                            *width > 0 && *height > 0,
                            "the agent announced an empty screen ({width}×{height})"
                        );
                        self.size = Some((*width, *height));
                        let s = self.settings;
                        self.send(&ToAgent::Compression {
                            image: image_type::JPEG,
                            quality: s.quality,
                            scaling: s.scaling,
                            frame_ms: s.frame_ms,
                        })
                        .await?;
                        self.send(&ToAgent::Pause(false)).await?;
                    }
                    ToViewer::Tile { x, y, image } => {
                        let (w, h) = self.size.ok_or_else(|| {
                            anyhow::anyhow!("the agent sent a picture before the screen size")
                        })?;
                        anyhow::ensure!(
                            tile_fits(*x, *y, image, w, h),
                            "the agent sent a picture that is not a JPEG/PNG within the {w}×{h} screen (at {x},{y})"
                        );
                    }
                    _ => {}
                }
                return Ok(command);
            }
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| {
                    anyhow::anyhow!("the device sent nothing for {} s", timeout.as_secs())
                })?;
            match msg {
                Some(Ok(Message::Binary(b))) => {
                    self.bytes_received += b.len() as u64;
                    self.stream.push(&b);
                }
                Some(Ok(Message::Text(t))) => {
                    self.bytes_received += t.len() as u64;
                    // The agent's status texts; an error ends the session.
                    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(t.as_str()) {
                        if m.get("type").and_then(Value::as_str) == Some("console") {
                            let text = m.get("msg").and_then(Value::as_str).unwrap_or("");
                            if m.get("msgid").and_then(Value::as_u64) == Some(2) {
                                anyhow::bail!("the device refused: {text}");
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(f) if !f.reason.is_empty() => {
                        anyhow::bail!(
                            "the session ended: {} (code {})",
                            f.reason,
                            u16::from(f.code)
                        )
                    }
                    _ => anyhow::bail!("the session ended"),
                },
                None => anyhow::bail!("the session ended"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
