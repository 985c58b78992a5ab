//! A server WebSocket with permessage-deflate (RFC 7692), for browser control channels.
//!
//! The WebSocket library under axum (tungstenite) cannot negotiate compression, so browser
//! consoles, whose JSON compresses several times over, get this small implementation of the
//! server side of RFC 6455 with RFC 7692 on top. It is used only when a browser (a request
//! with `Origin`) offers `permessage-deflate`; every other client keeps axum's socket.
//!
//! Both directions use no context takeover (each message is compressed on its own), so a
//! session holds no compression window between messages. The socket is exposed as the same
//! `Stream` + `Sink` of axum `Message`s as axum's own, so the control session does not know
//! which one it has: a reader and a writer task own the connection's two halves. The frame
//! format, message joining and the bounded inflate are `ironmesh_proto::websocket`; this
//! module is the handshake headers and the I/O.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ws::{CloseFrame, Message};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::Engine;
use futures_util::{Sink, Stream};
use ironmesh_proto::websocket::{
    self, Frame, HeaderParse, ReadError, Reassembler, Sender, OP_BINARY, OP_PING, OP_PONG, OP_TEXT,
};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// The GUID of RFC 6455 §1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The response header value: no context takeover either way.
pub const RESPONSE_EXTENSION: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Whether the request offers permessage-deflate (any parameters; the response pins them).
pub fn offered(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|offer| offer.split(';').next().map(str::trim) == Some("permessage-deflate"))
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The 101 response headers for a valid upgrade request, or the reason it is not one.
pub fn handshake_headers(
    headers: &HeaderMap,
) -> Result<Vec<(header::HeaderName, HeaderValue)>, StatusCode> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err(StatusCode::BAD_REQUEST);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(StatusCode::BAD_REQUEST);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(StatusCode::BAD_REQUEST)?;
    Ok(vec![
        (header::UPGRADE, HeaderValue::from_static("websocket")),
        (header::CONNECTION, HeaderValue::from_static("upgrade")),
        (
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept_key(key.as_bytes()))
                .map_err(|_| StatusCode::BAD_REQUEST)?,
        ),
        (
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(RESPONSE_EXTENSION),
        ),
    ])
}

/// An I/O error under the socket, worded as tungstenite words it.
#[derive(Debug)]
struct IoError(std::io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IO error: {}", self.0)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[derive(Debug)]
enum ReadFailure {
    Frame(ReadError),
    Io(std::io::Error),
}

impl From<ReadError> for ReadFailure {
    fn from(e: ReadError) -> Self {
        ReadFailure::Frame(e)
    }
}

/// Reads one client frame: the header as far as each check needs (`websocket::parse_header`
/// refuses a bad header before more of it is waited for), then the payload, unmasked.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Frame, ReadFailure> {
    let mut head = [0u8; websocket::MAX_HEADER];
    let mut have = 0;
    let (header, _) = loop {
        match websocket::parse_header(&head[..have], Sender::Client, max)? {
            HeaderParse::Complete { header, len } => break (header, len),
            HeaderParse::NeedMore(n) => {
                r.read_exact(&mut head[have..n])
                    .await
                    .map_err(ReadFailure::Io)?;
                have = n;
            }
        }
    };
    let mut payload = vec![0u8; header.payload_len];
    r.read_exact(&mut payload).await.map_err(ReadFailure::Io)?;
    if let Some(mask) = header.mask {
        websocket::apply_mask(&mut payload, mask);
    }
    Ok(Frame {
        fin: header.fin,
        rsv1: header.rsv1,
        opcode: header.opcode,
        payload,
    })
}

/// The socket handed to the control session: messages in, messages out.
pub struct DeflateSocket {
    incoming: mpsc::Receiver<Result<Message, axum::Error>>,
    outgoing: PollSender<Message>,
}

impl DeflateSocket {
    /// Runs the WebSocket protocol over an upgraded connection.
    pub fn start<IO>(io: IO, max_message: usize) -> DeflateSocket
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(io);
        let (in_tx, in_rx) = mpsc::channel::<Result<Message, axum::Error>>(16);
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
        let pong_tx = out_tx.clone();
        tokio::spawn(async move {
            let mut messages = Reassembler::new(max_message);
            loop {
                let message = match read_frame(&mut reader, max_message).await {
                    Ok(frame) => messages.push(frame).map_err(axum::Error::new),
                    Err(ReadFailure::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break
                    }
                    Err(ReadFailure::Io(e)) => Err(axum::Error::new(IoError(e))),
                    Err(ReadFailure::Frame(e)) => Err(axum::Error::new(e)),
                };
                let message = match message {
                    Ok(None) => continue,
                    Ok(Some(websocket::Message::Ping(payload))) => {
                        let _ = pong_tx.send(Message::Pong(payload.into())).await;
                        continue;
                    }
                    Ok(Some(websocket::Message::Close(close))) => {
                        let close = close.map(|(code, reason)| CloseFrame {
                            code,
                            reason: reason.into(),
                        });
                        let _ = in_tx.send(Ok(Message::Close(close))).await;
                        break;
                    }
                    Ok(Some(websocket::Message::Pong(payload))) => Message::Pong(payload.into()),
                    Ok(Some(websocket::Message::Text(text))) => Message::Text(text.into()),
                    Ok(Some(websocket::Message::Binary(data))) => Message::Binary(data.into()),
                    Err(e) => {
                        let _ = in_tx.send(Err(e)).await;
                        break;
                    }
                };
                if in_tx.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let (bytes, closing) = match msg {
                    Message::Text(t) => {
                        (websocket::data_frame(OP_TEXT, t.as_str().as_bytes()), false)
                    }
                    Message::Binary(b) => (websocket::data_frame(OP_BINARY, &b), false),
                    Message::Ping(p) => (websocket::encode_frame(OP_PING, false, &p), false),
                    Message::Pong(p) => (websocket::encode_frame(OP_PONG, false, &p), false),
                    Message::Close(frame) => {
                        let close = frame.as_ref().map(|f| (f.code, f.reason.as_str()));
                        (websocket::close_frame(close), true)
                    }
                };
                if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
                if closing {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        DeflateSocket {
            incoming: in_rx,
            outgoing: PollSender::new(out_tx),
        }
    }
}

impl Stream for DeflateSocket {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for DeflateSocket {
    type Error = axum::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.outgoing.poll_reserve(cx).map_err(axum::Error::new)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.outgoing.send_item(item).map_err(axum::Error::new)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.outgoing.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn offers_are_recognized() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
        );
        assert!(offered(&h));
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("x-webkit-deflate-frame"),
        );
        assert!(!offered(&h));
    }
}
