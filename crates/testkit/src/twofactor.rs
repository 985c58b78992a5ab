//! Second factors for tests: an authenticator app added over the control channel, and the
//! codes it would show.

use ironmesh_core::twofactor::{base32_decode, totp_code, STEP_SECS};
use serde_json::json;

use crate::ws::{self, Ws};

/// The TOTP code of a base32 secret `steps_ahead` 30-second steps from now.
pub fn totp(secret: &str, steps_ahead: i64) -> String {
    let key = base32_decode(secret).expect("a base32 secret");
    let now = ironmesh_core::model::now_ms() / 1000 / STEP_SECS;
    format!("{:06}", totp_code(&key, now + steps_ahead))
}

/// A six-digit code that is none of the codes the server would accept around now.
pub fn wrong_code(secret: &str) -> &'static str {
    let near: Vec<String> = (-1..=2).map(|k| totp(secret, k)).collect();
    ["000000", "111111", "222222", "333333", "444444"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .expect("five codes cannot all be near")
}

/// Adds an authenticator app to the signed-in account of `c` (`otpauth-request`, then
/// `otpauth-setup` with this step's code); returns its secret and the recovery codes.
pub async fn add_authenticator(c: &mut Ws) -> (String, Vec<String>) {
    let offer = ws::request(c, &json!({"action":"otpauth-request"}))
        .await
        .expect("otpauth-request");
    let secret = offer["secret"].as_str().expect("a secret").to_string();
    let setup = ws::request(
        c,
        &json!({"action":"otpauth-setup","secret":secret,"token":totp(&secret, 0)}),
    )
    .await
    .expect("otpauth-setup");
    assert_eq!(setup["success"], true, "{setup}");
    let codes = setup["recoverycodes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (secret, codes)
}
