//! X displays for remote desktop tests: a private Xvfb with its own authority file, and
//! `ironmesh-xpattern`, an X client that paints a known pattern on it and reports the keys and
//! clicks it receives.
//!
//! The pattern is a grid of [`CELLS_X`] × [`CELLS_Y`] flat-coloured cells, each colour
//! distinct, so a JPEG of it keeps every cell's centre within a few levels of
//! [`expected_pixel`]. Two rectangles change: [`ECHO_BOX`] on each key press, and
//! [`ANIMATED`] continuously when the painter runs with `--animate`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Cells across and down the pattern.
pub const CELLS_X: u16 = 8;
pub const CELLS_Y: u16 = 6;

pub use ironmesh_proto::desktop::Rect;

/// Filled with [`echo_colour`]`(n)` on the n-th key press (inside the top-left cell of a
/// 1024×768 screen).
pub const ECHO_BOX: Rect = Rect {
    x: 16,
    y: 16,
    width: 96,
    height: 96,
};

/// Repainted every 10 ms by `ironmesh-xpattern --animate`.
pub const ANIMATED: Rect = Rect {
    x: 384,
    y: 256,
    width: 256,
    height: 256,
};

/// The colour of the echo box after the n-th key press: each differs from the last and from
/// the cell it sits in.
pub fn echo_colour(n: u32) -> [u8; 3] {
    const COLOURS: [[u8; 3]; 4] = [[255, 255, 0], [0, 255, 255], [255, 0, 255], [255, 255, 255]];
    COLOURS[(n as usize).wrapping_sub(1) % COLOURS.len()]
}

/// The pattern's colour at (x, y) on a `width` × `height` screen, outside [`ECHO_BOX`] after a
/// key press and [`ANIMATED`] while animating. Red grows across, green down, blue alternates.
pub fn expected_pixel(x: u16, y: u16, width: u16, height: u16) -> [u8; 3] {
    let cx = (x as u32 * CELLS_X as u32 / width.max(1) as u32).min(CELLS_X as u32 - 1);
    let cy = (y as u32 * CELLS_Y as u32 / height.max(1) as u32).min(CELLS_Y as u32 - 1);
    [
        (cx * 255 / (CELLS_X as u32 - 1)) as u8,
        (cy * 255 / (CELLS_Y as u32 - 1)) as u8,
        if (cx + cy) & 1 == 0 { 40 } else { 215 },
    ]
}

/// Points well inside cells (away from edges, where JPEG blurs), outside the echo box and the
/// animated square, with the colour each should have: what a test compares a picture with.
pub fn sample_points(width: u16, height: u16) -> Vec<(u16, u16, [u8; 3])> {
    let mut points = Vec::new();
    for cy in 0..CELLS_Y as u32 {
        for cx in 0..CELLS_X as u32 {
            let x = ((2 * cx + 1) * width as u32 / (2 * CELLS_X as u32)) as u16;
            let y = ((2 * cy + 1) * height as u32 / (2 * CELLS_Y as u32)) as u16;
            if ECHO_BOX.contains(x, y) || ANIMATED.contains(x, y) {
                continue;
            }
            points.push((x, y, expected_pixel(x, y, width, height)));
        }
    }
    points
}

/// Whether two colours match within `tolerance` per channel.
pub fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

/// A private Xvfb server, started with `-auth FILE` (the stock MeshCentral agent only uses
/// displays whose server names an authority file) and `-noreset` (otherwise it blanks the
/// screen when its last client leaves). Killed on drop.
pub struct XDisplay {
    /// `:N`.
    pub display: String,
    pub auth_file: PathBuf,
    pub width: u16,
    pub height: u16,
    cookie: [u8; 16],
    child: Child,
    _dir: tempfile::TempDir,
}

impl XDisplay {
    /// Starts Xvfb on a free display number and waits until it accepts a client.
    pub fn start(width: u16, height: u16) -> XDisplay {
        let dir = tempfile::tempdir().expect("temp dir");
        let auth_file = dir.path().join("Xauthority");
        let cookie: [u8; 16] = rand::random();
        for attempt in 0..20 {
            let n = 90 + (rand::random::<u16>() % 400) + attempt;
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            write_authority(&auth_file, n, &cookie);
            let display = format!(":{n}");
            let child = Command::new("Xvfb")
                .arg(&display)
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-auth", auth_file.to_str().unwrap()])
                .args(["-noreset", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb (apt-get install xvfb)");
            let mut x = XDisplay {
                display,
                auth_file: auth_file.clone(),
                width,
                height,
                cookie,
                child,
                _dir: dir,
            };
            if x.wait_ready() {
                return x;
            }
            let _ = x.child.kill();
            let _ = x.child.wait();
            return XDisplay::start(width, height);
        }
        panic!("no free X display number");
    }

    /// `DISPLAY` and `XAUTHORITY` for a client of this display.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DISPLAY".into(), self.display.clone()),
            ("XAUTHORITY".into(), self.auth_file.display().to_string()),
        ]
    }

    /// Waits until the display answers a client (`xdpyinfo`), false when Xvfb exited first.
    fn wait_ready(&mut self) -> bool {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ok = Command::new("xdpyinfo")
                .envs(self.env())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Xvfb {} did not start within 20 s", self.display);
    }

    /// Runs an X tool (`xdotool`, `xwd`) against this display and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new(program)
            .args(args)
            .envs(self.env())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }
}

