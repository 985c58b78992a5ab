//! The server identity across restarts, and the account command line.

use ironmesh_testkit::meshctrl;
use ironmesh_testkit::server::{Db, TestServer};

const FILES: [&str; 6] = [
    "root-cert.pem",
    "root-key.pem",
    "web-cert.pem",
    "web-key.pem",
    "agent-server-cert.pem",
    "agent-server-key.pem",
];

#[tokio::test]
async fn certificates_survive_restart_byte_identical() {
    let mut s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", "Adm1n-pass!", true).await;
    let before: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| std::fs::read(s.data_path(f)).unwrap())
        .collect();
    #[cfg(unix)]
    for f in FILES.iter().chain(["ironmesh.db"].iter()) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data_path(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    let hash_before = meshctrl::run(&s.wss_url(), "admin", "Adm1n-pass!", &["serverinfo"])
        .await
        .stdout;
    let ready_before = s.ready_line.clone();

    let started = std::time::Instant::now();
    s.restart().await;
    let warm = started.elapsed();
    eprintln!("warm restart to ready (including SIGTERM of the old process): {warm:?}");

    for (f, bytes) in FILES.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(s.data_path(f)).unwrap(),
            bytes,
            "{f} changed across restart"
        );
    }
    let server_id = |line: &str| {
        line.split("ServerID ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(server_id(&ready_before), server_id(&s.ready_line));
    let hash_after = meshctrl::run(&s.wss_url(), "admin", "Adm1n-pass!", &["serverinfo"])
        .await
        .stdout;
    let pick = |out: &str, key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        pick(&hash_before, "agentCertHash"),
        pick(&hash_after, "agentCertHash")
    );
    assert_eq!(pick(&hash_before, "tlshash"), pick(&hash_after, "tlshash"));
}

#[tokio::test]
async fn custom_web_certificate_replaces_only_the_web_identity() {
    let mut s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", "Adm1n-pass!", true).await;
    let agent_cert = std::fs::read(s.data_path("agent-server-cert.pem")).unwrap();
    let before = meshctrl::run(&s.wss_url(), "admin", "Adm1n-pass!", &["serverinfo"])
        .await
        .stdout;
    // A user-supplied certificate (made here by rcgen).
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mesh.example.org".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cp, cert.pem()).unwrap();
    std::fs::write(&kp, key.serialize_pem()).unwrap();
    s.restart_with(&[
        "--web-cert",
        cp.to_str().unwrap(),
        "--web-key",
        kp.to_str().unwrap(),
    ])
    .await;
    let after = meshctrl::run(&s.wss_url(), "admin", "Adm1n-pass!", &["serverinfo"])
        .await
        .stdout;
    let pick = |out: &str, key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        pick(&before, "agentCertHash"),
        pick(&after, "agentCertHash")
    );
    use sha2::Digest;
    let expected = ironmesh_proto::ids::hex_upper(&sha2::Sha384::digest(cert.der()));
    assert_eq!(pick(&after, "tlshash"), format!("tlshash: {expected}"));
    assert_eq!(
        std::fs::read(s.data_path("agent-server-cert.pem")).unwrap(),
        agent_cert
    );
    // Half a custom pair is refused with a clear message.
    s.stop().await;
    let out = std::process::Command::new(ironmesh_testkit::binary("ironmesh-server"))
        .arg("--data")
        .arg(&s.data_dir)
        .args(["--port", "0", "--web-cert"])
        .arg(&cp)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs both --web-cert and --web-key"));
}

#[tokio::test]
async fn account_command_line() {
    let s = TestServer::start(Db::Sqlite).await;
    let out = s
        .account(
            &["add", "root", "--admin", "--password-stdin"],
            Some("short\n"),
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Password too short"));
    let out = s
        .account(&["add", "root", "--admin", "--password-stdin"], Some(""))
        .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password given"));
    s.add_user("root", "root-password-1", true).await;
    let out = s
        .account(
            &["add", "root", "--password-stdin"],
            Some("root-password-1\n"),
        )
        .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("User already exists"));
    let out = s.account(&["list"], None).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "user//root\tadmin"
    );
    let out = s
        .account(
            &["passwd", "root", "--password-stdin"],
            Some("new-password-2\n"),
        )
        .await;
    assert!(out.status.success());
    let mc = meshctrl::run(&s.wss_url(), "root", "new-password-2", &["userinfo"]).await;
    assert!(mc.stdout.contains("_id: user//root"), "{mc:?}");
    let old = meshctrl::run(&s.wss_url(), "root", "root-password-1", &["userinfo"]).await;
    assert_eq!(old.stdout.trim(), "Invalid login.");
}
