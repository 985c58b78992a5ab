//! The console's Desktop tab in a real browser: Debian's Chromium driven by playwright-core
//! (`web/e2e/desktop.mjs`) against the real server and a real agent on a private Xvfb display
//! that `ironmesh-xpattern` paints with a known pattern. The browser checks the canvas's pixels
//! against the pattern; the painter reports the keys and clicks it receives. Screenshots land
//! in `target/console-screenshots/`.
//!
//! Needs Xvfb, Debian's chromium and web/node_modules; the stock agent's half needs root (it
//! only captures a display whose X server runs as root with `-auth FILE`,
//! docs/protocol/desktop.md §5).

#![cfg(target_os = "linux")]

use std::time::Duration;

use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{
    add_member, answer_tunnels_with, create_group, fetch_msh, tile_off_the_screen, SimAgent,
    StockAgent, TestAgent,
};
use ironmesh_testkit::browser::screenshots;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::workspace_root;
use ironmesh_testkit::xdisplay::{echo_colour, sample_points, Painter, XDisplay, ECHO_BOX};
use serde_json::json;
use tokio::process::Command;

const PASS: &str = "Adm1n-pass!";
const WIDTH: u16 = 1024;
const HEIGHT: u16 = 768;

/// Group rights: remote control, and the view-only and no-desktop restrictions.
const REMOTE_CONTROL: u32 = 8;
const VIEW_ONLY: u32 = 256;
const NO_DESKTOP: u32 = 65536;

/// What the browser script needs to know about the display and its painter.
fn display_env(d: &XDisplay, painter: &Painter) -> Vec<(&'static str, String)> {
    let samples: Vec<_> = sample_points(d.width, d.height)
        .into_iter()
        .map(|(x, y, c)| json!([x, y, c]))
        .collect();
    let (ex, ey) = ECHO_BOX.centre();
    vec![
        ("DESKTOP_SAMPLES", serde_json::to_string(&samples).unwrap()),
        ("DESKTOP_SIZE", format!("{}x{}", d.width, d.height)),
        (
            "DESKTOP_ECHO",
            json!({"x": ex, "y": ey, "colours": (1..=4).map(echo_colour).collect::<Vec<_>>()})
                .to_string(),
        ),
        (
            "PAINTER_EVENTS",
            painter.events_file().display().to_string(),
        ),
    ]
}

/// Runs one scenario of the browser script; fails with its output.
async fn browser(server: &TestServer, scenario: &str, extra: &[(&str, String)]) {
    ironmesh_testkit::browser::run_scenario(
        "desktop.mjs",
        server,
        ("admin", PASS),
        scenario,
        extra,
    )
    .await;
}

/// The accounts of the scenario: an administrator, a view-only member and a member without
/// desktop rights, in a new group; returns the group's id.
async fn members(server: &TestServer) -> String {
    server.add_user("admin", PASS, true).await;
    server.add_user("viewer", PASS, false).await;
    server.add_user("nodesk", PASS, false).await;
    let group = create_group(server, "admin", PASS, "Lab").await;
    add_member(
        server,
        ("admin", PASS),
        &group,
        "viewer",
        REMOTE_CONTROL | VIEW_ONLY,
    )
    .await;
    add_member(
        server,
        ("admin", PASS),
        &group,
        "nodesk",
        REMOTE_CONTROL | NO_DESKTOP,
    )
    .await;
    group
}

/// `ironmesh-agent` on display `d`, or on none (a display number nobody serves).
async fn start_agent(msh: &str, d: Option<&XDisplay>) -> TestAgent {
    let env = match d {
        Some(d) => {
            let mut env = d.env();
            env.push(("IRONMESH_DISPLAY".into(), d.display.clone()));
            env
        }
        None => vec![
            ("DISPLAY".into(), ":4999".into()),
            ("IRONMESH_DISPLAY".into(), ":4999".into()),
        ],
    };
    TestAgent::start_with_env(msh, env).await
}

/// Runs the `desktop` scenario with input and the view-only and no-desktop members (of
/// [`members`]), `extra` added; then checks the painter's own record agrees with what the
/// script typed.
async fn input_scenario(
    server: &TestServer,
    painter: &mut Painter,
    mut extra: Vec<(&str, String)>,
) {
    extra.push(("DESKTOP_INPUT", "1".into()));
    extra.push(("VIEWER_USER", "viewer".into()));
    extra.push(("NODESK_USER", "nodesk".into()));
    browser(server, "desktop", &extra).await;
    let typed = painter.typed(13, Duration::from_secs(1)).await;
    assert!(typed.contains("Hi, ironmesh!"), "typed: {typed:?}");
}

/// The console's desktop codec, in Node.js: the bytes it sends are what `proto::desktop`
/// decodes, and its deframer gives the same commands however the stream is cut.
#[tokio::test]
async fn console_desktop_codec() {
    let out = Command::new("node")
        .arg(workspace_root().join("web/e2e/desktop-codec.mjs"))
        .output()
        .await
        .expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("ok desktop-codec"),
        "{text}"
    );
}

