//! Remote desktop on Linux/X11 (relay protocol 2, docs/protocol/desktop.md): find the
//! user's X display, capture it, send what changed as JPEG tiles, and apply the viewer's
//! keyboard and mouse with XTEST.
//!
//! - [`display`]: which X display, and connecting to it with its cookie;
//! - [`capture`]: the screen's pixels (MIT-SHM, else GetImage);
//! - [`change`]: which tiles changed since the last picture;
//! - [`encode`]: rectangles to JPEG tile commands, scaled as asked;
//! - [`monitors`]: the monitors of the screen, offered to the viewer as displays;
//! - [`keymap`] and [`input`]: viewer keys and mouse to X events;
//! - [`clipboard`]: the X clipboard for the viewer's clipboard messages;
//! - [`session`]: the session itself, tying those to the relay socket.

pub mod capture;
pub mod change;
pub mod clipboard;
pub mod display;
pub mod encode;
pub mod input;
pub mod keymap;
pub mod monitors;
pub mod session;
