//! `/meshrelay.ashx`: every refusal has its close code and reason; pairing keeps frame
//! types; one side closing closes the other; docs/protocol/control.md §3.2's URL forms work.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_core::Domain;
use ironmesh_server::auth::cookie::{TokenCipher, KEY_LEN};
use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, b64, Ws};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

async fn server() -> TestServer {
    let s = TestServer::start_with_config(Db::Sqlite, "relay_peer_timeout_secs = 2\n").await;
    s.add_user("admin", PASS, true).await;
    s
}

fn auth_header(user: &str, pass: &str) -> String {
    format!("{},{}", b64(user.as_bytes()), b64(pass.as_bytes()))
}

async fn relay(s: &TestServer, query: &str, user: Option<(&str, &str)>) -> Ws {
    let header = user.map(|(u, p)| auth_header(u, p));
    let headers: Vec<(&str, &str)> = header.iter().map(|h| ("x-meshauth", h.as_str())).collect();
    ws::connect(s.port, &format!("/meshrelay.ashx?{query}"), &headers)
        .await
        .unwrap()
}

/// The close code and reason the server ends a socket with.
async fn closed_with(c: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), c.next())
            .await
            .expect("no close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => return (0, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error instead of close: {e}"),
        }
    }
}

async fn expect_text(c: &mut Ws, want: &str) {
    match tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), want),
        other => panic!("expected text {want:?}, got {other:?}"),
    }
}

async fn cookie_cipher(s: &TestServer) -> TokenCipher {
    let domain = Domain::open(&s.database_url).await.unwrap();
    let key = domain.sealing_key(KEY_LEN).await.unwrap();
    domain.close().await;
    TokenCipher::new(&key).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn refusals_have_codes_and_reasons() {
    let s = server().await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let mut agent = TestAgent::start(&fetch_msh(&s, &group).await).await;
    let (node, _) = agent.wait_online().await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    for (name, rights) in [("outsider", None), ("noterm", Some(8 | 512))] {
        let r = ws::request(
            &mut admin,
            &json!({"action":"adduser","username":name,"pass":"longpass-1"}),
        )
        .await
        .unwrap();
        assert_eq!(r["result"], "ok");
        if let Some(rights) = rights {
            ws::request(&mut admin, &json!({"action":"addmeshuser","meshid":group,"usernames":[name],"meshadmin":rights})).await.unwrap();
        }
    }
    let enc = |t: &str| {
        t.replace('$', "%24")
            .replace('@', "%40")
            .replace('/', "%2F")
    };

    /// (query, user, expected close code, expected reason fragment)
    type Case<'a> = (String, Option<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("id=x&p=1".into(), None, 4401, "authentication failed"),
        (
            "p=1".into(),
            Some(("admin", PASS)),
            4400,
            "missing relay id",
        ),
        (
            "nodeid=node//nosuchdevice&p=1".into(),
            Some(("admin", PASS)),
            4404,
            "unknown device",
        ),
        (
            format!("nodeid={}&p=1", enc(&node)),
            Some(("outsider", "longpass-1")),
            4404,
            "unknown device",
        ),
        (
            format!("nodeid={}&p=1", enc(&node)),
            Some(("noterm", "longpass-1")),
            4403,
            "terminal is not allowed",
        ),
        (
            "id=abc&rauth=garbage".into(),
            None,
            4401,
            "invalid relay token",
        ),
        (
            "id=lonely&p=1".into(),
            Some(("admin", PASS)),
            4408,
            "peer never arrived",
        ),
    ];
    for (query, user, code, reason) in cases {
        let mut c = relay(&s, &query, user).await;
        let (got, why) = closed_with(&mut c).await;
        assert_eq!(got, code, "{query}: {why}");
        assert!(why.contains(reason), "{query}: {why}");
    }

    // A page of another site cannot open a relay with the user's browser credentials.
    let err = ws::connect(
        s.port,
        "/meshrelay.ashx?id=x&p=1",
        &[("origin", "https://evil.example")],
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("403"), "{err}");

    // Relay tokens: expired, and single-use ones presented twice.
    let cipher = cookie_cipher(&s).await;
    let old = cipher.seal(
        json!({"ruserid":"user//admin"})
            .as_object()
            .unwrap()
            .clone(),
        now() - 241 * 60,
    );
    let mut c = relay(&s, &format!("id=t1&rauth={old}"), None).await;
    let (code, why) = closed_with(&mut c).await;
    assert_eq!((code, why.as_str()), (4410, "relay token expired"));
    let once = cipher.seal(
        json!({"ruserid":"user//admin","rid":"t2","nid":node})
            .as_object()
            .unwrap()
            .clone(),
        now(),
    );
    let mut first = relay(&s, &format!("id=t2&rauth={once}"), None).await;
    let mut second = relay(&s, &format!("id=t2&rauth={once}"), None).await;
    let (code, why) = closed_with(&mut second).await;
    assert_eq!((code, why.as_str()), (4409, "relay token already used"));
    let (code, _) = closed_with(&mut first).await;
    assert_eq!(code, 4408, "the first one waited alone");
    let mismatched = cipher.seal(
        json!({"ruserid":"user//admin","rid":"t3"})
            .as_object()
            .unwrap()
            .clone(),
        now(),
    );
    let mut c = relay(&s, &format!("id=other&rauth={mismatched}"), None).await;
    assert_eq!(closed_with(&mut c).await.0, 4401);

    // Offline device (once the server has seen its agent go).
    agent.kill().await;
    wait_until(Duration::from_secs(15), "the device offline", async || {
        ws::node_conn(&mut admin, &node).await == Some(0)
    })
    .await;
    let mut c = relay(
        &s,
        &format!("nodeid={}&p=1", enc(&node)),
        Some(("admin", PASS)),
    )
    .await;
    let (code, why) = closed_with(&mut c).await;
    assert_eq!(code, 4412);
    assert!(why.contains("is offline"), "{why}");
}

