//! Encrypted tokens in MeshCentral's cookie format (docs/protocol/control.md §1.5): a JSON object
//! with `time` (Unix seconds) added, sealed with AES-256-GCM, as `IV(12) ‖ tag(16) ‖ ciphertext`.
//!
//! ironmesh writes tokens in unpadded base64url, not MeshCentral's b64@$: `meshctrl.js`
//! splices the relay token into a URL with JavaScript's `String.replace`, which turns `$$`
//! into `$` (and `$&`, `` $` ``, `$'` into other text), so a b64@$ token fails now and then.
//! Both alphabets are accepted when opening (`meshctrl --loginkey` builds b64@$ ones).
//!
//! The key is 80 random bytes kept in the database (`settings.login_cookie_key`), so every
//! server on one database accepts the others' tokens; the first 32 bytes are the AES key,
//! as in MeshCentral, which lets `meshctrl --loginkey` work with it too.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde_json::{Map, Value};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

pub const KEY_LEN: usize = 80;

pub struct TokenCipher {
    key: LessSafeKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not valid")]
    Invalid,
    #[error("token has expired")]
    Expired,
}

impl TokenCipher {
    pub fn new(key: &[u8]) -> anyhow::Result<TokenCipher> {
        anyhow::ensure!(key.len() >= 32, "cookie key too short");
        let unbound = UnboundKey::new(&AES_256_GCM, &key[..32])
            .map_err(|_| anyhow::anyhow!("bad AES key"))?;
        Ok(TokenCipher {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `payload` (a JSON object) with `time` = `now_secs`.
    pub fn seal(&self, mut payload: Map<String, Value>, now_secs: i64) -> String {
        payload.insert("time".into(), now_secs.into());
        let mut data = Value::Object(payload).to_string().into_bytes();
        let iv: [u8; 12] = ironmesh_core::random_bytes();
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut data)
            .expect("AES-GCM sealing cannot fail for small inputs");
        let mut out = Vec::with_capacity(12 + 16 + data.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&data);
        URL_SAFE_NO_PAD.encode(&out)
    }

    /// Opens a token and checks its age: at most `max_age_secs` old, at most 30 s in the
    /// future. A numeric `expire` field (minutes, 0 = never) replaces `max_age_secs`.
    pub fn open(
        &self,
        token: &str,
        max_age_secs: i64,
        now_secs: i64,
    ) -> Result<Map<String, Value>, TokenError> {
        let raw = decode_any_base64(token.trim()).ok_or(TokenError::Invalid)?;
        if raw.len() < 12 + 16 + 2 {
            return Err(TokenError::Invalid);
        }
        let (iv, rest) = raw.split_at(12);
        let (tag, ciphertext) = rest.split_at(16);
        let mut sealed = ciphertext.to_vec();
        sealed.extend_from_slice(tag);
        let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| TokenError::Invalid)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| TokenError::Invalid)?;
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(plain) else {
            return Err(TokenError::Invalid);
        };
        let time = map
            .get("time")
            .and_then(Value::as_i64)
            .ok_or(TokenError::Invalid)?;
        if time > now_secs + 30 {
            return Err(TokenError::Invalid);
        }
        let window = match map.get("expire").and_then(Value::as_i64) {
            Some(0) => None,
            Some(minutes) => Some(minutes * 60),
            None => Some(max_age_secs),
        };
        if let Some(window) = window {
            if now_secs - time > window {
                return Err(TokenError::Expired);
            }
        }
        Ok(map)
    }
}

/// Decodes base64 in any of the alphabets tokens travel in: standard, b64@$, base64url;
/// padded or not.
fn decode_any_base64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let normalized: String = text
        .chars()
        .map(|c| match c {
            '@' | '+' => '-',
            '$' | '/' => '_',
            c => c,
        })
        .collect();
    LENIENT.decode(normalized).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironmesh_proto::ids::{b64_at_dollar, decode_b64_at_dollar};
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn seal_open_and_expiry() {
        let c = TokenCipher::new(&[7u8; KEY_LEN]).unwrap();
        let t = c.seal(obj(json!({"userid":"user//admin"})), 1000);
        // Safe in URLs and in JavaScript replacement strings: no `$`, `@`, `+`, `/`, `=`.
        assert!(
            t.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'),
            "{t}"
        );
        let back = c.open(&t, 3600, 1000 + 3599).unwrap();
        assert_eq!(back["userid"], "user//admin");
        assert_eq!(c.open(&t, 3600, 1000 + 3601), Err(TokenError::Expired));
        assert_eq!(c.open(&t, 3600, 1000 - 31), Err(TokenError::Invalid));
        let other = TokenCipher::new(&[8u8; KEY_LEN]).unwrap();
        assert_eq!(other.open(&t, 3600, 1000), Err(TokenError::Invalid));
        assert_eq!(c.open("garbage", 3600, 1000), Err(TokenError::Invalid));
        // Flip one ciphertext bit: authentication fails.
        // MeshCentral's alphabet is accepted too.
        let raw = decode_any_base64(&t).unwrap();
        assert_eq!(
            c.open(&b64_at_dollar(&raw), 3600, 1000).unwrap()["userid"],
            "user//admin"
        );
        let mut raw = decode_b64_at_dollar(&b64_at_dollar(&raw)).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            c.open(&b64_at_dollar(&raw), 3600, 1000),
            Err(TokenError::Invalid)
        );
    }
}
