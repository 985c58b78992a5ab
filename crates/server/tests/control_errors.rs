//! Bad input on `/control.ashx`: each case gets a precise reply or close, and the
//! connection (or server) survives when it should.

use futures_util::{SinkExt, StreamExt};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws::{self, b64, recv_any_json, request, send_json};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

async fn server() -> TestServer {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    s
}

/// The connection still answers after whatever happened before.
async fn still_alive(c: &mut ws::Ws) {
    let pong = request(c, &json!({"action": "ping"})).await.unwrap();
    assert_eq!(pong["action"], "pong");
}

async fn send_text(c: &mut ws::Ws, text: &str) -> Value {
    c.send(Message::Text(text.into())).await.unwrap();
    ws::recv_json(c).await.unwrap()
}

#[tokio::test]
async fn malformed_requests_get_error_replies_and_the_connection_survives() {
    let s = server().await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();

    let r = send_text(&mut c, "{not json").await;
    assert_eq!(
        (r["action"].as_str(), r["cause"].as_str()),
        (Some("error"), Some("badjson"))
    );
    assert!(
        r["result"].as_str().unwrap().starts_with("malformed JSON"),
        "{r}"
    );
    still_alive(&mut c).await;

    let r = send_text(&mut c, "[1,2]").await;
    assert_eq!(r["cause"], "notobject");
    let r = send_text(&mut c, "{\"responseid\":\"x\"}").await;
    assert_eq!(r["cause"], "noaction");
    let r = send_text(&mut c, "{\"action\":42}").await;
    assert_eq!(r["cause"], "badaction");

    let r = request(&mut c, &json!({"action": "frobnicate", "responseid": "r1"}))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"action":"frobnicate","responseid":"r1","cause":"unknownaction","failed":true,"result":"Unknown action: frobnicate"})
    );

    c.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let r = ws::recv_json(&mut c).await.unwrap();
    assert_eq!(r["cause"], "binary");
    still_alive(&mut c).await;

    // Missing and mistyped fields.
    let r = request(
        &mut c,
        &json!({"action": "adduser", "pass": "longenough1", "responseid": "meshctrl"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "Missing field: username");
    assert_eq!(r["responseid"], "meshctrl");
    let r = request(
        &mut c,
        &json!({"action": "adduser", "username": "x", "pass": 5}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "Field pass must be a string");
    let r = request(
        &mut c,
        &json!({"action": "adduser", "username": "x", "pass": "longenough1", "siteadmin": -1}),
    )
    .await
    .unwrap();
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .starts_with("Field siteadmin must be a number"),
        "{r}"
    );
    let r = request(&mut c, &json!({"action": "createmesh"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "Missing field: meshname");
    let r = request(
        &mut c,
        &json!({"action": "createmesh", "meshname": "a", "meshtype": 1}),
    )
    .await
    .unwrap();
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported group type"),
        "{r}"
    );
    let r = request(&mut c, &json!({"action": "deletemesh"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "Missing field: meshid or meshname");

    // Wrong ids.
    let r = request(
        &mut c,
        &json!({"action": "deletemesh", "meshid": "mesh//doesnotexist"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "Unknown device group");
    let r = request(
        &mut c,
        &json!({"action": "deletemesh", "meshid": "node//wrongkind"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "Invalid group id");
    let r = request(&mut c, &json!({"action": "events", "nodeid": "nope"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "Invalid device id");
    let r = request(
        &mut c,
        &json!({"action": "deleteuser", "userid": "user//ghost"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "User does not exists");
    let r = request(&mut c, &json!({"action": "deleteuser", "userid": "admin"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "You cannot remove your own account");
    still_alive(&mut c).await;
}

#[tokio::test]
async fn missing_rights_are_refused_and_invisible_things_look_absent() {
    let s = server().await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let r = request(
        &mut admin,
        &json!({"action":"adduser","username":"bob","pass":"bobpass123"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok");
    let r = request(
        &mut admin,
        &json!({"action":"createmesh","meshname":"secret"}),
    )
    .await
    .unwrap();
    let secret = r["meshid"].as_str().unwrap().to_string();
    let r = request(
        &mut admin,
        &json!({"action":"createmesh","meshname":"shared"}),
    )
    .await
    .unwrap();
    let shared = r["meshid"].as_str().unwrap().to_string();
    let r = request(
        &mut admin,
        &json!({"action":"addmeshuser","meshid":shared,"usernames":["bob"],"meshadmin":8}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "Added user bob");

    let mut bob = ws::control(s.port, "bob", "bobpass123").await.unwrap();
    for (req, expected) in [
        (json!({"action":"users"}), "Access denied"),
        (
            json!({"action":"adduser","username":"x","pass":"longenough1"}),
            "Permission denied",
        ),
        (
            json!({"action":"deleteuser","userid":"admin"}),
            "Access denied",
        ),
        (
            json!({"action":"deletemesh","meshid":secret}),
            "Unknown device group",
        ),
        (
            json!({"action":"nodes","meshid":secret}),
            "Invalid group id",
        ),
        (
            json!({"action":"deletemesh","meshid":shared}),
            "Access denied",
        ),
        (
            json!({"action":"editmesh","meshid":shared,"meshname":"x"}),
            "Access denied",
        ),
        (
            json!({"action":"addmeshuser","meshid":shared,"usernames":["bob"],"meshadmin":4294967295u64}),
            "Access denied",
        ),
    ] {
        let r = request(&mut bob, &req).await.unwrap();
        assert_eq!(r["result"], expected, "{req}");
    }
    // New accounts may not create device groups; once allowed, Bob creates his own and is
    // its full administrator.
    let r = request(&mut bob, &json!({"action":"createmesh","meshname":"bobs"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "Access denied");
    let r = request(
        &mut admin,
        &json!({"action":"edituser","userid":"bob","siteadmin":0}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok");
    let r = request(&mut bob, &json!({"action":"createmesh","meshname":"bobs"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "ok");
    let r = request(&mut bob, &json!({"action":"meshes"}))
        .await
        .unwrap();
    let names: Vec<&str> = r["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["shared", "bobs"],
        "creation order, as MeshCentral lists"
    );
    // An administrator cannot be granted by a non-administrator, even with user rights.
    let r = request(
        &mut admin,
        &json!({"action":"adduser","username":"mgr","pass":"mgrpass123","siteadmin":2}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok");
    let mut mgr = ws::control(s.port, "mgr", "mgrpass123").await.unwrap();
    let r = request(&mut mgr, &json!({"action":"adduser","username":"root2","pass":"rootpass12","siteadmin":4294967295u64})).await.unwrap();
    assert_eq!(r["result"], "Access denied");
    let r = request(&mut mgr, &json!({"action":"deleteuser","userid":"admin"}))
        .await
        .unwrap();
    assert_eq!(r["result"], "Access denied");
    let r = request(&mut mgr, &json!({"action":"users"})).await.unwrap();
    assert_eq!(r["users"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn events_reach_only_those_who_may_see_them() {
    let s = server().await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    request(
        &mut admin,
        &json!({"action":"adduser","username":"bob","pass":"bobpass123"}),
    )
    .await
    .unwrap();
    let mut bob = ws::control(s.port, "bob", "bobpass123").await.unwrap();
    let r = request(
        &mut admin,
        &json!({"action":"createmesh","meshname":"hidden"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok");
    let r = request(
        &mut admin,
        &json!({"action":"createmesh","meshname":"visible"}),
    )
    .await
    .unwrap();
    let visible = r["meshid"].as_str().unwrap().to_string();
    request(
        &mut admin,
        &json!({"action":"addmeshuser","meshid":visible,"usernames":["bob"],"meshadmin":8}),
    )
    .await
    .unwrap();
    // The first event bob receives is being added to "visible"; "hidden" never shows up.
    let e = recv_any_json(&mut bob).await.unwrap();
    assert_eq!(e["action"], "event");
    assert_eq!(e["event"]["action"], "addmeshuser", "{e}");
    assert_eq!(e["event"]["meshid"], visible.as_str());
    // After being added, bob sees changes of that group live.
    request(
        &mut admin,
        &json!({"action":"editmesh","meshid":visible,"meshname":"renamed"}),
    )
    .await
    .unwrap();
    let e = recv_any_json(&mut bob).await.unwrap();
    assert_eq!(e["event"]["action"], "meshchange");
    assert_eq!(e["event"]["mesh"]["name"], "renamed");
}

#[tokio::test]
async fn authentication_failures_close_with_a_reason() {
    let s = server().await;
    // No credentials at all.
    let mut c = ws::connect(s.port, "/control.ashx", &[]).await.unwrap();
    let frame = recv_any_json(&mut c).await.unwrap();
    assert_eq!(
        frame,
        json!({"action":"close","cause":"noauth","msg":"noauth"})
    );
    match c.next().await {
        Some(Ok(Message::Close(Some(close)))) => {
            assert_eq!(close.code, CloseCode::Policy);
            assert!(
                close.reason.contains("authentication required"),
                "{close:?}"
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Malformed header.
    let mut c = ws::connect(s.port, "/control.ashx", &[("x-meshauth", "YWRtaW4=")])
        .await
        .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["msg"], "noauth-2c");
    // Wrong password.
    let bad = format!("{},{}", b64(b"admin"), b64(b"nope"));
    let mut c = ws::connect(s.port, "/control.ashx", &[("x-meshauth", &bad)])
        .await
        .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["msg"], "noauth-2d");
    // A code sent for an account without a second factor is not needed: the right
    // password signs in (as with MeshCentral), a wrong one is still refused.
    let with_token = format!(
        "{},{},{}",
        b64(b"admin"),
        b64(PASS.as_bytes()),
        b64(b"123456")
    );
    let mut c = ws::connect(s.port, "/control.ashx", &[("x-meshauth", &with_token)])
        .await
        .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["action"], "serverinfo");
    let wrong_with_token = format!("{},{},{}", b64(b"admin"), b64(b"nope"), b64(b"123456"));
    let mut c = ws::connect(
        s.port,
        "/control.ashx",
        &[("x-meshauth", &wrong_with_token)],
    )
    .await
    .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["msg"], "noauth-2d");
    // A forged auth= token falls through to "no credentials".
    let mut c = ws::connect(
        s.port,
        "/control.ashx?auth=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["msg"], "noauth");
    // Cross-site browser origin: refused before the upgrade.
    let err = ws::connect(
        s.port,
        "/control.ashx",
        &[("origin", "https://evil.example")],
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("403"), "{err}");
    // The server's own origin is fine for a browser.
    let good = format!("{},{}", b64(b"admin"), b64(PASS.as_bytes()));
    let own = format!("https://127.0.0.1:{}", s.port);
    let mut c = ws::connect(
        s.port,
        "/control.ashx",
        &[("origin", &own), ("x-meshauth", &good)],
    )
    .await
    .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["action"], "serverinfo");
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let s = TestServer::start_with(Db::Sqlite, &["--config", "/dev/null"]).await;
    s.add_user("admin", PASS, true).await;
    let bad = format!("{},{}", b64(b"admin"), b64(b"wrong-pass"));
    for _ in 0..10 {
        let mut c = ws::connect(s.port, "/control.ashx", &[("x-meshauth", &bad)])
            .await
            .unwrap();
        assert_eq!(recv_any_json(&mut c).await.unwrap()["msg"], "noauth-2d");
    }
    // Now even the right password is refused from this address until the window passes.
    let good = format!("{},{}", b64(b"admin"), b64(PASS.as_bytes()));
    let mut c = ws::connect(s.port, "/control.ashx", &[("x-meshauth", &good)])
        .await
        .unwrap();
    assert_eq!(recv_any_json(&mut c).await.unwrap()["msg"], "locked");
}

#[tokio::test]
async fn oversized_frames_close_with_1009_and_others_are_unaffected() {
    let s = server().await;
    let mut victim = ws::control(s.port, "admin", PASS).await.unwrap();
    let mut other = ws::control(s.port, "admin", PASS).await.unwrap();
    let big = format!(
        "{{\"action\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let _ = victim.send(Message::Text(big.into())).await;
    let mut saw_1009 = false;
    while let Ok(Some(msg)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), victim.next()).await
    {
        match msg {
            Ok(Message::Close(Some(close))) => {
                assert_eq!(close.code, CloseCode::Size);
                assert!(close.reason.starts_with("Frame size of "), "{close:?}");
                assert!(
                    close.reason.ends_with("exceeds maximum of 1048576"),
                    "{close:?}"
                );
                saw_1009 = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(saw_1009, "expected close 1009");
    still_alive(&mut other).await;
    send_json(&mut other, &json!({"action":"serverinfo"}))
        .await
        .unwrap();
    assert_eq!(
        ws::recv_json(&mut other).await.unwrap()["action"],
        "serverinfo"
    );
}

#[tokio::test]
async fn message_limits_are_configurable_per_endpoint() {
    let s = TestServer::start_with_config(Db::Sqlite, "[limits]\ncontrol = 4096\n").await;
    s.add_user("admin", PASS, true).await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    // Under the limit: answered.
    let small = json!({"action": "ping", "pad": "x".repeat(3000)});
    assert_eq!(request(&mut c, &small).await.unwrap()["action"], "pong");
    let big = json!({"action": "ping", "pad": "x".repeat(5000)}).to_string();
    let _ = c.send(Message::Text(big.into())).await;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), c.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(close)))) => {
                assert_eq!(close.code, CloseCode::Size);
                assert!(
                    close.reason.ends_with("exceeds maximum of 4096"),
                    "{close:?}"
                );
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a 1009 close, got {other:?}"),
        }
    }
}

/// A message split over continuation frames is reassembled and answered; one whose frames
/// are each small but whose sum is over the limit is closed with 1009 like a single big
/// frame.
#[tokio::test]
async fn fragmented_messages_are_reassembled_and_their_total_is_limited() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let s = TestServer::start_with_config(Db::Sqlite, "[limits]\ncontrol = 4096\n").await;
    s.add_user("admin", PASS, true).await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();

    let whole = r#"{"action":"ping","responseid":"frag"}"#.as_bytes();
    let parts = [&whole[..10], &whole[10..25], &whole[25..]];
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        c.send(Message::Frame(Frame::message(
            part.to_vec(),
            opcode,
            i == parts.len() - 1,
        )))
        .await
        .unwrap();
    }
    let pong = ws::recv_json(&mut c).await.unwrap();
    assert_eq!(
        (pong["action"].as_str(), pong["responseid"].as_str()),
        (Some("pong"), Some("frag"))
    );

    // Three 3,000-byte fragments: each under the 4,096-byte limit, together over it.
    for i in 0..3 {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        if c.send(Message::Frame(Frame::message(
            vec![b'x'; 3000],
            opcode,
            i == 2,
        )))
        .await
        .is_err()
        {
            break;
        }
    }
    let mut closed = None;
    while let Ok(Some(msg)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), c.next()).await
    {
        if let Ok(Message::Close(Some(close))) = msg {
            closed = Some(close);
            break;
        }
    }
    let close = closed.expect("close frame for the over-size fragmented message");
    assert_eq!(close.code, CloseCode::Size);
    assert!(
        close.reason.ends_with("exceeds maximum of 4096"),
        "{close:?}"
    );
    // The server is fine.
    let mut again = ws::control(s.port, "admin", PASS).await.unwrap();
    still_alive(&mut again).await;
}
