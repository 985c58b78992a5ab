//! WebSocket frames (RFC 6455 §5) and permessage-deflate messages (RFC 7692), as the
//! compressing socket browsers' control channels get (`server::endpoint::deflate_ws`) reads
//! and writes them: functions over byte slices, no I/O.
//!
//! Reading: [`parse_header`] takes a frame header as far as the bytes at hand go, checking
//! each rule as soon as the bytes it needs are there (so a socket can refuse an over-size
//! length before waiting for the mask); [`parse_frame`] takes a whole frame; a
//! [`Reassembler`] turns frames into messages (fragments joined, compressed messages
//! inflated, text checked to be UTF-8), all within one message size limit. Writing: server
//! frames ([`encode_frame`], [`data_frame`], [`close_frame`]) and, for tests, masked client
//! frames ([`encode`]).
//!
//! Compression uses no context takeover either way: each message is deflated on its own,
//! so neither side keeps a window between messages.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Control frames (opcodes 8 and up) carry at most this much payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// The longest frame header: 2 bytes, a 64-bit length and the mask.
pub const MAX_HEADER: usize = 14;
/// The deflate tail RFC 7692 §7.2.1 strips from each compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Messages shorter than this are sent uncompressed (not worth it).
pub const COMPRESS_FROM: usize = 64;

/// Why frames or a message were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Over the size limit; `Display` matches tungstenite's wording, so the control session
    /// closes with 1009 and both sizes as for any other socket.
    TooBig {
        size: usize,
        max: usize,
    },
    Protocol(&'static str),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooBig { size, max } => {
                write!(f, "Space limit exceeded: Message too long: {size} > {max}")
            }
            ReadError::Protocol(why) => write!(f, "WebSocket protocol error: {why}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Which side sent the frames being read: clients must mask theirs, servers must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// One frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: the message starting with this frame is compressed (RFC 7692 §6).
    pub rsv1: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: usize,
}

/// What [`parse_header`] made of the bytes at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderParse {
    /// The header, `len` bytes long; the payload follows.
    Complete { header: FrameHeader, len: usize },
    /// The bytes so far are a valid start; the header needs at least this many in all.
    NeedMore(usize),
}

/// Reads a frame header from the start of `buf`, refusing, as soon as the bytes that show
/// it are there: reserved bits RSV2/RSV3, a client frame without a mask (or a server frame
/// with one), a fragmented or over-125-byte control frame, and a payload over `max`.
pub fn parse_header(buf: &[u8], from: Sender, max: usize) -> Result<HeaderParse, ReadError> {
    let [b0, b1, ..] = *buf else {
        return Ok(HeaderParse::NeedMore(2));
    };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    match from {
        Sender::Client if !masked => {
            return Err(ReadError::Protocol("client frames must be masked"))
        }
        Sender::Server if masked => {
            return Err(ReadError::Protocol("server frames must not be masked"))
        }
        _ => {}
    }
    let extended = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    if buf.len() < 2 + extended {
        return Ok(HeaderParse::NeedMore(2 + extended));
    }
    let len = match extended {
        2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
        8 => u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
        _ => (b1 & 0x7f) as u64,
    };
    if opcode >= OP_CLOSE && (len > MAX_CONTROL_PAYLOAD as u64 || !fin) {
        return Err(ReadError::Protocol("bad control frame"));
    }
    if len > max as u64 {
        return Err(ReadError::TooBig {
            size: usize::try_from(len).unwrap_or(usize::MAX),
            max,
        });
    }
    let header_len = 2 + extended + if masked { 4 } else { 0 };
    if buf.len() < header_len {
        return Ok(HeaderParse::NeedMore(header_len));
    }
    let mask = masked.then(|| {
        buf[2 + extended..header_len]
            .try_into()
            .expect("4 mask bytes")
    });
    Ok(HeaderParse::Complete {
        header: FrameHeader {
            fin,
            rsv1,
            opcode,
            mask,
            payload_len: len as usize,
        },
        len: header_len,
    })
}

