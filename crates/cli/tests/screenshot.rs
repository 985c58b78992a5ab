//! `ironmesh screenshot` against a real X display: a private Xvfb showing the test pattern
//! (`testkit::xdisplay`), served by a real agent through the real server.

use std::time::Duration;

use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{
    answer_tunnels_with, create_group, fetch_msh, tile_off_the_screen, SimAgent, StockAgent,
    TestAgent,
};
use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws;
use ironmesh_testkit::xdisplay::{close, sample_points, Painter, XDisplay};

const PASS: &str = "Adm1n-pass!";

/// Reads a PNG the CLI wrote: width, height, RGB.
fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, buf)
}

/// Checks the PNG against the pattern at every sample point, and against what the X server
/// itself holds at every pixel (JPEG tolerances).
fn matches_display(path: &std::path::Path, d: &XDisplay) {
    let (w, h, rgb) = read_png(path);
    assert_eq!((w, h), (d.width as u32, d.height as u32));
    for (x, y, want) in sample_points(d.width, d.height) {
        let at = (y as usize * w as usize + x as usize) * 3;
        let got = [rgb[at], rgb[at + 1], rgb[at + 2]];
        assert!(close(got, want, 24), "({x},{y}): {got:?}, want {want:?}");
    }
    let truth = d.screenshot();
    let error: u64 = truth
        .iter()
        .zip(rgb.chunks_exact(3))
        .map(|(t, p)| (0..3).map(|i| t[i].abs_diff(p[i]) as u64).sum::<u64>())
        .sum();
    let mean = error as f64 / (truth.len() * 3) as f64;
    assert!(
        mean < 6.0,
        "mean error per channel {mean:.2} against the X server's own pixels"
    );
}

/// Logs the CLI in and takes a screenshot of `node` (retrying while the agent's desktop
/// starts); returns the PNG's path inside the CLI's configuration folder.
async fn screenshot(server: &TestServer, node: &str, cli: &Cli) -> std::path::PathBuf {
    cli.login(server, "admin", PASS);
    let out_file = cli.path().join("screen.png");
    wait_until(Duration::from_secs(60), "a screenshot", async || {
        let out = cli.run(&["screenshot", node, out_file.to_str().unwrap()]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .await;
    out_file
}

#[tokio::test]
async fn screenshot_of_an_ironmesh_agent_display() {
    let display = XDisplay::start(1024, 768);
    let _painter = Painter::start(&display, &[]);
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "lab").await;
    let mut env = display.env();
    env.push(("IRONMESH_DISPLAY".into(), display.display.clone()));
    let mut agent = TestAgent::start_with_env(&fetch_msh(&server, &group).await, env).await;
    let (node, _) = agent.wait_online().await;
    let cli = Cli::new();
    let png = screenshot(&server, &node, &cli).await;
    matches_display(&png, &display);

    // A device without a display: the CLI says why, and writes nothing.
    let mut blind = TestAgent::start_with_env(
        &fetch_msh(&server, &group).await,
        vec![("IRONMESH_DISPLAY".into(), ":4998".into())],
    )
    .await;
    let (blind_node, _) = blind.wait_online().await;
    let missing = cli.path().join("none.png");
    let out = cli.run(&["screenshot", &blind_node, missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No X display"), "{err}");
    assert!(!missing.exists());
    agent.kill().await;
    blind.kill().await;
}

/// The stock MeshCentral agent finds the display by itself (a root X server started with
/// `-auth`, `DISPLAY` in a root process's environment: docs/protocol/desktop.md §7).
#[tokio::test]
async fn screenshot_of_a_stock_agent_display() {
    let display = XDisplay::start(1024, 768);
    let _painter = Painter::start(&display, &[]);
    let server = TestServer::start_for_stock_agents(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "stock").await;
    let mut agent =
        StockAgent::start_with_env(&fetch_msh(&server, &group).await, display.env()).await;
    let mut control = ws::control(server.port, "admin", PASS).await.unwrap();
    let node = wait_until(
        Duration::from_secs(60),
        "the stock agent online",
        async || {
            let reply = ws::request(&mut control, &serde_json::json!({"action":"nodes"}))
                .await
                .map_err(|e| e.to_string())?;
            reply["nodes"]
                .as_object()
                .and_then(|g| {
                    g.values()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .find(|n| n["conn"] == 1)
                })
                .and_then(|n| n["_id"].as_str().map(str::to_string))
                .ok_or_else(|| reply.to_string())
        },
    )
    .await;
    let cli = Cli::new();
    // The core reports in after connecting; its first desktop sessions may still be starting.
    let png = screenshot(&server, &node, &cli).await;
    matches_display(&png, &display);
    agent.kill().await;
}

/// A device that sends a picture hanging over its screen's edge: refused before decoding,
/// with the reason, and no file written. (Multi-threaded: the device answers while the CLI
/// runs as a blocking child process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_refuses_a_hostile_device() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "lab").await;
    let identity = std::sync::Arc::new(AgentIdentity::generate(2048).unwrap().0);
    let sim = SimAgent::new(identity, &fetch_msh(&server, &group).await, server.port);
    let (socket, _) = sim.connect(None).await.expect("simulated agent online");
    let device = tokio::spawn(answer_tunnels_with(
        socket,
        server.port,
        tile_off_the_screen(),
    ));
    let cli = Cli::new();
    cli.login(&server, "admin", PASS);
    let file = cli.path().join("lie.png");
    // The simulated device is named "sim".
    let out = cli.run(&["screenshot", "sim", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a JPEG/PNG within the 1024×768 screen (at 1000,760)"),
        "{err}"
    );
    assert!(!file.exists());
    device.abort();
}
