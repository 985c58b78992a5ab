//! The `x-meshauth` header (docs/protocol/control.md §1.2, §1.3 step 6):
//! `base64(user),base64(pass)[,base64(2fa-token)]`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshAuth {
    pub username: String,
    pub password: String,
    /// Second factor; ironmesh has no 2FA yet and refuses logins that send one.
    pub token: Option<String>,
}

/// Why the header is unusable. `msg` values are MeshCentral's close messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshAuthError {
    #[error("x-meshauth needs 2 or 3 comma-separated parts")]
    PartCount,
    #[error("x-meshauth part is not base64 UTF-8")]
    Encoding,
}

impl MeshAuthError {
    pub fn msg(&self) -> &'static str {
        match self {
            MeshAuthError::PartCount => "noauth-2c",
            MeshAuthError::Encoding => "noauth-2c",
        }
    }
}

pub fn parse(header: &str) -> Result<MeshAuth, MeshAuthError> {
    let parts: Vec<&str> = header.split(',').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(MeshAuthError::PartCount);
    }
    let decode = |p: &str| -> Result<String, MeshAuthError> {
        let bytes = STANDARD
            .decode(p.trim())
            .map_err(|_| MeshAuthError::Encoding)?;
        String::from_utf8(bytes).map_err(|_| MeshAuthError::Encoding)
    };
    Ok(MeshAuth {
        username: decode(parts[0])?,
        password: decode(parts[1])?,
        token: parts.get(2).map(|p| decode(p)).transpose()?,
    })
}

/// Builds the header a client sends.
pub fn encode(username: &str, password: &str) -> String {
    format!(
        "{},{}",
        STANDARD.encode(username.as_bytes()),
        STANDARD.encode(password.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let h = encode("admin", "p,w:1");
        assert_eq!(
            parse(&h).unwrap(),
            MeshAuth {
                username: "admin".into(),
                password: "p,w:1".into(),
                token: None
            }
        );
        assert_eq!(parse("YQ=="), Err(MeshAuthError::PartCount));
        assert_eq!(parse("a,b,c,d"), Err(MeshAuthError::PartCount));
        assert_eq!(parse("!!,YQ=="), Err(MeshAuthError::Encoding));
        assert_eq!(
            parse(&format!("{h},MTIz")).unwrap().token.as_deref(),
            Some("123")
        );
    }
}