/// XORs a payload with a frame's mask (masking and unmasking are the same).
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// One frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads one whole frame from the start of `buf` with [`parse_header`]'s rules: the frame
/// and the bytes it took, or `None` when `buf` ends before it does.
pub fn parse_frame(
    buf: &[u8],
    from: Sender,
    max: usize,
) -> Result<Option<(Frame, usize)>, ReadError> {
    let (header, start) = match parse_header(buf, from, max)? {
        HeaderParse::Complete { header, len } => (header, len),
        HeaderParse::NeedMore(_) => return Ok(None),
    };
    let Some(payload) = buf[start..].get(..header.payload_len) else {
        return Ok(None);
    };
    let mut payload = payload.to_vec();
    if let Some(mask) = header.mask {
        apply_mask(&mut payload, mask);
    }
    let frame = Frame {
        fin: header.fin,
        rsv1: header.rsv1,
        opcode: header.opcode,
        payload,
    };
    Ok(Some((frame, start + header.payload_len)))
}

/// Encodes one frame, masked with `mask` when given (a client's frame), with the shortest
/// length form.
pub fn encode(frame: &Frame, mask: Option<[u8; 4]>) -> Vec<u8> {
    encode_parts(frame.fin, frame.rsv1, frame.opcode, mask, &frame.payload)
}

fn encode_parts(
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + MAX_HEADER);
    out.push(if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(mask) = mask {
        out.extend_from_slice(&mask);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[start..], mask);
    }
    out
}

/// Encodes one unmasked server frame, FIN set.
pub fn encode_frame(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    encode_parts(true, rsv1, opcode, None, payload)
}

/// A server data frame holding a whole message, compressed when that is worth it.
pub fn data_frame(opcode: u8, data: &[u8]) -> Vec<u8> {
    if data.len() >= COMPRESS_FROM {
        if let Ok(small) = compress(data) {
            return encode_frame(opcode, true, &small);
        }
    }
    encode_frame(opcode, false, data)
}

/// A server close frame: the code and reason, if any, the reason cut at a character
/// boundary to fit a control frame's 125 bytes (it must stay UTF-8, RFC 6455 §5.5.1).
pub fn close_frame(close: Option<(u16, &str)>) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some((code, reason)) = close {
        let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
    }
    encode_frame(OP_CLOSE, false, &payload)
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
/// compressed frame cannot inflate into unbounded memory. The output buffer never holds
/// more than `max + 1` bytes: filling that last byte is what shows a message too long.
pub fn decompress(data: &[u8], max: usize) -> Result<Vec<u8>, ReadError> {
    let mut input = Vec::with_capacity(data.len() + TAIL.len());
    input.extend_from_slice(data);
    input.extend_from_slice(&TAIL);
    let mut d = Decompress::new(false);
    let room = max.saturating_add(1);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).saturating_add(64).min(room));
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
            // Full, perhaps with more to come: grow (doubling), up to one byte past `max`.
            out.reserve_exact(out.capacity().max(64).min(room - out.len()));
        } else if d.total_in() == in_before && d.total_out() == out_before {
            return Err(ReadError::Protocol("invalid compressed data"));
        }
    }
}

/// A whole message, or a control frame's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close code and reason, when the frame had them.
    Close(Option<(u16, String)>),
}

/// Joins a peer's frames into messages: data frames and their continuations (inflated
/// when the first had RSV1), with control frames allowed in between. A message over `max`
/// bytes, before or after inflating, is refused; so are frames out of order and text that
/// is not UTF-8. After an error the connection is to be closed: the state is undefined.
#[derive(Debug)]
pub struct Reassembler {
    max: usize,
    message: Vec<u8>,
    /// Opcode and RSV1 of the first frame of the message being joined.
    kind: Option<(u8, bool)>,
}

