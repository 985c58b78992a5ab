//! Opening a relay session to a device: `/meshrelay.ashx?nodeid=…&p=…`, the server asks the
//! agent to join, and the session starts at `c`. Refusals come back as close codes with a
//! reason (the server's `relay::close` table), turned into errors here.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::Socket;
use crate::control::{open, Credentials, ServerAddress};

/// Connects to a device's relay for protocol `protocol` (1 terminal, 5 files) and waits
/// until the agent has joined.
pub async fn open_session(
    server: &ServerAddress,
    creds: &Credentials,
    pinned: Option<&str>,
    node_id: &str,
    protocol: u32,
) -> anyhow::Result<Socket> {
    let node = percent_escape(node_id);
    let path = format!("/meshrelay.ashx?nodeid={node}&p={protocol}&browser=1");
    let (mut socket, _) = open(server, &path, creds, pinned).await?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("the relay did not start within 30 s"))?;
        match msg {
            Some(Ok(Message::Text(t))) if t.as_str() == "c" || t.as_str() == "cr" => {
                return Ok(socket)
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                anyhow::bail!("{} (relay code {})", frame.reason, u16::from(frame.code))
            }
            Some(Ok(Message::Close(None))) | None => {
                anyhow::bail!("the relay closed before the session started")
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// Percent-escapes everything but unreserved characters.
pub fn percent_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
