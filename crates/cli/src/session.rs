//! Logging in and out, connecting with the stored login, and naming devices.

use std::io::{BufRead, IsTerminal};

use ironmesh_client::control::{ConnectError, ControlClient, Credentials, ServerAddress};
use serde_json::{json, Value};

use crate::config::{Login, Store};

pub async fn login(
    store: &Store,
    url: &str,
    user: &str,
    password_stdin: bool,
    expire_days: u64,
    client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    code: Option<String>,
) -> anyhow::Result<()> {
    let server = ServerAddress::parse(url)?;
    if let Some((cert, key)) = &client_cert {
        ironmesh_client::connect::use_client_certificate(cert, key)?;
    }
    let password = read_password(password_stdin)?;
    let mut creds = Credentials {
        user: user.to_string(),
        password,
        code,
    };
    let mut client = match reach(&server, &creds, None).await {
        Err(e) if asks_for_code(&e) && !password_stdin && std::io::stdin().is_terminal() => {
            creds.code = Some(rpassword::prompt_password("Second-factor code: ")?);
            reach(&server, &creds, None).await?
        }
        other => other?,
    };
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name = format!("ironmesh CLI {}", host.trim()).trim().to_string();
    let reply = client
        .request(
            json!({"action": "createLoginToken", "name": name, "expire": expire_days * 24 * 60}),
        )
        .await?;
    if let Some(err) = reply["result"].as_str() {
        anyhow::bail!("the server refused a login token: {err}");
    }
    let login = Login {
        url: server.url(),
        user: user.to_string(),
        token_user: reply["tokenUser"].as_str().unwrap_or_default().to_string(),
        token_pass: reply["tokenPass"].as_str().unwrap_or_default().to_string(),
        tls_hash: client.tls_hash.clone(),
        client_cert: client_cert.as_ref().map(|(c, _)| c.clone()),
        client_key: client_cert.map(|(_, k)| k),
    };
    anyhow::ensure!(
        !login.token_user.is_empty(),
        "the server sent no login token"
    );
    let path = store.save(&login)?;
    println!("Logged in to {} as {user}.", login.url);
    println!("Server certificate SHA-384: {}", login.tls_hash);
    println!("Login token stored in {}.", path.display());
    Ok(())
}

pub async fn logout(store: &Store) -> anyhow::Result<()> {
    if let Ok(login) = store.load() {
        let _ = use_stored_certificate(&login);
        if let Ok(mut client) = connect_with(&login).await {
            let _ = client
                .request(json!({"action": "loginTokens", "remove": [login.token_user]}))
                .await;
        }
    }
    store.remove()?;
    println!("Logged out.");
    Ok(())
}

/// Whether a refused connection only lacked a second-factor code.
fn asks_for_code(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<ConnectError>(),
        Some(ConnectError::SecondFactorRequired)
    )
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(!pw.is_empty(), "no password given on standard input");
        return Ok(pw);
    }
    Ok(rpassword::prompt_password("Password: ")?)
}

/// The stored login's server, token credentials and pinned certificate.
pub fn target(login: &Login) -> anyhow::Result<(ServerAddress, Credentials)> {
    Ok((
        ServerAddress::parse(&login.url)?,
        Credentials {
            user: login.token_user.clone(),
            password: login.token_pass.clone(),
            code: None,
        },
    ))
}

/// Presents the login's client certificate on every connection, when it has one.
fn use_stored_certificate(login: &Login) -> anyhow::Result<()> {
    if let (Some(cert), Some(key)) = (&login.client_cert, &login.client_key) {
        ironmesh_client::connect::use_client_certificate(cert, key)?;
    }
    Ok(())
}

async fn connect_with(login: &Login) -> anyhow::Result<ControlClient> {
    let (server, creds) = target(login)?;
    reach(&server, &creds, Some(&login.tls_hash)).await
}

