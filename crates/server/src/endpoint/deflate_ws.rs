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
//! which one it has: a reader and a writer task own the connection's two halves.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ws::{CloseFrame, Message};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::Engine;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures_util::{Sink, Stream};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// The GUID of RFC 6455 §1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The deflate tail RFC 7692 §7.2.1 strips from each compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Messages shorter than this are sent uncompressed (not worth it).
const COMPRESS_FROM: usize = 64;
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

/// Compresses one message payload: raw deflate ended by a sync flush, whose empty stored
/// block's `00 00 ff ff` is removed (RFC 7692 §7.2.1).
pub fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        // Done once all input is in and the flush did not run out of room.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(1024));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    Ok(out)
}

/// Decompresses one message payload, refusing more than `max` bytes of output: a small
/// compressed frame cannot inflate into unbounded memory.
pub fn decompress(data: &[u8], max: usize) -> Result<Vec<u8>, ReadError> {
    let mut input = Vec::with_capacity(data.len() + TAIL.len());
    input.extend_from_slice(data);
    input.extend_from_slice(&TAIL);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity((data.len() * 4 + 64).min(max + 1));
    loop {
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(
                &input[in_before as usize..],
                &mut out,
                FlushDecompress::Sync,
            )
            .map_err(|_| ReadError::Protocol("invalid compressed data"))?;
        if out.len() > max {
            return Err(ReadError::TooBig {
                size: out.len(),
                max,
            });
        }
        let all_in = d.total_in() as usize == input.len();
        if status == Status::StreamEnd || (all_in && out.len() < out.capacity()) {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            if out.len() >= max {
                return Err(ReadError::TooBig {
                    size: out.len() + 1,
                    max,
                });
            }
            out.reserve(out.capacity().min(max + 1 - out.len()).max(64));
        } else if d.total_in() == in_before && d.total_out() == out_before {
            return Err(ReadError::Protocol("invalid compressed data"));
        }
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// Over the size limit; `Display` matches tungstenite's wording, so the control session
    /// closes with 1009 and both sizes as for any other socket.
    TooBig {
        size: usize,
        max: usize,
    },
    Protocol(&'static str),
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooBig { size, max } => {
                write!(f, "Space limit exceeded: Message too long: {size} > {max}")
            }
            ReadError::Protocol(why) => write!(f, "WebSocket protocol error: {why}"),
            ReadError::Io(e) => write!(f, "IO error: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// One frame header and payload as read (payload unmasked).
struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Frame, ReadError> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await.map_err(ReadError::Io)?;
    let fin = head[0] & 0x80 != 0;
    let rsv1 = head[0] & 0x40 != 0;
    if head[0] & 0x30 != 0 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    let opcode = head[0] & 0x0f;
    if head[1] & 0x80 == 0 {
        return Err(ReadError::Protocol("client frames must be masked"));
    }
    let len = match head[1] & 0x7f {
        126 => r.read_u16().await.map_err(ReadError::Io)? as u64,
        127 => r.read_u64().await.map_err(ReadError::Io)?,
        n => n as u64,
    };
    if opcode >= 8 && (len > 125 || !fin) {
        return Err(ReadError::Protocol("bad control frame"));
    }
    if len > max as u64 {
        return Err(ReadError::TooBig {
            size: len as usize,
            max,
        });
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await.map_err(ReadError::Io)?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await.map_err(ReadError::Io)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Frame {
        fin,
        rsv1,
        opcode,
        payload,
    })
}

/// Encodes one unmasked server frame.
pub fn encode_frame(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
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
            let mut message: Vec<u8> = Vec::new();
            let mut message_kind: Option<(u8, bool)> = None;
            loop {
                let frame = match read_frame(&mut reader, max_message).await {
                    Ok(f) => f,
                    Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => {
                        let _ = in_tx.send(Err(axum::Error::new(e))).await;
                        break;
                    }
                };
                match frame.opcode {
                    0x9 => {
                        let _ = pong_tx.send(Message::Pong(frame.payload.into())).await;
                        continue;
                    }
                    0xA => {
                        if in_tx
                            .send(Ok(Message::Pong(frame.payload.into())))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        continue;
                    }
                    0x8 => {
                        let close = (frame.payload.len() >= 2).then(|| CloseFrame {
                            code: u16::from_be_bytes([frame.payload[0], frame.payload[1]]),
                            reason: String::from_utf8_lossy(&frame.payload[2..])
                                .into_owned()
                                .into(),
                        });
                        let _ = in_tx.send(Ok(Message::Close(close))).await;
                        break;
                    }
                    0x1 | 0x2 if message_kind.is_none() => {
                        message_kind = Some((frame.opcode, frame.rsv1));
                    }
                    0x0 if message_kind.is_some() && !frame.rsv1 => {}
                    _ => {
                        let e = ReadError::Protocol("unexpected frame");
                        let _ = in_tx.send(Err(axum::Error::new(e))).await;
                        break;
                    }
                }
                if message.len() + frame.payload.len() > max_message {
                    let e = ReadError::TooBig {
                        size: message.len() + frame.payload.len(),
                        max: max_message,
                    };
                    let _ = in_tx.send(Err(axum::Error::new(e))).await;
                    break;
                }
                message.extend_from_slice(&frame.payload);
                if !frame.fin {
                    continue;
                }
                let (opcode, compressed) = message_kind.take().unwrap_or((0x1, false));
                let data = std::mem::take(&mut message);
                let data = if compressed {
                    match decompress(&data, max_message) {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = in_tx.send(Err(axum::Error::new(e))).await;
                            break;
                        }
                    }
                } else {
                    data
                };
                let msg = if opcode == 0x1 {
                    match String::from_utf8(data) {
                        Ok(text) => Message::Text(text.into()),
                        Err(_) => {
                            let e = ReadError::Protocol("text message is not UTF-8");
                            let _ = in_tx.send(Err(axum::Error::new(e))).await;
                            break;
                        }
                    }
                } else {
                    Message::Binary(data.into())
                };
                if in_tx.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let (bytes, closing) = match msg {
                    Message::Text(t) => (data_frame(0x1, t.as_str().as_bytes()), false),
                    Message::Binary(b) => (data_frame(0x2, &b), false),
                    Message::Ping(p) => (encode_frame(0x9, false, &p), false),
                    Message::Pong(p) => (encode_frame(0xA, false, &p), false),
                    Message::Close(frame) => {
                        let mut payload = Vec::new();
                        if let Some(f) = frame {
                            payload.extend_from_slice(&f.code.to_be_bytes());
                            payload.extend_from_slice(f.reason.as_str().as_bytes());
                            payload.truncate(125);
                        }
                        (encode_frame(0x8, false, &payload), true)
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

/// A data frame, compressed when that is worth it.
fn data_frame(opcode: u8, data: &[u8]) -> Vec<u8> {
    if data.len() >= COMPRESS_FROM {
        if let Ok(small) = compress(data) {
            return encode_frame(opcode, true, &small);
        }
    }
    encode_frame(opcode, false, data)
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
    fn rfc_7692_example_inflates_and_our_output_round_trips() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(decompress(&hello, 100).unwrap(), b"Hello");
        let text = r#"{"action":"event","event":{"action":"nodeconnect","conn":1}}"#.repeat(20);
        let small = compress(text.as_bytes()).unwrap();
        assert!(
            small.len() < text.len() / 4,
            "{} of {}",
            small.len(),
            text.len()
        );
        assert_eq!(decompress(&small, 1 << 20).unwrap(), text.as_bytes());
    }

    #[test]
    fn inflating_past_the_limit_is_refused() {
        let bomb = compress(&vec![b'a'; 1 << 20]).unwrap();
        assert!(bomb.len() < 8 * 1024);
        let e = decompress(&bomb, 4096).unwrap_err();
        assert!(e.to_string().contains("Message too long"), "{e}");
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
