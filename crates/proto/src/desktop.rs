//! Remote desktop sessions, relay protocol 2 (docs/protocol/desktop.md): binary commands in both
//! directions, each `u16 cmd, u16 size` (big-endian, the size counts the 4-byte header) and a
//! body. Commands arrive as a byte stream: one WebSocket frame may hold several, or part of one
//! (§2). [`Deframer`] cuts the stream into commands; [`ToAgent`] and [`ToViewer`] give them
//! types. Pure: no I/O.

use thiserror::Error;

/// Command numbers (docs/protocol/desktop.md §3, §4).
pub mod cmd {
    pub const KEY: u16 = 1;
    pub const MOUSE: u16 = 2;
    pub const TILE: u16 = 3;
    pub const COMPRESSION: u16 = 5;
    pub const REFRESH: u16 = 6;
    pub const SCREEN_SIZE: u16 = 7;
    pub const PAUSE: u16 = 8;
    pub const CTRL_ALT_DEL: u16 = 10;
    pub const DISPLAYS: u16 = 11;
    pub const SET_DISPLAY: u16 = 12;
    pub const TOUCH_INIT: u16 = 14;
    pub const MESSAGE: u16 = 17;
    pub const KEY_STATE: u16 = 18;
    /// Wraps one command longer than 65,535 bytes: `u32 inner_length` then the inner command.
    pub const JUMBO: u16 = 27;
    pub const ALERT: u16 = 65;
    pub const DISPLAY_LAYOUT: u16 = 82;
    pub const KEY_UNICODE: u16 = 85;
    pub const INPUT_LOCK: u16 = 87;
    pub const CURSOR: u16 = 88;
}

/// The largest command [`Deframer`] accepts by default: a full-screen 4K tile at high quality
/// stays well under it; anything larger is a broken or hostile peer.
pub const DEFAULT_MAX_COMMAND: usize = 16 * 1024 * 1024;

/// Why a byte stream or a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DesktopError {
    #[error("desktop command {cmd} declares {size} bytes, less than its 4-byte header")]
    SizeTooSmall { cmd: u16, size: usize },
    #[error("desktop command of {size} bytes is larger than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("desktop command {cmd} has a {len}-byte body; it needs {need}")]
    BadBody {
        cmd: u16,
        len: usize,
        need: &'static str,
    },
    #[error("unknown desktop command {0}")]
    Unknown(u16),
    #[error("desktop text message is not UTF-8")]
    NotText,
}

/// One command as it came off the stream: number and body (header removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    pub cmd: u16,
    pub body: Vec<u8>,
}

/// Appends one command with its header; bodies longer than fit in a `u16` size are wrapped in
/// a [`cmd::JUMBO`] command (§2).
pub fn encode_raw(cmd: u16, body: &[u8], out: &mut Vec<u8>) {
    let size = body.len() + 4;
    if size > u16::MAX as usize {
        out.extend_from_slice(&cmd::JUMBO.to_be_bytes());
        out.extend_from_slice(&8u16.to_be_bytes());
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(&cmd.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
    } else {
        out.extend_from_slice(&cmd.to_be_bytes());
        out.extend_from_slice(&(size as u16).to_be_bytes());
    }
    out.extend_from_slice(body);
}

/// Cuts a byte stream into commands. Feed it every binary frame as it arrives, then take
/// commands with [`Deframer::next_command`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    limit: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new(DEFAULT_MAX_COMMAND)
    }
}