/// Default for `IRONMESH_CONNECT_TIMEOUT`: the client library's own limit.
const CONNECT_TIMEOUT_SECS: u64 = ironmesh_client::connect::CONNECT_TIMEOUT.as_secs();

/// Seconds to wait for the server to answer (`IRONMESH_CONNECT_TIMEOUT`, at most the client
/// library's 20 s).
fn connect_timeout() -> anyhow::Result<std::time::Duration> {
    let secs = match std::env::var("IRONMESH_CONNECT_TIMEOUT") {
        Err(_) => CONNECT_TIMEOUT_SECS,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=CONNECT_TIMEOUT_SECS).contains(&n) => n,
            _ => anyhow::bail!(
                "IRONMESH_CONNECT_TIMEOUT must be a number of seconds from 1 to \
                 {CONNECT_TIMEOUT_SECS} (got {v:?})"
            ),
        },
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Opens the control channel; a failure to get there says what to do about it.
async fn reach(
    server: &ServerAddress,
    creds: &Credentials,
    pinned: Option<&str>,
) -> anyhow::Result<ControlClient> {
    let limit = connect_timeout()?;
    let attempt = tokio::time::timeout(limit, ControlClient::connect(server, creds, pinned))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs()),
            )
            .into())
        });
    match attempt {
        Ok(client) => Ok(client),
        Err(e) => Err(explain(e, server, limit).await),
    }
}

/// Turns a failure to reach `server` into a sentence saying what is wrong and what to do,
/// keeping the underlying error as detail. Errors that already say so (a wrong password, a
/// second factor) pass unchanged.
async fn explain(
    error: anyhow::Error,
    server: &ServerAddress,
    limit: std::time::Duration,
) -> anyhow::Error {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite;
    let url = server.url();
    let at = url.trim_start_matches("wss://");
    match error.downcast_ref::<ConnectError>() {
        Some(ConnectError::CertificateChanged { expected, found }) => {
            return anyhow::anyhow!(
                "{at} presents a different TLS certificate than when you logged in (SHA-384 \
                 {found}, expected {expected}): if the server's certificate was replaced on \
                 purpose, log in again (ironmesh login --url {url} --user …); otherwise this is \
                 not the server you logged in to, or something between you intercepts the \
                 connection, and nothing was sent to it"
            )
        }
        Some(_) => return error,
        None => {}
    }
    let io = error
        .chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>());
    let tls = io
        .and_then(|e| e.get_ref())
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .or_else(|| {
            error
                .chain()
                .find_map(|e| e.downcast_ref::<rustls::Error>())
        });
    let http = error.chain().find_map(|e| match e.downcast_ref() {
        Some(tungstenite::Error::Http(response)) => Some(response.status()),
        _ => None,
    });
    let sentence = match (tls, io.map(std::io::Error::kind), http) {
        (Some(rustls::Error::InvalidMessage(_)), _, _) => Some(format!(
            "{at} does not speak TLS: is this the server's HTTPS port? The URL needs the port \
             of the server's HTTPS listener (ironmesh-server's `port`, 4443 by default), not a \
             plain HTTP port"
        )),
        (
            Some(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)),
            _,
            _,
        ) => Some(format!(
            "{at} requires a client certificate: log in with --client-cert and --client-key"
        )),
        (Some(rustls::Error::AlertReceived(alert)), _, _) => Some(format!(
            "{at} refused the TLS handshake ({alert:?}): is this an ironmesh or MeshCentral \
             server's HTTPS port? A server that requires client certificates refuses \
             connections without one (--client-cert, --client-key)"
        )),
        (_, Some(ErrorKind::ConnectionRefused), _) => Some(format!(
            "nothing accepts connections on {at} (connection refused): is the server running, \
             and is {} its HTTPS port?",
            server.port
        )),
        (_, Some(ErrorKind::TimedOut), _) => Some(format!(
            "{at} did not answer within {} s: is the host reachable, is this the server's \
             HTTPS port, and does no firewall drop the connection? (IRONMESH_CONNECT_TIMEOUT \
             sets the wait)",
            limit.as_secs()
        )),
        (
            _,
            Some(
                ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted,
            ),
            _,
        ) => Some(format!(
            "{at} closed the connection during the TLS handshake: is this the server's HTTPS \
             port? (A server that requires a client certificate may do this too: \
             --client-cert, --client-key.)"
        )),
        (_, _, Some(status)) => Some(format!(
            "{at} speaks TLS but answered HTTP {status} to the control channel \
             (/control.ashx): is this an ironmesh or MeshCentral server?"
        )),
        _ => None,
    };
    let sentence = match sentence {
        Some(s) => Some(s),
        // A name that does not resolve: say so rather than "failed to lookup address".
        None if server.host.parse::<std::net::IpAddr>().is_err() => {
            match tokio::net::lookup_host((server.host.as_str(), server.port)).await {
                Err(e) => Some(format!(
                    "cannot find the host {:?} ({e}): check the host name in the URL",
                    server.host
                )),
                Ok(_) => None,
            }
        }
        None => None,
    };
    match sentence {
        Some(s) => anyhow::anyhow!("{s}\n  (cause: {error:#})"),
        None => error.context(format!("cannot reach the server at {at}")),
    }
}

