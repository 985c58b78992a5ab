//! The desktop tests' harness itself: Xvfb shows the painter's pattern, and keys and clicks
//! sent by `xdotool` (an independent X client) come back as painter events.

use std::time::Duration;

use ironmesh_testkit::xdisplay::{
    close, echo_colour, sample_points, Painter, PainterEvent, XDisplay, ECHO_BOX,
};

#[tokio::test]
async fn the_painter_paints_the_pattern_and_reports_input() {
    let d = XDisplay::start(1024, 768);
    let mut painter = Painter::start(&d, &[]);
    let screen = d.screenshot();
    for (x, y, want) in sample_points(d.width, d.height) {
        let got = screen[y as usize * d.width as usize + x as usize];
        assert!(close(got, want, 0), "({x},{y}): {got:?} != {want:?}");
    }

    let out = d.run("xdotool", &["type", "--delay", "20", "hi1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(painter.typed(3, Duration::from_secs(10)).await, "hi1");
    let (ex, ey) = ECHO_BOX.centre();
    let echoed = d.screenshot()[ey as usize * d.width as usize + ex as usize];
    assert_eq!(
        echoed,
        echo_colour(3),
        "the echo box shows the third key press"
    );

    let out = d.run("xdotool", &["mousemove", "500", "300", "click", "3"]);
    assert!(out.status.success());
    let click = painter
        .wait_event(
            |e| matches!(e, PainterEvent::Button { .. }),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        click,
        Some(PainterEvent::Button {
            button: 3,
            x: 500,
            y: 300
        })
    );
}