impl Deframer {
    /// A deframer that refuses commands larger than `limit` bytes (header included).
    pub fn new(limit: usize) -> Deframer {
        Deframer {
            buf: Vec::new(),
            start: 0,
            limit,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as a command.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole command, `Ok(None)` when more bytes are needed. An error means the
    /// stream is broken: the session should end.
    pub fn next_command(&mut self) -> Result<Option<RawCommand>, DesktopError> {
        let rest = &self.buf[self.start..];
        if rest.len() < 4 {
            return Ok(None);
        }
        let cmd = u16::from_be_bytes([rest[0], rest[1]]);
        let size = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let (cmd, header, size) = if cmd == cmd::JUMBO {
            if size != 8 {
                return Err(DesktopError::BadBody {
                    cmd,
                    len: size.saturating_sub(4),
                    need: "4 bytes (inner length)",
                });
            }
            if rest.len() < 12 {
                return Ok(None);
            }
            let inner = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let inner_cmd = u16::from_be_bytes([rest[8], rest[9]]);
            if inner < 4 {
                return Err(DesktopError::SizeTooSmall {
                    cmd: inner_cmd,
                    size: inner,
                });
            }
            (inner_cmd, 12, inner - 4 + 12)
        } else {
            if size < 4 {
                return Err(DesktopError::SizeTooSmall { cmd, size });
            }
            (cmd, 4, size)
        };
        if size > self.limit {
            return Err(DesktopError::TooLarge {
                size,
                limit: self.limit,
            });
        }
        if rest.len() < size {
            return Ok(None);
        }
        let body = rest[header..size].to_vec();
        self.start += size;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(RawCommand { cmd, body }))
    }
}

/// Key actions of [`ToAgent::Key`] (the byte on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Down,
    Up,
    /// Extended key (right-hand Ctrl/Alt, arrows on Windows) released / pressed.
    ExtendedUp,
    ExtendedDown,
}

impl KeyAction {
    fn to_byte(self) -> u8 {
        match self {
            KeyAction::Down => 0,
            KeyAction::Up => 1,
            KeyAction::ExtendedUp => 3,
            KeyAction::ExtendedDown => 4,
        }
    }

    fn from_byte(b: u8) -> Option<KeyAction> {
        Some(match b {
            0 => KeyAction::Down,
            1 => KeyAction::Up,
            3 => KeyAction::ExtendedUp,
            4 => KeyAction::ExtendedDown,
            _ => return None,
        })
    }

    pub fn is_down(self) -> bool {
        matches!(self, KeyAction::Down | KeyAction::ExtendedDown)
    }
}

/// Mouse button bits of [`ToAgent::Mouse`] (§4): each button has a "down" and an "up" bit.
pub mod buttons {
    pub const LEFT_DOWN: u8 = 0x02;
    pub const LEFT_UP: u8 = 0x04;
    pub const RIGHT_DOWN: u8 = 0x08;
    pub const RIGHT_UP: u8 = 0x10;
    pub const MIDDLE_DOWN: u8 = 0x20;
    pub const MIDDLE_UP: u8 = 0x40;
    /// A double click of the left button.
    pub const DOUBLE_CLICK: u8 = 0x88;
}

/// Image encodings of [`ToAgent::Compression`].
pub mod image_type {
    pub const JPEG: u8 = 1;
    pub const PNG: u8 = 2;
    pub const WEBP: u8 = 4;
}

/// What the viewer (browser, CLI) sends to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToAgent {
    /// A key by Windows virtual-key code.
    Key {
        action: KeyAction,
        code: u8,
    },
    /// A key by UTF-16 code unit (typed text).
    KeyUnicode {
        up: bool,
        unit: u16,
    },
    /// Pointer move (buttons 0) or button change ([`buttons`]) at screen coordinates.
    Mouse {
        buttons: u8,
        x: u16,
        y: u16,
    },
    /// Wheel at screen coordinates; positive is "up/away", 120 per notch.
    Wheel {
        x: u16,
        y: u16,
        delta: i16,
    },
    CtrlAltDel,
    /// Image settings: type ([`image_type`]), quality 1–100, scaling (1024 = 100 %) and the
    /// least time between captures in ms.
    Compression {
        image: u8,
        quality: u8,
        scaling: u16,
        frame_ms: u16,
    },
    /// Send the whole screen again.
    Refresh,
    /// Stop (true) or resume (false) sending pictures.
    Pause(bool),
    /// Query (2) or set the remote input lock.
    InputLock(u8),
    /// The viewer can send touch events.
    TouchInit,
    /// Which displays are there?
    GetDisplays,
    /// Show this display (65535: all).
    SetDisplay(u16),
}

