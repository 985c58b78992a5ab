//! The compressed control channel browsers get (permessage-deflate, `endpoint::deflate_ws`),
//! spoken frame by frame: negotiation, compressed requests and replies, and that limits and
//! close codes are the same as on the uncompressed channel. (The web console's browser test
//! runs the whole console over it in Chromium.)

use ironmesh_proto::websocket::{compress, decompress};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws::{b64, client_frame, tls_connect};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASS: &str = "Adm1n-pass!";

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn open(port: u16, user: &str, pass: &str) -> (Tls, String) {
    let mut tls = tls_connect(port).await.unwrap();
    let request = format!(
        "GET /control.ashx HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: https://127.0.0.1:{port}\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
         x-meshauth: {},{}\r\n\r\n",
        b64(user.as_bytes()),
        b64(pass.as_bytes())
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tls.read_u8().await.unwrap());
    }
    (tls, String::from_utf8_lossy(&head).into_owned())
}

/// (opcode, payload inflated when RSV1 was set, RSV1)
async fn read_frame(tls: &mut Tls) -> (u8, Vec<u8>, bool) {
    let b0 = tls.read_u8().await.unwrap();
    let b1 = tls.read_u8().await.unwrap();
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let len = match b1 & 0x7f {
        126 => tls.read_u16().await.unwrap() as usize,
        127 => tls.read_u64().await.unwrap() as usize,
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.unwrap();
    let rsv1 = b0 & 0x40 != 0;
    if rsv1 {
        payload = decompress(&payload, 16 << 20).unwrap();
    }
    (b0 & 0x0f, payload, rsv1)
}

async fn read_json(tls: &mut Tls) -> (Value, bool) {
    loop {
        let (op, payload, rsv1) = read_frame(tls).await;
        if op == 1 {
            return (serde_json::from_slice(&payload).unwrap(), rsv1);
        }
    }
}

async fn send(tls: &mut Tls, text: &[u8], compressed: bool) {
    let payload = if compressed {
        compress(text).unwrap()
    } else {
        text.to_vec()
    };
    let first = 0x81 | if compressed { 0x40 } else { 0 };
    tls.write_all(&client_frame(first, &payload)).await.unwrap();
}

#[tokio::test]
async fn browsers_get_a_compressed_control_channel_with_the_same_rules() {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;

    let (mut c, head) = open(s.port, "admin", PASS).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains(
            "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ),
        "{head}"
    );
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let (info, compressed) = read_json(&mut c).await;
    assert_eq!(info["action"], "serverinfo");
    assert!(compressed, "a long push is sent compressed");
    assert_eq!(read_json(&mut c).await.0["action"], "userinfo");

    // Compressed and plain requests both work.
    send(&mut c, br#"{"action":"ping","responseid":"z1"}"#, true).await;
    assert_eq!(read_json(&mut c).await.0["responseid"], "z1");
    send(&mut c, br#"{"action":"ping","responseid":"z2"}"#, false).await;
    assert_eq!(read_json(&mut c).await.0["responseid"], "z2");
    send(
        &mut c,
        br#"{"action":"frobnicate","responseid":"z3"}"#,
        true,
    )
    .await;
    let (r, _) = read_json(&mut c).await;
    assert_eq!(
        (r["cause"].as_str(), r["failed"].as_bool()),
        (Some("unknownaction"), Some(true))
    );

    // A small frame that inflates past the 1 MiB limit: closed with 1009 and both sizes.
    let bomb = format!(
        "{{\"action\":\"ping\",\"pad\":\"{}\"}}",
        "a".repeat(2 << 20)
    );
    send(&mut c, bomb.as_bytes(), true).await;
    let close = loop {
        let (op, payload, _) = read_frame(&mut c).await;
        if op == 8 {
            break payload;
        }
    };
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1009);
    let reason = String::from_utf8_lossy(&close[2..]).into_owned();
    assert!(reason.ends_with("exceeds maximum of 1048576"), "{reason}");

    // Bad credentials: the same `close` action and 1008 with a reason.
    let (mut bad, _) = open(s.port, "admin", "wrong-password").await;
    let (refusal, _) = read_json(&mut bad).await;
    assert_eq!(refusal["action"], "close");
    let (op, payload, _) = read_frame(&mut bad).await;
    assert_eq!(op, 8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
    assert!(String::from_utf8_lossy(&payload[2..]).contains("authentication failed"));
}
