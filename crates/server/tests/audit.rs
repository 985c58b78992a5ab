//! The audit trail end to end: a terminal session (recorded), a file upload and a run
//! command are found in the event log through `meshctrl listevents` and `ironmesh events`;
//! the hash chain verifies, and editing one row makes the verification name that row. On
//! SQLite and PostgreSQL.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, b64};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

fn cli(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let out = ironmesh_testkit::ironmesh_cli(config, args, stdin);
    assert!(
        out.status.success(),
        "ironmesh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A terminal session through the relay, as the console and `ironmesh shell` open one.
async fn terminal_session(s: &TestServer, node: &str) {
    let auth = format!("{},{}", b64(b"admin"), b64(PASS.as_bytes()));
    let escaped = ironmesh_client::relay::percent_escape(node);
    let mut relay = ws::connect(
        s.port,
        &format!("/meshrelay.ashx?nodeid={escaped}&p=1"),
        &[("x-meshauth", &auth), ("User-Agent", "audit-test/1.0")],
    )
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), relay.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "c" => break,
            Ok(Some(Ok(_))) => {}
            other => panic!("no session: {other:?}"),
        }
    }
    let options = json!({"ctrlChannel":"102938","type":"options","cols":100,"rows":30});
    relay
        .send(Message::Text(options.to_string().into()))
        .await
        .unwrap();
    relay.send(Message::Text("1".into())).await.unwrap();
    relay
        .send(Message::Binary(b"echo audit-$((40+2))\r".to_vec().into()))
        .await
        .unwrap();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains("audit-42") {
            match relay.next().await {
                Some(Ok(Message::Binary(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
                Some(Ok(Message::Text(t))) => seen.push_str(t.as_str()),
                Some(Ok(_)) => {}
                other => panic!("terminal ended: {other:?} after {seen:?}"),
            }
        }
    })
    .await
    .expect("the command's output did not arrive");
    relay.send(Message::Close(None)).await.unwrap();
    while let Some(Ok(_)) = relay.next().await {}
}

async fn exercise(db: Db) {
    let s = TestServer::start(db).await;
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "audited").await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    // The group records its sessions.
    let r = ws::request(
        &mut admin,
        &json!({"action":"editmesh","meshid":group,"flags":4,"responseid":"f"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok", "{r}");
    let mut agent = TestAgent::start(&fetch_msh(&s, &group).await).await;
    let (node, _) = agent.wait_online().await;
    let config = tempfile::tempdir().unwrap();
    cli(
        config.path(),
        &[
            "login",
            "--url",
            &s.wss_url(),
            "--user",
            "admin",
            "--password-stdin",
        ],
        Some(PASS),
    );

    terminal_session(&s, &node).await;
    let local = config.path().join("report.txt");
    std::fs::write(&local, b"quarterly numbers\n").unwrap();
    let remote = tempfile::tempdir().unwrap();
    cli(
        config.path(),
        &[
            "upload",
            &node,
            local.to_str().unwrap(),
            remote.path().to_str().unwrap(),
        ],
        None,
    );
    cli(config.path(), &["run", &node, "echo", "ran-it"], None);

    // The session's end is recorded once both sides are gone.
    let events = wait_until(
        Duration::from_secs(20),
        "the terminal session's end recorded",
        async || {
            let out = cli(config.path(), &["events", "--json"], None);
            let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let ended = events.iter().any(|e| {
                e["action"] == "relaylog"
                    && e["msg"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("Ended terminal")
            });
            if ended {
                Ok(events)
            } else {
                Err(format!("{events:#?}"))
            }
        },
    )
    .await;
    let find = |action: &str, msg_start: &str| -> Value {
        events
            .iter()
            .find(|e| {
                e["action"] == action && e["msg"].as_str().unwrap_or("").starts_with(msg_start)
            })
            .unwrap_or_else(|| panic!("no {action} {msg_start:?} in {events:#?}"))
            .clone()
    };
    let started = find("relaylog", "Started terminal session");
    assert_eq!(started["useragent"], "audit-test/1.0");
    assert_eq!(started["nodeid"], node.as_str());
    assert_eq!(started["meshid"], group.as_str());
    let ended = find("relaylog", "Ended terminal session");
    assert!(ended["bytesin"].as_u64().unwrap() > 10, "{ended}");
    assert!(ended["duration"].as_u64().is_some(), "{ended}");
    let recording = ended["recording"].as_str().expect("recorded").to_string();
    let upload = find("fileop", "Upload: ");
    assert!(
        upload["msg"]
            .as_str()
            .unwrap()
            .contains("report.txt (18 bytes)"),
        "{upload}"
    );
    let run = find("runcommands", "Running commands");
    assert_eq!(run["cmds"], "echo ran-it");
    assert_eq!(run["userid"], "user//admin");
    assert_eq!(run["remoteaddr"], "127.0.0.1");
    let login = find("login", "Signed in");
    assert_eq!(login["method"], "login token");

    // Filters and CSV.
    let out = cli(
        config.path(),
        &[
            "events", "--action", "fileop", "--device", &node, "--since", "1h", "--format", "csv",
        ],
        None,
    );
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time,action,outcome,user,address,device,group,message,client")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(
        rows[0].contains(",fileop,success,admin,127.0.0.1,"),
        "{csv}"
    );

    // meshctrl sees the same trail.
    let out = ironmesh_testkit::meshctrl::run(&s.wss_url(), "admin", PASS, &["listevents"]).await;
    for needle in ["\"runcommands\"", "\"relaylog\"", "\"fileop\"", "Upload: "] {
        assert!(
            out.stdout.contains(needle),
            "{needle} missing: {}",
            out.stdout
        );
    }

    // The recording is a readable asciicast with the session's output in it.
    let recorded = std::fs::read_to_string(
        s.data_dir
            .join("recordings")
            .join(format!("{recording}.cast")),
    )
    .unwrap();
    assert!(recorded.starts_with("{\"version\":2"), "{recorded}");
    assert!(recorded.contains("audit-42"), "{recorded}");

    // The chain verifies; an edited row is named.
    let verify = s.subcommand(&["audit", "verify"]).await;
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(
        verify.status.success() && text.starts_with("ok: "),
        "{text}"
    );
    let (seq, id) = tamper(&s.database_url).await;
    let verify = s.subcommand(&["audit", "verify"]).await;
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(!verify.status.success(), "{text}");
    assert!(
        text.contains(&format!("BROKEN at #{seq} (event {id})")) && text.contains("edited"),
        "{text}"
    );
}

/// Rewrites the message of the run command's record, as someone with database access
/// covering their tracks would; returns that record's sequence number and id.
async fn tamper(url: &str) -> (i64, String) {
    let select = "SELECT seq, id FROM events WHERE action = 'runcommands'";
    let update = "UPDATE events SET msg = 'nothing happened' WHERE action = 'runcommands'";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let row: (i64, String) = sqlx::query_as(select).fetch_one(&mut c).await.unwrap();
        c.execute(update).await.unwrap();
        row
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let row: (i64, String) = sqlx::query_as(select).fetch_one(&mut c).await.unwrap();
        c.execute(update).await.unwrap();
        row
    }
}

#[tokio::test]
async fn audit_trail_on_sqlite() {
    exercise(Db::Sqlite).await;
}

#[tokio::test]
async fn audit_trail_on_postgres() {
    if !ironmesh_testkit::postgres::enabled() {
        return;
    }
    exercise(Db::Postgres).await;
}
