//! Login page, session cookie, logout, security headers, TLS settings.

use ironmesh_testkit::http::request;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws;
use serde_json::json;

const PASS: &str = "Adm1n-pass!";

#[tokio::test]
async fn login_sets_a_secure_cookie_that_opens_the_control_channel_until_logout() {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;

    let page = request(s.port, "GET", "/login", &[], b"").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("name=\"password\""));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // Unauthenticated landing page redirects to the login page.
    let home = request(s.port, "GET", "/", &[], b"").await.unwrap();
    assert_eq!(
        (home.status, home.header("location")),
        (303, Some("/login"))
    );

    // Wrong password: 401 and a message, no cookie.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let bad = request(
        s.port,
        "POST",
        "/login",
        &form,
        b"username=admin&password=nope",
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 401);
    assert!(bad.text().contains("Invalid user name or password."));
    assert!(bad.header("set-cookie").is_none());

    // Cross-site form post refused.
    let cross = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", "https://evil.example"),
    ];
    let body = format!("username=admin&password={}", "Adm1n-pass%21");
    let r = request(s.port, "POST", "/login", &cross, body.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    let ok = request(s.port, "POST", "/login", &form, body.as_bytes())
        .await
        .unwrap();
    assert_eq!((ok.status, ok.header("location")), (303, Some("/")));
    let cookie = ok.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();

    let home = request(s.port, "GET", "/", &[("cookie", &pair)], b"")
        .await
        .unwrap();
    assert_eq!(home.status, 200);
    // The console: its page names its style nonce, which that response's CSP allows, and
    // its script is an embedded file served to anyone (it holds no data).
    let page = home.text();
    let nonce = page
        .split("ironmesh-style-nonce\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("style nonce in the console page")
        .to_string();
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("style-src 'self' 'nonce-{nonce}'")),
        "{csp}"
    );
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("script in the console page");
    let js = request(s.port, "GET", script, &[], b"").await.unwrap();
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.header("cache-control").unwrap().contains("immutable"));
    let again = request(s.port, "GET", "/", &[("cookie", &pair)], b"")
        .await
        .unwrap();
    assert!(!again.text().contains(&nonce), "a nonce is used once");

    // The same cookie authenticates the control channel.
    let mut c = ws::connect(s.port, "/control.ashx", &[("cookie", &pair)])
        .await
        .unwrap();
    let first = ws::recv_json(&mut c).await.unwrap();
    assert_eq!(first["action"], "serverinfo");
    let info = ws::recv_json(&mut c).await.unwrap();
    assert_eq!(info["userinfo"]["_id"], "user//admin");

    // An auth= token from `authcookie` authenticates too.
    let r = ws::request(&mut c, &json!({"action":"authcookie"}))
        .await
        .unwrap();
    let token = r["cookie"].as_str().unwrap().to_string();
    assert!(r["rcookie"].as_str().unwrap().len() > 20);
    let mut c2 = ws::connect(s.port, &format!("/control.ashx?auth={token}"), &[])
        .await
        .unwrap();
    assert_eq!(
        ws::recv_json(&mut c2).await.unwrap()["action"],
        "serverinfo"
    );

    // Logout ends the session server-side: the old cookie no longer works.
    let out = request(s.port, "POST", "/logout", &[("cookie", &pair)], b"")
        .await
        .unwrap();
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let home = request(s.port, "GET", "/", &[("cookie", &pair)], b"")
        .await
        .unwrap();
    assert_eq!(home.status, 303);
    let mut c3 = ws::connect(s.port, "/control.ashx", &[("cookie", &pair)])
        .await
        .unwrap();
    assert_eq!(ws::recv_any_json(&mut c3).await.unwrap()["msg"], "noauth");
}

#[tokio::test]
async fn tls_12_and_13_only_with_forward_secret_suites() {
    use tokio_rustls::TlsConnector;
    let s = TestServer::start(Db::Sqlite).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = ws_tls(version);
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .unwrap();
        let tls = TlsConnector::from(config)
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let (_, conn) = tls.get_ref();
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        if version == &rustls::version::TLS12 {
            assert!(
                suite.contains("ECDHE"),
                "TLS 1.2 suite must be ECDHE: {suite}"
            );
        }
        assert!(
            suite.contains("GCM") || suite.contains("CHACHA20"),
            "{suite}"
        );
    }
}

fn ws_tls(
    version: &'static rustls::SupportedProtocolVersion,
) -> std::sync::Arc<rustls::ClientConfig> {
    ws::insecure_tls(&[version])
}

#[tokio::test]
async fn unknown_paths_are_404_and_health_is_open() {
    let s = TestServer::start(Db::Sqlite).await;
    let r = request(s.port, "GET", "/nope", &[], b"").await.unwrap();
    assert_eq!(r.status, 404);
    let r = request(s.port, "GET", "/health", &[], b"").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

#[tokio::test]
async fn agent_binaries_are_served() {
    let s = TestServer::start(Db::Sqlite).await;
    // Our own agent: the binary built beside the server.
    let r = request(s.port, "GET", "/agents/ironmesh-agent", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"ironmesh-agent\"")
    );
    assert_eq!(
        r.body,
        std::fs::read(ironmesh_testkit::binary("ironmesh-agent")).unwrap()
    );
    // The stock agent only when a meshcentral package is configured.
    let r = request(s.port, "GET", "/meshagents?id=6", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let package = ironmesh_testkit::meshctrl::script()
        .parent()
        .unwrap()
        .to_path_buf();
    let s2 = TestServer::start_with(
        Db::Sqlite,
        &["--meshcentral-dir", package.to_str().unwrap()],
    )
    .await;
    let r = request(s2.port, "GET", "/meshagents?id=6", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(package.join("agents/meshagent_x86-64")).unwrap()
    );
    let r = request(s2.port, "GET", "/meshagents?id=99", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // Settings of an unknown group: 404, not an empty file.
    let r = request(s.port, "GET", "/meshsettings?id=nosuchgroup", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}
