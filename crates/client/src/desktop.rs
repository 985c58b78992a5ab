//! A remote desktop viewer's session (docs/protocol/desktop.md): opens relay protocol 2,
//! sends the image settings, and hands out the agent's commands one by one, checked (tiles
//! must lie on the screen). Decoding images is the caller's business.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_proto::desktop::{
    image_size, image_type, tile_fits, Deframer, Rect, ToAgent, ToViewer,
};
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

/// Which pixels of the screen tiles have drawn since the screen size came: a viewer has a
/// whole frame once every pixel has been drawn at least once.
#[derive(Debug, Default)]
pub struct Coverage {
    width: u16,
    drawn: Vec<bool>,
    missing: usize,
}

impl Coverage {
    /// A `width` × `height` screen with nothing drawn yet.
    pub fn new(width: u16, height: u16) -> Coverage {
        let n = width as usize * height as usize;
        Coverage {
            width,
            drawn: vec![false; n],
            missing: n,
        }
    }

    /// Follows the agent's commands: a screen size starts over, a tile marks its area (its
    /// size read from the image's header; [`DesktopSession::next`] checked it fits).
    pub fn take(&mut self, c: &ToViewer) {
        match c {
            ToViewer::ScreenSize { width, height } => *self = Coverage::new(*width, *height),
            ToViewer::Tile { x, y, image } => {
                if let Some((width, height)) = image_size(image) {
                    self.mark(Rect {
                        x: *x,
                        y: *y,
                        width,
                        height,
                    });
                }
            }
            _ => {}
        }
    }

    /// Marks `area` drawn; the part off the screen is ignored.
    pub fn mark(&mut self, area: Rect) {
        let width = self.width as usize;
        let rows = self.drawn.len().checked_div(width).unwrap_or(0);
        let x_end = (area.x as usize + area.width as usize).min(width);
        let y_end = (area.y as usize + area.height as usize).min(rows);
        let x_start = (area.x as usize).min(x_end);
        for row in area.y as usize..y_end {
            for d in &mut self.drawn[row * width + x_start..row * width + x_end] {
                if !*d {
                    *d = true;
                    self.missing -= 1;
                }
            }
        }
    }

    /// Nothing counts as drawn any more (e.g. before asking for a refresh).
    pub fn clear(&mut self) {
        self.drawn.iter_mut().for_each(|d| *d = false);
        self.missing = self.drawn.len();
    }

    /// Whether there is a screen and every pixel of it has been drawn.
    pub fn complete(&self) -> bool {
        !self.drawn.is_empty() && self.missing == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_whole_once_every_pixel_is_drawn() {
        let mut c = Coverage::default();
        assert!(!c.complete(), "no screen yet");
        c.take(&ToViewer::ScreenSize {
            width: 4,
            height: 2,
        });
        c.mark(Rect {
            x: 0,
            y: 0,
            width: 3,
            height: 2,
        });
        assert!(!c.complete());
        // Overlapping and hanging over the edge: counted once, clipped.
        c.mark(Rect {
            x: 2,
            y: 1,
            width: 9,
            height: 9,
        });
        assert!(!c.complete());
        c.mark(Rect {
            x: 3,
            y: 0,
            width: 1,
            height: 1,
        });
        assert!(c.complete());
        c.clear();
        assert!(!c.complete());
        c.take(&ToViewer::ScreenSize {
            width: 1,
            height: 1,
        });
        c.mark(Rect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        });
        assert!(c.complete());
    }
}
