//! Power actions, Wake-on-LAN, messages to the device's user and the power timeline,
//! driven by the real `meshctrl.js` (`devicepower`, `devicetoast`, `grouptoast`,
//! `devicemessage`) against ironmesh-agent, whose power, notification and Wake-on-LAN
//! commands are pointed at test doubles and a loopback UDP socket.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{add_member, create_group, fetch_msh, SimAgent, TestAgent};
use ironmesh_testkit::meshctrl;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::{wait_until, ws};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";
const USER_PASS: &str = "long-pass-1";

/// Text a shell would mangle: quotes, a newline, substitutions, separators.
const HOSTILE: &str = "It's \"done\"\nnext line; $(touch /tmp/pwned) `id` && echo $HOME | cat > x";

/// A program that appends its arguments (each ended by a NUL byte, then a newline) to
/// `log`: what the agent asked for, exactly.
fn recorder(dir: &Path, name: &str, log: &Path) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" >> '{}'\nprintf '\\n' >> '{}'\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The recorded calls: one list of arguments per call.
fn calls(log: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("\0\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.split('\0').map(str::to_string).collect())
        .collect()
}

async fn wait_calls(log: &Path, n: usize) -> Vec<Vec<String>> {
    wait_until(Duration::from_secs(15), "the agent's command", async || {
        let c = calls(log);
        if c.len() >= n {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await
}

async fn mc(server: &TestServer, user: &str, pass: &str, args: &[&str]) -> String {
    let out = meshctrl::run(&server.wss_url(), user, pass, args).await;
    out.stdout.trim().to_string()
}

async fn ask(c: &mut ws::Ws, mut req: Value) -> Value {
    req["responseid"] = "t".into();
    ws::send_json(c, &req).await.unwrap();
    loop {
        let v = ws::recv_any_json(c).await.unwrap();
        if v["responseid"] == "t" {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn power_and_messages_with_ironmesh_agent() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    server.add_user("viewer", USER_PASS, false).await;
    let group = create_group(&server, "admin", PASS, "g").await;
    // Remote control, but neither reset/off (262144) nor chat/notify (16384).
    add_member(&server, ("admin", PASS), &group, "viewer", 8).await;

    let tmp = tempfile::tempdir().unwrap();
    let power_log = tmp.path().join("power.log");
    let notify_log = tmp.path().join("notify.log");
    let env = vec![
        (
            "IRONMESH_AGENT_POWER_COMMAND".to_string(),
            recorder(tmp.path(), "power", &power_log),
        ),
        (
            "IRONMESH_AGENT_NOTIFY_COMMAND".to_string(),
            recorder(tmp.path(), "notify", &notify_log),
        ),
    ];
    let mut agent = TestAgent::start_with_env(&fetch_msh(&server, &group).await, env).await;
    let (node, _) = agent.wait_online().await;
    let bare = node.trim_start_matches("node//").to_string();

    // Restart, power off, sleep: meshctrl prints MeshCentral's "ok", the agent runs
    // systemctl's verb.
    for (flag, verb) in [
        ("--reset", "reboot"),
        ("--off", "poweroff"),
        ("--sleep", "suspend"),
    ] {
        assert_eq!(
            mc(
                &server,
                "admin",
                PASS,
                &["devicepower", flag, "--id", &bare]
            )
            .await,
            "ok"
        );
        let c = wait_calls(&power_log, 1).await;
        assert_eq!(c, vec![vec![verb.to_string()]]);
        std::fs::remove_file(&power_log).unwrap();
    }
    // Intel AMT operations are refused by name; unknown and unreachable devices too.
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--amtreset", "--id", &bare]
        )
        .await,
        "Intel AMT power actions are not supported"
    );
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--reset", "--id", "nosuchdevice"]
        )
        .await,
        "Invalid nodeid"
    );
    assert_eq!(
        mc(
            &server,
            "viewer",
            USER_PASS,
            &["devicepower", "--reset", "--id", &bare]
        )
        .await,
        "Access denied"
    );

    // A notification and a message box: title and text arrive intact, as arguments.
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &[
                "devicetoast",
                "--id",
                &bare,
                "--title",
                "T'1 \"x\"",
                "--msg",
                HOSTILE
            ]
        )
        .await,
        "ok"
    );
    let c = wait_calls(&notify_log, 1).await;
    assert_eq!(c, vec![vec!["T'1 \"x\"".to_string(), HOSTILE.to_string()]]);
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &[
                "devicemessage",
                "--id",
                &bare,
                "--title",
                "Box",
                "--msg",
                "m2 $(id)"
            ]
        )
        .await,
        "OK"
    );
    let c = wait_calls(&notify_log, 2).await;
    assert_eq!(c[1], vec!["Box".to_string(), "m2 $(id)".to_string()]);
    // grouptoast lists the group's devices, then toasts them all.
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["grouptoast", "--id", &group, "--msg", "to all"]
        )
        .await,
        "ok"
    );
    let c = wait_calls(&notify_log, 3).await;
    assert_eq!(c[2], vec!["MeshCentral".to_string(), "to all".to_string()]);
    // Refusals: no chat/notify right, unknown device — MeshCentral's "Access Denied" for both.
    assert_eq!(
        mc(
            &server,
            "viewer",
            USER_PASS,
            &["devicetoast", "--id", &bare, "--msg", "no"]
        )
        .await,
        "Access Denied"
    );
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicetoast", "--id", "nosuchdevice", "--msg", "no"]
        )
        .await,
        "Access Denied"
    );

    // Malformed requests get a precise answer, and the connection goes on.
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let cases = [
        (
            json!({"action":"poweraction","nodeids":[node],"actiontype":7}),
            "Invalid action type: expected 2 (power off), 3 (restart) or 4 (sleep)",
        ),
        (
            json!({"action":"poweraction","nodeids":[node],"actiontype":"3"}),
            "Invalid action type: expected 2 (power off), 3 (restart) or 4 (sleep)",
        ),
        (
            json!({"action":"poweraction","nodeids":node,"actiontype":3}),
            "Invalid nodeids",
        ),
        (
            json!({"action":"poweraction","nodeids":[],"actiontype":3}),
            "Invalid nodeids",
        ),
        (
            json!({"action":"wakedevices","nodeids":[1]}),
            "Invalid nodeids",
        ),
        (
            json!({"action":"toast","nodeids":[node]}),
            "Invalid message",
        ),
        (
            json!({"action":"toast","nodeids":[node],"msg":""}),
            "Invalid message",
        ),
        (
            json!({"action":"toast","nodeids":[node],"msg":"x".repeat(4097)}),
            "Invalid message",
        ),
        (
            json!({"action":"msg","type":"messagebox","nodeid":node,"title":"t","msg":5}),
            "Invalid message",
        ),
        (
            json!({"action":"msg","type":"messagebox","nodeid":node,"msg":"m","timeout":"soon"}),
            "Field timeout must be a number of milliseconds",
        ),
        (json!({"action":"powertimeline"}), "Missing field: nodeid"),
        (
            json!({"action":"powertimeline","nodeid":"node//nosuch"}),
            "Invalid device id",
        ),
    ];
    for (req, want) in cases {
        let r = ask(&mut c, req.clone()).await;
        assert_eq!(r["result"], want, "{req}: {r}");
        assert_eq!(r["failed"], true, "{r}");
    }
    // None of those reached the agent.
    assert_eq!(calls(&notify_log).len(), 3);
    assert!(calls(&power_log).is_empty());

    // The audit trail, as MeshCentral's agents log these (messages 25 and 26).
    let events = mc(&server, "admin", PASS, &["listevents", "--id", &bare]).await;
    assert!(
        events.contains("Performing power action=3, forced=0"),
        "{events}"
    );
    assert!(
        events.contains("Displaying toast message, title=T'1"),
        "{events}"
    );
    assert!(
        events.contains("Displaying message box, title=Box"),
        "{events}"
    );

    // The timeline: online now; offline once the agent is gone, and "not connected".
    let t = ask(&mut c, json!({"action":"powertimeline","nodeid":node})).await;
    assert_eq!(t["nodeid"], node.as_str(), "{t}");
    let line = t["timeline"].as_array().unwrap().clone();
    assert_eq!(line.len() % 2, 1, "{t}");
    assert_eq!(line.last().unwrap(), 1, "{t}");
    let start = line[1].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start <= now && start > now - 300.0, "{t}");
    agent.kill().await;
    wait_until(Duration::from_secs(15), "the device offline", async || {
        ws::node_conn(&mut c, &node).await == Some(0)
    })
    .await;
    let t = ask(&mut c, json!({"action":"powertimeline","nodeid":node})).await;
    let line = t["timeline"].as_array().unwrap();
    assert_eq!(line.len(), 5, "{t}");
    assert_eq!((&line[2], &line[4]), (&json!(1), &json!(0)), "{t}");
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--reset", "--id", &bare]
        )
        .await,
        "Agent not connected"
    );
    assert_eq!(
        ask(&mut c, json!({"action":"ping"})).await["action"],
        "pong"
    );
}

