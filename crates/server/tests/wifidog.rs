//! WiFiDogX gateways of both generations against the real server, through simulated
//! devices that behave like the firmware on the wire; and the classic portal endpoints.

use std::time::Duration;

use ironmesh_testkit::agent::create_group;
use ironmesh_testkit::gateway::{Firmware, GatewayOptions, SimGateway};
use ironmesh_testkit::http::request;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, Ws};
use serde_json::{json, Value};

const PASS: &str = "Adm1n-pass!";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn server(extra: &str) -> (TestServer, u16) {
    let plain = free_port();
    let s = TestServer::start_with_config(
        Db::Sqlite,
        &format!("[wifidog]\nplain_port = {plain}\nheartbeat_secs = 1\n{extra}"),
    )
    .await;
    s.add_user("admin", PASS, true).await;
    (s, plain)
}

/// Sends a request and waits for the reply carrying its responseid.
async fn ask(c: &mut Ws, mut req: Value, id: &str) -> Value {
    req["responseid"] = id.into();
    ws::send_json(c, &req).await.unwrap();
    loop {
        let v = ws::recv_any_json(c).await.unwrap();
        if v["responseid"] == id {
            return v;
        }
    }
}

async fn cmd(c: &mut Ws, device: &str, op: &str, params: Value) -> Value {
    ask(
        c,
        json!({"action":"wifidogcmd","deviceid":device,"op":op,"params":params}),
        &format!("{device}-{op}"),
    )
    .await
}

