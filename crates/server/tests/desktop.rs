//! Remote desktop end to end (docs/protocol/desktop.md): the real server, the real
//! `ironmesh-agent` on a private Xvfb showing a known pattern (`ironmesh-xpattern`), and a
//! viewer in Rust that decodes the JPEG tiles and composes the screen as a browser would.
//! Pictures are compared with the pattern, keys and clicks with what the painter received.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ironmesh_client::desktop::Coverage;
use ironmesh_proto::desktop::{
    buttons, tile_fits, Deframer, DisplayRect, KeyAction, Rect, ToAgent, ToViewer,
};
use ironmesh_proto::rights::MeshRights;
use ironmesh_testkit::agent::{add_member, create_group, fetch_msh, TestAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws::{self, b64, Ws};
use ironmesh_testkit::xdisplay::{
    close, echo_colour, expected_pixel, sample_points, Painter, PainterEvent, XDisplay, ECHO_BOX,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";
const USER_PASS: &str = "user-pass-1";
/// JPEG at quality 50 keeps flat cells' centres within a few levels; this leaves room.
const TOLERANCE: u8 = 24;
const W: u16 = 1024;
const H: u16 = 768;
/// Debug builds on a shared two-core machine: generous, never slept through.
const WAIT: Duration = Duration::from_secs(20);

/// What a viewer saw besides pictures.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Text(String),
    Closed(u16, String),
}

/// A desktop viewer: the relay socket, the command stream and the composed screen.
struct Viewer {
    ws: Ws,
    stream: Deframer,
    width: u16,
    height: u16,
    screen: Vec<[u8; 3]>,
    /// Pixels drawn at least once since the last size message.
    drawn: Coverage,
    tiles: usize,
    /// Text messages (control JSON), alerts and messages, in order.
    notes: Vec<String>,
    closed: Option<(u16, String)>,
    /// The last display list (ids, selected) and layout the agent sent.
    displays: Option<(Vec<u16>, u16)>,
    layout: Vec<DisplayRect>,
    /// Display switches acknowledged.
    displays_set: usize,
}

impl Viewer {
    async fn open(s: &TestServer, node: &str, user: &str, pass: &str) -> Viewer {
        let enc = node.replace('$', "%24").replace('@', "%40");
        let auth = format!("{},{}", b64(user.as_bytes()), b64(pass.as_bytes()));
        let ws = ws::connect(
            s.port,
            &format!("/meshrelay.ashx?nodeid={enc}&p=2"),
            &[("x-meshauth", auth.as_str())],
        )
        .await
        .unwrap();
        let mut v = Viewer::wrap(ws);
        // Paired: the server says `c`; the viewer names the protocol.
        let first = v.next_message(WAIT).await;
        assert_eq!(first, Some(Seen::Text("c".into())), "relay paired");
        v.notes.clear();
        v.ws.send(Message::Text("2".into())).await.unwrap();
        v
    }

    fn wrap(ws: Ws) -> Viewer {
        Viewer {
            ws,
            stream: Deframer::default(),
            width: 0,
            height: 0,
            screen: Vec::new(),
            drawn: Coverage::default(),
            tiles: 0,
            notes: Vec::new(),
            closed: None,
            displays: None,
            layout: Vec::new(),
            displays_set: 0,
        }
    }

    async fn send(&mut self, cmds: &[ToAgent]) {
        let mut out = Vec::new();
        for c in cmds {
            c.encode(&mut out);
        }
        self.ws.send(Message::Binary(out.into())).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }

    /// The browser's start: default settings and unpause.
    async fn start(&mut self) {
        self.send(&[
            ToAgent::Compression {
                image: 1,
                quality: 50,
                scaling: 1024,
                frame_ms: 50,
            },
            ToAgent::Pause(false),
        ])
        .await;
    }

    /// Reads one WebSocket message and applies it; `None` when `timeout` passed first.
    async fn next_message(&mut self, timeout: Duration) -> Option<Seen> {
        let msg = match tokio::time::timeout(timeout, self.ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => {
                self.closed.get_or_insert((0, String::new()));
                return Some(Seen::Closed(0, String::new()));
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                self.notes.push(t.to_string());
                Some(Seen::Text(t.to_string()))
            }
            Message::Binary(b) => {
                self.stream.push(&b);
                while let Some(raw) = self.stream.next_command().expect("agent's stream") {
                    match ToViewer::decode(&raw).expect("a command the viewer knows") {
                        ToViewer::ScreenSize { width, height } => {
                            self.width = width;
                            self.height = height;
                            self.screen = vec![[0; 3]; width as usize * height as usize];
                            self.drawn = Coverage::new(width, height);
                        }
                        ToViewer::Tile { x, y, image } => self.draw(x, y, &image),
                        ToViewer::Alert(t) | ToViewer::Message(t) => self.notes.push(t),
                        ToViewer::Displays { ids, selected } => {
                            self.displays = Some((ids, selected))
                        }
                        ToViewer::DisplayLayout(rects) => self.layout = rects,
                        ToViewer::DisplaySet => self.displays_set += 1,
                        _ => {}
                    }
                }
                Some(Seen::Text(String::new()))
            }
            Message::Close(f) => {
                let c = f
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((0, String::new()));
                self.closed = Some(c.clone());
                Some(Seen::Closed(c.0, c.1))
            }
            _ => Some(Seen::Text(String::new())),
        }
    }

    fn draw(&mut self, x: u16, y: u16, jpeg: &[u8]) {
        assert!(
            tile_fits(x, y, jpeg, self.width, self.height),
            "tile at {x},{y} outside {}x{}",
            self.width,
            self.height
        );
        let mut d =
            zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(jpeg));
        let rgb = d.decode().expect("a JPEG the viewer can decode");
        let (w, h) = d.dimensions().expect("dimensions");
        for row in 0..h {
            for col in 0..w {
                let at = (y as usize + row) * self.width as usize + x as usize + col;
                let px = (row * w + col) * 3;
                self.screen[at] = [rgb[px], rgb[px + 1], rgb[px + 2]];
            }
        }
        self.drawn.mark(Rect {
            x,
            y,
            width: w as u16,
            height: h as u16,
        });
        self.tiles += 1;
    }

    fn pixel(&self, x: u16, y: u16) -> [u8; 3] {
        self.screen[y as usize * self.width as usize + x as usize]
    }

    fn complete(&self) -> bool {
        self.drawn.complete()
    }

    /// Reads until `pred` holds; panics with `what` after [`WAIT`].
    async fn until(&mut self, what: &str, pred: impl Fn(&Viewer) -> bool) -> Duration {
        let start = Instant::now();
        while !pred(self) {
            let left = WAIT.saturating_sub(start.elapsed());
            match self.next_message(left).await {
                None => panic!("{what}: not within {WAIT:?} (notes {:?})", self.notes),
                Some(Seen::Closed(code, why)) if !pred(self) => {
                    panic!(
                        "{what}: closed with {code} {why:?} (notes {:?})",
                        self.notes
                    )
                }
                _ => {}
            }
        }
        start.elapsed()
    }

    /// Reads until the socket closes; returns the notes seen on the way.
    async fn until_closed(&mut self) -> Vec<String> {
        let start = Instant::now();
        while self.closed.is_none() {
            let left = WAIT.saturating_sub(start.elapsed());
            if self.next_message(left).await.is_none() {
                panic!("no close within {WAIT:?} (notes {:?})", self.notes);
            }
        }
        self.notes.clone()
    }
}

