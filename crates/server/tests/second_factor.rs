//! A wrong second-factor code is a failed sign-in: it counts towards the limit of its
//! (user, address) pair, like a wrong password, and locks only that pair.

use std::net::IpAddr;

use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::source::sign_in_with_code_from;
use ironmesh_testkit::twofactor::{add_authenticator, wrong_code};
use ironmesh_testkit::ws;
use serde_json::json;

const PASS: &str = "Adm1n-pass!";

#[tokio::test]
async fn wrong_codes_count_towards_the_user_and_address_limit() {
    let s = TestServer::start_with_config(Db::Sqlite, "login_max_failures = 3\n").await;
    s.add_user("admin", PASS, true).await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let (secret, codes) = add_authenticator(&mut c).await;
    let recovery = codes[0].clone();

    let wrong = wrong_code(&secret);
    let guesser = IpAddr::from([127, 0, 0, 21]);
    let owner = IpAddr::from([127, 0, 0, 22]);
    let attempt = |from: IpAddr, code: Option<String>| {
        let port = s.port;
        async move {
            sign_in_with_code_from(from, port, "admin", PASS, code.as_deref())
                .await
                .unwrap()
                .err()
        }
    };
    // The right password alone asks for a code, and is no failure.
    for _ in 0..4 {
        assert_eq!(
            attempt(guesser, None).await,
            Some("tokenrequired".to_string())
        );
    }
    // Three wrong codes from one address ...
    for _ in 0..3 {
        assert_eq!(
            attempt(guesser, Some(wrong.to_string())).await,
            Some("tokenrequired".to_string())
        );
    }
    // ... lock that address out of the account, even with a right code.
    assert_eq!(
        attempt(guesser, Some(recovery.clone())).await,
        Some("locked".to_string())
    );
    // The owner, from another address, gets in (and the recovery code was not spent).
    assert_eq!(attempt(owner, Some(recovery)).await, None);
    // The failures are in the account's audit trail.
    let events = ws::request(&mut c, &json!({"action":"events","userid":"user//admin"}))
        .await
        .unwrap();
    let failed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login" && e["outcome"] == "failure")
        .count();
    assert!(failed >= 3, "{events:#}");
}