async fn gateways(c: &mut Ws) -> Vec<Value> {
    ask(c, json!({"action":"wifidogs"}), "list").await["gateways"]
        .as_array()
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn both_generations_acks_auth_modes_and_commands() {
    let (s, plain) = server("").await;
    let group = create_group(&s, "admin", PASS, "hotspots").await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let v8 = SimGateway::start(GatewayOptions::new(Firmware::V8, "DEV-V8", plain));
    let v9 = SimGateway::start(GatewayOptions::new(Firmware::V9, "DEV-V9", plain));

    // Unknown devices wait for approval: recorded, shown, not answered. Wait until both
    // have been heard past their connect (sys_info comes with heartbeats only): an answer
    // to the connect would have been sent before the heartbeat was recorded.
    let list = wait_until(
        Duration::from_secs(15),
        "both gateways listed with a heartbeat",
        async || {
            let list = gateways(&mut c).await;
            let heard = list.iter().filter(|g| g["sys_info"].is_object()).count();
            if heard >= 2 {
                Ok(list)
            } else {
                Err(format!("{list:?}"))
            }
        },
    )
    .await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list
        .iter()
        .all(|g| g["approved"] == false && g["online"] == true));
    assert!(v8.snapshot(|o| o.received.is_empty()) && v9.snapshot(|o| o.received.is_empty()));
    let r = cmd(&mut c, "DEV-V9", "get_firmware_info", json!({})).await;
    assert_eq!(r["result"], "the gateway is waiting for approval");

    for dev in ["DEV-V8", "DEV-V9"] {
        let r = ask(
            &mut c,
            json!({"action":"wifidogapprove","deviceid":dev,"meshid":group}),
            "approve",
        )
        .await;
        assert_eq!(r["result"], "ok", "{r}");
    }
    // The next heartbeat is acknowledged in each generation's shape.
    v8.wait_for("8.x ack", Duration::from_secs(5), |o| {
        o.received
            .iter()
            .any(|m| m["type"] == "heartbeat" && m["gateway"][0]["auth_mode"] == 1)
    })
    .await;
    v9.wait_for("9.x ack", Duration::from_secs(5), |o| {
        o.received.iter().any(|m| {
            m["response"] == "200" && m["data"]["type"] == "heartbeat" && m["req_id"].is_string()
        })
    })
    .await;
    let list = gateways(&mut c).await;
    let g9 = list.iter().find(|g| g["deviceid"] == "DEV-V9").unwrap();
    assert_eq!(
        (g9["generation"].as_str(), g9["mode"].as_i64()),
        (Some("9.x"), Some(0))
    );
    assert_eq!(g9["gateways"][0]["gw_id"], "GW0001");
    assert_eq!(g9["device_info"]["location_id"], "lab");
    assert_eq!(g9["sys_info"]["sys_uptime"], 100);
    assert_eq!(g9["meshid"], group.as_str());

    // Auth mode pushes: 9.x gateway_heartbeat, 8.x a heartbeat-typed message; both apply it.
    for dev in ["DEV-V8", "DEV-V9"] {
        let r = ask(
            &mut c,
            json!({"action":"wifidogauthmode","deviceid":dev,"gwid":"GW0001","authmode":0}),
            "mode",
        )
        .await;
        assert_eq!(
            (r["result"].as_str(), r["pushed"].as_bool()),
            (Some("ok"), Some(true))
        );
    }
    for sim in [&v8, &v9] {
        sim.wait_for("auth mode 0", Duration::from_secs(5), |o| {
            o.auth_modes == [("GW0001".to_string(), 0)]
        })
        .await;
    }
    v9.wait_for("gateway_heartbeat op", Duration::from_secs(5), |o| {
        o.received.iter().any(|m| m["op"] == "gateway_heartbeat")
    })
    .await;
    // Later acks keep carrying the wanted mode: the next two heartbeat acks leave it at 0.
    let heartbeats = |o: &ironmesh_testkit::gateway::Observed| {
        o.received
            .iter()
            .filter(|m| m["type"] == "heartbeat")
            .count()
    };
    let seen = v8.snapshot(heartbeats);
    v8.wait_for("two more heartbeat acks", Duration::from_secs(10), |o| {
        heartbeats(o) >= seen + 2
    })
    .await;
    assert_eq!(
        v8.snapshot(|o| o.auth_modes.clone()),
        [("GW0001".to_string(), 0)]
    );

    // Commands and replies, per generation.
    let r = cmd(&mut c, "DEV-V8", "kickoff", json!({"client_ip":"10.0.0.9","client_mac":"aa:aa:aa:aa:aa:aa","device_id":"DEV-V8","gw_id":"GW0001"})).await;
    assert_eq!(
        (r["result"].as_str(), r["reply"]["error"].as_str()),
        (Some("error"), Some("Client not found"))
    );
    let r = cmd(&mut c, "DEV-V8", "kickoff", json!({"client_ip":"192.168.1.10","client_mac":"aa:bb:cc:dd:ee:01","device_id":"DEV-V8","gw_id":"GW0001"})).await;
    assert_eq!(r["result"], "ok", "{r}");
    let r = cmd(&mut c, "DEV-V8", "auth", json!({"token":"t","client_ip":"192.168.1.11","client_mac":"aa:bb:cc:dd:ee:02","gw_id":"GW0001","once_auth":false})).await;
    assert_eq!(r["result"], "sent", "8.x auth has no reply");
    let r = cmd(&mut c, "DEV-V9", "auth", json!({"token":"t","client_ip":"192.168.1.11","client_mac":"aa:bb:cc:dd:ee:02","gw_id":"GW0001","once_auth":false})).await;
    assert_eq!(
        (r["result"].as_str(), r["reply"]["type"].as_str()),
        (Some("ok"), Some("auth_response"))
    );
    let r = cmd(
        &mut c,
        "DEV-V9",
        "shell",
        json!({"command":"uptime","timeout":5}),
    )
    .await;
    assert_eq!(r["reply"]["data"]["output"], "ran: uptime\n");
    let r = cmd(&mut c, "DEV-V8", "shell", json!({"command":"uptime"})).await;
    assert_eq!(r["result"], "shell is not supported by 8.x gateways");
    for dev in ["DEV-V8", "DEV-V9"] {
        let r = cmd(&mut c, dev, "get_firmware_info", json!({})).await;
        assert_eq!(r["result"], "ok", "{r}");
        let r = cmd(
            &mut c,
            dev,
            "tmp_pass",
            json!({"client_mac":"aa:bb:cc:dd:ee:03","timeout":60}),
        )
        .await;
        assert!(r["result"] == "sent" || r["result"] == "ok", "{r}");
        let r = cmd(&mut c, dev, "reboot_device", json!({})).await;
        assert_eq!(r["result"], "sent");
    }

    // The rest of the command set, each with its reply shape.
    for (dev, op, params, reply_type) in [
        (
            "DEV-V8",
            "firmware_upgrade",
            json!({"url":"https://fw.example.org/x.bin","force":false}),
            "firmware_upgrade_response",
        ),
        (
            "DEV-V8",
            "update_device_info",
            json!({"device_info":{"location_id":"hall"}}),
            "update_device_info_response",
        ),
        (
            "DEV-V8",
            "get_client_info",
            json!({"mac":"aa:bb:cc:dd:ee:01"}),
            "get_client_info_response",
        ),
        (
            "DEV-V9",
            "firmware_upgrade",
            json!({"url":"https://fw.example.org/x.bin"}),
            "firmware_upgrade_response",
        ),
        (
            "DEV-V9",
            "update_device_info",
            json!({"device_info":{"location_id":"hall"}}),
            "update_device_info_response",
        ),
        (
            "DEV-V9",
            "get_client_info",
            json!({"mac":"aa:bb:cc:dd:ee:01"}),
            "get_client_info_response",
        ),
        ("DEV-V9", "get_clients", json!({}), "get_clients_response"),
    ] {
        let r = cmd(&mut c, dev, op, params).await;
        // 8.x: the flat reply's own type; 9.x: the envelope's data.type.
        assert_eq!(
            (r["result"].as_str(), r["reply"]["type"].as_str()),
            (Some("ok"), Some(reply_type)),
            "{dev} {op}: {r}"
        );
    }
    let r = cmd(
        &mut c,
        "DEV-V8",
        "firmware_upgrade",
        json!({"url":"ftp://x"}),
    )
    .await;
    assert_eq!(
        (r["result"].as_str(), r["reply"]["type"].as_str()),
        (Some("error"), Some("firmware_upgrade_error"))
    );

    // Several commands at once: queued, one in flight, each answer to its own request.
    for (i, dev) in ["DEV-V9", "DEV-V8"].iter().enumerate() {
        for n in 0..4 {
            let domains = vec![format!("d{n}.example.org")];
            let mut req = json!({"action":"wifidogcmd","deviceid":dev,"op":"sync_trusted_domain","params":{"domains":domains}});
            req["responseid"] = format!("sync-{i}-{n}").into();
            ws::send_json(&mut c, &req).await.unwrap();
            let mut req = json!({"action":"wifidogcmd","deviceid":dev,"op":"get_trusted_domains"});
            req["responseid"] = format!("get-{i}-{n}").into();
            ws::send_json(&mut c, &req).await.unwrap();
        }
        let mut got = std::collections::HashMap::new();
        while got.len() < 8 {
            let v = ws::recv_any_json(&mut c).await.unwrap();
            if let Some(id) = v["responseid"].as_str() {
                got.insert(id.to_string(), v);
            }
        }
        for n in 0..4 {
            let g = &got[&format!("get-{i}-{n}")];
            let domains = if *dev == "DEV-V9" {
                &g["reply"]["data"]["domains"]
            } else {
                &g["reply"]["domains"]
            };
            assert_eq!(
                domains,
                &json!([format!("d{n}.example.org")]),
                "get {n} answered with another state: {g}"
            );
        }
    }
    for sim in [&v8, &v9] {
        assert_eq!(
            sim.snapshot(|o| (o.dropped_frames, o.wedged, o.bytes_after_101)),
            (0, false, 0),
            "device limits were respected"
        );
    }

    // A command the device could not read is refused before it is sent.
    let r = cmd(
        &mut c,
        "DEV-V9",
        "sync_trusted_domain",
        json!({"domains": vec!["x".repeat(100); 12]}),
    )
    .await;
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .starts_with("Command too large"),
        "{r}"
    );
    assert!(!v9.snapshot(|o| o.wedged));
    // Unknown op, bad params, unknown device.
    let r = cmd(&mut c, "DEV-V9", "make_coffee", json!({})).await;
    assert_eq!(r["result"], "make_coffee is not supported by 9.x gateways");
    let r = ask(
        &mut c,
        json!({"action":"wifidogcmd","deviceid":"DEV-V9","op":"auth","params":[1]}),
        "bad",
    )
    .await;
    assert_eq!(r["result"], "Field params must be an object");
    let r = cmd(&mut c, "NOPE", "auth", json!({})).await;
    assert_eq!(r["result"], "Unknown gateway");
    // Audit trail.
    let events = ask(&mut c, json!({"action":"events"}), "ev").await;
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "wifidogcmd" && e["op"] == "kickoff"));
}