/// A device that reported its network and went away, woken by ironmesh-agent on the same
/// group, whose magic packets go to a loopback socket.
#[tokio::test(flavor = "multi_thread")]
async fn wake_on_lan_through_another_agent() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    server.add_user("noawake", USER_PASS, false).await;
    let group = create_group(&server, "admin", PASS, "lan").await;
    add_member(&server, ("admin", PASS), &group, "noawake", 8).await;
    let msh = fetch_msh(&server, &group).await;
    let mut admin = ws::control(server.port, "admin", PASS).await.unwrap();

    // Three sleepers: one with a MAC address, one with only loopback, one silent.
    let mut sleepers = Vec::new();
    for netinfo in [
        Some(json!({"action":"netinfo","netif2":{
            "lo":[{"mac":"00:00:00:00:00:00","family":"IPv4","address":"127.0.0.1"}],
            "eth0":[{"mac":"52:54:00:12:34:56","family":"IPv4","address":"10.0.0.5"}]}})),
        Some(json!({"action":"netinfo","netif2":{"lo":[{"mac":"00:00:00:00:00:00"}]}})),
        None,
    ] {
        let (identity, _) = AgentIdentity::generate(2048).unwrap();
        let sim = SimAgent::new(Arc::new(identity), &msh, server.port);
        let node = sim.identity.node_id.clone();
        let (mut socket, _) = sim.connect(None).await.unwrap();
        if let Some(info) = &netinfo {
            socket
                .send(Message::Text(info.to_string().into()))
                .await
                .unwrap();
            wait_until(
                Duration::from_secs(15),
                "the network report stored",
                async || {
                    let r = ask(&mut admin, json!({"action":"getnetworkinfo","nodeid":node})).await;
                    if r["netif2"].is_object() {
                        Ok(())
                    } else {
                        Err(r)
                    }
                },
            )
            .await;
        }
        drop(socket);
        wait_until(Duration::from_secs(15), "the sleeper offline", async || {
            ws::node_conn(&mut admin, &node).await == Some(0)
        })
        .await;
        sleepers.push(node.trim_start_matches("node//").to_string());
    }

    let catcher = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let env = vec![(
        "IRONMESH_AGENT_WOL_ADDRESS".to_string(),
        catcher.local_addr().unwrap().to_string(),
    )];
    let mut waker = TestAgent::start_with_env(&msh, env).await;
    waker.wait_online().await;

    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--wake", "--id", &sleepers[0]]
        )
        .await,
        "Used 1 device(s) to send wake packets"
    );
    let mut packet = [0u8; 200];
    let (n, _) = tokio::time::timeout(Duration::from_secs(15), catcher.recv_from(&mut packet))
        .await
        .expect("a magic packet")
        .unwrap();
    assert_eq!(n, 102);
    assert_eq!(&packet[..6], &[0xFF; 6]);
    for copy in packet[6..102].chunks(6) {
        assert_eq!(copy, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    }

    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--wake", "--id", &sleepers[1]]
        )
        .await,
        "No known MAC addresses for this device"
    );
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--wake", "--id", &sleepers[2]]
        )
        .await,
        "No network information for this device"
    );
    // Without the wake right, or for a device that does not exist: the same answer.
    for (user, pass, id) in [
        ("noawake", USER_PASS, sleepers[0].as_str()),
        ("admin", PASS, "nosuchdevice"),
    ] {
        assert_eq!(
            mc(&server, user, pass, &["devicepower", "--wake", "--id", id]).await,
            "Invalid nodeid"
        );
    }
    // Several devices: one "ok" (those that cannot be woken are skipped).
    let both = format!("{},{}", sleepers[0], sleepers[2]);
    assert_eq!(
        mc(
            &server,
            "admin",
            PASS,
            &["devicepower", "--wake", "--id", &both]
        )
        .await,
        "ok"
    );
}