#[tokio::test]
async fn pairing_keeps_frame_types_and_closes_both_sides() {
    let s = server().await;
    let mut a = relay(&s, "id=pair1&p=5", Some(("admin", PASS))).await;
    let mut b = relay(&s, "id=pair1&p=5", Some(("admin", PASS))).await;
    expect_text(&mut a, "c").await;
    expect_text(&mut b, "c").await;
    a.send(Message::Text("hello".into())).await.unwrap();
    a.send(Message::Binary(vec![0, 159, 146, 150].into()))
        .await
        .unwrap();
    b.send(Message::Binary(b"{not text".to_vec().into()))
        .await
        .unwrap();
    match b.next().await.unwrap().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "hello"),
        other => panic!("text became {other:?}"),
    }
    match b.next().await.unwrap().unwrap() {
        Message::Binary(d) => assert_eq!(&d[..], &[0, 159, 146, 150]),
        other => panic!("binary became {other:?}"),
    }
    match a.next().await.unwrap().unwrap() {
        Message::Binary(d) => assert_eq!(&d[..], b"{not text"),
        other => panic!("binary became {other:?}"),
    }
    // A third socket with the same id is refused.
    let mut c = relay(&s, "id=pair1&p=5", Some(("admin", PASS))).await;
    assert_eq!(
        closed_with(&mut c).await,
        (4409, "relay id already used".into())
    );
    // Closing one side closes the other, with the closer's reason.
    a.send(Message::Close(Some(
        tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000u16.into(),
            reason: "done here".into(),
        },
    )))
    .await
    .unwrap();
    assert_eq!(closed_with(&mut b).await, (1000, "done here".into()));

    // An over-size message: its sender gets 1009 naming both sizes, the peer is told why.
    let mut big_a = relay(&s, "id=pair3&p=5", Some(("admin", PASS))).await;
    let mut big_b = relay(&s, "id=pair3&p=5", Some(("admin", PASS))).await;
    expect_text(&mut big_a, "c").await;
    expect_text(&mut big_b, "c").await;
    let _ = big_a.send(Message::Binary(vec![1u8; 5 << 20].into())).await;
    let (code, why) = closed_with(&mut big_a).await;
    assert_eq!(code, 1009, "{why}");
    assert!(
        why.starts_with("Frame size of ") && why.ends_with("exceeds maximum of 4194304"),
        "{why}"
    );
    assert_eq!(
        closed_with(&mut big_b).await,
        (1000, "peer sent a message over the size limit".into())
    );

    // Two different users cannot pair.
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    ws::request(
        &mut admin,
        &json!({"action":"adduser","username":"eve","pass":"eve-pass-1"}),
    )
    .await
    .unwrap();
    // Whichever finishes logging in second is refused; the first keeps waiting for its
    // rightful peer, then times out.
    let mut x = relay(&s, "id=pair2", Some(("admin", PASS))).await;
    let mut y = relay(&s, "id=pair2", Some(("eve", "eve-pass-1"))).await;
    let (mut outcomes, mut reasons) = (Vec::new(), Vec::new());
    for c in [&mut x, &mut y] {
        let (code, why) = closed_with(c).await;
        outcomes.push(code);
        reasons.push(why);
    }
    outcomes.sort();
    assert_eq!(outcomes, [4403, 4408], "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("another user")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn relay_guide_url_forms_reach_the_device() {
    let s = server().await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let mut agent = TestAgent::start(&fetch_msh(&s, &group).await).await;
    let (node, _) = agent.wait_online().await;
    let bare = node.trim_start_matches("node//").to_string();
    let basic = b64(format!("admin:{PASS}").as_bytes());
    // The device as `id`, in each form the guide lists, URL-encoded or not; base64
    // user:password in `auth`.
    let forms = [
        format!("id=@{bare}&auth={basic}&p=1"),
        format!(
            "id={}&auth={basic}&p=1",
            bare.replace('$', "%24").replace('@', "%40")
        ),
        format!("id=node//{bare}&auth={basic}&p=1"),
        format!(
            "nodeid=node%2F%2F{}&auth={basic}&p=1",
            bare.replace('$', "%24").replace('@', "%40")
        ),
        format!(
            "nodeid=@{bare}&user=admin&pass={}&p=1",
            PASS.replace('!', "%21")
        ),
    ];
    for query in forms {
        let mut c = ws::connect(s.port, &format!("/meshrelay.ashx?{query}"), &[])
            .await
            .unwrap();
        expect_text(&mut c, "c").await;
        c.send(Message::Text("1".into())).await.unwrap();
        c.send(Message::Binary(b"echo form-$((7*6))\n".to_vec().into()))
            .await
            .unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !String::from_utf8_lossy(&seen).contains("form-42") {
            match tokio::time::timeout_at(deadline, c.next()).await {
                Ok(Some(Ok(Message::Binary(d)))) => seen.extend_from_slice(&d),
                Ok(Some(Ok(_))) => {}
                other => panic!(
                    "{query}: no output ({other:?}): {}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
        // Ending the session from the user side ends the shell and the agent's socket.
        c.send(Message::Close(None)).await.unwrap();
    }
}
