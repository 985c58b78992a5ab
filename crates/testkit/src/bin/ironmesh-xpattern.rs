//! A test X client: covers the whole screen with the known pattern of
//! `ironmesh_testkit::xdisplay::expected_pixel`, and reports the input it receives, so a test
//! can check what a remote desktop viewer sees and that its keys and clicks arrive.
//!
//! ```text
//! ironmesh-xpattern --events FILE [--animate]
//! ```
//! Needs `DISPLAY` (and `XAUTHORITY`). Prints `ready` on stdout once the pattern is on screen.
//! Each key press and button press is appended to FILE as one JSON line:
//! `{"key":"a","keysym":97}`, `{"button":1,"x":10,"y":20}`. Each key press also fills the
//! echo box (`xdisplay::ECHO_BOX`) with `xdisplay::echo_colour(n)`, n counting key presses
//! from 1, so a viewer can time input to screen. With `--animate` the animated square
//! (`xdisplay::ANIMATED`) changes every 10 ms.

use std::io::Write;
use std::time::{Duration, Instant};

use ironmesh_testkit::xdisplay::{
    echo_colour, expected_pixel, Rect, ANIMATED, CELLS_X, CELLS_Y, ECHO_BOX,
};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::*;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

fn main() -> anyhow::Result<()> {
    let mut events_path = None;
    let mut animate = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => events_path = args.next(),
            "--animate" => animate = true,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let events_path = events_path.ok_or_else(|| anyhow::anyhow!("--events FILE is required"))?;
    let mut events = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(events_path)?;

    let (conn, screen_num) = RustConnection::connect(None)?;
    let screen = conn.setup().roots[screen_num].clone();
    let (width, height) = (screen.width_in_pixels, screen.height_in_pixels);
    let window = conn.generate_id()?;
    conn.create_window(
        screen.root_depth,
        window,
        screen.root,
        0,
        0,
        width,
        height,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(screen.black_pixel)
            .event_mask(
                EventMask::EXPOSURE
                    | EventMask::KEY_PRESS
                    | EventMask::BUTTON_PRESS
                    | EventMask::STRUCTURE_NOTIFY,
            ),
    )?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, window, &CreateGCAux::new())?;
    conn.map_window(window)?;
    conn.set_input_focus(InputFocus::POINTER_ROOT, window, x11rb::CURRENT_TIME)?;

    let painter = Painter {
        conn: &conn,
        window,
        gc,
    };
    painter.pattern(width, height)?;
    conn.sync()?;
    let mut keymap = Keymap::read(&conn)?;
    println!("ready");
    std::io::stdout().flush()?;

    let mut presses = 0u32;
    let mut frame = 0u32;
    let mut next_frame = Instant::now();
    loop {
        let event = if animate {
            let now = Instant::now();
            if now >= next_frame {
                frame = frame.wrapping_add(1);
                painter.animate(frame)?;
                conn.flush()?;
                next_frame = now + Duration::from_millis(10);
            }
            match conn.poll_for_event()? {
                Some(e) => e,
                None => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            }
        } else {
            conn.wait_for_event()?
        };
        match event {
            Event::Expose(e) if e.count == 0 => {
                painter.pattern(width, height)?;
                if presses > 0 {
                    painter.fill(ECHO_BOX, echo_colour(presses))?;
                }
                conn.flush()?;
            }
            Event::MappingNotify(_) => keymap = Keymap::read(&conn)?,
            Event::KeyPress(e) => {
                let shifted = u16::from(e.state) & u16::from(KeyButMask::SHIFT) != 0;
                let keysym = keymap.keysym(e.detail, shifted);
                let text = keysym_text(keysym);
                writeln!(
                    events,
                    "{}",
                    serde_json::json!({ "key": text, "keysym": keysym })
                )?;
                events.flush()?;
                presses += 1;
                painter.fill(ECHO_BOX, echo_colour(presses))?;
                conn.flush()?;
            }
            Event::ButtonPress(e) => {
                writeln!(
                    events,
                    "{}",
                    serde_json::json!({ "button": e.detail, "x": e.event_x, "y": e.event_y })
                )?;
                events.flush()?;
            }
            _ => {}
        }
    }
}

struct Painter<'a> {
    conn: &'a RustConnection,
    window: Window,
    gc: Gcontext,
}

impl Painter<'_> {
    fn fill(&self, r: Rect, rgb: [u8; 3]) -> anyhow::Result<()> {
        let pixel = (rgb[0] as u32) << 16 | (rgb[1] as u32) << 8 | rgb[2] as u32;
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(pixel))?;
        self.conn.poly_fill_rectangle(
            self.window,
            self.gc,
            &[Rectangle {
                x: r.x as i16,
                y: r.y as i16,
                width: r.width,
                height: r.height,
            }],
        )?;
        Ok(())
    }

    /// One flat rectangle per cell: the colour `expected_pixel` gives inside it.
    fn pattern(&self, width: u16, height: u16) -> anyhow::Result<()> {
        for cy in 0..CELLS_Y {
            for cx in 0..CELLS_X {
                let x0 = (cx as u32 * width as u32 / CELLS_X as u32) as u16;
                let x1 = ((cx as u32 + 1) * width as u32 / CELLS_X as u32) as u16;
                let y0 = (cy as u32 * height as u32 / CELLS_Y as u32) as u16;
                let y1 = ((cy as u32 + 1) * height as u32 / CELLS_Y as u32) as u16;
                let rect = Rect {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                };
                self.fill(rect, expected_pixel(x0, y0, width, height))?;
            }
        }
        Ok(())
    }

    /// A bar sweeping across the animated square over a colour that changes each frame.
    fn animate(&self, frame: u32) -> anyhow::Result<()> {
        let a = ANIMATED;
        let shade = (frame * 7 % 256) as u8;
        self.fill(a, [shade, 255 - shade, 128])?;
        let bar = (frame * 8 % a.width as u32) as u16;
        self.fill(
            Rect {
                x: a.x + bar,
                y: a.y,
                width: 16.min(a.width - bar),
                height: a.height,
            },
            [255, 255, 255],
        )?;
        Ok(())
    }
}

/// The server's keycode → keysym table, reread when another client (the agent typing
/// Unicode) changes it.
struct Keymap {
    min: u8,
    per: usize,
    syms: Vec<u32>,
}

impl Keymap {
    fn read(conn: &RustConnection) -> anyhow::Result<Keymap> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        Ok(Keymap {
            min,
            per: reply.keysyms_per_keycode as usize,
            syms: reply.keysyms,
        })
    }

    fn keysym(&self, keycode: u8, shifted: bool) -> u32 {
        let base = (keycode.saturating_sub(self.min)) as usize * self.per;
        let plain = self.syms.get(base).copied().unwrap_or(0);
        let shift = self.syms.get(base + 1).copied().unwrap_or(0);
        // The shifted keysym when Shift is down (or when there is no plain one).
        if (shifted || plain == 0) && shift != 0 {
            shift
        } else {
            plain
        }
    }
}

/// The text a keysym types: Latin-1 keysyms are their code point, `0x0100_0000 + cp` is any
/// Unicode code point; others (Return, arrows…) have no text.
fn keysym_text(keysym: u32) -> String {
    let cp = match keysym {
        0x20..=0x7e | 0xa0..=0xff => keysym,
        0x0100_0000..=0x0110_ffff => keysym - 0x0100_0000,
        _ => return String::new(),
    };
    char::from_u32(cp).map(String::from).unwrap_or_default()
}
