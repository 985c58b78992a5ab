//! Clients that connect from a chosen loopback address (all of 127.0.0.0/8 is loopback on
//! Linux), for tests about what the server does per client address.

use std::net::{IpAddr, SocketAddr};

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::ws::{b64, insecure_tls, recv_json, Ws};

/// TLS to 127.0.0.1:`port` from `source`.
pub async fn tls_connect_from(source: IpAddr, port: u16) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    TlsConnector::from(insecure_tls(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]))
    .connect(ServerName::try_from("localhost").expect("name"), tcp)
    .await
}

/// Signs in on the control channel from `source` with `x-meshauth`; `Ok` once the greeting
/// arrived, `Err` with the server's `close` message (`noauth-2d`, `locked`, …) otherwise.
pub async fn sign_in_from(
    source: IpAddr,
    port: u16,
    user: &str,
    pass: &str,
) -> anyhow::Result<Result<Ws, String>> {
    sign_in_with_code_from(source, port, user, pass, None).await
}

/// [`sign_in_from`] with a second-factor code (x-meshauth's third field) when given.
pub async fn sign_in_with_code_from(
    source: IpAddr,
    port: u16,
    user: &str,
    pass: &str,
    code: Option<&str>,
) -> anyhow::Result<Result<Ws, String>> {
    let tls = tls_connect_from(source, port).await?;
    let mut request = format!("wss://127.0.0.1:{port}/control.ashx").into_client_request()?;
    let mut header = format!("{},{}", b64(user.as_bytes()), b64(pass.as_bytes()));
    if let Some(code) = code {
        header.push(',');
        header.push_str(&b64(code.as_bytes()));
    }
    request
        .headers_mut()
        .insert("x-meshauth", HeaderValue::from_str(&header)?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await?;
    let first = recv_json(&mut ws).await?;
    if first["action"] == "close" {
        return Ok(Err(first["msg"].as_str().unwrap_or("").to_string()));
    }
    anyhow::ensure!(
        first["action"] == "serverinfo",
        "unexpected greeting {first}"
    );
    Ok(Ok(ws))
}