fn matches_pattern(v: &Viewer) -> bool {
    v.complete()
        && sample_points(v.width, v.height)
            .iter()
            .all(|(x, y, want)| close(v.pixel(*x, *y), *want, TOLERANCE))
}

async fn setup() -> (TestServer, String, XDisplay, Painter, TestAgent, String) {
    setup_with(&[]).await
}

async fn setup_with(
    painter_args: &[&str],
) -> (TestServer, String, XDisplay, Painter, TestAgent, String) {
    setup_on(XDisplay::start(W, H), painter_args).await
}

/// The server, a group and an agent on `x`, painted by a painter started with
/// `painter_args`.
async fn setup_on(
    x: XDisplay,
    painter_args: &[&str],
) -> (TestServer, String, XDisplay, Painter, TestAgent, String) {
    let painter = Painter::start(&x, painter_args);
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "desks").await;
    let env = vec![
        ("IRONMESH_DISPLAY".to_string(), x.display.clone()),
        (
            "IRONMESH_XAUTHORITY".to_string(),
            x.auth_file.display().to_string(),
        ),
    ];
    let mut agent = TestAgent::start_with_env(&fetch_msh(&s, &group).await, env).await;
    let (node, _) = agent.wait_online().await;
    (s, group, x, painter, agent, node)
}

