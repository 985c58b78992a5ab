//! MeshCentral identifiers (docs/protocol/control.md §4.1) and the `b64@$` alphabet.
//!
//! Ids are `<kind>/<domain>/<key>`; ironmesh serves the default domain, whose id is the
//! empty string, so ids look like `user//alice`, `mesh//<64 chars>`, `node//<64 chars>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Standard base64 with `+` written as `@` and `/` as `$` (padding kept), as MeshCentral
/// writes 48-byte hashes and random keys.
pub fn b64_at_dollar(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '@',
            '/' => '$',
            c => c,
        })
        .collect()
}

/// Inverse of [`b64_at_dollar`]; also accepts plain base64 (`+`, `/`).
pub fn decode_b64_at_dollar(text: &str) -> Option<Vec<u8>> {
    let plain: String = text
        .chars()
        .map(|c| match c {
            '@' => '+',
            '$' => '/',
            c => c,
        })
        .collect();
    STANDARD.decode(plain).ok()
}

/// Upper-case hex, as used by `.msh` files and `servertlshash`.
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Parses hex of either case.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The kinds of object a MeshCentral id can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    User,
    Mesh,
    Node,
    /// A user group (`ugrp//KEY`).
    UserGroup,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "user//",
            IdKind::Mesh => "mesh//",
            IdKind::Node => "node//",
            IdKind::UserGroup => "ugrp//",
        }
    }
}

/// Why an id given by a client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("empty id")]
    Empty,
    #[error("id names another kind of object or another domain")]
    WrongKind,
    #[error("id has an invalid key")]
    BadKey,
}

/// Turns what a client sent into a full id of `kind` in the default domain.
///
/// Accepted, as MeshCentral and its tools send them (docs/protocol/control.md §4.1,
/// docs/protocol/control.md §3.2): the full form `node//KEY`, the bare key `KEY` (no `/`), and
/// `@KEY`-style bare keys (a b64@$ key may itself start with `@`, so a leading `@` is kept when the
/// rest would not be a complete key). Percent-encoding must already be removed by the caller. Ids
/// of another kind or of a named domain are refused.
pub fn normalize_id(kind: IdKind, input: &str) -> Result<String, IdError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some(key) = input.strip_prefix(kind.prefix()) {
        return check_key(kind, key).map(|k| format!("{}{}", kind.prefix(), k));
    }
    // b64@$ keys write `/` as `$`, so a `/` here means another kind or a named domain.
    if input.contains('/') {
        return Err(IdError::WrongKind);
    }
    let key = match kind {
        // A 64-char b64@$ key may legitimately begin with '@'. Only strip a leading '@'
        // when the remainder is itself a complete key.
        IdKind::Node | IdKind::Mesh | IdKind::UserGroup => match input.strip_prefix('@') {
            Some(rest) if rest.len() == 64 => rest,
            _ => input,
        },
        IdKind::User => input,
    };
    check_key(kind, key).map(|k| format!("{}{}", kind.prefix(), k))
}

fn check_key(kind: IdKind, key: &str) -> Result<String, IdError> {
    if key.is_empty() {
        return Err(IdError::Empty);
    }
    match kind {
        IdKind::User => {
            // The lower-case form is the id, so it is the one checked: lowercasing can
            // lengthen a name (`İ` becomes `i̇`, two characters) past the limit, and an id
            // that no longer normalizes could never be addressed again.
            let key = key.to_lowercase();
            if !is_valid_username(&key) {
                return Err(IdError::BadKey);
            }
            Ok(key)
        }
        IdKind::Mesh | IdKind::Node | IdKind::UserGroup => {
            let ok = key.len() <= 128
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'$' | b'='));
            if ok {
                Ok(key.to_string())
            } else {
                Err(IdError::BadKey)
            }
        }
    }
}

/// User names as MeshCentral accepts them (docs/protocol/control.md §2.4 `adduser`): no space, `"`,
/// `,` or `/`, not starting with `~` (reserved for login tokens), 1..=64 characters.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 64
        && !name.starts_with('~')
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | ',' | '/'))
}

/// The key part (after `kind//`) of a full id; the id itself if it has no prefix.
pub fn id_key(id: &str) -> &str {
    id.splitn(3, '/').nth(2).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_alphabet_round_trips() {
        let bytes: Vec<u8> = (0..48).map(|i| (i * 37 + 251) as u8).collect();
        let text = b64_at_dollar(&bytes);
        assert_eq!(text.len(), 64);
        assert!(!text.contains('+') && !text.contains('/'));
        assert_eq!(decode_b64_at_dollar(&text).unwrap(), bytes);
        assert_eq!(b64_at_dollar(&[0xfb, 0xff]), "@$8=");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex_upper(&[0, 0xab, 0x10]), "00AB10");
        assert_eq!(decode_hex("00ab10").unwrap(), vec![0, 0xab, 0x10]);
        assert!(decode_hex("0").is_none());
        assert!(decode_hex("zz").is_none());
    }

    #[test]
    fn node_ids_in_every_form() {
        let key = "OW4Fp4gPtEyoVafsFkg@1aVS3HfYZtuGH9ylqCCD0S0veYfDbJmfVlxkQXPMEH0T";
        let full = format!("node//{key}");
        assert_eq!(normalize_id(IdKind::Node, &full).unwrap(), full);
        assert_eq!(normalize_id(IdKind::Node, key).unwrap(), full);
        assert_eq!(
            normalize_id(IdKind::Node, &format!("@{key}")).unwrap(),
            full
        );
        // A key that starts with '@' is not mangled.
        let at_key = format!("@{}", &key[1..]);
        assert_eq!(
            normalize_id(IdKind::Node, &at_key).unwrap(),
            format!("node//{at_key}")
        );
        assert_eq!(
            normalize_id(IdKind::Node, &format!("mesh//{key}")),
            Err(IdError::WrongKind)
        );
        assert_eq!(
            normalize_id(IdKind::Node, "node/acme/abc"),
            Err(IdError::WrongKind)
        );
        assert_eq!(normalize_id(IdKind::Node, ""), Err(IdError::Empty));
        assert_eq!(normalize_id(IdKind::Node, "a<b"), Err(IdError::BadKey));
    }

    #[test]
    fn user_ids_are_lower_cased_and_checked() {
        assert_eq!(normalize_id(IdKind::User, "Bob").unwrap(), "user//bob");
        assert_eq!(
            normalize_id(IdKind::User, "user//Bob").unwrap(),
            "user//bob"
        );
        assert_eq!(normalize_id(IdKind::User, "b o"), Err(IdError::BadKey));
        assert_eq!(normalize_id(IdKind::User, "~t:x"), Err(IdError::BadKey));
        assert_eq!(id_key("user//bob"), "bob");
        assert_eq!(id_key("bob"), "bob");
    }

    #[test]
    fn user_ids_stay_valid_once_lower_cased() {
        // Caught by the control_json fuzz target's stability check: 33 `İ` (a valid
        // 33-character name) became a 66-character id that normalize_id then refused.
        let long = "İ".repeat(33);
        assert_eq!(normalize_id(IdKind::User, &long), Err(IdError::BadKey));
        let short = "İ".repeat(32);
        let id = normalize_id(IdKind::User, &short).unwrap();
        assert_eq!(normalize_id(IdKind::User, &id), Ok(id));
    }
}