/// What the agent sends to the viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToViewer {
    /// The screen's size in pixels; every tile lies within it.
    ScreenSize {
        width: u16,
        height: u16,
    },
    /// An encoded image (JPEG, PNG or WebP; its size is in its own header) to draw at (x, y).
    Tile {
        x: u16,
        y: u16,
        image: Vec<u8>,
    },
    /// The displays there are and the one shown.
    Displays {
        ids: Vec<u16>,
        selected: u16,
    },
    /// The agent switched display.
    DisplaySet,
    /// Where each display lies on the whole desktop.
    DisplayLayout(Vec<DisplayRect>),
    /// Status text for the user (17).
    Message(String),
    /// An error or notice for the user (65); a leading `.` marks it as log-only.
    Alert(String),
    /// Lock keys: 1 NumLock, 2 ScrollLock, 4 CapsLock.
    KeyState(u8),
    InputLock(bool),
    /// The mouse cursor's shape, as an index into the browser's cursor list.
    Cursor(u8),
}

/// A rectangle on the screen, in pixels: a changed area, a monitor, a test pattern's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

impl Rect {
    pub fn contains(&self, x: u16, y: u16) -> bool {
        let (x, y) = (x as u32, y as u32);
        x >= self.x as u32
            && y >= self.y as u32
            && x < self.x as u32 + self.width as u32
            && y < self.y as u32 + self.height as u32
    }

    pub fn centre(&self) -> (u16, u16) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    pub fn overlaps(&self, other: &Rect) -> bool {
        let end = |p: u16, len: u16| p as u32 + len as u32;
        (self.x as u32) < end(other.x, other.width)
            && (other.x as u32) < end(self.x, self.width)
            && (self.y as u32) < end(other.y, other.height)
            && (other.y as u32) < end(self.y, self.height)
    }
}

/// One display of [`ToViewer::DisplayLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayRect {
    pub id: u16,
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn exact(cmd: u16, body: &[u8], len: usize, need: &'static str) -> Result<(), DesktopError> {
    if body.len() == len {
        Ok(())
    } else {
        Err(DesktopError::BadBody {
            cmd,
            len: body.len(),
            need,
        })
    }
}

impl ToAgent {
    pub fn decode(raw: &RawCommand) -> Result<ToAgent, DesktopError> {
        let b = &raw.body[..];
        let c = raw.cmd;
        Ok(match c {
            cmd::KEY => {
                exact(c, b, 2, "2 bytes (action, key code)")?;
                let action = KeyAction::from_byte(b[0]).ok_or(DesktopError::BadBody {
                    cmd: c,
                    len: 2,
                    need: "a key action of 0, 1, 3 or 4",
                })?;
                ToAgent::Key { action, code: b[1] }
            }
            cmd::KEY_UNICODE => {
                exact(c, b, 3, "3 bytes (action, code unit)")?;
                ToAgent::KeyUnicode {
                    up: b[0] != 0,
                    unit: be16(b, 1),
                }
            }
            cmd::MOUSE if b.len() == 6 => ToAgent::Mouse {
                buttons: b[1],
                x: be16(b, 2),
                y: be16(b, 4),
            },
            cmd::MOUSE if b.len() == 8 => ToAgent::Wheel {
                x: be16(b, 2),
                y: be16(b, 4),
                delta: be16(b, 6) as i16,
            },
            cmd::MOUSE => {
                return Err(DesktopError::BadBody {
                    cmd: c,
                    len: b.len(),
                    need: "6 bytes (move/button) or 8 (wheel)",
                })
            }
            cmd::CTRL_ALT_DEL => {
                exact(c, b, 0, "no body")?;
                ToAgent::CtrlAltDel
            }
            cmd::COMPRESSION => {
                // Older viewers send type and quality only.
                if b.len() != 2 && b.len() != 6 {
                    return Err(DesktopError::BadBody {
                        cmd: c,
                        len: b.len(),
                        need: "6 bytes (type, quality, scaling, frame timer)",
                    });
                }
                ToAgent::Compression {
                    image: b[0],
                    quality: b[1],
                    scaling: if b.len() == 6 { be16(b, 2) } else { 1024 },
                    frame_ms: if b.len() == 6 { be16(b, 4) } else { 100 },
                }
            }
            cmd::REFRESH => {
                exact(c, b, 0, "no body")?;
                ToAgent::Refresh
            }
            cmd::PAUSE => {
                exact(c, b, 1, "1 byte")?;
                ToAgent::Pause(b[0] != 0)
            }
            cmd::INPUT_LOCK => {
                exact(c, b, 1, "1 byte")?;
                ToAgent::InputLock(b[0])
            }
            cmd::TOUCH_INIT => {
                exact(c, b, 0, "no body")?;
                ToAgent::TouchInit
            }
            cmd::DISPLAYS => {
                exact(c, b, 0, "no body")?;
                ToAgent::GetDisplays
            }
            cmd::SET_DISPLAY => {
                exact(c, b, 2, "2 bytes (display)")?;
                ToAgent::SetDisplay(be16(b, 0))
            }
            other => return Err(DesktopError::Unknown(other)),
        })
    }

