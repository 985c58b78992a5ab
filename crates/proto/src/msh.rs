//! The `.msh` agent settings file (docs/protocol/agent.md §7): CRLF lines of `key=value`, first
//! line empty.

use crate::ids::{decode_hex, hex_upper};

/// What an agent needs to find and trust its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    pub mesh_name: String,
    /// Raw 48 bytes of the group id.
    pub mesh_id: Vec<u8>,
    /// SHA-384 of the agent-server key (PKCS#1), 48 bytes.
    pub server_id: Vec<u8>,
    /// `wss://host:port/agent.ashx`.
    pub server_url: String,
}

impl MeshSettings {
    pub fn render(&self) -> String {
        format!(
            "\r\nMeshName={}\r\nMeshType=2\r\nMeshID=0x{}\r\nServerID={}\r\nMeshServer={}\r\n",
            self.mesh_name.replace(['\r', '\n'], " "),
            hex_upper(&self.mesh_id),
            hex_upper(&self.server_id),
            self.server_url
        )
    }

    /// Reads the keys an agent needs; unknown keys are ignored.
    pub fn parse(text: &str) -> Result<MeshSettings, String> {
        let mut name = String::new();
        let (mut mesh, mut server_id, mut url) = (None, None, None);
        for line in text.lines() {
            let Some((key, value)) = line.trim_end_matches('\r').split_once('=') else {
                continue;
            };
            match key.trim() {
                "MeshName" => name = value.to_string(),
                "MeshID" => {
                    let hex = value
                        .trim()
                        .trim_start_matches("0x")
                        .trim_start_matches("0X");
                    mesh = Some(decode_hex(hex).ok_or("MeshID is not hex")?);
                }
                "ServerID" => {
                    // A comma-separated list pairs with a list of servers; take the first.
                    let first = value.split(',').next().unwrap_or("").trim();
                    server_id = Some(decode_hex(first).ok_or("ServerID is not hex")?);
                }
                "MeshServer" => {
                    url = Some(value.split(',').next().unwrap_or("").trim().to_string())
                }
                _ => {}
            }
        }
        let mesh_id = mesh.ok_or("MeshID missing")?;
        let server_id = server_id.ok_or("ServerID missing")?;
        if ![32, 48].contains(&mesh_id.len()) {
            return Err(format!(
                "MeshID must be 32 or 48 bytes, got {}",
                mesh_id.len()
            ));
        }
        if server_id.len() != 48 {
            return Err(format!(
                "ServerID must be 48 bytes, got {}",
                server_id.len()
            ));
        }
        Ok(MeshSettings {
            mesh_name: name,
            mesh_id,
            server_id,
            server_url: url.ok_or("MeshServer missing")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = MeshSettings {
            mesh_name: "office".into(),
            mesh_id: vec![0xEE; 48],
            server_id: vec![0xB5; 48],
            server_url: "wss://127.0.0.1:4430/agent.ashx".into(),
        };
        let text = s.render();
        assert!(text.starts_with("\r\nMeshName=office\r\nMeshType=2\r\nMeshID=0xEEEE"));
        assert_eq!(MeshSettings::parse(&text).unwrap(), s);
        assert!(MeshSettings::parse("MeshID=0x00\r\n").is_err());
    }
}
