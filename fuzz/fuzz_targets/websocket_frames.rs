//! WebSocket frames and permessage-deflate messages (`ironmesh_proto::websocket`), as the
//! compressing control-channel socket browsers get reads them from a client and writes
//! its own.
//!
//! Input: two bytes of message size limit (little-endian, taken modulo 8193, so limits
//! are 0..=8192 bytes), then bytes read both as a stream of client frames and as one
//! compressed message payload.
//!
//! Checked, besides not panicking:
//! - a header needing more bytes asks for more than it has, never more than 14; a frame
//!   that parses parses the same from the server side unmasked, builds back to its bytes
//!   (to the same frame when its length was not in the shortest form), and every shorter
//!   prefix of it is "need more", not an error;
//! - messages are never over the limit (control frames never over 125 bytes); each one the
//!   server would send back (text and binary compressed from 64 bytes on, close frames cut
//!   to 125 bytes) reads back as the same message;
//! - inflating gives at most the limit or a `TooBig` naming a size over it, and what it
//!   gives deflates and inflates back to itself; any message up to the limit survives
//!   deflate then inflate with the limit set to exactly its size, and one byte less refuses
//!   it;
//! - memory: parsing a frame holds no more than its payload, inflating no more than the
//!   input, the inflater's fixed state and twice the limit (the output buffer as it grows),
//!   joining a message a small multiple of the limit, whatever the data inflates to.

#![no_main]

use std::sync::OnceLock;

use ironmesh_fuzz::peak_allocated;
use ironmesh_proto::websocket::{
    close_frame, compress, data_frame, decompress, encode, encode_frame, parse_frame, parse_header,
    Frame, HeaderParse, Message, ReadError, Reassembler, Sender, MAX_CONTROL_PAYLOAD, MAX_HEADER,
    OP_BINARY, OP_PING, OP_PONG, OP_TEXT,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((limit, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = u16::from_le_bytes(*limit) as usize % 8193;
    frames(rest, limit);
    inflate(rest, limit);
    deflate_round_trip(rest, limit);
});

/// The input as the frames of one client connection, until one is refused or the input
/// ends in the middle of one.
fn frames(mut input: &[u8], limit: usize) {
    let mut messages = Reassembler::new(limit);
    loop {
        let (parsed, held) = peak_allocated(|| parse_frame(input, Sender::Client, limit));
        let (frame, used) = match parsed {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                need_more_asks_for_more(input, limit);
                return;
            }
            Err(e) => {
                refusal_is_sound(&e, limit);
                return;
            }
        };
        assert!(held <= frame.payload.len(), "{held} bytes for {frame:?}");
        frame_round_trips(&input[..used], &frame, limit);
        input = &input[used..];

        let (message, held) = peak_allocated(|| messages.push(frame));
        assert!(
            held <= inflate_overhead() + 4 * limit + 64,
            "{held} bytes held joining a message, limit {limit}"
        );
        match message {
            Ok(Some(message)) => message_round_trips(&message, limit),
            Ok(None) => {}
            Err(e) => {
                refusal_is_sound(&e, limit);
                return;
            }
        }
    }
}

fn need_more_asks_for_more(input: &[u8], limit: usize) {
    match parse_header(input, Sender::Client, limit) {
        Ok(HeaderParse::NeedMore(n)) => {
            assert!(n > input.len() && n <= MAX_HEADER, "{n} for {input:?}")
        }
        Ok(HeaderParse::Complete { header, len }) => {
            assert!(len <= MAX_HEADER);
            assert!(input.len() < len + header.payload_len);
        }
        Err(e) => panic!("the header is refused ({e}) but the frame is not"),
    }
}

fn refusal_is_sound(e: &ReadError, limit: usize) {
    if let ReadError::TooBig { size, max } = *e {
        assert_eq!(max, limit);
        assert!(size > max, "{e}");
    }
}

/// A parsed frame builds back to its bytes, reads the same unmasked from a server, and no
/// prefix of it is refused.
fn frame_round_trips(bytes: &[u8], frame: &Frame, limit: usize) {
    let Ok(HeaderParse::Complete { header, len }) = parse_header(bytes, Sender::Client, limit)
    else {
        panic!("a parsed frame's header does not parse");
    };
    assert!(header.mask.is_some());
    assert_eq!(len + header.payload_len, bytes.len());
    let rebuilt = encode(frame, header.mask);
    let shortest = match frame.payload.len() {
        0..=125 => 6,
        126..=0xffff => 8,
        _ => 14,
    };
    if len == shortest {
        assert_eq!(rebuilt, bytes, "{frame:?} does not build back to its bytes");
    }
    assert_eq!(
        parse_frame(&rebuilt, Sender::Client, limit),
        Ok(Some((frame.clone(), rebuilt.len())))
    );
    let unmasked = encode(frame, None);
    assert_eq!(
        parse_frame(&unmasked, Sender::Server, limit),
        Ok(Some((frame.clone(), unmasked.len())))
    );
    for cut in (0..bytes.len()).filter(|&cut| cut <= len || cut + 1 == bytes.len()) {
        assert_eq!(
            parse_frame(&bytes[..cut], Sender::Client, limit),
            Ok(None),
            "a {cut}-byte prefix of a {}-byte frame",
            bytes.len()
        );
    }
}

