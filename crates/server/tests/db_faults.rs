//! Database faults: PostgreSQL restarting under a running server, and the disk under an
//! SQLite database filling up. In both the server stays up, refuses what it cannot do with
//! a reply that names the cause (never a hang or a crash), logs the condition once, and is
//! whole again once the fault is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironmesh_agent::identity::AgentIdentity;
use ironmesh_core::Domain;
use ironmesh_testkit::agent::{close_reason, create_group, fetch_msh, SimAgent, TestAgent};
use ironmesh_testkit::http;
use ironmesh_testkit::postgres::PgCluster;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, Ws};
use serde_json::{json, Value};

const PASS: &str = "Adm1n-pass!";
const UNAVAILABLE: &str = "Database unavailable: try again in a few seconds";
const STORAGE_FULL: &str = "Storage full:";

/// A request on an open control channel; the reply and how long it took.
async fn timed(c: &mut Ws, request: Value) -> (Value, Duration) {
    let started = Instant::now();
    let reply = ws::request(c, &request)
        .await
        .unwrap_or_else(|e| panic!("no reply to {request}: {e}"));
    (reply, started.elapsed())
}

fn adduser(name: &str) -> Value {
    json!({"action":"adduser","username":name,"pass":"Secret-pass-1"})
}

fn assert_refused(reply: &Value, text: &str) {
    assert_eq!(reply["failed"], true, "{reply}");
    let result = reply["result"].as_str().unwrap_or_default();
    assert!(result.starts_with(text), "{reply}");
}

/// The `conn` state `nodes` reports for a device (`None`: not listed).
fn conn_of(nodes: &Value, node: &str) -> Option<i64> {
    nodes["nodes"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, list)| list.as_array().cloned().unwrap_or_default())
        .find(|n| n["_id"] == node)
        .and_then(|n| n["conn"].as_i64())
}

fn names(reply: &Value, list: &str, field: &str) -> Vec<String> {
    reply[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {reply}"))
        .iter()
        .filter_map(|v| v[field].as_str().map(str::to_string))
        .collect()
}

fn log_count(server: &TestServer, needle: &str) -> usize {
    server
        .log_lines()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// PostgreSQL is stopped (`pg_ctl stop -m fast`, which ends every session as a restart or
/// failover does) and started again under a running server with an agent connected and a
/// signed-in control channel.
///
/// The cluster is the test's own (`PgCluster`: `initdb` in a temporary folder): stopping the
/// shared PostgreSQL of `IRONMESH_TEST_PG_URL` would break the tests (and other people's test
/// runs) that use it at the same time, and `pg_terminate_backend` would only cut connections,
/// not make the database refuse new ones for a while.
///
/// Checks: while it is down, control requests get `Database unavailable: …` (`failed: true`)
/// after the pool's 5 s wait, a new control channel is closed with 1013 and that reason, the
/// sign-in page answers 503, and the server stays up; once it is back, the same control
/// channel is served again within 10 s, the agent is online and never reconnected, nothing
/// committed before is lost and the refused `adduser` left nothing; the outage is logged once
/// and its end once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_is_survived() {
    if !ironmesh_testkit::postgres::enabled() {
        return;
    }
    let began = Instant::now();
    let pg = PgCluster::start().await;
    let mut server = TestServer::start_on_database(&pg.url()).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "before").await;
    let msh = fetch_msh(&server, &group).await;
    let mut agent = TestAgent::start(&msh).await;
    let (node, _) = agent.wait_online().await;
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let (r, _) = timed(&mut c, adduser("committed")).await;
    assert_eq!(r["result"], "ok", "{r}");

    pg.stop().await;
    let down = Instant::now();
    let server_port = server.port;

    // Requests that need the database: a clear refusal after the pool's 5 s wait, no hang.
    // Signing in needs the database too: "try again later" (1013), not "wrong password".
    // (The sign-in runs alongside, on its own connection.)
    let sign_in = tokio::spawn(async move {
        let started = Instant::now();
        let err = ws::control(server_port, "admin", PASS)
            .await
            .expect_err("no sign-in while the database is down");
        (err.to_string(), started.elapsed())
    });
    // And the browser sign-in page: 503 with the cause, not "invalid password".
    let web_sign_in = tokio::spawn(async move {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let body = format!("username=admin&password={PASS}");
        let page = http::request(server_port, "POST", "/login", &form, body.as_bytes())
            .await
            .unwrap();
        (page.status, page.text())
    });
    for request in [json!({"action":"nodes"}), adduser("while-down")] {
        let (r, took) = timed(&mut c, request).await;
        assert_refused(&r, UNAVAILABLE);
        assert!(took < Duration::from_secs(8), "refusal took {took:?}");
    }
    let (err, took) = sign_in.await.unwrap();
    eprintln!("sign-in while down: {err} ({took:?})");
    assert!(err.contains("code: Again"), "{err}"); // tungstenite's name for 1013
    assert!(err.contains(UNAVAILABLE), "{err}");
    assert!(
        took < Duration::from_secs(8),
        "sign-in refusal took {took:?}"
    );
    let (status, page) = web_sign_in.await.unwrap();
    assert_eq!(status, 503, "{page}");
    assert!(page.contains(UNAVAILABLE), "{page}");
    assert!(server.is_running(), "the server died with its database");
    let downtime = down.elapsed();

    pg.start_again().await;
    let up = Instant::now();
    // The same control channel works again within 10 s, and sees the agent online.
    let nodes = wait_until(
        Duration::from_secs(10),
        "requests served again after PostgreSQL came back",
        async || {
            let (r, _) = timed(&mut c, json!({"action":"nodes"})).await;
            if r["failed"] != true {
                Ok(r)
            } else {
                Err(r)
            }
        },
    )
    .await;
    let recovered = up.elapsed();
    assert_eq!(conn_of(&nodes, &node), Some(1), "{nodes}");
    let (r, _) = timed(&mut c, adduser("after")).await;
    assert_eq!(r["result"], "ok", "{r}");

    // Nothing committed before the restart is lost; nothing refused was half-done.
    let (users, _) = timed(&mut c, json!({"action":"users"})).await;
    let users = names(&users, "users", "name");
    for name in ["admin", "committed", "after"] {
        assert!(users.iter().any(|u| u == name), "{name} missing: {users:?}");
    }
    assert!(!users.iter().any(|u| u == "while-down"), "{users:?}");
    let (meshes, _) = timed(&mut c, json!({"action":"meshes"})).await;
    assert!(names(&meshes, "meshes", "name").contains(&"before".to_string()));
    // New sign-ins work again.
    ws::control(server.port, "admin", PASS).await.unwrap();

    // The agent's connection never depended on the database: it stayed up.
    let mut reconnected = Vec::new();
    while let Ok(line) = agent.log.try_recv() {
        if line.contains("connection lost") || line.contains("authenticated") {
            reconnected.push(line);
        }
    }
    assert!(reconnected.is_empty(), "agent reconnected: {reconnected:?}");

    // One log line for the outage and one for its end, however many requests it refused.
    assert_eq!(
        log_count(
            &server,
            "database unavailable: requests that need it are refused"
        ),
        1,
        "{:#?}",
        server.log_lines()
    );
    assert_eq!(log_count(&server, "database reachable again"), 1);
    eprintln!(
        "PostgreSQL down {downtime:?}; requests served again {recovered:?} after it was back; \
         test took {:?}",
        began.elapsed()
    );
    agent.kill().await;
    server.stop().await;
}

