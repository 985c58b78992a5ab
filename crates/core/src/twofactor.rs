//! Second factors: time-based one-time passwords (TOTP, RFC 6238, as authenticator apps
//! implement it: SHA-1, 6 digits, 30-second steps), single-use recovery codes, and the
//! bookkeeping of passkeys (their verification is the server's: WebAuthn is a browser
//! protocol).
//!
//! A user with any factor must give one after their password. A code is accepted one step
//! early or late (clock drift) and only once: the last accepted step is stored.

use ironmesh_proto::rights::SiteRights;
use ring::hmac;

use crate::access::Actor;
use crate::accounts::sha256_hex;
use crate::events::Event;
use crate::store::{now_ms, Passkey, User};
use crate::{random_bytes, Domain, DomainError, DomainResult};

/// Seconds per TOTP step.
pub const STEP_SECS: i64 = 30;
/// Digits of a TOTP code.
pub const DIGITS: u32 = 6;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps read).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 (case-insensitive, spaces and padding ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = BASE32
            .iter()
            .position(|&b| b as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The TOTP code of `secret` at `step` (RFC 4226 HOTP over the step counter).
pub fn totp_code(secret: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &(step as u64).to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    binary % 10u32.pow(DIGITS)
}

/// The step a code given at `now_ms` matches (now, one before, one after), if any.
pub fn matching_step(secret: &[u8], code: &str, now_ms: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let now = now_ms.div_euclid(1000 * STEP_SECS);
    [now, now - 1, now + 1].into_iter().find(|&step| {
        crate::accounts::constant_time_eq(
            format!("{:06}", totp_code(secret, step)).as_bytes(),
            format!("{given:06}").as_bytes(),
        )
    })
}

/// A new TOTP secret and the `otpauth://` URI an authenticator app takes (usually as a
/// QR code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpOffer {
    pub secret: String,
    pub uri: String,
}

/// What second factors an account has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Factors {
    pub totp: bool,
    pub passkeys: usize,
    pub recovery_codes: usize,
}

impl Factors {
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// A code checked as a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Totp,
    RecoveryCode,
    Wrong,
}

fn recovery_code() -> String {
    // 10 characters of base32 (50 bits), shown in two groups.
    let text = base32_encode(&random_bytes::<7>())[..10].to_string();
    format!("{}-{}", &text[..5], &text[5..])
}

fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Domain {
    /// Whether `user` must still add the second factor the site requires: the policy is on,
    /// the account has none, and it is not an account of single sign-on.
    pub async fn second_factor_pending(&self, user: &User) -> DomainResult<bool> {
        if !self.policy.second_factor_required {
            return Ok(false);
        }
        Ok(!self.factors(&user.id).await?.any() && !self.store.has_oidc_identity(&user.id).await?)
    }

    pub async fn factors(&self, user_id: &str) -> DomainResult<Factors> {
        Ok(Factors {
            totp: self.store.totp(user_id).await?.is_some(),
            passkeys: self.store.passkeys_of(user_id).await?.len(),
            recovery_codes: self.store.recovery_code_count(user_id).await? as usize,
        })
    }

    /// A fresh secret for `actor` to add to an authenticator app; nothing is stored until
    /// [`Domain::confirm_totp`] proves the app has it.
    pub fn offer_totp(&self, actor: &Actor, issuer: &str) -> TotpOffer {
        let secret = base32_encode(&random_bytes::<20>());
        let label = format!("{issuer}:{}", actor.user.name);
        let enc = |t: &str| -> String {
            t.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let uri = format!(
            "otpauth://totp/{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            enc(&label),
            enc(issuer)
        );
        TotpOffer { secret, uri }
    }

    /// Turns TOTP on with `secret` once `code` proves the authenticator has it; returns the
    /// new recovery codes (shown once; only their hashes are kept).
    pub async fn confirm_totp(
        &self,
        actor: &Actor,
        secret: &str,
        code: &str,
    ) -> DomainResult<Vec<String>> {
        let key = base32_decode(secret)
            .filter(|k| k.len() >= 16)
            .ok_or_else(|| DomainError::Invalid("Invalid secret".into()))?;
        let Some(step) = matching_step(&key, code, now_ms()) else {
            return Err(DomainError::Invalid(
                "Wrong code: check the authenticator's clock and try the next code".into(),
            ));
        };
        self.store
            .set_totp(&actor.user.id, &base32_encode(&key), step)
            .await?;
        let codes = self.new_recovery_codes(&actor.user.id).await?;
        let event = Event::new("user", "2fa", "Authenticator app (TOTP) added")
            .by_actor(actor)
            .target(&actor.user.id)
            .target(crate::access::TARGET_USER_MANAGERS);
        self.publish(event).await;
        Ok(codes)
    }

    /// Replaces an account's recovery codes; returns the new ones.
    pub async fn new_recovery_codes(&self, user_id: &str) -> DomainResult<Vec<String>> {
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| sha256_hex(&normalize_recovery(c)))
            .collect();
        self.store.replace_recovery_codes(user_id, &hashes).await?;
        Ok(codes)
    }

    /// Checks a second-factor code for `user_id`: a TOTP code (each step once) or an unused
    /// recovery code (then used up).
    pub async fn check_second_factor(&self, user_id: &str, code: &str) -> DomainResult<CodeCheck> {
        if let Some((secret, last_step)) = self.store.totp(user_id).await? {
            if let Some(key) = base32_decode(&secret) {
                if let Some(step) = matching_step(&key, code, now_ms()) {
                    // Claiming the step in the database makes a replayed code fail, even on
                    // another server.
                    if step > last_step && self.store.claim_totp_step(user_id, step).await? {
                        return Ok(CodeCheck::Totp);
                    }
                    return Ok(CodeCheck::Wrong);
                }
            }
        }
        let normalized = normalize_recovery(code);
        if normalized.len() == 10
            && self
                .store
                .use_recovery_code(user_id, &sha256_hex(&normalized))
                .await?
        {
            return Ok(CodeCheck::RecoveryCode);
        }
        Ok(CodeCheck::Wrong)
    }

    /// Removes `user_id`'s second factors: by themselves, or by a user manager (a lost
    /// phone). Recorded in the audit trail.
    pub async fn remove_second_factors(&self, actor: &Actor, user_id: &str) -> DomainResult<()> {
        if actor.user.id != user_id && !actor.site().has(SiteRights::MANAGE_USERS) {
            return Err(DomainError::Denied);
        }
        let Some(user) = self.store.user(user_id).await? else {
            return Err(DomainError::NotFound("User does not exists"));
        };
        if actor.user.id != user_id
            && SiteRights(user.site_rights).is_full()
            && !actor.is_full_admin()
        {
            return Err(DomainError::Denied);
        }
        self.store.remove_second_factors(user_id).await?;
        let event = Event::new(
            "user",
            "2fa",
            format!("Second factors of {} removed", user.name),
        )
        .by_actor(actor)
        .target(user_id)
        .target(crate::access::TARGET_USER_MANAGERS);
        self.publish(event).await;
        Ok(())
    }

    pub async fn passkeys(&self, user_id: &str) -> DomainResult<Vec<Passkey>> {
        Ok(self.store.passkeys_of(user_id).await?)
    }

    /// Stores a verified passkey (`credential` is the server's serialized form of it).
    /// With the account's first factor come its recovery codes, returned (shown once).
    pub async fn add_passkey(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        credential: &str,
    ) -> DomainResult<Option<Vec<String>>> {
        let name = crate::devices::clip(name.trim(), 64);
        let name = if name.is_empty() { "Passkey" } else { name };
        self.store
            .insert_passkey(&Passkey {
                id: id.to_string(),
                user_id: actor.user.id.clone(),
                name: name.to_string(),
                credential: credential.to_string(),
                created_ms: now_ms(),
                last_used_ms: 0,
            })
            .await?;
        let codes = if self.store.recovery_code_count(&actor.user.id).await? == 0 {
            Some(self.new_recovery_codes(&actor.user.id).await?)
        } else {
            None
        };
        let event = Event::new("user", "2fa", format!("Passkey {name} added"))
            .by_actor(actor)
            .target(&actor.user.id)
            .target(crate::access::TARGET_USER_MANAGERS);
        self.publish(event).await;
        Ok(codes)
    }

    /// After a passkey signed in: its updated credential (signature counter).
    pub async fn passkey_used(&self, id: &str, credential: &str) -> DomainResult<()> {
        Ok(self.store.update_passkey(id, credential, now_ms()).await?)
    }

    pub async fn remove_passkey(&self, actor: &Actor, id: &str) -> DomainResult<()> {
        if !self.store.delete_passkey(&actor.user.id, id).await? {
            return Err(DomainError::NotFound("Unknown passkey"));
        }
        let event = Event::new("user", "2fa", "Passkey removed")
            .by_actor(actor)
            .target(&actor.user.id)
            .target(crate::access::TARGET_USER_MANAGERS);
        self.publish(event).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vectors() {
        // The SHA-1 secret of RFC 6238 appendix B, with its 8-digit results cut to 6.
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(
                totp_code(secret, time / STEP_SECS),
                expected % 1_000_000,
                "t={time}"
            );
        }
    }

    #[test]
    fn codes_match_within_one_step() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111_000;
        let code = format!("{:06}", totp_code(secret, now / 1000 / STEP_SECS - 1));
        assert_eq!(
            matching_step(secret, &code, now),
            Some(now / 1000 / STEP_SECS - 1)
        );
        let stale = format!("{:06}", totp_code(secret, now / 1000 / STEP_SECS - 3));
        assert_eq!(matching_step(secret, &stale, now), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
    }

    #[test]
    fn base32_round_trips() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(base32_decode(&base32_encode(bytes)).unwrap(), bytes);
        }
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw 6ytb oi==").unwrap(), b"foobar");
    }
}