    /// Whether this command acts on the device (keyboard, mouse, Ctrl-Alt-Del): what a
    /// view-only session must not pass on.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            ToAgent::Key { .. }
                | ToAgent::KeyUnicode { .. }
                | ToAgent::Mouse { .. }
                | ToAgent::Wheel { .. }
                | ToAgent::CtrlAltDel
        )
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(8);
        let c = match self {
            ToAgent::Key { action, code } => {
                body.extend_from_slice(&[action.to_byte(), *code]);
                cmd::KEY
            }
            ToAgent::KeyUnicode { up, unit } => {
                body.push(*up as u8);
                body.extend_from_slice(&unit.to_be_bytes());
                cmd::KEY_UNICODE
            }
            ToAgent::Mouse { buttons, x, y } => {
                body.extend_from_slice(&[0, *buttons]);
                body.extend_from_slice(&x.to_be_bytes());
                body.extend_from_slice(&y.to_be_bytes());
                cmd::MOUSE
            }
            ToAgent::Wheel { x, y, delta } => {
                body.extend_from_slice(&[0, 0]);
                body.extend_from_slice(&x.to_be_bytes());
                body.extend_from_slice(&y.to_be_bytes());
                body.extend_from_slice(&delta.to_be_bytes());
                cmd::MOUSE
            }
            ToAgent::CtrlAltDel => cmd::CTRL_ALT_DEL,
            ToAgent::Compression {
                image,
                quality,
                scaling,
                frame_ms,
            } => {
                body.extend_from_slice(&[*image, *quality]);
                body.extend_from_slice(&scaling.to_be_bytes());
                body.extend_from_slice(&frame_ms.to_be_bytes());
                cmd::COMPRESSION
            }
            ToAgent::Refresh => cmd::REFRESH,
            ToAgent::Pause(p) => {
                body.push(*p as u8);
                cmd::PAUSE
            }
            ToAgent::InputLock(v) => {
                body.push(*v);
                cmd::INPUT_LOCK
            }
            ToAgent::TouchInit => cmd::TOUCH_INIT,
            ToAgent::GetDisplays => cmd::DISPLAYS,
            ToAgent::SetDisplay(d) => {
                body.extend_from_slice(&d.to_be_bytes());
                cmd::SET_DISPLAY
            }
        };
        encode_raw(c, &body, out);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl ToViewer {
    pub fn decode(raw: &RawCommand) -> Result<ToViewer, DesktopError> {
        let b = &raw.body[..];
        let c = raw.cmd;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| DesktopError::NotText);
        Ok(match c {
            cmd::SCREEN_SIZE => {
                exact(c, b, 4, "4 bytes (width, height)")?;
                ToViewer::ScreenSize {
                    width: be16(b, 0),
                    height: be16(b, 2),
                }
            }
            cmd::TILE => {
                if b.len() < 5 {
                    return Err(DesktopError::BadBody {
                        cmd: c,
                        len: b.len(),
                        need: "x, y and an image",
                    });
                }
                ToViewer::Tile {
                    x: be16(b, 0),
                    y: be16(b, 2),
                    image: b[4..].to_vec(),
                }
            }
            cmd::DISPLAYS => {
                let bad = DesktopError::BadBody {
                    cmd: c,
                    len: b.len(),
                    need: "a count, that many display ids and the selected one",
                };
                if b.len() < 2 {
                    return Err(bad);
                }
                let count = be16(b, 0) as usize;
                if b.len() != 2 + count * 2 + 2 {
                    return Err(bad);
                }
                ToViewer::Displays {
                    ids: (0..count).map(|i| be16(b, 2 + i * 2)).collect(),
                    selected: be16(b, 2 + count * 2),
                }
            }
            cmd::SET_DISPLAY => ToViewer::DisplaySet,
            cmd::DISPLAY_LAYOUT => {
                if !b.chunks_exact(10).remainder().is_empty() {
                    return Err(DesktopError::BadBody {
                        cmd: c,
                        len: b.len(),
                        need: "10 bytes per display",
                    });
                }
                ToViewer::DisplayLayout(
                    b.chunks_exact(10)
                        .map(|d| DisplayRect {
                            id: be16(d, 0),
                            x: be16(d, 2),
                            y: be16(d, 4),
                            width: be16(d, 6),
                            height: be16(d, 8),
                        })
                        .collect(),
                )
            }
            cmd::MESSAGE => ToViewer::Message(text(b)?),
            cmd::ALERT => ToViewer::Alert(text(b)?),
            cmd::KEY_STATE => {
                exact(c, b, 1, "1 byte")?;
                ToViewer::KeyState(b[0])
            }
            cmd::INPUT_LOCK => {
                exact(c, b, 1, "1 byte")?;
                ToViewer::InputLock(b[0] != 0)
            }
            cmd::CURSOR => {
                exact(c, b, 1, "1 byte")?;
                ToViewer::Cursor(b[0])
            }
            other => return Err(DesktopError::Unknown(other)),
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ToViewer::ScreenSize { width, height } => {
                let mut body = [0u8; 4];
                body[..2].copy_from_slice(&width.to_be_bytes());
                body[2..].copy_from_slice(&height.to_be_bytes());
                encode_raw(cmd::SCREEN_SIZE, &body, out);
            }
            ToViewer::Tile { x, y, image } => encode_tile(*x, *y, image, out),
            ToViewer::Displays { ids, selected } => {
                let mut body = Vec::with_capacity(4 + ids.len() * 2);
                body.extend_from_slice(&(ids.len() as u16).to_be_bytes());
                for id in ids {
                    body.extend_from_slice(&id.to_be_bytes());
                }
                body.extend_from_slice(&selected.to_be_bytes());
                encode_raw(cmd::DISPLAYS, &body, out);
            }
            ToViewer::DisplaySet => encode_raw(cmd::SET_DISPLAY, &[], out),
            ToViewer::DisplayLayout(rects) => {
                let mut body = Vec::with_capacity(rects.len() * 10);
                for r in rects {
                    for v in [r.id, r.x, r.y, r.width, r.height] {
                        body.extend_from_slice(&v.to_be_bytes());
                    }
                }
                encode_raw(cmd::DISPLAY_LAYOUT, &body, out);
            }
            ToViewer::Message(t) => encode_raw(cmd::MESSAGE, t.as_bytes(), out),
            ToViewer::Alert(t) => encode_raw(cmd::ALERT, t.as_bytes(), out),
            ToViewer::KeyState(s) => encode_raw(cmd::KEY_STATE, &[*s], out),
            ToViewer::InputLock(l) => encode_raw(cmd::INPUT_LOCK, &[*l as u8], out),
            ToViewer::Cursor(c) => encode_raw(cmd::CURSOR, &[*c], out),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends a tile command without copying the image into an intermediate value.
pub fn encode_tile(x: u16, y: u16, image: &[u8], out: &mut Vec<u8>) {
    let size = image.len() + 8;
    if size > u16::MAX as usize {
        out.extend_from_slice(&cmd::JUMBO.to_be_bytes());
        out.extend_from_slice(&8u16.to_be_bytes());
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(&cmd::TILE.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
    } else {
        out.extend_from_slice(&cmd::TILE.to_be_bytes());
        out.extend_from_slice(&(size as u16).to_be_bytes());
    }
    out.extend_from_slice(&x.to_be_bytes());
    out.extend_from_slice(&y.to_be_bytes());
    out.extend_from_slice(image);
}

/// The pixel size of a JPEG or PNG image, read from its header; `None` when it is neither or
/// is cut short. Lets a viewer refuse a tile that would fall outside the screen before
/// decoding it.
pub fn image_size(image: &[u8]) -> Option<(u16, u16)> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if image.starts_with(PNG) {
        if image.len() < 24 || &image[12..16] != b"IHDR" {
            return None;
        }
        let w = u32::from_be_bytes(image[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(image[20..24].try_into().ok()?);
        return Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?));
    }
    if !image.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    // Walk the markers to the first start-of-frame (SOF0..SOF15 except DHT, JPG, DAC).
    let mut at = 2;
    while at + 4 <= image.len() {
        if image[at] != 0xFF {
            return None;
        }
        let marker = image[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let len = be16(image, at + 2) as usize;
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            if at + 9 > image.len() {
                return None;
            }
            let h = be16(image, at + 5);
            let w = be16(image, at + 7);
            return Some((w, h));
        }
        if len < 2 {
            return None;
        }
        at += 2 + len;
    }
    None
}

/// Checks a tile against the screen: its image must have a readable size and lie wholly on
/// the screen.
pub fn tile_fits(x: u16, y: u16, image: &[u8], width: u16, height: u16) -> bool {
    match image_size(image) {
        Some((w, h)) => {
            w > 0
                && h > 0
                && x as u32 + w as u32 <= width as u32
                && y as u32 + h as u32 <= height as u32
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> RawCommand {
        let mut d = Deframer::default();
        d.push(bytes);
        let c = d.next_command().unwrap().unwrap();
        assert_eq!(d.pending(), 0);
        c
    }

    #[test]
    fn viewer_commands_match_the_wire() {
        // Bytes as the browser sends them (docs/protocol/desktop.md §4).
        let cases: Vec<(&[u8], ToAgent)> = vec![
            (
                &[0, 5, 0, 10, 1, 50, 4, 0, 0, 100],
                ToAgent::Compression {
                    image: 1,
                    quality: 50,
                    scaling: 1024,
                    frame_ms: 100,
                },
            ),
            (&[0, 8, 0, 5, 0], ToAgent::Pause(false)),
            (&[0, 6, 0, 4], ToAgent::Refresh),
            (
                &[0, 1, 0, 6, 0, 16],
                ToAgent::Key {
                    action: KeyAction::Down,
                    code: 16,
                },
            ),
            (
                &[0, 85, 0, 7, 1, 0, 0x41],
                ToAgent::KeyUnicode {
                    up: true,
                    unit: 0x41,
                },
            ),
            (&[0, 10, 0, 4], ToAgent::CtrlAltDel),
            (
                &[0, 2, 0, 10, 0, 2, 1, 0, 0, 20],
                ToAgent::Mouse {
                    buttons: buttons::LEFT_DOWN,
                    x: 256,
                    y: 20,
                },
            ),
            (
                &[0, 2, 0, 12, 0, 0, 0, 1, 0, 2, 0xFF, 0x87],
                ToAgent::Wheel {
                    x: 1,
                    y: 2,
                    delta: -121,
                },
            ),
            (&[0, 12, 0, 6, 0xFF, 0xFF], ToAgent::SetDisplay(65535)),
        ];
        for (bytes, want) in cases {
            let got = ToAgent::decode(&one(bytes)).unwrap();
            assert_eq!(got, want);
            assert_eq!(
                got.to_bytes(),
                bytes,
                "{want:?} encodes back to the same bytes"
            );
        }
    }

    #[test]
    fn a_stream_split_anywhere_gives_the_same_commands() {
        let mut stream = Vec::new();
        ToViewer::ScreenSize {
            width: 1024,
            height: 768,
        }
        .encode(&mut stream);
        encode_tile(16, 32, &[0xFF, 0xD8, 1, 2, 3], &mut stream);
        ToViewer::Tile {
            x: 0,
            y: 0,
            image: vec![7; 70_000],
        }
        .encode(&mut stream);
        ToViewer::Alert("no display".into()).encode(&mut stream);
        for split in [1, 3, 5, 4096, stream.len()] {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(split) {
                d.push(chunk);
                while let Some(c) = d.next_command().unwrap() {
                    got.push(ToViewer::decode(&c).unwrap());
                }
            }
            assert_eq!(got.len(), 4, "split {split}");
            assert!(matches!(&got[2], ToViewer::Tile { image, .. } if image.len() == 70_000));
        }
    }

    #[test]
    fn broken_streams_are_refused() {
        let mut d = Deframer::default();
        d.push(&[0, 3, 0, 2]);
        assert!(matches!(
            d.next_command(),
            Err(DesktopError::SizeTooSmall { .. })
        ));
        let mut d = Deframer::new(1000);
        d.push(&[0, 27, 0, 8, 0, 1, 0, 0, 0, 3, 0, 0]);
        assert!(matches!(
            d.next_command(),
            Err(DesktopError::TooLarge { .. })
        ));
        assert_eq!(
            ToAgent::decode(&one(&[0, 99, 0, 4])),
            Err(DesktopError::Unknown(99))
        );
        assert!(ToAgent::decode(&one(&[0, 1, 0, 5, 0])).is_err());
        assert!(ToAgent::decode(&one(&[0, 1, 0, 6, 9, 0])).is_err());
        assert!(ToViewer::decode(&one(&[0, 7, 0, 6, 0, 0])).is_err());
    }

    #[test]
    fn input_is_told_apart() {
        assert!(ToAgent::CtrlAltDel.is_input());
        assert!(ToAgent::Wheel {
            x: 0,
            y: 0,
            delta: 120
        }
        .is_input());
        assert!(!ToAgent::Refresh.is_input());
        assert!(!ToAgent::Compression {
            image: 1,
            quality: 1,
            scaling: 1,
            frame_ms: 1
        }
        .is_input());
    }

    #[test]
    fn rectangles() {
        let r = Rect {
            x: 10,
            y: 20,
            width: 30,
            height: 40,
        };
        assert!(r.contains(10, 20) && r.contains(39, 59));
        assert!(!r.contains(40, 20) && !r.contains(10, 60) && !r.contains(9, 20));
        assert_eq!(r.centre(), (25, 40));
        assert!(r.overlaps(&Rect {
            x: 39,
            y: 59,
            width: 1,
            height: 1
        }));
        assert!(!r.overlaps(&Rect {
            x: 40,
            y: 20,
            width: 5,
            height: 5
        }));
        // Far corners do not wrap around.
        let edge = Rect {
            x: u16::MAX - 1,
            y: 0,
            width: 10,
            height: 1,
        };
        assert!(edge.contains(u16::MAX, 0));
    }

    #[test]
    fn image_sizes_come_from_headers() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0\0\0\0\x40rest";
        assert_eq!(image_size(png), Some((256, 64)));
        // SOI, APP0 (length 4), SOF0 with height 8 and width 16.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 16, 3,
        ];
        assert_eq!(image_size(&jpeg), Some((16, 8)));
        assert!(tile_fits(1008, 760, &jpeg, 1024, 768));
        assert!(!tile_fits(1009, 760, &jpeg, 1024, 768));
        assert_eq!(image_size(&[0xFF, 0xD8, 0xFF]), None);
        assert_eq!(image_size(b"GIF89a"), None);
    }
}