pub async fn connect(store: &Store) -> anyhow::Result<(Login, ControlClient)> {
    let login = store.load()?;
    use_stored_certificate(&login)?;
    let client = connect_with(&login).await?;
    Ok((login, client))
}

/// Every device the user can see, each with `groupname` added.
pub async fn all_devices(client: &mut ControlClient) -> anyhow::Result<Vec<Value>> {
    let meshes = client.request(json!({"action": "meshes"})).await?;
    let nodes = client.request(json!({"action": "nodes"})).await?;
    if let Some(err) = nodes["result"].as_str() {
        anyhow::bail!("{err}");
    }
    let group_name = |id: &str| {
        meshes["meshes"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["_id"] == id))
            .and_then(|m| m["name"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let mut out = Vec::new();
    if let Some(groups) = nodes["nodes"].as_object() {
        for (gid, list) in groups {
            for node in list.as_array().into_iter().flatten() {
                let mut n = node.clone();
                n["groupname"] = group_name(gid).into();
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// Finds one device group the user sees by id (full or bare) or by unique name; returns it as
/// `meshes` lists it.
pub async fn resolve_group(client: &mut ControlClient, wanted: &str) -> anyhow::Result<Value> {
    let meshes = client.request(json!({"action": "meshes"})).await?;
    let full = format!("mesh//{}", wanted.trim_start_matches("mesh//"));
    let found: Vec<&Value> = meshes["meshes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["_id"] == full.as_str() || m["name"] == wanted)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!("no device group {wanted:?} (see `ironmesh groups`)"),
        _ => anyhow::bail!("several device groups are named {wanted:?}; use the id"),
    }
}

/// Finds one device by id (full, bare, `@`-prefixed) or by unique name.
pub async fn resolve_device(client: &mut ControlClient, wanted: &str) -> anyhow::Result<Value> {
    let devices = all_devices(client).await?;
    let key = wanted.trim().trim_start_matches("node//");
    let key_no_at = key.strip_prefix('@').unwrap_or(key);
    let by_id: Vec<&Value> = devices
        .iter()
        .filter(|d| {
            let id = d["_id"].as_str().unwrap_or("");
            let bare = id.trim_start_matches("node//");
            bare == key || bare == key_no_at
        })
        .collect();
    if let [one] = by_id.as_slice() {
        return Ok((*one).clone());
    }
    let by_name: Vec<&Value> = devices
        .iter()
        .filter(|d| {
            d["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
        .collect();
    match by_name.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!("no device matches {wanted:?} (see `ironmesh devices`)"),
        many => anyhow::bail!(
            "{} devices are named {wanted:?}; use an id: {}",
            many.len(),
            many.iter()
                .filter_map(|d| d["_id"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
