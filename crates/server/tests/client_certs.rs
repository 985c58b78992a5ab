//! Optional mutual TLS for the control channel (`[client_certs] ca`): without a certificate
//! of the configured CA the control channel is refused; a certificate of another CA fails
//! the TLS handshake; agents, which have no client certificate, are unaffected.

use std::sync::Arc;

use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{fetch_msh, SimAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const PASS: &str = "Adm1n-pass!";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A client certificate issued by `issuer`, and its key.
fn issue(issuer: &Ca) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "operator laptop");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    (cert, key)
}

/// A client configuration presenting a certificate issued by `issuer`.
fn client(issuer: &Ca) -> Arc<rustls::ClientConfig> {
    let (cert, key) = issue(issuer);
    ironmesh_client::connect::tls_config_with_client_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap()
}

#[tokio::test]
async fn control_channel_needs_a_certificate_of_the_configured_ca() {
    let trusted = ca("ironmesh operators");
    let other = ca("somebody else");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("operators-ca.pem");
    std::fs::write(&ca_file, trusted.cert.pem()).unwrap();
    let config = format!("[client_certs]\nca = {:?}\n", ca_file.display().to_string());
    let s = TestServer::start_with_config(Db::Sqlite, &config).await;
    s.add_user("admin", PASS, true).await;
    let auth = format!("{},{}", ws::b64(b"admin"), ws::b64(PASS.as_bytes()));
    let headers = [("x-meshauth", auth.as_str())];

    // No certificate: refused before the upgrade, with the reason.
    let err = ws::connect(s.port, "/control.ashx", &headers)
        .await
        .expect_err("control channel without a client certificate");
    assert!(err.to_string().contains("403"), "{err}");
    // A certificate of the configured CA, plus the normal login: the session opens.
    let mut c = ws::connect_with_tls(s.port, "/control.ashx", &headers, client(&trusted))
        .await
        .expect("control channel with the operators' certificate");
    let first = ws::recv_json(&mut c).await.unwrap();
    assert_eq!(first["action"], "serverinfo");
    assert_eq!(ws::recv_json(&mut c).await.unwrap()["action"], "userinfo");
    // The certificate does not replace the login.
    let mut anonymous = ws::connect_with_tls(s.port, "/control.ashx", &[], client(&trusted))
        .await
        .unwrap();
    assert_eq!(
        ws::recv_any_json(&mut anonymous).await.unwrap()["msg"],
        "noauth"
    );

    // A certificate of another CA: the TLS handshake itself fails.
    assert!(
        ws::connect_with_tls(s.port, "/control.ashx", &headers, client(&other))
            .await
            .is_err(),
        "a foreign client certificate must not get through"
    );

    // Agents have no client certificate and keep working.
    let r = ws::request(
        &mut c,
        &serde_json::json!({"action":"createmesh","meshname":"g","meshtype":2}),
    )
    .await
    .unwrap();
    let group = r["meshid"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let msh = fetch_msh(&s, &group).await;
    let identity = Arc::new(AgentIdentity::generate(2048).unwrap().0);
    let sim = SimAgent::new(identity, &msh, s.port);
    sim.connect(None)
        .await
        .expect("agent handshake without a client certificate");

    // The ironmesh CLI: refused without a certificate; given one at login, it presents it
    // then and on every later command.
    let cfg = tempfile::tempdir().unwrap();
    let (cert, key) = issue(&trusted);
    let (cert_file, key_file) = (dir.path().join("me.pem"), dir.path().join("me.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let url = s.wss_url();
    let login = [
        "login",
        "--url",
        &url,
        "--user",
        "admin",
        "--password-stdin",
    ];
    let out = ironmesh_testkit::ironmesh_cli(cfg.path(), &login, Some(PASS));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    let mut with_cert = login.to_vec();
    let (c, k) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    with_cert.extend(["--client-cert", &c, "--client-key", &k]);
    let out = ironmesh_testkit::ironmesh_cli(cfg.path(), &with_cert, Some(PASS));
    assert!(out.status.success(), "{out:?}");
    let out = ironmesh_testkit::ironmesh_cli(cfg.path(), &["groups"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains('g'),
        "{out:?}"
    );
}