/// ironmesh-agent's desktop: the pattern on the canvas, clicks, typed text, special keys,
/// view only (by toggle, by rights, and by hand-made input), refusal without desktop rights,
/// picture settings, a network loss, the clipboard, and a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_tab_with_ironmesh_agent() {
    let server = TestServer::start(Db::Sqlite).await;
    let group = members(&server).await;
    let msh = fetch_msh(&server, &group).await;

    let display = XDisplay::start(WIDTH, HEIGHT);
    let mut painter = Painter::start(&display, &[]);
    let mut agent = start_agent(&msh, Some(&display)).await;

    let mut extra = display_env(&display, &painter);
    extra.push(("DESKTOP_SCALING", "1".into()));
    extra.push(("DESKTOP_CLIPBOARD", "1".into()));
    input_scenario(&server, &mut painter, extra).await;
    agent.kill().await;
    assert!(screenshots().join("desktop-desktop-pattern.png").exists());
}

/// One X screen of two monitors side by side (RandR 1.5, `xrandr --setmonitor`): the tab's
/// display picker offers them, picking display 2 shows that monitor alone at 1024×768, a
/// click on it reaches the painter 1024 pixels to the right, and "All displays" brings the
/// whole screen back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_tab_picks_a_monitor() {
    const MONITOR: u16 = 1024;
    let server = TestServer::start(Db::Sqlite).await;
    let group = members(&server).await;
    let msh = fetch_msh(&server, &group).await;

    let display = XDisplay::start(2 * MONITOR, HEIGHT);
    for args in [
        ["--setmonitor", "left", "1024/270x768/200+0+0", "screen"],
        ["--setmonitor", "right", "1024/270x768/200+1024+0", "none"],
    ] {
        let out = display.run("xrandr", &args);
        assert!(out.status.success(), "xrandr {args:?}: {out:?}");
    }
    let painter = Painter::start(&display, &[]);
    let mut agent = start_agent(&msh, Some(&display)).await;

    let monitor_samples: Vec<_> = sample_points(display.width, display.height)
        .into_iter()
        .filter(|(x, _, _)| *x >= MONITOR)
        .map(|(x, y, c)| json!([x - MONITOR, y, c]))
        .collect();
    let mut extra = display_env(&display, &painter);
    extra.push(("DESKTOP_MONITORS", "1".into()));
    extra.push((
        "DESKTOP_MONITOR_SAMPLES",
        serde_json::to_string(&monitor_samples).unwrap(),
    ));
    extra.push(("DESKTOP_MONITOR_X", MONITOR.to_string()));
    browser(&server, "monitors", &extra).await;
    agent.kill().await;
    assert!(screenshots()
        .join("desktop-monitors-monitor-2.png")
        .exists());
}

/// An agent without a display says so in the tab, instead of a blank canvas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_tab_shows_the_agents_message_without_a_display() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "Lab").await;
    let msh = fetch_msh(&server, &group).await;
    let mut agent = start_agent(&msh, None).await;
    browser(&server, "no-display", &[]).await;
    agent.kill().await;
}

/// The stock MeshCentral agent on the same kind of display, through the same scenario (its
/// Linux agent takes the Unicode key events too; it has no clipboard over the relay). It runs
/// as root and captures only a display whose X server is root's and was started with
/// `-auth FILE`, taking `DISPLAY` from a root process's environment
/// (docs/protocol/desktop.md §7); with several such servers it needs `DISPLAY` and
/// `XAUTHORITY` in its own environment to pick the right one.
#[cfg(target_arch = "x86_64")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_tab_with_the_stock_agent() {
    if !nix_is_root() {
        ironmesh_testkit::skip("the stock agent captures the screen only when run as root");
        return;
    }
    let server = TestServer::start_for_stock_agents(Db::Sqlite).await;
    let group = members(&server).await;
    let msh = fetch_msh(&server, &group).await;
    // Another root-owned X server started first: without DISPLAY in its own environment the
    // agent captures that one (its capture child exits), with it the right one.
    let _decoy = XDisplay::start(800, 600);
    let display = XDisplay::start(WIDTH, HEIGHT);
    let mut painter = Painter::start(&display, &[]);
    let mut agent = StockAgent::start_with_env(&msh, display.env()).await;
    let extra = display_env(&display, &painter);
    input_scenario(&server, &mut painter, extra).await;
    agent.kill().await;
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A device that sends a picture hanging over its screen's edge: the tab refuses it before
/// decoding, says why, and the console goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_tab_refuses_a_hostile_device() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "Lab").await;
    let msh = fetch_msh(&server, &group).await;
    let identity = std::sync::Arc::new(AgentIdentity::generate(2048).unwrap().0);
    let (socket, _) = SimAgent::new(identity, &msh, server.port)
        .connect(None)
        .await
        .expect("simulated agent online");
    let device = tokio::spawn(answer_tunnels_with(
        socket,
        server.port,
        tile_off_the_screen(),
    ));
    browser(&server, "hostile", &[]).await;
    device.abort();
}