/// Sets the soft RLIMIT_FSIZE of a running process (the hard limit stays).
fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads the limit into a valid struct.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY).min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: passes a valid struct; lowering or restoring the soft limit of a process of
    // the same user needs no privilege.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// The disk under the SQLite database fills up while the server runs.
///
/// How the disk is made full: the server's RLIMIT_FSIZE is lowered with `prlimit(2)` to the
/// size of its largest database file (the WAL), so a write that would grow a file fails in
/// the kernel (EFBIG; a write that crosses the limit is cut short). SQLite sees what it sees
/// on a full disk — a failed `write(2)` while appending to the WAL at commit — and returns
/// SQLITE_IOERR_WRITE (SQLITE_FULL for ENOSPC or a write cut short: the store's unit tests
/// check that mapping); the transaction is rolled back, as with ENOSPC. This
/// runs the real path (kernel, SQLite's VFS, sqlx, the server's error mapping) with no root,
/// no mount (a small tmpfs or loop filesystem needs privileges CI containers often lack),
/// and it is undone by raising the limit again. SQLite's `max_page_count` was not used: it
/// never reaches the file system and would need a server-side switch. The server ignores
/// SIGXFSZ (its `main`), so the signal that accompanies EFBIG does not kill it.
///
/// Checks: writes (`createmesh`, `adduser`, a new agent's registration) are refused with
/// "Storage full: …"; reads keep working; a known agent can still (re)connect; the server
/// stays up and logs the condition once; after space is back everything works and SQLite's
/// `PRAGMA integrity_check` says ok, with every acknowledged write present and no refused
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_and_recovers() {
    let began = Instant::now();
    let mut server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "g").await;
    let msh = fetch_msh(&server, &group).await;
    let mut agent = TestAgent::start(&msh).await;
    let (node, _) = agent.wait_online().await;
    let identity = || Arc::new(AgentIdentity::generate(2048).unwrap().0);
    // Registered before the disk fills up; comes back while it is full.
    let returning = SimAgent::new(identity(), &msh, server.port);
    drop(returning.connect(None).await.unwrap());
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();

    let db = server.data_path("ironmesh.db");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_file_name("ironmesh.db-wal");
    // No room to grow. The WAL is the largest file (fewer than the 1,000 pages of SQLite's
    // automatic checkpoint were written, so it was never reset) and every write appends to
    // it: the first write fails. (Leaving room for a few writes would make the test depend
    // on which ones fit: as on a real disk, a small write can succeed after a big one failed.)
    assert!(
        size(&wal) >= size(&db),
        "WAL {wal:?} smaller than the database"
    );
    let limit = size(&wal);
    let pid = server.pid().expect("server pid");
    set_file_size_limit(pid, Some(limit));

    let (r, took) = timed(&mut c, json!({"action":"createmesh","meshname":"refused"})).await;
    assert_refused(&r, STORAGE_FULL);
    assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    eprintln!("limit {limit} bytes; refusal: {}", r["result"]);

    // Other writes are refused the same way, promptly, however many fail (failed transactions
    // once left a pooled connection holding SQLite's write lock: the next writes then waited
    // for the 10 s busy timeout).
    for i in 0..6 {
        let (r, took) = timed(
            &mut c,
            json!({"action":"createmesh","meshname":format!("late-{i}")}),
        )
        .await;
        assert_refused(&r, STORAGE_FULL);
        assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    }
    let (r, took) = timed(&mut c, adduser("bob")).await;
    assert_refused(&r, STORAGE_FULL);
    assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    // A new agent cannot be registered: refused with the cause.
    let newcomer = SimAgent::new(identity(), &msh, server.port);
    let reason = match newcomer.connect(None).await {
        // The close can overtake the end of the client's handshake.
        Err(e) => e.to_string(),
        Ok((mut s, _)) => close_reason(&mut s).await,
    };
    assert!(
        reason.contains("registration refused: Storage full:") && reason.contains("1008"),
        "{reason}"
    );

    // Reads work: devices (the agent still online), groups, users; sign-in works.
    let (nodes, _) = timed(&mut c, json!({"action":"nodes"})).await;
    assert_eq!(conn_of(&nodes, &node), Some(1), "{nodes}");
    let (meshes, _) = timed(&mut c, json!({"action":"meshes"})).await;
    let groups = names(&meshes, "meshes", "name");
    assert!(groups.contains(&"g".to_string()), "{groups:?}");
    assert!(!groups.contains(&"refused".to_string()), "{groups:?}");
    let (users, _) = timed(&mut c, json!({"action":"users"})).await;
    assert!(!names(&users, "users", "name").contains(&"bob".to_string()));
    let mut c2 = ws::control(server.port, "admin", PASS).await.unwrap();
    // A known device may still come back (only its last-connect time goes unrecorded).
    let (back, _) = returning.connect(None).await.unwrap();
    let (nodes, _) = timed(&mut c2, json!({"action":"nodes"})).await;
    assert_eq!(
        conn_of(&nodes, &returning.identity.node_id),
        Some(1),
        "{nodes}"
    );
    assert!(server.is_running(), "the server died with its disk full");
    assert_eq!(
        log_count(&server, "database storage full"),
        1,
        "{:#?}",
        server.log_lines()
    );

    // Space again: everything works, without a restart.
    set_file_size_limit(pid, None);
    let (r, _) = timed(&mut c, json!({"action":"createmesh","meshname":"after"})).await;
    assert_eq!(r["result"], "ok", "{r}");
    let (r, _) = timed(&mut c, adduser("bob")).await;
    assert_eq!(r["result"], "ok", "{r}");
    let (s, _) = newcomer.connect(None).await.unwrap();
    let (nodes, _) = timed(&mut c2, json!({"action":"nodes"})).await;
    assert_eq!(
        conn_of(&nodes, &newcomer.identity.node_id),
        Some(1),
        "{nodes}"
    );
    assert_eq!(log_count(&server, "database storage writable again"), 1);
    drop((s, back));
    agent.kill().await;
    server.stop().await;

    // The file is sound, every acknowledged write is in it, and no refused one.
    let domain = Domain::open(&server.database_url).await.unwrap();
    assert_eq!(domain.check_integrity().await.unwrap(), "ok");
    let stored: Vec<String> = domain
        .all_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    for g in ["g", "after"] {
        assert!(stored.iter().any(|s| s == g), "{g} lost: {stored:?}");
    }
    for g in std::iter::once("refused".to_string()).chain((0..6).map(|i| format!("late-{i}"))) {
        assert!(!stored.contains(&g), "refused {g} was stored: {stored:?}");
    }
    assert!(domain.actor("user//bob").await.unwrap().is_some());
    assert!(domain
        .device_exists(&newcomer.identity.node_id)
        .await
        .unwrap());
    domain.close().await;
    eprintln!("test took {:?}", began.elapsed());
}
