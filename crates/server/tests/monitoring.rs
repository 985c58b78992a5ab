//! Monitoring: `/metrics` in Prometheus' text format (read here with a parser of the format,
//! not by searching the text), its access rules, `/health/live` and `/health/ready`, and
//! JSON log lines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{create_group, fetch_msh, SimAgent};
use ironmesh_testkit::http::{self, HttpResponse};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, b64};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

/// One scrape: `# TYPE` and `# HELP` by metric family, samples by name and label set.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    /// Parses the text exposition format (version 0.0.4), checking as it goes that every
    /// sample belongs to a family announced by a `# TYPE` line before it.
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let (kind, rest) = rest.split_once(' ').expect("comment kind");
                let (name, value) = rest.split_once(' ').expect("comment value");
                match kind {
                    "TYPE" => {
                        assert!(
                            ["counter", "gauge", "histogram"].contains(&value),
                            "type of {name}: {value}"
                        );
                        scrape.types.insert(name.into(), value.into());
                    }
                    "HELP" => {
                        assert!(!value.trim().is_empty(), "empty help of {name}");
                        scrape.helps.insert(name.into(), value.into());
                    }
                    other => panic!("unknown comment {other}: {line}"),
                }
                continue;
            }
            let (name, labels, value) = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (scrape.types.get(base).map(String::as_str) == Some("histogram"))
                        .then(|| base.to_string())
                })
                .unwrap_or_else(|| name.clone());
            assert!(
                scrape.types.contains_key(&family),
                "sample before its TYPE: {line}"
            );
            let key = (name, labels);
            assert!(
                !scrape.samples.contains_key(&key),
                "duplicate sample {line}"
            );
            scrape.samples.insert(key, value);
        }
        scrape
    }

    /// The sample of `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The sum of every sample of `name` whatever its labels.
    fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

/// `name{label="value",…} value`, with the format's escapes in label values.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let name_end = line.find(['{', ' ']).expect("sample name");
    let name = line[..name_end].to_string();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "metric name {name:?}"
    );
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            let (start, c) = chars.next().expect("label or }");
            if c == '}' {
                rest = &inner[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = inner[start..].find("=\"").expect("label=\"") + start;
            let label = inner[start..eq].to_string();
            while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote") {
                    (_, '"') => break,
                    (_, '\\') => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c} in {line}"),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.push((label, value));
        }
    }
    let value = rest.trim();
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} in {line}")),
    };
    labels.sort();
    (name, labels, value)
}

async fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http::request(s.port, "GET", path, headers, b"")
        .await
        .unwrap()
}

