//! WebSocket and HTTPS clients for tests: TLS without certificate checks (like meshctrl),
//! loopback only.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// A TLS client configuration that accepts any server certificate (like meshctrl).
pub fn insecure_tls(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    ironmesh_client::connect::tls_config_for(versions)
}

/// Opens TLS to 127.0.0.1:port.
pub async fn tls_connect(port: u16) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = TlsConnector::from(insecure_tls(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]));
    connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
}

/// Opens a WebSocket to `path` (with query) on the test server, with extra headers.
pub async fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Ws> {
    let tls = tls_connect(port).await?;
    upgrade(port, path, headers, tls).await
}

/// [`connect`] over TLS made with `config` (e.g. one presenting a client certificate).
pub async fn connect_with_tls(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    upgrade(port, path, headers, tls).await
}

async fn upgrade(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    tls: TlsStream<TcpStream>,
) -> anyhow::Result<Ws> {
    let mut request = format!("wss://127.0.0.1:{port}{path}").into_client_request()?;
    for (k, v) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes())?,
            HeaderValue::from_str(v)?,
        );
    }
    let (ws, _) = tokio_tungstenite::client_async(request, tls).await?;
    Ok(ws)
}

/// Opens the control channel logged in with `x-meshauth`, and reads the two greeting
/// pushes (`serverinfo`, `userinfo`).
pub async fn control(port: u16, user: &str, pass: &str) -> anyhow::Result<Ws> {
    let header = format!("{},{}", b64(user.as_bytes()), b64(pass.as_bytes()));
    let mut ws = connect(port, "/control.ashx", &[("x-meshauth", &header)]).await?;
    for expected in ["serverinfo", "userinfo"] {
        let v = recv_json(&mut ws).await?;
        anyhow::ensure!(v["action"] == expected, "expected {expected}, got {v}");
    }
    Ok(ws)
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The next text frame parsed as JSON, skipping `event` pushes; fails after 10 s.
pub async fn recv_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let v = recv_any_json(ws).await?;
        if v["action"] != "event" {
            return Ok(v);
        }
    }
}

/// The next text frame parsed as JSON, events included.
pub async fn recv_any_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no message within 10 s"))?
            .ok_or_else(|| anyhow::anyhow!("socket closed"))??;
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Close(c) => anyhow::bail!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Sends one JSON text frame.
pub async fn send_json(ws: &mut Ws, v: &Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

/// Sends a request and returns the first non-event reply.
pub async fn request(ws: &mut Ws, v: &Value) -> anyhow::Result<Value> {
    send_json(ws, v).await?;
    recv_json(ws).await
}

/// The `conn` state the control channel's `nodes` reports for a device (1: its agent is
/// connected, 0: offline; `None`: not listed).
pub async fn node_conn(ws: &mut Ws, node: &str) -> Option<i64> {
    let nodes = request(ws, &serde_json::json!({"action":"nodes"}))
        .await
        .expect("nodes");
    nodes["nodes"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, list)| list.as_array().into_iter().flatten())
        .find(|n| n["_id"] == node)
        .and_then(|n| n["conn"].as_i64())
}

/// One client frame built by hand (for tests that speak WebSocket without a library):
/// `first_byte` holds FIN, the RSV bits and the opcode; the payload is masked as a client's
/// must be.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first_byte];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask: [u8; 4] = rand::random();
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
