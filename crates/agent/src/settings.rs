//! Where the agent connects and whom it trusts: from a `.msh` file or flags.

use std::path::Path;

use anyhow::Context;
use ironmesh_proto::ids::decode_hex;
use ironmesh_proto::msh::MeshSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// `wss://host:port/agent.ashx`.
    pub server_url: String,
    /// Raw group id (48 bytes).
    pub mesh_id: Vec<u8>,
    /// The pinned ServerID: SHA-384 of the agent-server key.
    pub server_id: [u8; 48],
}

impl AgentSettings {
    pub fn from_msh(path: &Path) -> anyhow::Result<AgentSettings> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let msh =
            MeshSettings::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::check(msh.server_url, msh.mesh_id, &msh.server_id)
    }

    pub fn from_flags(
        server_url: &str,
        mesh_id_hex: &str,
        server_id_hex: &str,
    ) -> anyhow::Result<AgentSettings> {
        let mesh =
            decode_hex(mesh_id_hex.trim_start_matches("0x")).context("--mesh-id is not hex")?;
        let server_id = decode_hex(server_id_hex).context("--server-id is not hex")?;
        Self::check(server_url.to_string(), mesh, &server_id)
    }

    fn check(
        server_url: String,
        mesh_id: Vec<u8>,
        server_id: &[u8],
    ) -> anyhow::Result<AgentSettings> {
        anyhow::ensure!(
            server_url.starts_with("wss://"),
            "server URL must start with wss:// (got {server_url})"
        );
        anyhow::ensure!(mesh_id.len() == 48, "mesh id must be 48 bytes");
        let server_id: [u8; 48] = server_id
            .try_into()
            .map_err(|_| anyhow::anyhow!("server id must be 48 bytes"))?;
        Ok(AgentSettings {
            server_url,
            mesh_id,
            server_id,
        })
    }

    /// (host, port, path with query) of the server URL.
    pub fn endpoint(&self) -> anyhow::Result<(String, u16, String)> {
        parse_wss(&self.server_url)
    }
}

/// Splits `wss://host[:port]/path` (IPv6 hosts in brackets).
pub fn parse_wss(url: &str) -> anyhow::Result<(String, u16, String)> {
    let rest = url
        .strip_prefix("wss://")
        .context("URL must start with wss://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').context("unclosed [ in URL")?;
        let port = tail
            .strip_prefix(':')
            .map(str::parse)
            .transpose()?
            .unwrap_or(443);
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().context("bad port")?),
            None => (authority.to_string(), 443),
        }
    };
    anyhow::ensure!(!host.is_empty(), "URL has no host");
    Ok((host, port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_wss("wss://127.0.0.1:4443/agent.ashx").unwrap(),
            ("127.0.0.1".into(), 4443, "/agent.ashx".into())
        );
        assert_eq!(
            parse_wss("wss://h/x?y=1").unwrap(),
            ("h".into(), 443, "/x?y=1".into())
        );
        assert_eq!(
            parse_wss("wss://[::1]:9/a").unwrap(),
            ("::1".into(), 9, "/a".into())
        );
        assert!(parse_wss("ws://h/a").is_err());
    }
}
