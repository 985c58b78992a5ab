//! The server holds a desktop session's user side to its rights, whatever the agent does
//! (docs/protocol/desktop.md §5): a view-only viewer's keyboard and mouse never leave the
//! server, a protocol the URL did not name is checked again when it starts, malformed
//! commands from a view-only viewer end its session with a reason, and the session is in
//! the device's events with its bytes. The agent side here is a bare relay socket holding a
//! relay token, so only the server can be filtering.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_core::Domain;
use ironmesh_proto::desktop::{buttons, Deframer, KeyAction, ToAgent};
use ironmesh_proto::rights::MeshRights;
use ironmesh_server::auth::cookie::{TokenCipher, KEY_LEN};
use ironmesh_testkit::agent::{add_member, create_group, fetch_msh, TestAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, b64, Ws};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";
const USER_PASS: &str = "user-pass-1";

async fn relay(s: &TestServer, query: &str, user: Option<&str>) -> Ws {
    let header = user.map(|u| format!("{},{}", b64(u.as_bytes()), b64(USER_PASS.as_bytes())));
    let headers: Vec<(&str, &str)> = header.iter().map(|h| ("x-meshauth", h.as_str())).collect();
    ws::connect(s.port, &format!("/meshrelay.ashx?{query}"), &headers)
        .await
        .unwrap()
}

async fn next(c: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("no error")
}

async fn closed_with(c: &mut Ws) -> (u16, String) {
    loop {
        match next(c).await {
            Message::Close(Some(f)) => return (u16::from(f.code), f.reason.to_string()),
            Message::Close(None) => return (0, String::new()),
            _ => continue,
        }
    }
}

/// A user-side socket for `user` on `node` and a bare agent-side socket with a relay token,
/// paired; the user has sent the protocol number `start`, which the agent side got.
async fn paired(
    s: &TestServer,
    cipher: &TokenCipher,
    node: &str,
    user: &str,
    url_protocol: u32,
    start: &str,
) -> (Ws, Ws) {
    let id = format!("r{}", rand_id());
    let enc = |t: &str| t.replace('$', "%24").replace('@', "%40");
    let mut viewer = relay(
        s,
        &format!("nodeid={}&id={id}&p={url_protocol}", enc(node)),
        Some(user),
    )
    .await;
    let token = cipher.seal(
        json!({"ruserid": format!("user//{user}"), "rid": id, "nid": node})
            .as_object()
            .unwrap()
            .clone(),
        now(),
    );
    let mut agent = relay(s, &format!("id={id}&rauth={token}"), None).await;
    for c in [&mut viewer, &mut agent] {
        assert_eq!(next(c).await, Message::Text("c".into()));
    }
    viewer.send(Message::Text(start.into())).await.unwrap();
    (viewer, agent)
}

