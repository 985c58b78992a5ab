//! Security defects found by trying ironmesh as a new user would; each test failed before
//! its fix. Numbers refer to the list in SECURITY.md ("Defects fixed").

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_client::connect::Socket as AgentSocket;
use ironmesh_testkit::agent::{create_group, fetch_msh, SimAgent};
use ironmesh_testkit::http;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::source::sign_in_from;
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, b64, Ws};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";
const BOB_PASS: &str = "bob-pass-1";

async fn server() -> TestServer {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    s.add_user("bob", BOB_PASS, false).await;
    s
}

/// Sets a password with the server's command line (`account passwd`): another process.
async fn passwd_from_command_line(s: &TestServer, user: &str, password: &str) {
    let out = s
        .account(
            &["passwd", user, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn meshauth(user: &str, pass: &str) -> String {
    format!("{},{}", b64(user.as_bytes()), b64(pass.as_bytes()))
}

/// Opens the control channel with these headers (and query); `Ok` after the greeting,
/// `Err(close msg)` when refused.
async fn open(s: &TestServer, query: &str, headers: &[(&str, &str)]) -> Result<Ws, String> {
    let mut c = ws::connect(s.port, &format!("/control.ashx{query}"), headers)
        .await
        .unwrap();
    let first = ws::recv_json(&mut c).await.map_err(|e| e.to_string())?;
    if first["action"] == "close" {
        return Err(first["msg"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(first["action"], "serverinfo", "{first}");
    ws::recv_json(&mut c).await.unwrap();
    Ok(c)
}

/// The `close` action (if any) and close frame a socket ends with.
async fn ended_with(c: &mut Ws) -> (Option<String>, u16, String) {
    let mut action = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), c.next())
            .await
            .expect("the server did not end the session in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["action"] == "close" {
                    action = v["msg"].as_str().map(str::to_string);
                }
            }
            Some(Ok(Message::Close(Some(f)))) => {
                return (action, u16::from(f.code), f.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                return (action, 0, String::new())
            }
            Some(Ok(_)) => {}
        }
    }
}

async fn ask(c: &mut Ws, mut req: Value) -> Value {
    req["responseid"] = "t".into();
    ws::send_json(c, &req).await.unwrap();
    loop {
        let v = ws::recv_any_json(c).await.unwrap();
        if v["responseid"] == "t" {
            return v;
        }
    }
}

/// Signs in through the form; returns the session cookie value.
async fn form_login(s: &TestServer, user: &str, pass: &str) -> String {
    let origin = format!("https://127.0.0.1:{}", s.port);
    let body = format!("username={user}&password={pass}");
    let r = http::request(
        s.port,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", &origin),
        ],
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn cookie_header(value: &str) -> String {
    format!("ironmesh_session={value}")
}

// 1. A password change ends every session, cookie and token of the account.

#[tokio::test]
async fn an_administrators_password_reset_ends_every_way_in() {
    let s = server().await;
    let auth = meshauth("bob", BOB_PASS);
    let mut socket = open(&s, "", &[("x-meshauth", &auth)]).await.unwrap();
    let cookie = form_login(&s, "bob", BOB_PASS).await;
    let mut by_cookie = open(&s, "", &[("Cookie", &cookie_header(&cookie))])
        .await
        .unwrap();
    let token = ask(
        &mut socket,
        json!({"action":"createLoginToken","name":"ci"}),
    )
    .await;
    let token_auth = meshauth(
        token["tokenUser"].as_str().unwrap(),
        token["tokenPass"].as_str().unwrap(),
    );
    let auth_token = ask(&mut socket, json!({"action":"authcookie"})).await["cookie"]
        .as_str()
        .unwrap()
        .to_string();
    // All of them work before the reset.
    open(&s, &format!("?auth={auth_token}"), &[]).await.unwrap();
    open(&s, "", &[("x-meshauth", &token_auth)]).await.unwrap();

    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let r = ask(
        &mut admin,
        json!({"action":"changeuserpass","userid":"bob","pass":"new-bob-pass-2"}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");

    for c in [&mut socket, &mut by_cookie] {
        assert_eq!(
            ended_with(c).await,
            (
                Some("sessionended".to_string()),
                1008,
                "password changed: sign in again".to_string()
            )
        );
    }
    assert_eq!(
        open(&s, "", &[("Cookie", &cookie_header(&cookie))])
            .await
            .err(),
        Some("noauth".to_string())
    );
    assert_eq!(
        open(&s, &format!("?auth={auth_token}"), &[]).await.err(),
        Some("noauth".to_string())
    );
    assert_eq!(
        open(&s, "", &[("x-meshauth", &token_auth)]).await.err(),
        Some("noauth-2d".to_string())
    );
    open(
        &s,
        "",
        &[("x-meshauth", &meshauth("bob", "new-bob-pass-2"))],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_self_change_keeps_the_current_session_and_ends_the_others() {
    let s = server().await;
    let auth = meshauth("bob", BOB_PASS);
    let mut current = open(&s, "", &[("x-meshauth", &auth)]).await.unwrap();
    let mut other = open(&s, "", &[("x-meshauth", &auth)]).await.unwrap();
    let wrong = ask(
        &mut current,
        json!({"action":"changepassword","oldpass":"not-it","newpass":"new-bob-pass-2"}),
    )
    .await;
    assert_eq!(wrong["result"], "Incorrect current password", "{wrong}");
    let r = ask(
        &mut current,
        json!({"action":"changepassword","oldpass":BOB_PASS,"newpass":"new-bob-pass-2"}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    assert_eq!(
        ended_with(&mut other).await.0.as_deref(),
        Some("sessionended")
    );
    // The current session goes on.
    assert_eq!(
        ask(&mut current, json!({"action":"ping"})).await["action"],
        "pong"
    );
    assert_eq!(
        open(&s, "", &[("x-meshauth", &auth)]).await.err(),
        Some("noauth-2d".to_string())
    );
}

#[tokio::test]
async fn a_password_set_from_the_server_command_line_ends_open_sessions() {
    let s = server().await;
    let mut bob = open(&s, "", &[("x-meshauth", &meshauth("bob", BOB_PASS))])
        .await
        .unwrap();
    passwd_from_command_line(&s, "bob", "cli-bob-pass-3").await;
    // The command line runs in another process: the session notices at its next request.
    ws::send_json(&mut bob, &json!({"action":"ping"}))
        .await
        .unwrap();
    assert_eq!(
        ended_with(&mut bob).await.0.as_deref(),
        Some("sessionended")
    );
}

// 2. Failed logins never lock the real user out.

#[tokio::test]
async fn guesses_from_many_addresses_do_not_lock_the_owner_out() {
    let s = server().await;
    let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
    // 30 wrong passwords for bob from 30 addresses, and 3 addresses × 10 for admin.
    let mut guesses = Vec::new();
    for n in 2..32u8 {
        guesses.push(("bob", ip(n)));
    }
    for n in 40..43u8 {
        for _ in 0..10 {
            guesses.push(("admin", ip(n)));
        }
    }
    let port = s.port;
    let results =
        futures_util::future::join_all(guesses.into_iter().map(|(user, from)| async move {
            sign_in_from(from, port, user, "wrong-guess")
                .await
                .unwrap()
                .err()
        }))
        .await;
    assert!(
        results.iter().all(|r| r.is_some()),
        "a wrong password was accepted"
    );
    // An address that failed ten times for a name is refused for that name ...
    assert_eq!(
        sign_in_from(ip(40), port, "admin", PASS)
            .await
            .unwrap()
            .err(),
        Some("locked".to_string())
    );
    // ... but the owners, from their own addresses, get in.
    assert!(sign_in_from(ip(99), port, "bob", BOB_PASS)
        .await
        .unwrap()
        .is_ok());
    assert!(sign_in_from(ip(98), port, "admin", PASS)
        .await
        .unwrap()
        .is_ok());
}

// 3. Sign-out is a same-origin POST.

#[tokio::test]
async fn signing_out_takes_a_same_origin_post() {
    let s = server().await;
    let cookie = form_login(&s, "bob", BOB_PASS).await;
    let with_cookie = cookie_header(&cookie);
    let get = http::request(s.port, "GET", "/logout", &[("Cookie", &with_cookie)], b"")
        .await
        .unwrap();
    assert_eq!(get.status, 200);
    assert!(get.text().contains("method=\"post\""), "{}", get.text());
    open(&s, "", &[("Cookie", &with_cookie)]).await.unwrap();
    let foreign = http::request(
        s.port,
        "POST",
        "/logout",
        &[("Cookie", &with_cookie), ("Origin", "https://evil.example")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(foreign.status, 403);
    open(&s, "", &[("Cookie", &with_cookie)]).await.unwrap();
    let own = format!("https://127.0.0.1:{}", s.port);
    let post = http::request(
        s.port,
        "POST",
        "/logout",
        &[("Cookie", &with_cookie), ("Origin", &own)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(post.status, 303);
    assert_eq!(
        open(&s, "", &[("Cookie", &with_cookie)]).await.err(),
        Some("noauth".to_string())
    );
}

/// The next JSON object the server sends an agent (skipping binary commands).
async fn agent_receives(socket: &mut AgentSocket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("agent got nothing")
            .expect("agent socket ended")
            .unwrap();
        let bytes = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) => t.as_bytes().to_vec(),
            _ => continue,
        };
        if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&bytes) {
            return v;
        }
    }
}

async fn agent_sends(socket: &mut AgentSocket, v: Value) {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .unwrap();
}

async fn sim_agent(s: &TestServer, group: &str) -> (SimAgent, AgentSocket) {
    let (identity, _) = AgentIdentity::generate(2048).unwrap();
    let sim = SimAgent::new(Arc::new(identity), &fetch_msh(s, group).await, s.port);
    let (socket, _) = sim.connect(None).await.unwrap();
    (sim, socket)
}

/// The agent's `ping` is answered in order: once it has its pong, the server has handled
/// everything the agent sent before.
async fn agent_sync(socket: &mut AgentSocket) {
    agent_sends(socket, json!({"action":"ping"})).await;
    loop {
        if agent_receives(socket).await["action"] == "pong" {
            return;
        }
    }
}

// 4. Agents reach only sessions that asked their device.

#[tokio::test]
async fn an_agent_cannot_write_into_a_console_that_did_not_ask_it() {
    let s = server().await;
    let mine = create_group(&s, "admin", PASS, "mine").await;
    let theirs = create_group(&s, "admin", PASS, "theirs").await;
    let (asked, mut asked_socket) = sim_agent(&s, &mine).await;
    let (_, mut intruder) = sim_agent(&s, &theirs).await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    ws::send_json(
        &mut admin,
        &json!({"action":"msg","type":"console","value":"help","nodeid":asked.identity.node_id}),
    )
    .await
    .unwrap();
    let request = agent_receives(&mut asked_socket).await;
    let session = request["sessionid"].as_str().unwrap().to_string();

    // The other group's agent names the administrator's session, and the administrator.
    agent_sends(
        &mut intruder,
        json!({"action":"msg","type":"console","value":"forged","sessionid":session}),
    )
    .await;
    agent_sends(
        &mut intruder,
        json!({"action":"msg","type":"console","value":"forged","userid":"user//admin"}),
    )
    .await;
    agent_sync(&mut intruder).await;
    // The asked agent's answer is the first thing the console gets.
    agent_sends(
        &mut asked_socket,
        json!({"action":"msg","type":"console","value":"genuine","sessionid":session}),
    )
    .await;
    let first = ws::recv_json(&mut admin).await.unwrap();
    assert_eq!(first["value"], "genuine", "{first}");
}

// 7. Creating device groups is a site right.

#[tokio::test]
async fn new_users_cannot_create_groups_unless_configured() {
    let s = server().await;
    let mut bob = ws::control(s.port, "bob", BOB_PASS).await.unwrap();
    let r = ask(&mut bob, json!({"action":"createmesh","meshname":"b"})).await;
    assert_eq!(r["result"], "Access denied", "{r}");
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let r = ask(
        &mut admin,
        json!({"action":"adduser","username":"carol","pass":"carol-pass-1"}),
    )
    .await;
    assert_eq!(r["result"], "ok");
    let users = ask(&mut admin, json!({"action":"users"})).await;
    let carol = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "carol")
        .unwrap()
        .clone();
    assert_eq!(carol["siteadmin"].as_u64().unwrap() & 64, 64, "{carol}");

    let open_site =
        TestServer::start_with_config(Db::Sqlite, "new_users_create_groups = true\n").await;
    open_site.add_user("dave", "dave-pass-1", false).await;
    let mut dave = ws::control(open_site.port, "dave", "dave-pass-1")
        .await
        .unwrap();
    let r = ask(&mut dave, json!({"action":"createmesh","meshname":"d"})).await;
    assert_eq!(r["result"], "ok", "{r}");
}

// 8. A console that stops reading is dropped and pins no memory.

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_console_that_stops_reading_is_dropped_with_bounded_memory() {
    let s = server().await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let (sim, mut agent) = sim_agent(&s, &group).await;
    let mut stalled = ws::control(s.port, "admin", PASS).await.unwrap();
    ws::send_json(
        &mut stalled,
        &json!({"action":"msg","type":"console","value":"help","nodeid":sim.identity.node_id}),
    )
    .await
    .unwrap();
    let session = agent_receives(&mut agent).await["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = s.pid().unwrap();
    let before = rss_kib(pid);
    // 60 MiB of answers for a console that reads none of them.
    let chunk = "x".repeat(3 << 20);
    for _ in 0..20 {
        agent_sends(
            &mut agent,
            json!({"action":"msg","type":"console","value":chunk,"sessionid":session}),
        )
        .await;
    }
    agent_sync(&mut agent).await;
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    assert!(grown_mib < 120, "server grew by {grown_mib} MiB");
    // The stalled console was dropped: reading now finds the end of the connection after
    // what the kernel buffered.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled console is still connected");
    // The server is fine.
    let mut fresh = ws::control(s.port, "admin", PASS).await.unwrap();
    assert_eq!(
        ask(&mut fresh, json!({"action":"ping"})).await["action"],
        "pong"
    );
}

// 9. The gateway endpoint is off until configured; strangers cost bounded memory and no
//    storage.

#[tokio::test]
async fn the_gateway_endpoint_is_off_by_default() {
    let s = server().await;
    let r = http::request(
        s.port,
        "GET",
        "/ws/wifidogx",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn unknown_gateways_wait_in_a_capped_list_outside_the_database() {
    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s =
        TestServer::start_with_config(Db::Sqlite, &format!("[wifidog]\nplain_port = {plain}\n"))
            .await;
    s.add_user("admin", PASS, true).await;
    let url = format!("ws://127.0.0.1:{plain}/ws/wifidogx");
    let big = json!({ "blob": "y".repeat(10_000) });
    let hello = |i: usize| {
        json!({"type":"connect","device_id":format!("STRANGER-{i:02}"),"device_info":big,
               "gateway":[{"gw_id":"g","auth_mode":1}]})
        .to_string()
    };
    let mut held = Vec::new();
    for i in 0..64 {
        let (mut gw, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        gw.send(Message::Text(hello(i).into())).await.unwrap();
        held.push(gw);
    }
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let gateways = wait_until(Duration::from_secs(20), "64 gateways listed", async || {
        let list = ask(&mut admin, json!({"action":"wifidogs"})).await;
        let gateways = list["gateways"].as_array().unwrap().clone();
        if gateways.len() == 64 {
            Ok(gateways)
        } else {
            Err(format!("{} listed", gateways.len()))
        }
    })
    .await;
    assert_eq!(gateways.len(), 64);
    assert!(gateways
        .iter()
        .all(|g| g["approved"] == false && g["device_info"].is_null()));
    // The list is full: more strangers are dropped (TCP closed), the waiting ones stay.
    for i in 64..70 {
        let (mut gw, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        gw.send(Message::Text(hello(i).into())).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(10), gw.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {}
            other => panic!("stranger {i} was not dropped: {other:?}"),
        }
    }
    let list = ask(&mut admin, json!({"action":"wifidogs"})).await;
    assert_eq!(list["gateways"].as_array().unwrap().len(), 64);
    // None of them was written to the database.
    drop(held);
    s.restart().await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let list = ask(&mut admin, json!({"action":"wifidogs"})).await;
    assert_eq!(list["gateways"], json!([]));
}

// 10. Group managers cannot demote or remove members holding rights they lack.

#[tokio::test]
async fn a_group_manager_cannot_demote_or_remove_stronger_members() {
    let s = server().await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    for (name, rights) in [("mgr", 2u32), ("strong", 8 | 131072)] {
        let pass = format!("{name}-pass-1");
        ask(
            &mut admin,
            json!({"action":"adduser","username":name,"pass":pass}),
        )
        .await;
        let r = ask(
            &mut admin,
            json!({"action":"addmeshuser","meshid":group,"usernames":[name],"meshadmin":rights}),
        )
        .await;
        assert!(r["result"].as_str().unwrap().starts_with("Added"), "{r}");
    }
    let mut mgr = ws::control(s.port, "mgr", "mgr-pass-1").await.unwrap();
    let demote = ask(
        &mut mgr,
        json!({"action":"addmeshuser","meshid":group,"usernames":["strong"],"meshadmin":0}),
    )
    .await;
    assert!(
        demote["result"]
            .as_str()
            .unwrap()
            .contains("they hold rights you do not hold"),
        "{demote}"
    );
    for victim in ["strong", "admin"] {
        let r = ask(
            &mut mgr,
            json!({"action":"removemeshuser","meshid":group,"userid":victim}),
        )
        .await;
        assert_eq!(
            r["result"], "Cannot remove a member who holds rights you do not hold",
            "{r}"
        );
    }
    // Within their own rights they still manage members.
    let r = ask(
        &mut mgr,
        json!({"action":"addmeshuser","meshid":group,"usernames":["bob"],"meshadmin":2}),
    )
    .await;
    assert_eq!(r["result"], "Added user bob", "{r}");
    let r = ask(
        &mut mgr,
        json!({"action":"removemeshuser","meshid":group,"userid":"bob"}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
}

// 12. runcommands checks every device before running on any.

#[tokio::test]
async fn runcommands_runs_on_none_when_any_device_is_refused() {
    let s = server().await;
    let allowed = create_group(&s, "admin", PASS, "allowed").await;
    let forbidden = create_group(&s, "admin", PASS, "forbidden").await;
    let (a, mut a_socket) = sim_agent(&s, &allowed).await;
    let (f, _f_socket) = sim_agent(&s, &forbidden).await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    ask(
        &mut admin,
        json!({"action":"addmeshuser","meshid":allowed,"usernames":["bob"],"meshadmin":131072 | 8}),
    )
    .await;
    let mut bob = ws::control(s.port, "bob", BOB_PASS).await.unwrap();
    let r = ask(
        &mut bob,
        json!({"action":"runcommands","nodeids":[a.identity.node_id, f.identity.node_id],"type":3,"cmds":"first"}),
    )
    .await;
    assert_eq!(r["result"], "Invalid nodeid", "{r}");
    let r = ask(
        &mut bob,
        json!({"action":"runcommands","nodeids":[a.identity.node_id],"type":3,"cmds":"second"}),
    )
    .await;
    assert_eq!(r["result"], "OK", "{r}");
    // The first command never reached the allowed device.
    loop {
        let got = agent_receives(&mut a_socket).await;
        if got["action"] == "runcommands" {
            assert_eq!(got["cmds"], "second", "{got}");
            break;
        }
    }
}

// 13. Everything an agent reports is capped.

#[tokio::test]
async fn agent_reported_text_is_capped() {
    let s = server().await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let (sim, mut agent) = sim_agent(&s, &group).await;
    agent_sends(
        &mut agent,
        json!({"action":"coreinfo","value":"x","osdesc":"o".repeat(5000)}),
    )
    .await;
    agent_sends(
        &mut agent,
        json!({"action":"sysinfo","data":{"hardware":{"blob":"h".repeat(300 * 1024)}}}),
    )
    .await;
    agent_sends(
        &mut agent,
        json!({"action":"coreinfo","value":"y","osdesc":"z".repeat(2 << 20)}),
    )
    .await;
    agent_sync(&mut agent).await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let nodes = ask(&mut admin, json!({"action":"nodes"})).await;
    let node = &nodes["nodes"][&group][0];
    let osdesc = node["osdesc"].as_str().unwrap();
    // The first report, clipped; the 2 MiB one refused whole.
    assert_eq!(osdesc, "o".repeat(512));
    let sys = ask(
        &mut admin,
        json!({"action":"getsysinfo","nodeid":sim.identity.node_id}),
    )
    .await;
    assert_eq!(sys["noinfo"], true, "the oversized sysinfo was stored");
}

// 14. Secret-bearing files are private, including a database made before the first start.

#[cfg(unix)]
#[tokio::test]
async fn files_in_the_data_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = server().await;
    // `account add` ran before any client connected; the server made the rest.
    let mut checked = 0;
    for entry in std::fs::read_dir(&s.data_dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        let want = if entry.file_type().unwrap().is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode, want, "{} is {mode:o}", entry.path().display());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} files");
}

#[cfg(unix)]
#[tokio::test]
async fn a_database_made_by_account_add_before_the_first_start_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(ironmesh_testkit::binary("ironmesh-server"))
        .arg("--data")
        .arg(data.path())
        .args(["account", "add", "first", "--admin", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"first-pass-1\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = data.path().join("ironmesh.db");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "ironmesh.db is {mode:o}");
}

// 1 (continued). Relay sessions under way end too.

/// Two relay sockets of the same user paired under `id` (as the console's file sessions
/// pair), once both got the server's "c".
async fn paired_relay(s: &TestServer, id: &str, auth: &str) -> (Ws, Ws) {
    let path = format!("/meshrelay.ashx?id={id}&p=5");
    let mut a = ws::connect(s.port, &path, &[("x-meshauth", auth)])
        .await
        .unwrap();
    let mut b = ws::connect(s.port, &path, &[("x-meshauth", auth)])
        .await
        .unwrap();
    for side in [&mut a, &mut b] {
        let paired = tokio::time::timeout(Duration::from_secs(10), side.next())
            .await
            .expect("paired in time");
        assert!(
            matches!(&paired, Some(Ok(Message::Text(t))) if t.as_str() == "c"),
            "{paired:?}"
        );
    }
    (a, b)
}

#[tokio::test]
async fn a_password_reset_ends_the_users_relay_sessions() {
    let s = server().await;
    let auth = meshauth("bob", BOB_PASS);
    let (mut a, mut b) = paired_relay(&s, "bob-session", &auth).await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let r = ask(
        &mut admin,
        json!({"action":"changeuserpass","userid":"bob","pass":"new-bob-pass-2"}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    for side in [&mut a, &mut b] {
        let (_, code, reason) = ended_with(side).await;
        assert_eq!(code, 4401, "{reason}");
        assert!(reason.contains("password changed"), "{reason}");
    }
}

/// A password set from the server's command line (another process: no event reaches the
/// server) ends idle control sessions and relay sessions under way at the next account
/// recheck (`account_recheck_secs`, here 1 s), without a request from them.
#[tokio::test]
async fn a_password_set_from_the_command_line_ends_idle_sessions_and_relays() {
    let s = TestServer::start_with_config(Db::Sqlite, "account_recheck_secs = 1\n").await;
    s.add_user("bob", BOB_PASS, false).await;
    let auth = meshauth("bob", BOB_PASS);
    let mut idle = open(&s, "", &[("x-meshauth", &auth)]).await.unwrap();
    let (mut a, mut b) = paired_relay(&s, "bob-cli-session", &auth).await;
    passwd_from_command_line(&s, "bob", "cli-bob-pass-4").await;
    assert_eq!(
        ended_with(&mut idle).await.0.as_deref(),
        Some("sessionended")
    );
    for side in [&mut a, &mut b] {
        let (_, code, reason) = ended_with(side).await;
        assert_eq!(code, 4401, "{reason}");
        assert!(reason.contains("password changed"), "{reason}");
    }
    // A relay opened with the new password is not touched by later rechecks.
    let fresh = meshauth("bob", "cli-bob-pass-4");
    let (mut c, mut d) = paired_relay(&s, "bob-fresh-session", &fresh).await;
    // Kept: the time is what is tested. Two rechecks (1 s apart) must pass without ending
    // the fresh relay; no event marks a recheck that changed nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.send(Message::Text("still here".into())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), d.next())
        .await
        .expect("the fresh relay still pipes");
    assert!(
        matches!(&echoed, Some(Ok(Message::Text(t))) if t.as_str() == "still here"),
        "{echoed:?}"
    );
}