async fn scrape(s: &TestServer) -> Scrape {
    let r = get(s, "/metrics", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Scrape::parse(&r.text())
}

#[test]
fn the_parser_reads_escapes_and_refuses_samples_without_type() {
    let s = Scrape::parse(
        "# HELP g a gauge\n# TYPE g gauge\ng{group=\"a\\\"b\\\\c\\nd\",x=\"1\"} 2\n\
         # TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 0.5\nh_count 3\n",
    );
    assert_eq!(
        s.get("g", &[("x", "1"), ("group", "a\"b\\c\nd")]),
        Some(2.0)
    );
    assert_eq!(s.get("h_bucket", &[("le", "+Inf")]), Some(3.0));
    assert_eq!(s.get("h_count", &[]), Some(3.0));
    let untyped = std::panic::catch_unwind(|| Scrape::parse("x 1\n"));
    assert!(untyped.is_err());
}

/// A fresh server lists every metric with its HELP and TYPE; then an agent connecting
/// (full handshake, then the skip path), a relay session, a refused sign-in and events
/// reaching a console each move what they should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_what_happens() {
    let s = TestServer::start(Db::Sqlite).await;
    let fresh = scrape(&s).await;
    for (name, kind) in [
        ("ironmesh_agents_online", "gauge"),
        ("ironmesh_control_sessions", "gauge"),
        ("ironmesh_relay_sessions_active", "gauge"),
        ("ironmesh_wifidog_gateways_online", "gauge"),
        ("ironmesh_agent_handshakes_total", "counter"),
        ("ironmesh_relay_bytes_total", "counter"),
        ("ironmesh_relay_sessions_total", "counter"),
        ("ironmesh_event_fanout_seconds", "histogram"),
        ("ironmesh_db_seconds", "histogram"),
        ("ironmesh_db_errors_total", "counter"),
        ("ironmesh_login_failures_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_cpu_seconds_total", "counter"),
    ] {
        assert_eq!(
            fresh.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
        assert!(fresh.helps.contains_key(name), "no HELP for {name}");
    }
    assert!(fresh.get("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(fresh.get("process_open_fds", &[]).unwrap() >= 3.0);
    assert_eq!(fresh.total("ironmesh_agents_online"), 0.0);
    assert_eq!(fresh.total("ironmesh_agent_handshakes_total"), 0.0);
    // Migrations and start-up ran statements, each timed.
    let statements = |s: &Scrape| s.get("ironmesh_db_seconds_count", &[("op", "statement")]);
    assert!(statements(&fresh).unwrap() > 0.0);
    assert_eq!(
        fresh.get(
            "ironmesh_db_seconds_bucket",
            &[("op", "statement"), ("le", "+Inf")]
        ),
        statements(&fresh)
    );

    // An agent: the full handshake, then (trusting the server) the skip path.
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "metered").await;
    let msh = fetch_msh(&s, &group).await;
    let mut console = ws::control(s.port, "admin", PASS).await.unwrap();
    let agent = SimAgent::new(
        Arc::new(AgentIdentity::generate(2048).unwrap().0),
        &msh,
        s.port,
    );
    let (socket, trust) = agent.connect(None).await.unwrap();
    drop(socket);
    let (agent_socket, _) = agent.connect(trust).await.unwrap();
    let online = wait_until(
        Duration::from_secs(10),
        "the agent counted online",
        async || {
            let m = scrape(&s).await;
            let handshakes = m.get(
                "ironmesh_agent_handshakes_total",
                &[("path", "skip"), ("result", "ok")],
            );
            (m.get("ironmesh_agents_online", &[("group", &group)]) == Some(1.0)
                && handshakes == Some(1.0))
            .then_some(m)
        },
    )
    .await;
    assert_eq!(
        online.get(
            "ironmesh_agent_handshakes_total",
            &[("path", "full"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(online.total("ironmesh_agents_online"), 1.0);
    assert_eq!(online.get("ironmesh_control_sessions", &[]), Some(1.0));
    // The agent's `nodeconnect` events reached the signed-in console.
    assert!(
        online
            .get("ironmesh_event_fanout_seconds_count", &[])
            .unwrap()
            >= 1.0
    );
    assert!(statements(&online) > statements(&fresh));
    drop(console.close(None).await);

    // The agent leaves: its group stays on the page at 0 rather than vanishing.
    drop(agent_socket);
    wait_until(
        Duration::from_secs(10),
        "the agent's group at 0",
        async || {
            let m = scrape(&s).await;
            (m.get("ironmesh_agents_online", &[("group", &group)]) == Some(0.0)).then_some(())
        },
    )
    .await;

    // A relay session between two sockets of one user: bytes both ways.
    let auth = format!("{},{}", b64(b"admin"), b64(PASS.as_bytes()));
    let headers = [("x-meshauth", auth.as_str())];
    let mut a = ws::connect(s.port, "/meshrelay.ashx?id=metered&p=5", &headers)
        .await
        .unwrap();
    let mut b = ws::connect(s.port, "/meshrelay.ashx?id=metered&p=5", &headers)
        .await
        .unwrap();
    for side in [&mut a, &mut b] {
        assert!(matches!(side.next().await, Some(Ok(Message::Text(t))) if t == "c"));
    }
    let during = scrape(&s).await;
    assert_eq!(during.get("ironmesh_relay_sessions_active", &[]), Some(1.0));
    a.send(Message::Binary(vec![7u8; 1000].into()))
        .await
        .unwrap();
    assert!(matches!(b.next().await, Some(Ok(Message::Binary(d))) if d.len() == 1000));
    b.send(Message::Text("pong".into())).await.unwrap();
    assert!(matches!(a.next().await, Some(Ok(Message::Text(t))) if t == "pong"));
    a.close(None).await.unwrap();
    let after = wait_until(
        Duration::from_secs(10),
        "the relay session ended",
        async || {
            let m = scrape(&s).await;
            (m.get("ironmesh_relay_sessions_active", &[]) == Some(0.0)
                && m.total("ironmesh_relay_sessions_total") == 1.0)
                .then_some(m)
        },
    )
    .await;
    let relayed = after.total("ironmesh_relay_bytes_total");
    assert!(
        (1004.0..1100.0).contains(&relayed),
        "1,000 bytes one way and 4 the other, got {relayed}"
    );

    // A refused sign-in.
    assert!(ws::control(s.port, "admin", "wrong-password")
        .await
        .is_err());
    let refused = scrape(&s).await;
    assert_eq!(
        refused.total("ironmesh_login_failures_total"),
        after.total("ironmesh_login_failures_total") + 1.0
    );
    assert_eq!(
        refused.get("ironmesh_login_failures_total", &[("method", "password")]),
        Some(1.0)
    );
}

/// `[metrics] token`: no token is 401, a wrong one 403, the right one gets the metrics
/// (from loopback too); `access = "off"` serves nothing.
#[tokio::test]
async fn token_and_off_modes() {
    let s =
        TestServer::start_with_config(Db::Sqlite, "[metrics]\ntoken = \"t0ken-of-test\"\n").await;
    let none = get(&s, "/metrics", &[]).await;
    assert_eq!(none.status, 401, "{}", none.text());
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert!(
        none.text().contains("Authorization: Bearer"),
        "{}",
        none.text()
    );
    let wrong = get(&s, "/metrics", &[("authorization", "Bearer t0ken-of-tesT")]).await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert!(
        wrong.text().contains("wrong bearer token"),
        "{}",
        wrong.text()
    );
    let basic = get(&s, "/metrics", &[("authorization", "Basic dDA6a2Vu")]).await;
    assert_eq!(basic.status, 401);
    let right = get(&s, "/metrics", &[("authorization", "Bearer t0ken-of-test")]).await;
    assert_eq!(right.status, 200, "{}", right.text());
    let m = Scrape::parse(&right.text());
    assert_eq!(m.get("ironmesh_control_sessions", &[]), Some(0.0));

    let off = TestServer::start_with_config(Db::Sqlite, "[metrics]\naccess = \"off\"\n").await;
    assert_eq!(get(&off, "/metrics", &[]).await.status, 404);
    // Health stays on.
    assert_eq!(get(&off, "/health/live", &[]).await.status, 200);

    // A token mode without a token is a configuration error, not an open endpoint.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[metrics]\naccess = \"token\"\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(ironmesh_testkit::binary("ironmesh-server"))
        .arg("--data")
        .arg(dir.path())
        .args(["--port", "0", "--fast-cert"])
        .env_remove("IRONMESH_METRICS_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a token"), "{err}");
}

/// `/health` is still `ok`; `/health/live` and `/health/ready` answer 200 on a healthy
/// server.
#[tokio::test]
async fn health_endpoints() {
    let s = TestServer::start(Db::Sqlite).await;
    let health = get(&s, "/health", &[]).await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    let live = get(&s, "/health/live", &[]).await;
    assert_eq!(live.status, 200);
    let ready = get(&s, "/health/ready", &[]).await;
    assert_eq!((ready.status, ready.text().trim()), (200, "ready"));
}

/// PostgreSQL stopped under a running server: not ready (503, with the reason) within the
/// readiness check's short wait, while alive; ready again once it is back. The database
/// errors are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    if !ironmesh_testkit::postgres::enabled() {
        return;
    }
    let pg = ironmesh_testkit::postgres::PgCluster::start().await;
    let s = TestServer::start_on_database(&pg.url()).await;
    assert_eq!(get(&s, "/health/ready", &[]).await.status, 200);
    let before = scrape(&s).await;

    pg.stop().await;
    let started = std::time::Instant::now();
    let ready = get(&s, "/health/ready", &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.text().starts_with("not ready: Database unavailable"),
        "{}",
        ready.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(get(&s, "/health/live", &[]).await.status, 200);
    assert_eq!(get(&s, "/health", &[]).await.status, 200);
    // A request that needs the database fails after the pool's wait, and is counted.
    assert!(ws::control(s.port, "nobody", "Whatever-pass1")
        .await
        .is_err());
    let down = scrape(&s).await;
    assert!(
        down.get("ironmesh_db_errors_total", &[("kind", "unavailable")])
            > before.get("ironmesh_db_errors_total", &[("kind", "unavailable")]),
        "{:?}",
        down.get("ironmesh_db_errors_total", &[("kind", "unavailable")])
    );

    pg.start_again().await;
    wait_until(Duration::from_secs(20), "ready again", async || {
        get(&s, "/health/ready", &[]).await.status == 200
    })
    .await;
}

/// `--log-format json`: every log line is one JSON object with a timestamp, a level, a
/// target and the event's fields, quotes in values included.
#[tokio::test]
async fn json_log_lines() {
    let s = TestServer::start_with(Db::Sqlite, &["--log-format", "json"]).await;
    // Logged at warn (the level the tests run the server with), with the origin quoted.
    let foreign = [("origin", "https://evil.example/\"quoted\"")];
    assert!(ws::connect(s.port, "/control.ashx", &foreign)
        .await
        .is_err());
    let line = wait_until(Duration::from_secs(10), "the refusal logged", async || {
        s.log_lines()
            .into_iter()
            .find(|l| l.contains("foreign origin"))
    })
    .await;
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(
        v["message"], "control channel refused: foreign origin",
        "{line}"
    );
    assert!(
        v["origin"].as_str().unwrap().contains("\\\"quoted\\\""),
        "{line}"
    );
    assert!(v["target"].as_str().unwrap().starts_with("ironmesh_server"));
    assert!(v["timestamp"].is_string(), "{line}");
    for line in s.log_lines() {
        let parsed = serde_json::from_str::<serde_json::Value>(&line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}