impl Reassembler {
    pub fn new(max_message: usize) -> Reassembler {
        Reassembler {
            max: max_message,
            message: Vec::new(),
            kind: None,
        }
    }

    /// Takes the next frame (read with `max` as [`parse_header`]'s limit): a message when
    /// it completes one, `None` while a fragmented message goes on.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Message>, ReadError> {
        match frame.opcode {
            OP_PING => return Ok(Some(Message::Ping(frame.payload))),
            OP_PONG => return Ok(Some(Message::Pong(frame.payload))),
            OP_CLOSE => {
                let p = &frame.payload;
                let close = (p.len() >= 2).then(|| {
                    let reason = String::from_utf8_lossy(&p[2..]).into_owned();
                    (u16::from_be_bytes([p[0], p[1]]), reason)
                });
                return Ok(Some(Message::Close(close)));
            }
            OP_TEXT | OP_BINARY if self.kind.is_none() => {
                self.kind = Some((frame.opcode, frame.rsv1));
            }
            OP_CONTINUATION if self.kind.is_some() && !frame.rsv1 => {}
            _ => return Err(ReadError::Protocol("unexpected frame")),
        }
        if self.message.len() + frame.payload.len() > self.max {
            return Err(ReadError::TooBig {
                size: self.message.len() + frame.payload.len(),
                max: self.max,
            });
        }
        self.message.extend_from_slice(&frame.payload);
        if !frame.fin {
            return Ok(None);
        }
        let (opcode, compressed) = self.kind.take().unwrap_or((OP_TEXT, false));
        let data = std::mem::take(&mut self.message);
        let data = if compressed {
            decompress(&data, self.max)?
        } else {
            data
        };
        if opcode == OP_TEXT {
            String::from_utf8(data)
                .map(|text| Some(Message::Text(text)))
                .map_err(|_| ReadError::Protocol("text message is not UTF-8"))
        } else {
            Ok(Some(Message::Binary(data)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let frame = Frame {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            opcode: first & 0x0f,
            payload: payload.to_vec(),
        };
        encode(&frame, Some([0x37, 0xfa, 0x21, 0x3d]))
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
    fn messages_of_exactly_the_limit_inflate() {
        // Found by the websocket_frames fuzz target: when the output buffer, grown by
        // doubling, came to exactly the limit, a message of that size was refused as one
        // byte too long.
        let json = br#"{"action":"nodes","responseid":"n1","nodes":{}}"#;
        for n in 0..=2048 {
            let message: Vec<u8> = json.iter().copied().cycle().take(n).collect();
            let compressed = compress(&message).unwrap();
            assert_eq!(
                decompress(&compressed, n).as_ref(),
                Ok(&message),
                "{n} bytes"
            );
            if n > 0 {
                assert_eq!(
                    decompress(&compressed, n - 1),
                    Err(ReadError::TooBig {
                        size: n,
                        max: n - 1
                    }),
                    "{n} bytes"
                );
            }
        }
    }

    #[test]
    fn rfc_6455_masked_hello_parses() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (frame, used) = parse_frame(&bytes, Sender::Client, 100).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!((frame.fin, frame.opcode), (true, OP_TEXT));
        assert_eq!(frame.payload, b"Hello");
        assert_eq!(client(0x81, b"Hello"), bytes);
        // The same frame unmasked, from a server.
        assert_eq!(
            encode_frame(OP_TEXT, false, b"Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        for cut in 0..bytes.len() {
            assert_eq!(parse_frame(&bytes[..cut], Sender::Client, 100), Ok(None));
        }
    }

    #[test]
    fn headers_are_refused_as_soon_as_their_bytes_show_it() {
        let p = |b: &[u8], max| parse_header(b, Sender::Client, max);
        assert_eq!(p(&[], 10), Ok(HeaderParse::NeedMore(2)));
        assert_eq!(p(&[0x81, 0x85], 10), Ok(HeaderParse::NeedMore(6)));
        assert_eq!(
            p(&[0x81, 0x05], 10),
            Err(ReadError::Protocol("client frames must be masked"))
        );
        assert_eq!(
            p(&[0xa1, 0x85], 10),
            Err(ReadError::Protocol("reserved bits set"))
        );
        assert_eq!(
            p(&[0x09, 0x80], 10),
            Err(ReadError::Protocol("bad control frame"))
        );
        assert_eq!(
            p(&[0x89, 0xfe, 0x00, 0x7e], 1000),
            Err(ReadError::Protocol("bad control frame"))
        );
        // A 64-bit length over the limit is refused before the mask arrives.
        let huge = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(p(&huge[..2], 10), Ok(HeaderParse::NeedMore(10)));
        assert_eq!(
            p(&huge, 10),
            Err(ReadError::TooBig {
                size: 1 << 63,
                max: 10
            })
        );
        assert_eq!(
            parse_header(&[0x81, 0x85], Sender::Server, 10),
            Err(ReadError::Protocol("server frames must not be masked"))
        );
    }

    #[test]
    fn long_lengths_round_trip() {
        for len in [125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let bytes = client(0x82, &payload);
            let (frame, used) = parse_frame(&bytes, Sender::Client, 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!((used, frame.payload), (bytes.len(), payload.clone()));
            let bytes = encode_frame(OP_BINARY, false, &payload);
            let (frame, _) = parse_frame(&bytes, Sender::Server, 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!(frame.payload, payload);
        }
    }

    #[test]
    fn fragments_and_control_frames_make_messages() {
        let mut r = Reassembler::new(100);
        let frame = |first: u8, payload: &[u8]| Frame {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            opcode: first & 0x0f,
            payload: payload.to_vec(),
        };
        let hello = compress(b"Hello").unwrap();
        assert_eq!(r.push(frame(0x41, &hello[..3])), Ok(None));
        assert_eq!(
            r.push(frame(0x89, b"p")),
            Ok(Some(Message::Ping(b"p".to_vec())))
        );
        assert_eq!(
            r.push(frame(0x80, &hello[3..])),
            Ok(Some(Message::Text("Hello".into())))
        );
        assert_eq!(
            r.push(frame(0x82, &[1, 2])),
            Ok(Some(Message::Binary(vec![1, 2])))
        );
        assert_eq!(
            r.push(frame(0x80, b"x")),
            Err(ReadError::Protocol("unexpected frame"))
        );
        let mut r = Reassembler::new(4);
        assert_eq!(r.push(frame(0x01, b"abc")), Ok(None));
        assert_eq!(
            r.push(frame(0x80, b"de")),
            Err(ReadError::TooBig { size: 5, max: 4 })
        );
        let mut r = Reassembler::new(4);
        assert_eq!(
            r.push(frame(0x81, &[0xff])),
            Err(ReadError::Protocol("text message is not UTF-8"))
        );
        assert_eq!(
            r.push(frame(0x88, &[0x03, 0xe8, b'o', b'k'])),
            Ok(Some(Message::Close(Some((1000, "ok".into())))))
        );
    }

    #[test]
    fn server_close_frames_fit_a_control_frame() {
        let bytes = close_frame(Some((1009, &"x".repeat(200))));
        let (frame, _) = parse_frame(&bytes, Sender::Server, 1000).unwrap().unwrap();
        assert_eq!(frame.payload.len(), MAX_CONTROL_PAYLOAD);
        assert_eq!(close_frame(None), [0x88, 0x00]);
        // Found by the websocket_frames fuzz target: a long reason was cut at byte 125
        // even inside a character, and the peer read the half character as U+FFFD.
        let reason = "é".repeat(70);
        let bytes = close_frame(Some((1000, &reason)));
        let (frame, _) = parse_frame(&bytes, Sender::Server, 1000).unwrap().unwrap();
        let sent = std::str::from_utf8(&frame.payload[2..]).expect("UTF-8 reason");
        assert_eq!(sent, "é".repeat(61));
    }
}
