//! What `ironmesh` says when it cannot reach a server: one sentence naming the problem and
//! what to do, for each way a connection fails, against real local listeners.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};

const PASS: &str = "Adm1n-pass!";

/// `ironmesh login` to 127.0.0.1:`port` (with `env` set); returns its stderr, asserting it
/// failed.
fn login_error(port: u16, env: &[(&str, &str)]) -> String {
    let cli = Cli::new();
    let url = format!("wss://127.0.0.1:{port}");
    let mut cmd = cli.command(&[
        "login",
        "--url",
        &url,
        "--user",
        "admin",
        "--password-stdin",
    ]);
    cmd.envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("ironmesh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASS}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A listener on a free loopback port whose every connection `serve` handles (on a thread).
fn listener(serve: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

#[test]
fn a_plain_http_port_does_not_speak_tls() {
    let port = listener(|mut s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    });
    let err = login_error(port, &[]);
    assert!(
        err.contains(&format!(
            "127.0.0.1:{port} does not speak TLS: is this the server's HTTPS port?"
        )),
        "{err}"
    );
    assert!(!err.starts_with("error: received corrupt message"), "{err}");
}

#[test]
fn a_plain_tcp_service_does_not_speak_tls() {
    // A banner first, as SSH or SMTP would.
    let port = listener(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    let err = login_error(port, &[]);
    assert!(
        err.contains(&format!("127.0.0.1:{port} does not speak TLS")),
        "{err}"
    );
}

#[test]
fn a_listener_that_hangs_up_is_named() {
    let port = listener(drop::<std::net::TcpStream>);
    let err = login_error(port, &[]);
    assert!(
        err.contains(&format!(
            "127.0.0.1:{port} closed the connection during the TLS handshake: is this the server's HTTPS port?"
        )),
        "{err}"
    );
}

#[test]
fn connection_refused_says_nothing_listens() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = login_error(port, &[]);
    assert!(
        err.contains(&format!(
            "nothing accepts connections on 127.0.0.1:{port} (connection refused): is the server running"
        )),
        "{err}"
    );
}

#[test]
fn a_silent_port_times_out_with_advice() {
    let port = listener(|s| {
        std::thread::sleep(Duration::from_secs(10));
        drop(s);
    });
    let started = std::time::Instant::now();
    let err = login_error(port, &[("IRONMESH_CONNECT_TIMEOUT", "1")]);
    assert!(
        err.contains(&format!("127.0.0.1:{port} did not answer within 1 s")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the limit was kept"
    );
    let err = login_error(port, &[("IRONMESH_CONNECT_TIMEOUT", "soon")]);
    assert!(
        err.contains(
            "IRONMESH_CONNECT_TIMEOUT must be a number of seconds from 1 to 20 (got \"soon\")"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_certificate_than_at_login_is_refused_with_advice() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let cli = Cli::new();
    cli.login(&server, "admin", PASS);
    // Another server (or someone in between) at the address of the login: here the pinned
    // hash no longer matches.
    let path = cli.path().join("credentials.json");
    let mut login: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    login["tls_hash"] = "AB".repeat(48).into();
    std::fs::write(&path, login.to_string()).unwrap();
    let out = cli.run(&["groups"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "127.0.0.1:{} presents a different TLS certificate than when you logged in",
            server.port
        )) && err.contains("log in again (ironmesh login --url wss://127.0.0.1:"),
        "{err}"
    );
    // A wrong password is still said plainly, not dressed as a connection problem.
    let out = cli.try_login(&server, "admin", "wrong-password", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("login failed: wrong user name or password"),
        "{err}"
    );
}