fn key(code: u8, down: bool) -> ToAgent {
    ToAgent::Key {
        action: if down { KeyAction::Down } else { KeyAction::Up },
        code,
    }
}

fn typed(text: &str) -> Vec<ToAgent> {
    text.encode_utf16()
        .flat_map(|unit| {
            [
                ToAgent::KeyUnicode { up: false, unit },
                ToAgent::KeyUnicode { up: true, unit },
            ]
        })
        .collect()
}

/// A button pressed and released at (x, y): its down and up commands.
fn click(down: u8, up: u8, x: u16, y: u16) -> [ToAgent; 2] {
    [down, up].map(|buttons| ToAgent::Mouse { buttons, x, y })
}

async fn button_event(p: &mut Painter, button: u8) -> Option<PainterEvent> {
    p.wait_event(
        |e| matches!(e, PainterEvent::Button { button: b, .. } if *b == button),
        WAIT,
    )
    .await
}

#[tokio::test]
async fn pictures_keys_and_clicks_reach_both_ends() {
    let (s, _group, _x, mut painter, _agent, node) = setup().await;
    let mut v = Viewer::open(&s, &node, "admin", PASS).await;
    let asked = Instant::now();
    v.start().await;

    // The first update is the whole screen, and it is the pattern.
    v.until("the screen size", |v| v.width > 0).await;
    assert_eq!((v.width, v.height), (W, H));
    v.until("the first frame showing the pattern", matches_pattern)
        .await;
    println!("first full frame after {:?}", asked.elapsed());

    // A key: the painter gets it, and the echo box it repaints comes back as a change.
    let sent = Instant::now();
    v.send(&[key(0x48, true), key(0x48, false)]).await;
    let got = painter
        .wait_event(|e| matches!(e, PainterEvent::Key { .. }), WAIT)
        .await
        .expect("the key reached the painter");
    println!("key reached the painter after {:?}", sent.elapsed());
    assert_eq!(
        got,
        PainterEvent::Key {
            keysym: 'h' as u32,
            text: "h".into()
        }
    );
    let tiles_before = v.tiles;
    let (ex, ey) = ECHO_BOX.centre();
    let took = v
        .until("the echo box's new colour", |v| {
            close(v.pixel(ex, ey), echo_colour(1), TOLERANCE)
        })
        .await;
    println!("changed region after {took:?}");
    assert!(v.tiles > tiles_before);
    // Only the changed part came again, not the whole screen.
    assert!(
        v.tiles - tiles_before <= 4,
        "{} tiles for one small change",
        v.tiles - tiles_before
    );

    // Virtual keys (Shift held for a capital, digits, Return) and typed text, Unicode
    // beyond the layout included.
    v.send(&[
        key(0x10, true),
        key(0x49, true),
        key(0x49, false),
        key(0x10, false),
        key(0x37, true),
        key(0x37, false),
    ])
    .await;
    v.send(&typed("Az-é€ж")).await;
    let text = painter.typed(8, WAIT).await;
    assert_eq!(text, "I7Az-é€ж");
    v.send(&[key(0x0D, true), key(0x0D, false)]).await;
    painter
        .wait_event(
            |e| matches!(e, PainterEvent::Key { keysym: 0xff0d, .. }),
            WAIT,
        )
        .await
        .expect("Return reached the painter");

    // Clicks: left, right, middle where the pointer is, and the wheel both ways.
    let to = ToAgent::Mouse {
        buttons: 0,
        x: 500,
        y: 400,
    };
    let [down, up] = click(buttons::LEFT_DOWN, buttons::LEFT_UP, 500, 400);
    v.send(&[to, down, up]).await;
    assert_eq!(
        button_event(&mut painter, 1).await,
        Some(PainterEvent::Button {
            button: 1,
            x: 500,
            y: 400
        })
    );
    v.send(&click(buttons::RIGHT_DOWN, buttons::RIGHT_UP, 600, 300))
        .await;
    assert_eq!(
        button_event(&mut painter, 3).await,
        Some(PainterEvent::Button {
            button: 3,
            x: 600,
            y: 300
        })
    );
    // One button at a time: waiting for one event skips the others read with it.
    v.send(&click(buttons::MIDDLE_DOWN, buttons::MIDDLE_UP, 610, 310))
        .await;
    assert!(button_event(&mut painter, 2).await.is_some());
    v.send(&[ToAgent::Wheel {
        x: 200,
        y: 200,
        delta: 120,
    }])
    .await;
    assert!(button_event(&mut painter, 4).await.is_some(), "wheel up");
    v.send(&[ToAgent::Wheel {
        x: 200,
        y: 200,
        delta: -240,
    }])
    .await;
    assert!(button_event(&mut painter, 5).await.is_some(), "wheel down");

    // A flood of pointer moves is merged, and input after it still arrives promptly.
    let moves: Vec<ToAgent> = (0..2000)
        .map(|i| ToAgent::Mouse {
            buttons: 0,
            x: (i % W as u32) as u16,
            y: 100,
        })
        .collect();
    for chunk in moves.chunks(50) {
        v.send(chunk).await;
    }
    v.send(&[key(0x41, true), key(0x41, false)]).await;
    assert_eq!(painter.typed(1, WAIT).await, "a");

    // Refresh: the whole screen again. Ping: pong.
    let tiles_before = v.tiles;
    v.drawn.clear();
    v.send(&[ToAgent::Refresh]).await;
    v.until("a full refresh", |v| v.complete()).await;
    assert!(v.tiles > tiles_before);
    v.ws.send(Message::Text(
        r#"{"ctrlChannel":"102938","type":"ping"}"#.into(),
    ))
    .await
    .unwrap();
    v.until("a pong", |v| v.notes.iter().any(|n| n.contains("\"pong\"")))
        .await;
    v.send(&[ToAgent::GetDisplays]).await;

    // The clipboard, through X: one session copies, another session's viewer reads it
    // from the X selection this one owns.
    let mut other = Viewer::open(&s, &node, "admin", PASS).await;
    other.start().await;
    other
        .until("a second session's picture", matches_pattern)
        .await;
    let copied = "copied ж text";
    v.ws.send(Message::Text(
        json!({"ctrlChannel":"102938","type":"clipboard","data":copied})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ask = r#"{"ctrlChannel":"102938","type":"getclipboard"}"#;
    let mut got = false;
    for _ in 0..50 {
        other.notes.clear();
        other.ws.send(Message::Text(ask.into())).await.unwrap();
        other
            .until("the clipboard's text", |v| {
                v.notes.iter().any(|n| n.contains("\"clipboard\""))
            })
            .await;
        let note = other
            .notes
            .iter()
            .find(|n| n.contains("\"clipboard\""))
            .unwrap();
        let data: serde_json::Value = serde_json::from_str(note).unwrap();
        if data["data"] == copied {
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got, "the clipboard never held {copied:?}");

    // Closing from the viewer ends the session; the agent stays up for the next.
    v.ws.send(Message::Text(
        r#"{"ctrlChannel":"102938","type":"close"}"#.into(),
    ))
    .await
    .unwrap();
    v.until_closed().await;
    let mut again = Viewer::open(&s, &node, "admin", PASS).await;
    again.start().await;
    again
        .until("a third session's picture", matches_pattern)
        .await;
}

#[tokio::test]
async fn rights_malformed_commands_and_missing_displays() {
    let (s, group, _x, mut painter, _agent, node) = setup().await;
    for (user, rights) in [
        (
            "viewer",
            MeshRights::REMOTE_CONTROL | MeshRights::REMOTE_VIEW_ONLY,
        ),
        (
            "nodesk",
            MeshRights::REMOTE_CONTROL | MeshRights::NO_DESKTOP,
        ),
        ("norc", MeshRights::REMOTE_VIEW_ONLY),
    ] {
        s.add_user(user, USER_PASS, false).await;
        add_member(&s, ("admin", PASS), &group, user, rights).await;
    }

    // View only: pictures, and none of the input reaches the device.
    let mut viewer = Viewer::open(&s, &node, "viewer", USER_PASS).await;
    viewer.start().await;
    viewer
        .until("a view-only user's picture", matches_pattern)
        .await;
    let [down, up] = click(buttons::LEFT_DOWN, buttons::LEFT_UP, 10, 10);
    viewer
        .send(&[
            key(0x41, true),
            key(0x41, false),
            down,
            up,
            ToAgent::Wheel {
                x: 10,
                y: 10,
                delta: 120,
            },
            ToAgent::CtrlAltDel,
        ])
        .await;
    viewer.send(&typed("no")).await;
    viewer.send(&[ToAgent::Refresh]).await;
    viewer.drawn.clear();
    viewer
        .until("a refresh after the ignored input", |v| v.complete())
        .await;
    assert_eq!(
        painter
            .wait_event(|_| true, Duration::from_millis(1500))
            .await,
        None,
        "a view-only user's input reached the device"
    );

    // Users without desktop rights are refused by the relay.
    for user in ["nodesk", "norc"] {
        let enc = node.replace('$', "%24").replace('@', "%40");
        let auth = format!("{},{}", b64(user.as_bytes()), b64(USER_PASS.as_bytes()));
        let c = ws::connect(
            s.port,
            &format!("/meshrelay.ashx?nodeid={enc}&p=2"),
            &[("x-meshauth", auth.as_str())],
        )
        .await
        .unwrap();
        let mut r = Viewer::wrap(c);
        r.until_closed().await;
        let (code, why) = r.closed.clone().unwrap();
        assert_eq!(code, 4403, "{user}: {why}");
    }

    // Malformed commands end that session with a reason; another session on the same
    // agent goes on.
    let mut keeper = Viewer::open(&s, &node, "admin", PASS).await;
    keeper.start().await;
    keeper
        .until("the second session's picture", matches_pattern)
        .await;
    for bad in [
        &[0u8, 1, 0, 5, 0][..],                        // a key with a 1-byte body
        &[0, 99, 0, 4][..],                            // no such command
        &[0, 1, 0, 2][..],                             // a size smaller than the header
        &[0, 27, 0, 8, 0, 0x40, 0, 0, 0, 1, 0, 0][..], // 4 MiB announced
    ] {
        let mut broken = Viewer::open(&s, &node, "admin", PASS).await;
        broken.start().await;
        broken.until("a picture", |v| v.tiles > 0).await;
        broken.send_raw(bad).await;
        let notes = broken.until_closed().await;
        assert!(
            notes
                .iter()
                .any(|n| n.contains("\"console\"") && n.contains("Desktop session closed")),
            "{bad:?}: {notes:?}"
        );
    }
    keeper.send(&typed("ok")).await;
    assert_eq!(painter.typed(2, WAIT).await, "ok");
    keeper.drawn.clear();
    keeper.send(&[ToAgent::Refresh]).await;
    keeper
        .until("the surviving session's refresh", |v| v.complete())
        .await;

    // A device with no X display says so, clearly, and ends the session.
    let env = vec![("IRONMESH_DISPLAY".to_string(), ":4999".to_string())];
    let mut headless = TestAgent::start_with_env(&fetch_msh(&s, &group).await, env).await;
    let (blind, _) = headless.wait_online().await;
    let mut v = Viewer::open(&s, &blind, "admin", PASS).await;
    v.start().await;
    let notes = v.until_closed().await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("No X display found") && n.contains("needs a running X11 session")),
        "{notes:?}"
    );
    assert_eq!(v.tiles, 0);
}

/// An animated region: pictures keep coming at the viewer's frame interval, only the
/// changed region is sent, and a faster interval gives more of them. Prints the figures
/// (updates per second, bytes per second) for BENCHMARKS.md.
#[tokio::test]
async fn animation_flows_at_the_frame_interval() {
    let (s, _group, _x, _painter, _agent, node) = setup_with(&["--animate"]).await;
    for frame_ms in [100u16, 33] {
        let mut v = Viewer::open(&s, &node, "admin", PASS).await;
        v.send(&[
            ToAgent::Compression {
                image: 1,
                quality: 50,
                scaling: 1024,
                frame_ms,
            },
            ToAgent::Pause(false),
        ])
        .await;
        v.until("the first frame", |v| v.complete()).await;
        let (tiles0, start) = (v.tiles, Instant::now());
        let mut updates = 0u32;
        let mut bytes = 0usize;
        let window = Duration::from_secs(3);
        while start.elapsed() < window {
            match tokio::time::timeout(window.saturating_sub(start.elapsed()), v.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    updates += 1;
                    bytes += b.len();
                    v.stream.push(&b);
                    while let Some(raw) = v.stream.next_command().unwrap() {
                        if let ToViewer::Tile { x, y, image } = ToViewer::decode(&raw).unwrap() {
                            let (w, h) = ironmesh_proto::desktop::image_size(&image).unwrap();
                            // Only the animated square (in whole tiles) changes.
                            assert!(
                                x >= 320 && y >= 192 && x + w <= 704 && y + h <= 576,
                                "tile {x},{y} {w}x{h} outside the animation"
                            );
                            v.tiles += 1;
                        }
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("session ended: {other:?}"),
                Err(_) => break,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "frame timer {frame_ms} ms: {:.1} updates/s, {:.0} KiB/s, {} tiles",
            updates as f64 / secs,
            bytes as f64 / secs / 1024.0,
            v.tiles - tiles0
        );
        let floor = if frame_ms == 100 { 5.0 } else { 8.0 };
        assert!(
            updates as f64 / secs >= floor,
            "{updates} updates in {secs:.1} s at {frame_ms} ms"
        );
        v.ws.send(Message::Close(None)).await.unwrap();
    }
}

/// Runs `xrandr` on `x`, which must succeed.
fn xrandr(x: &XDisplay, args: &[&str]) {
    let out = std::process::Command::new("xrandr")
        .args(args)
        .envs(x.env())
        .output()
        .expect("xrandr (apt-get install x11-xserver-utils)");
    assert!(
        out.status.success(),
        "xrandr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two monitors side by side on one 2048×768 X screen (RandR 1.5 monitors, as a desktop
/// with two screens has): the agent lists them as displays 1 and 2 plus 65535 (all),
/// shows one monitor's picture when asked, maps clicks on it back to the screen, keeps the
/// display shown when asked for one that does not exist, and follows a change of layout.
#[tokio::test]
async fn two_monitors_are_two_displays() {
    const SW: u16 = 2048;
    let x = XDisplay::start(SW, H);
    // The first monitor takes Xvfb's only output (replacing the monitor RandR makes for
    // it); the second is a monitor with no output, as `--setmonitor` allows.
    xrandr(
        &x,
        &["--setmonitor", "left", "1024/270x768/200+0+0", "screen"],
    );
    xrandr(
        &x,
        &["--setmonitor", "right", "1024/270x768/200+1024+0", "none"],
    );
    let (s, _group, x, mut painter, _agent, node) = setup_on(x, &[]).await;
    let mut v = Viewer::open(&s, &node, "admin", PASS).await;
    v.start().await;

    // The session starts on the whole screen, and says at once that there are two.
    v.until("the whole screen's picture", matches_pattern).await;
    assert_eq!((v.width, v.height), (SW, H));
    let two = Some((vec![1, 2, 65535], 65535));
    v.until("the display list at start", |v| v.displays.is_some())
        .await;
    assert_eq!(v.displays, two);
    let rect = |id, x| DisplayRect {
        id,
        x,
        y: 0,
        width: 1024,
        height: H,
    };
    assert_eq!(v.layout, [rect(1, 0), rect(2, 1024)]);
    // Asked again, the same answer.
    v.displays = None;
    v.layout.clear();
    v.send(&[ToAgent::GetDisplays]).await;
    v.until("the display list", |v| v.displays.is_some()).await;
    assert_eq!(v.displays, two);
    assert_eq!(v.layout.len(), 2);

    // Monitor 2: a 1024×768 screen showing the right half of the pattern.
    let right_half: Vec<(u16, u16, [u8; 3])> = sample_points(SW, H)
        .into_iter()
        .filter(|(px, _, _)| *px >= 1024)
        .map(|(px, py, want)| (px - 1024, py, want))
        .collect();
    assert!(right_half.len() >= 20);
    let shows_right_half = |v: &Viewer| {
        v.width == 1024
            && v.complete()
            && right_half
                .iter()
                .all(|(px, py, want)| close(v.pixel(*px, *py), *want, TOLERANCE))
    };
    v.send(&[ToAgent::SetDisplay(2)]).await;
    v.until("monitor 2's picture", shows_right_half).await;
    assert_eq!((v.width, v.height), (1024, H));
    assert_eq!(v.displays_set, 1);
    assert_eq!(v.displays, Some((vec![1, 2, 65535], 2)));
    // Every pixel of the picture is the pattern's at x + 1024, not just the samples:
    // the cell edges line up with the monitor's offset.
    for (px, py) in [(5, 5), (250, 700), (260, 100), (1000, 400), (1019, 763)] {
        let want = expected_pixel(px + 1024, py, SW, H);
        assert!(
            close(v.pixel(px, py), want, TOLERANCE),
            "({px},{py}) on monitor 2 is {:?}, the pattern has {want:?}",
            v.pixel(px, py)
        );
    }

    // A click on monitor 2 lands on the screen 1024 pixels to the right.
    v.send(&click(buttons::LEFT_DOWN, buttons::LEFT_UP, 10, 10))
        .await;
    assert_eq!(
        button_event(&mut painter, 1).await,
        Some(PainterEvent::Button {
            button: 1,
            x: 1034,
            y: 10
        })
    );

    // A display that does not exist: acknowledged, and monitor 2 stays.
    v.displays = None;
    v.send(&[ToAgent::SetDisplay(9), ToAgent::GetDisplays])
        .await;
    v.until("the answer to an unknown display", |v| {
        v.displays_set == 2 && v.displays.is_some()
    })
    .await;
    assert_eq!(v.displays, Some((vec![1, 2, 65535], 2)));
    assert_eq!((v.width, v.height), (1024, H));

    // All displays: the whole screen again.
    v.send(&[ToAgent::SetDisplay(65535)]).await;
    v.until("the whole screen again", |v| {
        v.width == SW && matches_pattern(v)
    })
    .await;
    v.send(&[ToAgent::SetDisplay(2)]).await;
    v.until("monitor 2 again", shows_right_half).await;

    // Monitor 2 goes away: the agent says there is one display now and shows the whole
    // screen, without being asked.
    v.displays = None;
    xrandr(&x, &["--delmonitor", "right"]);
    v.until("the new display list", |v| v.displays.is_some())
        .await;
    assert_eq!(v.displays, Some((vec![0], 0)));
    v.until("the whole screen after the change", |v| {
        v.width == SW && matches_pattern(v)
    })
    .await;
}