fn rand_id() -> u64 {
    rand::random()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn commands(frame: &Message) -> Vec<ToAgent> {
    let Message::Binary(b) = frame else {
        panic!("expected binary, got {frame:?}")
    };
    let mut d = Deframer::default();
    d.push(b);
    let mut out = Vec::new();
    while let Some(raw) = d.next_command().unwrap() {
        out.push(ToAgent::decode(&raw).unwrap());
    }
    out
}

fn binary(cmds: &[ToAgent]) -> Message {
    let mut out = Vec::new();
    for c in cmds {
        c.encode(&mut out);
    }
    Message::Binary(out.into())
}

#[tokio::test]
async fn desktop_rights_are_held_by_the_server() {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "desks").await;
    let mut device = TestAgent::start(&fetch_msh(&s, &group).await).await;
    let (node, _) = device.wait_online().await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    for (user, rights) in [
        (
            "viewer",
            MeshRights::REMOTE_CONTROL | MeshRights::REMOTE_VIEW_ONLY,
        ),
        (
            "nodesk",
            MeshRights::REMOTE_CONTROL | MeshRights::NO_DESKTOP,
        ),
        ("operator", MeshRights::REMOTE_CONTROL),
    ] {
        s.add_user(user, USER_PASS, false).await;
        add_member(&s, ("admin", PASS), &group, user, rights).await;
    }
    let domain = Domain::open(&s.database_url).await.unwrap();
    let cipher = TokenCipher::new(&domain.sealing_key(KEY_LEN).await.unwrap()).unwrap();
    domain.close().await;

    let key = ToAgent::Key {
        action: KeyAction::Down,
        code: 65,
    };
    let click = ToAgent::Mouse {
        buttons: buttons::LEFT_DOWN,
        x: 10,
        y: 10,
    };
    let settings = ToAgent::Compression {
        image: 1,
        quality: 50,
        scaling: 1024,
        frame_ms: 100,
    };

    // View only: settings and refreshes reach the agent, keys, clicks, wheel and
    // Ctrl-Alt-Del do not; JSON control messages pass.
    let (mut viewer, mut agent) = paired(&s, &cipher, &node, "viewer", 2, "2").await;
    assert_eq!(next(&mut agent).await, Message::Text("2".into()));
    viewer
        .send(binary(&[
            key.clone(),
            settings.clone(),
            click.clone(),
            ToAgent::Refresh,
        ]))
        .await
        .unwrap();
    viewer
        .send(binary(&[
            ToAgent::CtrlAltDel,
            ToAgent::Wheel {
                x: 1,
                y: 1,
                delta: 120,
            },
        ]))
        .await
        .unwrap();
    viewer
        .send(Message::Text(
            r#"{"ctrlChannel":"102938","type":"ping"}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        commands(&next(&mut agent).await),
        [settings.clone(), ToAgent::Refresh]
    );
    match next(&mut agent).await {
        Message::Text(t) => assert!(t.contains("ping"), "{t}"),
        other => panic!("the input-only frame was forwarded: {other:?}"),
    }
    // Pictures still flow to the viewer.
    agent
        .send(Message::Binary(vec![0, 7, 0, 8, 4, 0, 3, 0].into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut viewer).await,
        Message::Binary(vec![0, 7, 0, 8, 4, 0, 3, 0].into())
    );
    // A malformed command ends the session, with a reason for each side.
    viewer
        .send(Message::Binary(vec![0, 1, 0, 2].into()))
        .await
        .unwrap();
    let (code, why) = closed_with(&mut viewer).await;
    assert_eq!(code, 4400, "{why}");
    assert!(why.contains("less than its 4-byte header"), "{why}");
    assert_eq!(
        closed_with(&mut agent).await,
        (1000, "the server ended the session".into())
    );

    // Full control: input goes through untouched.
    let (mut operator, mut agent) = paired(&s, &cipher, &node, "operator", 2, "2").await;
    assert_eq!(next(&mut agent).await, Message::Text("2".into()));
    operator
        .send(binary(&[key.clone(), click.clone()]))
        .await
        .unwrap();
    assert_eq!(commands(&next(&mut agent).await), [key.clone(), click]);
    operator.send(Message::Close(None)).await.unwrap();
    let _ = closed_with(&mut agent).await;

    // No desktop right: refused at admission, and when a terminal URL starts a desktop.
    let mut refused = relay(
        &s,
        &format!(
            "nodeid={}&p=2",
            node.replace('$', "%24").replace('@', "%40")
        ),
        Some("nodesk"),
    )
    .await;
    let (code, why) = closed_with(&mut refused).await;
    assert_eq!(
        (code, why.as_str()),
        (
            4403,
            "remote desktop is not allowed for this user on this device"
        )
    );
    let (mut sneaky, mut agent) = paired(&s, &cipher, &node, "nodesk", 1, "2").await;
    let (code, why) = closed_with(&mut sneaky).await;
    assert_eq!(
        (code, why.as_str()),
        (
            4403,
            "remote desktop is not allowed for this user on this device"
        )
    );
    match next(&mut agent).await {
        Message::Close(Some(f)) => assert_eq!(f.reason.as_str(), "the server ended the session"),
        Message::Text(t) => panic!("the desktop start frame reached the agent: {t}"),
        other => panic!("{other:?}"),
    }

    // The viewer's session is in the device's events: started, and ended with its bytes.
    let events = wait_until(
        Duration::from_secs(15),
        "the desktop session's end recorded",
        async || {
            let reply = ws::request(
                &mut admin,
                &json!({"action":"events","nodeid":node,"limit":200}),
            )
            .await
            .map_err(|e| e.to_string())?;
            let events: Vec<Value> = reply["events"].as_array().cloned().unwrap_or_default();
            let ended = events.iter().any(|e| {
                e["msg"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Ended desktop session")
                    && e["username"] == "viewer"
            });
            if ended {
                Ok(events)
            } else {
                Err(format!("{reply}"))
            }
        },
    )
    .await;
    let started = events
        .iter()
        .find(|e| e["msg"] == "Started desktop session" && e["username"] == "viewer")
        .expect("the start is recorded");
    assert_eq!(started["protocol"], 2);
    let ended = events
        .iter()
        .find(|e| {
            e["msg"]
                .as_str()
                .unwrap_or("")
                .starts_with("Ended desktop session")
                && e["username"] == "viewer"
        })
        .unwrap();
    assert!(ended["bytesin"].as_u64().unwrap() >= 30, "{ended}");
    assert_eq!(ended["bytesout"].as_u64(), Some(8), "{ended}");
    device.kill().await;
}
