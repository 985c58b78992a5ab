//! Account administration on the control channel (`edituser`, `changeuserpass`), as the web
//! console's Users page uses it: what works, what is refused, and why.

use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws::{self, request};
use serde_json::{json, Value};

const PASS: &str = "Adm1n-pass!";
const BOB_PASS: &str = "B0b-original!";
const FULL: u32 = u32::MAX;

async fn ask(c: &mut ws::Ws, v: Value) -> Value {
    request(c, &v).await.unwrap()
}

fn refused_with(r: &Value, text: &str) {
    assert_eq!(r["failed"], true, "{r}");
    assert!(r["result"].as_str().unwrap_or("").contains(text), "{r}");
}

async fn site_rights(c: &mut ws::Ws, user: &str) -> u64 {
    let users = ask(c, json!({"action":"users"})).await;
    users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == user)
        .map(|u| u["siteadmin"].as_u64().unwrap_or(0))
        .unwrap_or_else(|| panic!("{user} not listed: {users}"))
}

#[tokio::test]
async fn administrators_edit_rights_and_reset_passwords_within_their_own_rights() {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    for (name, rights) in [("bob", 0u32), ("manager", 2)] {
        let r = ask(
            &mut admin,
            json!({"action":"adduser","username":name,"pass":BOB_PASS,"siteadmin":rights}),
        )
        .await;
        assert_eq!(r["result"], "ok", "{r}");
        assert!(r.get("failed").is_none(), "{r}");
    }

    // Site rights and profile fields change, and the change shows in the listing.
    let r = ask(
        &mut admin,
        json!({"action":"edituser","userid":"bob","siteadmin":FULL,"email":"bob@example.org"}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    assert_eq!(site_rights(&mut admin, "bob").await, FULL as u64);
    // MeshCentral's console names the account `id`.
    let r = ask(
        &mut admin,
        json!({"action":"edituser","id":"user//bob","siteadmin":0}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    assert_eq!(site_rights(&mut admin, "bob").await, 0);

    // Password reset: the new password works, the old one no longer does.
    let r = ask(
        &mut admin,
        json!({"action":"changeuserpass","userid":"bob","pass":"B0b-renewed!!","removeMultiFactor":false}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    assert!(ws::control(s.port, "bob", "B0b-renewed!!").await.is_ok());
    assert!(ws::control(s.port, "bob", BOB_PASS).await.is_err());

    // Clear refusals, and the session goes on.
    refused_with(
        &ask(
            &mut admin,
            json!({"action":"edituser","userid":"admin","siteadmin":0}),
        )
        .await,
        "your own site rights",
    );
    refused_with(
        &ask(
            &mut admin,
            json!({"action":"edituser","userid":"nobody","siteadmin":0}),
        )
        .await,
        "User does not exists",
    );
    refused_with(
        &ask(
            &mut admin,
            json!({"action":"edituser","userid":"bob","email":"not-an-email"}),
        )
        .await,
        "Invalid email",
    );
    refused_with(
        &ask(
            &mut admin,
            json!({"action":"edituser","userid":"bob","siteadmin":"all"}),
        )
        .await,
        "siteadmin",
    );
    refused_with(
        &ask(
            &mut admin,
            json!({"action":"changeuserpass","userid":"bob","pass":"short"}),
        )
        .await,
        "assword",
    );
    refused_with(
        &ask(
            &mut admin,
            json!({"action":"changeuserpass","pass":"Whatever-pass1!"}),
        )
        .await,
        "Missing field: userid",
    );
    assert_eq!(site_rights(&mut admin, "admin").await, FULL as u64);

    // A user manager (site right 2) may not touch a full administrator, nor grant rights
    // they do not hold; plain users may do neither.
    let mut manager = ws::control(s.port, "manager", BOB_PASS).await.unwrap();
    refused_with(
        &ask(
            &mut manager,
            json!({"action":"changeuserpass","userid":"admin","pass":"Takeover-pass1!"}),
        )
        .await,
        "Access denied",
    );
    refused_with(
        &ask(
            &mut manager,
            json!({"action":"edituser","userid":"bob","siteadmin":FULL}),
        )
        .await,
        "Access denied",
    );
    let r = ask(
        &mut manager,
        json!({"action":"edituser","userid":"bob","siteadmin":2}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    assert_eq!(site_rights(&mut admin, "bob").await, 2);
    let r = ask(
        &mut manager,
        json!({"action":"edituser","userid":"bob","siteadmin":0}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    let mut bob = ws::control(s.port, "bob", "B0b-renewed!!").await.unwrap();
    refused_with(
        &ask(
            &mut bob,
            json!({"action":"changeuserpass","userid":"manager","pass":"Takeover-pass1!"}),
        )
        .await,
        "Access denied",
    );
    refused_with(
        &ask(
            &mut manager,
            json!({"action":"edituser","userid":"manager","siteadmin":FULL}),
        )
        .await,
        "",
    );
    assert!(ws::control(s.port, "admin", PASS).await.is_ok());
    // Manage users, plus the NO_NEW_GROUPS every new account gets.
    assert_eq!(site_rights(&mut admin, "manager").await, 2 | 64);
}