/// A gateway approved while connected is acknowledged at once, in each generation's
/// `connect` shape, not at its next heartbeat: here heartbeats are a minute apart, so an ack
/// within a few seconds can only be the approval's.
#[tokio::test]
async fn approval_acknowledges_a_connected_gateway_at_once() {
    let plain = free_port();
    let s = TestServer::start_with_config(
        Db::Sqlite,
        &format!("[wifidog]\nplain_port = {plain}\nheartbeat_secs = 60\n"),
    )
    .await;
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "hotspots").await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let mut sims = Vec::new();
    for (firmware, dev) in [(Firmware::V8, "SLOW-V8"), (Firmware::V9, "SLOW-V9")] {
        let mut opts = GatewayOptions::new(firmware, dev, plain);
        opts.heartbeat = Duration::from_secs(60);
        opts.gateways = vec!["GW-A".into(), "GW-B".into()];
        sims.push((dev, SimGateway::start(opts)));
    }
    wait_until(
        Duration::from_secs(15),
        "both gateways pending",
        async || {
            let list = gateways(&mut c).await;
            if list.len() == 2 && list.iter().all(|g| g["online"] == true) {
                Ok(())
            } else {
                Err(format!("{list:?}"))
            }
        },
    )
    .await;
    for (dev, sim) in &sims {
        assert!(
            sim.snapshot(|o| o.received.is_empty()),
            "{dev} unanswered before approval"
        );
        let r = ask(
            &mut c,
            json!({"action":"wifidogapprove","deviceid":dev,"meshid":group}),
            "approve",
        )
        .await;
        assert_eq!(r["result"], "ok", "{r}");
    }
    let approved = std::time::Instant::now();
    for (dev, sim) in &sims {
        sim.wait_for("connect ack after approval", Duration::from_secs(3), |o| {
            !o.received.is_empty()
        })
        .await;
        let ack = sim.snapshot(|o| o.received[0].clone());
        let (kind, gateway) = if *dev == "SLOW-V9" {
            assert_eq!(ack["response"], "200", "{ack}");
            assert!(ack["req_id"].is_string(), "9.x frames need a req_id: {ack}");
            (&ack["data"]["type"], &ack["data"]["gateway"])
        } else {
            (&ack["type"], &ack["gateway"])
        };
        assert_eq!(kind, "connect", "{dev}: {ack}");
        assert_eq!(
            gateway,
            &json!([{"gw_id":"GW-A","auth_mode":1},{"gw_id":"GW-B","auth_mode":1}]),
            "{dev}: {ack}"
        );
        assert_eq!(sim.snapshot(|o| o.connections), 1);
    }
    assert!(approved.elapsed() < Duration::from_secs(10));
    // The acks carry the wanted modes: a mode set now reaches the device as a push, and the
    // device keeps applying what the server says.
    let r = ask(
        &mut c,
        json!({"action":"wifidogauthmode","deviceid":"SLOW-V9","gwid":"GW-B","authmode":0}),
        "mode",
    )
    .await;
    assert_eq!(r["pushed"], true, "{r}");
    sims[1]
        .1
        .wait_for("GW-B open", Duration::from_secs(3), |o| {
            o.auth_modes == [("GW-A".to_string(), 1), ("GW-B".to_string(), 0)]
        })
        .await;
    // Approving again (same group) is harmless and sends one more connect ack, no more.
    let before = sims[0].1.snapshot(|o| o.received.len());
    let r = ask(
        &mut c,
        json!({"action":"wifidogapprove","deviceid":"SLOW-V8","meshid":group}),
        "again",
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    sims[0]
        .1
        .wait_for("second connect ack", Duration::from_secs(3), |o| {
            o.received.len() == before + 1
        })
        .await;
    assert_eq!(sims[0].1.snapshot(|o| o.dropped_frames), 0);
}

