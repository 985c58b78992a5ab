//! Relay sessions the server asks for (docs/protocol/agent.md §6): open a second WebSocket to the
//! relay, wait for `c`, read the options and the protocol number, then run the session:
//! terminal (`p=1`, `terminal`), desktop (`p=2`, `crate::desktop`), files (`p=5`, `files`).

pub mod files;
pub mod terminal;

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use ironmesh_proto::relay::{self, StartFrame};
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha384};
use tokio_tungstenite::tungstenite::Message;

use crate::settings::parse_wss;
use ironmesh_client::connect::{self as connection, Socket as AgentSocket};

/// The control message channel id used inside relay sessions.
pub const CTRL_CHANNEL: &str = "102938";

/// What the agent knows about the control connection, to build and check relay URLs.
#[derive(Clone)]
pub struct ControlLink {
    /// `wss://host:port/agent.ashx`.
    pub server_url: String,
    /// SHA-384 of the control channel's TLS certificate.
    pub tls_hash: [u8; 48],
    pub tls: Arc<rustls::ClientConfig>,
}

/// A tunnel request, as the server sends it.
#[derive(Debug, Clone)]
pub struct TunnelRequest {
    pub value: String,
    pub rights: u32,
    pub servertlshash: Option<String>,
    pub userid: String,
}

impl TunnelRequest {
    pub fn from_json(obj: &Map<String, Value>) -> Option<TunnelRequest> {
        Some(TunnelRequest {
            value: obj.get("value")?.as_str()?.to_string(),
            rights: obj.get("rights").and_then(Value::as_u64).unwrap_or(0) as u32,
            servertlshash: obj
                .get("servertlshash")
                .and_then(Value::as_str)
                .map(str::to_string),
            userid: obj
                .get("userid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }
}

/// The relay URL: `*/rest` means "same scheme, host and port as the control channel";
/// `$` and `@` are escaped in the query.
pub fn relay_url(server_url: &str, value: &str) -> anyhow::Result<String> {
    let url = match value.strip_prefix("*/") {
        Some(rest) => {
            let (host, port, _) = parse_wss(server_url)?;
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("wss://{host}:{port}/{rest}")
        }
        None => value.to_string(),
    };
    Ok(url.replace('$', "%24").replace('@', "%40"))
}

/// Runs one relay session to its end. Errors are logged by the caller.
pub async fn run(link: ControlLink, req: TunnelRequest) -> anyhow::Result<()> {
    let url = relay_url(&link.server_url, &req.value)?;
    let (host, port, path) = parse_wss(&url)?;
    let (mut socket, cert) =
        connection::connect(link.tls.clone(), &host, port, &path, None).await?;
    // The relay must be our own server: same certificate as the control channel, or the
    // one the server named in the request.
    let hash: [u8; 48] = Sha384::digest(&cert).into();
    let named = req
        .servertlshash
        .as_deref()
        .and_then(ironmesh_proto::ids::decode_hex)
        .is_some_and(|h| h == hash);
    anyhow::ensure!(
        hash == link.tls_hash || named,
        "relay certificate does not match the server's"
    );

    // Wait for `c`/`cr`, collect options, then the protocol number.
    let mut options = Map::new();
    let mut started = false;
    let protocol: u32 = loop {
        let msg = match socket.next().await {
            Some(m) => m?,
            None => anyhow::bail!("relay closed before the session started"),
        };
        let text = match &msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            Message::Close(_) => anyhow::bail!("relay closed before the session started"),
            _ => continue,
        };
        if !started {
            started = relay::is_paired_signal(&text);
            continue;
        }
        match StartFrame::parse(&text)? {
            StartFrame::Options(o) => options = o,
            StartFrame::Control => {}
            StartFrame::Protocol(p) => break p,
        }
    };
    let rights = MeshRights(req.rights);
    let refusal = match protocol {
        1 | 6 | 8 | 9
            if !rights.has(MeshRights::REMOTE_CONTROL)
                || rights.restricted(MeshRights::NO_TERMINAL) =>
        {
            Some("Terminal access is not allowed for this user")
        }
        5 | 10
            if !rights.has(MeshRights::REMOTE_CONTROL)
                || rights.restricted(MeshRights::NO_FILES) =>
        {
            Some("File access is not allowed for this user")
        }
        2 if !rights.has(MeshRights::REMOTE_CONTROL)
            || rights.restricted(MeshRights::NO_DESKTOP) =>
        {
            Some("Remote desktop is not allowed for this user")
        }
        1 | 2 | 5 | 6 | 8 | 9 | 10 => None,
        _ => Some("This agent does not support that session type"),
    };
    if let Some(text) = refusal {
        console(&mut socket, text, 2).await?;
        let _ = socket.close(None).await;
        anyhow::bail!("{text} (protocol {protocol}, user {})", req.userid);
    }
    tracing::info!(protocol, user = %req.userid, "relay session started");
    let outcome = match protocol {
        5 | 10 => files::run(&mut socket).await,
        2 => {
            // View-only users get pictures; their keyboard and mouse never reach the device.
            let view_only = rights.restricted(MeshRights::REMOTE_VIEW_ONLY);
            crate::desktop::session::run(&mut socket, view_only).await
        }
        _ => terminal::run(&mut socket, &options).await,
    };
    let _ = socket.close(None).await;
    tracing::info!(protocol, "relay session ended");
    outcome
}

/// A `console` control message to the user side (msgid 2 = error).
pub async fn console(socket: &mut AgentSocket, text: &str, msgid: u32) -> anyhow::Result<()> {
    let msg =
        json!({ "ctrlChannel": CTRL_CHANNEL, "type": "console", "msg": text, "msgid": msgid });
    socket.send(Message::Text(msg.to_string().into())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn relay_urls() {
        assert_eq!(
            super::relay_url(
                "wss://127.0.0.1:4443/agent.ashx",
                "*/meshrelay.ashx?p=1&nodeid=node//a$b@c&id=1"
            )
            .unwrap(),
            "wss://127.0.0.1:4443/meshrelay.ashx?p=1&nodeid=node//a%24b%40c&id=1"
        );
        assert_eq!(
            super::relay_url("wss://h:1/agent.ashx", "wss://x:2/r").unwrap(),
            "wss://x:2/r"
        );
    }
}