/// A message the server reads is within the limit, and the server's frames for it read
/// back as the same message (by a peer with room for compression's overhead, and for a
/// control frame's 125 bytes).
fn message_round_trips(message: &Message, limit: usize) {
    let (sent, room) = match message {
        Message::Text(text) => {
            assert!(text.len() <= limit);
            (data_frame(OP_TEXT, text.as_bytes()), limit + limit / 8 + 64)
        }
        Message::Binary(data) => {
            assert!(data.len() <= limit);
            (data_frame(OP_BINARY, data), limit + limit / 8 + 64)
        }
        Message::Ping(data) => {
            assert!(data.len() <= MAX_CONTROL_PAYLOAD);
            (encode_frame(OP_PING, false, data), MAX_CONTROL_PAYLOAD)
        }
        Message::Pong(data) => {
            assert!(data.len() <= MAX_CONTROL_PAYLOAD);
            (encode_frame(OP_PONG, false, data), MAX_CONTROL_PAYLOAD)
        }
        Message::Close(close) => {
            let sent = close_frame(
                close
                    .as_ref()
                    .map(|(code, reason)| (*code, reason.as_str())),
            );
            let read = read_server_message(&sent, MAX_CONTROL_PAYLOAD);
            match (close, read) {
                (None, Message::Close(None)) => {}
                (Some((code, reason)), Message::Close(Some((code_read, reason_read)))) => {
                    assert_eq!(code_read, *code);
                    assert!(
                        reason.starts_with(&reason_read),
                        "close reason {reason:?} sent as {reason_read:?}"
                    );
                    if reason.len() + 2 <= MAX_CONTROL_PAYLOAD {
                        assert_eq!(&reason_read, reason);
                    }
                }
                (sent, read) => panic!("{sent:?} read back as {read:?}"),
            }
            return;
        }
    };
    assert_eq!(&read_server_message(&sent, room), message);
}

fn read_server_message(bytes: &[u8], limit: usize) -> Message {
    let (frame, used) = parse_frame(bytes, Sender::Server, limit)
        .unwrap_or_else(|e| panic!("a server frame is refused: {e}"))
        .expect("a whole server frame");
    assert_eq!(used, bytes.len());
    Reassembler::new(limit)
        .push(frame)
        .unwrap_or_else(|e| panic!("a server message is refused: {e}"))
        .expect("a whole server message")
}

/// The input as one compressed message.
fn inflate(input: &[u8], limit: usize) {
    let (inflated, held) = peak_allocated(|| decompress(input, limit));
    assert!(
        held <= inflate_overhead() + input.len() + 2 * limit + 1,
        "inflating {} bytes with a limit of {limit} held {held} bytes",
        input.len()
    );
    match inflated {
        Ok(message) => {
            assert!(message.len() <= limit, "{} > {limit}", message.len());
            let again = compress(&message).expect("deflate");
            assert_eq!(decompress(&again, limit).as_ref(), Ok(&message));
        }
        Err(e) => refusal_is_sound(&e, limit),
    }
}

/// The input as a message to compress (as much of it as fits the limit).
fn deflate_round_trip(input: &[u8], limit: usize) {
    let message = &input[..input.len().min(limit)];
    let compressed = compress(message).expect("deflate");
    assert_eq!(
        decompress(&compressed, message.len()).as_deref(),
        Ok(message),
        "{}-byte message, inflated with its size as the limit",
        message.len()
    );
    if let Some(less) = message.len().checked_sub(1) {
        match decompress(&compressed, less) {
            Err(ReadError::TooBig { size, max }) => assert!(size > max && max == less),
            other => panic!("{} bytes inflated within {less}: {other:?}", message.len()),
        }
    }
}

/// What inflating holds whatever the input: the inflater's state and the smallest buffers
/// (`decompress` of nothing).
fn inflate_overhead() -> usize {
    static OVERHEAD: OnceLock<usize> = OnceLock::new();
    *OVERHEAD.get_or_init(|| peak_allocated(|| decompress(&[], 0)).1)
}