#[tokio::test]
async fn timeouts_bad_input_rate_limits_and_reconnects() {
    let (s, plain) = server("require_approval = false\n").await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let mut slow = GatewayOptions::new(Firmware::V9, "SLOW", plain);
    slow.reply_delay = Duration::from_secs(2);
    let slow = SimGateway::start(slow);
    slow.wait_for("admitted", Duration::from_secs(5), |o| {
        !o.received.is_empty()
    })
    .await;
    let r = ask(
        &mut c,
        json!({"action":"wifidogcmd","deviceid":"SLOW","op":"get_firmware_info","timeout":1}),
        "t",
    )
    .await;
    assert_eq!(r["result"], "Timed out after 1 s waiting for the gateway");
    // The late reply is ignored; the next command is matched to its own reply.
    let r = ask(
        &mut c,
        json!({"action":"wifidogcmd","deviceid":"SLOW","op":"get_trusted_domains","timeout":10}),
        "t2",
    )
    .await;
    assert_eq!(r["reply"]["type"], "get_trusted_domains_response", "{r}");

    let dev = SimGateway::start(GatewayOptions::new(Firmware::V8, "NOISY", plain));
    dev.wait_for("connected", Duration::from_secs(5), |o| {
        o.connections == 1 && !o.received.is_empty()
    })
    .await;
    for bad in [
        "{not json",
        "[]",
        "{}",
        r#"{"type":"dance"}"#,
        r#"{"type":"connect"}"#,
    ] {
        dev.inject.send(bad.to_string()).unwrap();
    }
    // Once the device has sent them, its reply to the command comes after them on the same
    // connection: the server has read them first.
    dev.wait_for("bad frames sent", Duration::from_secs(5), |o| {
        o.injected == 5
    })
    .await;
    let r = cmd(&mut c, "NOISY", "get_firmware_info", json!({})).await;
    assert_eq!(
        r["result"], "ok",
        "bad input did not hurt the connection: {r}"
    );
    // A flood: the excess is dropped, then the connection is cut (TCP only: never a Close
    // frame for 8.x, which would never come back), and the device returns after 5 s.
    for _ in 0..400 {
        dev.inject
            .send(r#"{"type":"heartbeat","device_id":"NOISY","gateway":[]}"#.to_string())
            .unwrap();
    }
    dev.wait_for("reconnect after EOF", Duration::from_secs(15), |o| {
        o.connections == 2
    })
    .await;
    assert!(!dev.snapshot(|o| o.got_close_frame));

    // Two missed heartbeats: offline, TCP closed, device reconnects.
    let mut quiet = GatewayOptions::new(Firmware::V8, "QUIET", plain);
    quiet.heartbeat = Duration::from_secs(30);
    let quiet = SimGateway::start(quiet);
    quiet
        .wait_for("connected", Duration::from_secs(5), |o| o.connections == 1)
        .await;
    let connected = std::time::Instant::now();
    // heartbeat_secs = 1: dropped after 3 s of silence (two heartbeats and slack).
    let q = wait_until(Duration::from_secs(15), "QUIET offline", async || {
        let list = gateways(&mut c).await;
        match list.iter().find(|g| g["deviceid"] == "QUIET") {
            Some(q) if q["online"] == false => Ok(q.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(q["online"], false, "{q}");
    assert!(
        connected.elapsed() >= Duration::from_secs(2),
        "dropped before two heartbeats were missed: {:?}",
        connected.elapsed()
    );
    quiet
        .wait_for("reconnect", Duration::from_secs(10), |o| o.connections == 2)
        .await;
    assert!(!quiet.snapshot(|o| o.got_close_frame));
}

#[tokio::test]
async fn rights_on_gateways() {
    let (s, plain) = server("").await;
    let group = create_group(&s, "admin", PASS, "hotspots").await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    let _g = SimGateway::start(GatewayOptions::new(Firmware::V9, "G1", plain));
    wait_until(Duration::from_secs(15), "G1 listed", async || {
        gateways(&mut admin)
            .await
            .iter()
            .any(|g| g["deviceid"] == "G1")
    })
    .await;
    for (name, rights) in [
        ("stranger", None),
        ("viewer", Some(0)),
        ("operator", Some(8)),
    ] {
        ws::request(
            &mut admin,
            &json!({"action":"adduser","username":name,"pass":"long-pass-1"}),
        )
        .await
        .unwrap();
        if let Some(r) = rights {
            ws::request(
                &mut admin,
                &json!({"action":"addmeshuser","meshid":group,"usernames":[name],"meshadmin":r}),
            )
            .await
            .unwrap();
        }
    }
    // Pending gateways are for administrators only.
    let mut viewer = ws::control(s.port, "viewer", "long-pass-1").await.unwrap();
    assert!(gateways(&mut viewer).await.is_empty());
    let r = ask(
        &mut viewer,
        json!({"action":"wifidogapprove","deviceid":"G1","meshid":group}),
        "a",
    )
    .await;
    assert_eq!(r["result"], "Access denied");
    let r = ask(
        &mut admin,
        json!({"action":"wifidogapprove","deviceid":"G1","meshid":group}),
        "a",
    )
    .await;
    assert_eq!(r["result"], "ok");
    assert_eq!(gateways(&mut viewer).await.len(), 1);
    let r = cmd(&mut viewer, "G1", "get_clients", json!({})).await;
    assert_eq!(r["result"], "Access denied");
    let mut stranger = ws::control(s.port, "stranger", "long-pass-1")
        .await
        .unwrap();
    let r = cmd(&mut stranger, "G1", "get_clients", json!({})).await;
    assert_eq!(r["result"], "Unknown gateway");
    let mut operator = ws::control(s.port, "operator", "long-pass-1")
        .await
        .unwrap();
    let r = cmd(&mut operator, "G1", "get_clients", json!({})).await;
    assert_eq!(r["result"], "ok", "{r}");
}

#[tokio::test]
async fn classic_portal_endpoints() {
    let (s, plain) = server("portal_password = \"wifi-pass\"\n").await;
    // Served on the TLS port and on the plain gateway port.
    let r = request(
        s.port,
        "GET",
        "/wifidog/ping/?gw_id=GW1&sys_uptime=5",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "Pong"));
    let page = request(
        s.port,
        "GET",
        "/wifidog/login/?gw_address=192.168.1.1&gw_port=2060&gw_id=GW1&mac=aa:bb&url=x",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert!(page.text().contains("name=\"password\"") && page.text().contains("value=\"GW1\""));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let bad = request(
        s.port,
        "POST",
        "/wifidog/login/",
        &form,
        b"gw_address=192.168.1.1&gw_port=2060&gw_id=GW1&mac=aa:bb&password=nope",
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 401);
    let open_redirect = request(
        s.port,
        "POST",
        "/wifidog/login/",
        &form,
        b"gw_address=evil.example&gw_port=80&gw_id=GW1&password=wifi-pass",
    )
    .await
    .unwrap();
    assert_eq!(open_redirect.status, 400);
    let ok = request(
        s.port,
        "POST",
        "/wifidog/login/",
        &form,
        b"gw_address=192.168.1.1&gw_port=2060&gw_id=GW1&mac=aa:bb&password=wifi-pass",
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 302);
    let location = ok.header("location").unwrap().to_string();
    assert!(
        location.starts_with("http://192.168.1.1:2060/wifidog/auth?token="),
        "{location}"
    );
    let token = location
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();

    let auth = |stage: &str, token: &str| {
        format!("/wifidog/auth/?stage={stage}&token={token}&mac=aa:bb&ip=192.168.1.20&gw_id=GW1")
    };
    let get = |path: String| async move {
        ironmesh_testkit::http::request(s.port, "GET", &path, &[], b"")
            .await
            .unwrap()
            .text()
    };
    assert_eq!(
        get(auth("counters", &token)).await,
        "Auth: 0",
        "not active before login"
    );
    assert_eq!(get(auth("login", &token)).await, "Auth: 1");
    assert_eq!(get(auth("counters", &token)).await, "Auth: 1");
    assert_eq!(get(auth("login", "forged")).await, "Auth: 0");
    let body = json!({"device_id":"D","gateway":[{"gw_id":"GW1","clients":[{"id":1,"token":token},{"id":2,"token":"forged"}]}]});
    let r = request(
        s.port,
        "POST",
        "/wifidog/auth/?stage=counters_v2",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        json!({"result":[{"gw_id":"GW1","auth_op":[{"id":1,"auth_code":1},{"id":2,"auth_code":0}]}]})
    );
    assert_eq!(get(auth("logout", &token)).await, "Auth: 0");
    assert_eq!(get(auth("counters", &token)).await, "Auth: 0");
    let r = request(
        s.port,
        "GET",
        "/wifidog/gw_message?message=denied",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert!(r.text().contains("Access was denied."));
    // The plain port serves gateways only: no login page of the console there.
    let raw = plain_get(plain, "/wifidog/ping").await;
    assert!(raw.ends_with("Pong"), "{raw}");
    assert!(plain_get(plain, "/login").await.starts_with("HTTP/1.1 404"));
}

async fn plain_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn a_wscat_session_as_in_the_seed() {
    let (s, plain) = server("require_approval = false\n").await;
    let connect =
        r#"{"type":"connect","device_id":"WSCAT-1","gateway":[{"gw_id":"GW1","auth_mode":1}]}"#;
    // Plain ws on the gateway port, and wss on the main port (self-signed: -n).
    for (url, extra) in [
        (format!("ws://127.0.0.1:{plain}/ws/wifidogx"), None),
        (
            format!("wss://127.0.0.1:{}/ws/wifidogx?ignored=1", s.port),
            Some("-n"),
        ),
    ] {
        // wscat prints what it receives only to a terminal: give it one.
        let mut cmd = std::process::Command::new("node");
        cmd.arg(ironmesh_testkit::meshctrl::wscat())
            .args(["-c", &url]);
        if let Some(flag) = extra {
            cmd.arg(flag);
        }
        cmd.args([
            "-x",
            connect,
            "-x",
            r#"{"type":"get_firmware_info"}"#,
            "-w",
            "2",
        ]);
        let mut session = ironmesh_testkit::pty::PtyProcess::spawn(cmd, 200, 40);
        let acked = session
            .expect(
                r#"{"type":"connect","gateway":[{"gw_id":"GW1","auth_mode":1}]}"#,
                Duration::from_secs(15),
            )
            .await;
        assert!(acked, "{url}: {}", session.text());
    }
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    assert!(gateways(&mut c)
        .await
        .iter()
        .any(|g| g["deviceid"] == "WSCAT-1" && g["generation"] == "8.x"));
}

/// The simulated device is faithful where it matters: a frame that fills its 1024-byte
/// read buffer wedges it, and a second frame in the same read is lost. (The server tests
/// above rely on it to prove the server never does either.)
#[tokio::test]
async fn the_simulated_device_has_the_firmware_limits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn fake_server(frames: Vec<Vec<u8>>) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = tcp.read(&mut buf).await.unwrap();
            tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").await.unwrap();
            // The device's connect: it sends it after its handshake read, so what follows
            // reaches its frame loop.
            let _ = tcp.read(&mut buf).await;
            // Everything in one write, so the device reads it at once.
            let all: Vec<u8> = frames.concat();
            tcp.write_all(&all).await.unwrap();
            // Keep the connection open (no EOF for the device) until the test ends.
            std::future::pending::<()>().await;
        });
        (port, task)
    }
    fn text_frame(payload: &str) -> Vec<u8> {
        let mut f = vec![0x81];
        if payload.len() < 126 {
            f.push(payload.len() as u8);
        } else {
            f.push(126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(payload.as_bytes());
        f
    }
    let two = vec![
        text_frame(r#"{"type":"get_firmware_info"}"#),
        text_frame(r#"{"type":"get_trusted_domains"}"#),
    ];
    let (port, _t) = fake_server(two).await;
    let sim = SimGateway::start(GatewayOptions::new(Firmware::V8, "FID-1", port));
    sim.wait_for("first frame processed", Duration::from_secs(5), |o| {
        o.received.len() == 1
    })
    .await;
    assert_eq!(sim.snapshot(|o| o.dropped_frames), 1);
    let big = format!(
        r#"{{"type":"sync_trusted_domain","domains":["{}"]}}"#,
        "x".repeat(1500)
    );
    let (port, _t) = fake_server(vec![text_frame(&big)]).await;
    let sim = SimGateway::start(GatewayOptions::new(Firmware::V8, "FID-2", port));
    sim.wait_for("wedged", Duration::from_secs(5), |o| o.wedged)
        .await;
    assert!(sim.snapshot(|o| o.received.is_empty()));
}
