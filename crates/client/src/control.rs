//! A `/control.ashx` client: logs in with `x-meshauth`, reads the greeting, and matches
//! replies to requests by `responseid`; events that arrive meanwhile are kept for
//! [`ControlClient::next_push`].

use std::collections::VecDeque;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha384};
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{connect_with_headers, tls_config, Socket};

/// Where a server is: `wss://host:port` (a trailing path is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
}

impl ServerAddress {
    pub fn parse(url: &str) -> anyhow::Result<ServerAddress> {
        let rest = url
            .strip_prefix("wss://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                anyhow::anyhow!("server URL must start with wss:// or https:// (got {url})")
            })?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6
                .split_once(']')
                .ok_or_else(|| anyhow::anyhow!("unclosed [ in {url}"))?;
            (
                h.to_string(),
                tail.strip_prefix(':')
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(443),
            )
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse()?),
                None => (authority.to_string(), 443),
            }
        };
        anyhow::ensure!(!host.is_empty(), "server URL has no host: {url}");
        Ok(ServerAddress { host, port })
    }

    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("wss://[{}]:{}", self.host, self.port)
        } else {
            format!("wss://{}:{}", self.host, self.port)
        }
    }
}

/// User name and password (or a login token's generated pair), and the second-factor
/// code for an account that has one (login tokens need none).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub code: Option<String>,
}

impl Credentials {
    /// The `x-meshauth` header: `base64(user),base64(password)[,base64(code)]`.
    pub fn header(&self) -> String {
        let mut header = format!(
            "{},{}",
            STANDARD.encode(self.user.as_bytes()),
            STANDARD.encode(self.password.as_bytes())
        );
        if let Some(code) = &self.code {
            header.push(',');
            header.push_str(&STANDARD.encode(code.as_bytes()));
        }
        header
    }
}

/// Why a connection was refused, in words for the person at the keyboard.
#[derive(Debug)]
pub enum ConnectError {
    CertificateChanged {
        expected: String,
        found: String,
    },
    /// The password was right; the account has a second factor and no code was given.
    SecondFactorRequired,
    Refused(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::CertificateChanged { expected, found } => write!(
                f,
                "the server's certificate changed (expected SHA-384 {expected}, got {found}); if \
                 that is expected, log in again"
            ),
            ConnectError::SecondFactorRequired => write!(
                f,
                "this account has a second factor: give a code from its authenticator app or \
                 a recovery code (--code)"
            ),
            ConnectError::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Hex SHA-384 of a certificate.
pub fn cert_hash_hex(cert: &[u8]) -> String {
    ironmesh_proto::ids::hex_upper(&Sha384::digest(cert))
}

/// Opens `path` on the server with credentials, checking the certificate against a pinned
/// hash when given. Returns the socket and the certificate's hash.
pub async fn open(
    server: &ServerAddress,
    path: &str,
    creds: &Credentials,
    pinned: Option<&str>,
) -> anyhow::Result<(Socket, String)> {
    let (socket, cert) = connect_with_headers(
        tls_config(),
        &server.host,
        server.port,
        path,
        None,
        &[("x-meshauth", creds.header())],
    )
    .await?;
    let found = cert_hash_hex(&cert);
    if let Some(expected) = pinned {
        if !expected.eq_ignore_ascii_case(&found) {
            return Err(ConnectError::CertificateChanged {
                expected: expected.to_string(),
                found,
            }
            .into());
        }
    }
    Ok((socket, found))
}

pub struct ControlClient {
    socket: Socket,
    next: u64,
    pub server_info: Value,
    pub user_info: Value,
    /// SHA-384 (hex) of the server's TLS certificate.
    pub tls_hash: String,
    pending_events: VecDeque<Value>,
}

/// How long a request may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

impl ControlClient {
    pub async fn connect(
        server: &ServerAddress,
        creds: &Credentials,
        pinned: Option<&str>,
    ) -> anyhow::Result<ControlClient> {
        let (socket, tls_hash) = open(server, "/control.ashx", creds, pinned).await?;
        let mut client = ControlClient {
            socket,
            next: 0,
            server_info: Value::Null,
            user_info: Value::Null,
            tls_hash,
            pending_events: VecDeque::new(),
        };
        let first = client.recv().await?;
        if first["action"] == "close" {
            let msg = first["msg"].as_str().unwrap_or("");
            if msg == "tokenrequired" && creds.code.is_none() {
                return Err(ConnectError::SecondFactorRequired.into());
            }
            return Err(ConnectError::Refused(match msg {
                "tokenrequired" => "login failed: wrong second-factor code".into(),
                "locked" => {
                    "login refused: too many failed attempts or account locked; wait and retry"
                        .into()
                }
                "notools" => "this account may not use command-line tools".into(),
                _ => "login failed: wrong user name or password (or expired token)".into(),
            })
            .into());
        }
        client.server_info = first["serverinfo"].clone();
        let second = client.recv().await?;
        client.user_info = second["userinfo"].clone();
        Ok(client)
    }

    async fn recv(&mut self) -> anyhow::Result<Value> {
        loop {
            let msg = tokio::time::timeout(REPLY_TIMEOUT, self.socket.next())
                .await
                .map_err(|_| anyhow::anyhow!("the server did not answer within {REPLY_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow::anyhow!("the server closed the connection"))??;
            match msg {
                Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
                Message::Close(c) => anyhow::bail!(
                    "the server closed the connection{}",
                    c.map(|c| format!(": {}", c.reason)).unwrap_or_default()
                ),
                _ => continue,
            }
        }
    }

    /// Sends a request (its `responseid` is set here) and returns the matching reply.
    pub async fn request(&mut self, mut req: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let id = format!("ironmesh-{}", self.next);
        req["responseid"] = Value::String(id.clone());
        self.send(&req).await?;
        loop {
            let v = self.recv().await?;
            if v["responseid"] == id.as_str() {
                return Ok(v);
            }
            if v["action"] == "event" {
                self.pending_events.push_back(v);
            }
        }
    }

    pub async fn send(&mut self, v: &Value) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(v.to_string().into()))
            .await?;
        Ok(())
    }

    /// The next pushed event (`{"action":"event",…}`) or routed agent message.
    pub async fn next_push(&mut self) -> anyhow::Result<Value> {
        if let Some(v) = self.pending_events.pop_front() {
            return Ok(v);
        }
        loop {
            let v = match self.socket.next().await {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(t.as_str())?,
                Some(Ok(Message::Close(_))) | None => {
                    anyhow::bail!("the server closed the connection")
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            };
            return Ok(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            ServerAddress::parse("wss://127.0.0.1:4443").unwrap(),
            ServerAddress {
                host: "127.0.0.1".into(),
                port: 4443
            }
        );
        assert_eq!(ServerAddress::parse("https://h/x").unwrap().port, 443);
        assert_eq!(ServerAddress::parse("wss://[::1]:9").unwrap().host, "::1");
        assert!(ServerAddress::parse("http://h").is_err());
        assert_eq!(
            Credentials {
                user: "a".into(),
                password: "b".into(),
                code: None,
            }
            .header(),
            "YQ==,Yg=="
        );
        assert_eq!(
            Credentials {
                user: "a".into(),
                password: "b".into(),
                code: Some("123456".into()),
            }
            .header(),
            "YQ==,Yg==,MTIzNDU2"
        );
    }
}