impl XDisplay {
    /// The screen as it is now, read straight from the X server: RGB, row by row.
    pub fn screenshot(&self) -> Vec<[u8; 3]> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
        use x11rb::rust_connection::{DefaultStream, RustConnection};
        let socket = format!("/tmp/.X11-unix/X{}", &self.display[1..]);
        let stream = std::os::unix::net::UnixStream::connect(socket).expect("connect to Xvfb");
        let (stream, _) = DefaultStream::from_unix_stream(stream).expect("X stream");
        let conn = RustConnection::connect_to_stream_with_auth_info(
            stream,
            0,
            b"MIT-MAGIC-COOKIE-1".to_vec(),
            self.cookie.to_vec(),
        )
        .expect("X connection setup");
        let root = conn.setup().roots[0].root;
        let image = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                root,
                0,
                0,
                self.width,
                self.height,
                !0,
            )
            .expect("get_image")
            .reply()
            .expect("get_image reply");
        // Depth 24 on Xvfb: 32 bits per pixel, little-endian BGRX.
        image
            .data
            .chunks_exact(4)
            .map(|p| [p[2], p[1], p[0]])
            .collect()
    }
}

impl Drop for XDisplay {
    /// Asks Xvfb to stop (SIGTERM), so it removes its socket and lock file; kills it when it
    /// has not within 2 s. A killed Xvfb leaves both behind, and agents looking for displays
    /// find the dead socket.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let n = &self.display[1..];
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
        let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
    }
}

/// Writes an X authority file with one MIT-MAGIC-COOKIE-1 entry for display `n` on any host
/// (family "wild"): per entry, u16 family, then address, display number, auth name and auth
/// data, each as u16 length + bytes, all big-endian.
fn write_authority(path: &Path, n: u16, cookie: &[u8; 16]) {
    let mut out = Vec::new();
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    };
    let mut entry = Vec::new();
    entry.extend_from_slice(&0xFFFFu16.to_be_bytes());
    field(b"");
    field(n.to_string().as_bytes());
    field(b"MIT-MAGIC-COOKIE-1");
    field(cookie);
    entry.extend_from_slice(&out);
    std::fs::write(path, entry).expect("write X authority");
}

/// What the painter reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PainterEvent {
    /// A key press: its keysym and the text it types ("" for Return, arrows…).
    Key { keysym: u32, text: String },
    /// A button press: 1 left, 2 middle, 3 right, 4/5 wheel up/down.
    Button { button: u8, x: i16, y: i16 },
}

/// `ironmesh-xpattern` running on a display. Killed on drop.
pub struct Painter {
    child: Child,
    events: PathBuf,
    /// Lines of the events file already returned.
    seen: usize,
    _dir: tempfile::TempDir,
}

impl Painter {
    /// Starts the painter (`args`: e.g. `["--animate"]`) and waits until the pattern is on
    /// screen.
    pub fn start(d: &XDisplay, args: &[&str]) -> Painter {
        let dir = tempfile::tempdir().expect("temp dir");
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, "").expect("events file");
        let mut child = Command::new(crate::binary("ironmesh-xpattern"))
            .arg("--events")
            .arg(&events)
            .args(args)
            .envs(d.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ironmesh-xpattern");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("painter output");
        assert_eq!(line.trim(), "ready", "the painter did not start");
        Painter {
            child,
            events,
            seen: 0,
            _dir: dir,
        }
    }

    /// The JSON-lines file the painter appends its events to.
    pub fn events_file(&self) -> &Path {
        &self.events
    }

    /// Every event reported so far and not yet returned.
    pub fn new_events(&mut self) -> Vec<PainterEvent> {
        let text = std::fs::read_to_string(&self.events).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // A line may be half-written: keep it for next time.
        let complete = if text.ends_with('\n') {
            lines.len()
        } else {
            lines.len().saturating_sub(1)
        };
        let fresh = lines[self.seen.min(complete)..complete]
            .iter()
            .filter_map(|l| parse_event(l))
            .collect();
        self.seen = complete;
        fresh
    }

    /// Waits for an event matching `pred`, skipping others; `None` after `timeout`.
    pub async fn wait_event(
        &mut self,
        pred: impl Fn(&PainterEvent) -> bool,
        timeout: Duration,
    ) -> Option<PainterEvent> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(e) = self.new_events().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text typed so far, in order, as the painter saw it (key presses with text only),
    /// waiting until it is at least `len` characters or `timeout` passed.
    pub async fn typed(&mut self, len: usize, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        let mut text = String::new();
        loop {
            for e in self.new_events() {
                if let PainterEvent::Key { text: t, .. } = e {
                    text.push_str(&t);
                }
            }
            if text.chars().count() >= len || Instant::now() >= until {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Painter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_event(line: &str) -> Option<PainterEvent> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if let Some(b) = v.get("button") {
        return Some(PainterEvent::Button {
            button: b.as_u64()? as u8,
            x: v.get("x")?.as_i64()? as i16,
            y: v.get("y")?.as_i64()? as i16,
        });
    }
    Some(PainterEvent::Key {
        keysym: v.get("keysym")?.as_u64()? as u32,
        text: v.get("key")?.as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_has_its_own_colour() {
        let points = sample_points(1024, 768);
        assert!(points.len() >= 40);
        for (i, a) in points.iter().enumerate() {
            for b in &points[i + 1..] {
                assert!(!close(a.2, b.2, 30), "{a:?} and {b:?} look alike");
            }
        }
        assert!(!points
            .iter()
            .any(|p| close(p.2, echo_colour(1), 30) && ECHO_BOX.contains(p.0, p.1)));
    }
}
