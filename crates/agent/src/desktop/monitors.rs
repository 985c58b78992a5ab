//! The monitors of the X screen, as the viewer's displays (docs/protocol/desktop.md §3,
//! commands 11 and 82).
//!
//! One X screen often spans several monitors. RandR 1.5's `GetMonitors` names them, with
//! the rectangle each shows of the root window; that is what a desktop environment lays its
//! panels out by, and unlike CRTCs it includes monitors defined with `xrandr --setmonitor`.
//! Without RandR 1.5, or with a single monitor, the screen is one display, numbered 0 as
//! before this module existed. With several, they are numbered 1..=n in the server's order
//! and 65535 is the whole screen, the way MeshCentral's agents number them (its viewer
//! labels them "Display n" and "All Displays").

use ironmesh_proto::desktop::{DisplayRect, ToViewer};
use x11rb::connection::RequestConnection;
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::Window;

use super::change::Rect;

/// The id of the whole screen when there are several monitors.
pub const ALL: u16 = 65535;
/// The id of the only display when there is one.
pub const ONLY: u16 = 0;

/// The monitors of one screen, clipped to it, in the X server's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Empty when the screen is one display.
    monitors: Vec<Rect>,
}

impl Layout {
    /// The screen as one display.
    pub fn single() -> Layout {
        Layout::default()
    }

    /// Monitors as RandR reports them (positions may be negative or reach past a screen
    /// that just shrank): each is clipped to the `screen`, empty ones are dropped, and one
    /// or none left means a single display.
    pub fn from_monitors(
        monitors: impl IntoIterator<Item = (i16, i16, u16, u16)>,
        screen: (u16, u16),
    ) -> Layout {
        let (sw, sh) = (screen.0 as i32, screen.1 as i32);
        let mut rects: Vec<Rect> = monitors
            .into_iter()
            .filter_map(|(x, y, w, h)| {
                let (x0, y0) = ((x as i32).clamp(0, sw), (y as i32).clamp(0, sh));
                let x1 = (x as i32 + w as i32).clamp(0, sw);
                let y1 = (y as i32 + h as i32).clamp(0, sh);
                (x1 > x0 && y1 > y0).then(|| Rect {
                    x: x0 as u16,
                    y: y0 as u16,
                    width: (x1 - x0) as u16,
                    height: (y1 - y0) as u16,
                })
            })
            .collect();
        // Two names for one rectangle (a mirrored output) are one display to the viewer.
        let mut seen = Vec::with_capacity(rects.len());
        rects.retain(|r| {
            let fresh = !seen.contains(r);
            seen.push(*r);
            fresh
        });
        if rects.len() <= 1 {
            rects.clear();
        }
        Layout { monitors: rects }
    }

    pub fn is_multi(&self) -> bool {
        !self.monitors.is_empty()
    }

    /// The display showing the whole screen: what a session starts with.
    pub fn whole(&self) -> u16 {
        if self.is_multi() {
            ALL
        } else {
            ONLY
        }
    }

    /// The display ids, as the viewer is told them (command 11).
    pub fn ids(&self) -> Vec<u16> {
        if !self.is_multi() {
            return vec![ONLY];
        }
        (1..=self.monitors.len() as u16).chain([ALL]).collect()
    }

    pub fn knows(&self, id: u16) -> bool {
        id == self.whole()
            || (self.is_multi() && (1..=self.monitors.len()).contains(&(id as usize)))
    }

    /// `id` when it names a display of this layout, else the whole screen (after the
    /// monitor shown went away).
    pub fn resolve(&self, id: u16) -> u16 {
        if self.knows(id) {
            id
        } else {
            self.whole()
        }
    }

    /// The part of a `screen`-sized root window that display `id` shows; the whole screen
    /// for the whole-screen id and for ids this layout does not know.
    pub fn area(&self, id: u16, screen: (u16, u16)) -> Rect {
        if self.is_multi() && id != ALL && self.knows(id) {
            return self.monitors[id as usize - 1];
        }
        Rect {
            x: 0,
            y: 0,
            width: screen.0,
            height: screen.1,
        }
    }

    /// The display list with `selected`, and where each monitor lies when there are
    /// several (commands 11 and 82).
    pub fn announce(&self, selected: u16, out: &mut Vec<u8>) {
        ToViewer::Displays {
            ids: self.ids(),
            selected,
        }
        .encode(out);
        if self.is_multi() {
            ToViewer::DisplayLayout(
                self.monitors
                    .iter()
                    .zip(1u16..)
                    .map(|(r, id)| DisplayRect {
                        id,
                        x: r.x,
                        y: r.y,
                        width: r.width,
                        height: r.height,
                    })
                    .collect(),
            )
            .encode(out);
        }
    }
}

/// Asks for RandR's change events on `root`, so a reconfiguration is noticed without
/// polling; false when the server has no RandR 1.5 (then the screen is one display).
pub fn watch(conn: &impl RequestConnection, root: Window) -> bool {
    let supported = match conn.randr_query_version(1, 5).map(|c| c.reply()) {
        Ok(Ok(v)) => (v.major_version, v.minor_version) >= (1, 5),
        _ => false,
    };
    if supported {
        let mask = randr::NotifyMask::SCREEN_CHANGE
            | randr::NotifyMask::CRTC_CHANGE
            | randr::NotifyMask::OUTPUT_CHANGE;
        if let Ok(c) = conn.randr_select_input(root, mask) {
            let _ = c.check();
        }
    }
    supported
}

/// The screen's monitors now (call [`watch`] first: it says whether RandR 1.5 is there).
/// Any failure means one display: a desktop with a picture beats no desktop.
pub fn read(conn: &impl RequestConnection, root: Window, screen: (u16, u16)) -> Layout {
    match conn.randr_get_monitors(root, true).map(|c| c.reply()) {
        Ok(Ok(reply)) => Layout::from_monitors(
            reply.monitors.iter().map(|m| (m.x, m.y, m.width, m.height)),
            screen,
        ),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "RandR GetMonitors failed; one display");
            Layout::single()
        }
        Err(e) => {
            tracing::debug!(error = %e, "RandR GetMonitors not sent; one display");
            Layout::single()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironmesh_proto::desktop::Deframer;

    const SCREEN: (u16, u16) = (2048, 768);

    fn two() -> Layout {
        Layout::from_monitors([(0, 0, 1024, 768), (1024, 0, 1024, 768)], SCREEN)
    }

    #[test]
    fn one_monitor_is_todays_single_display() {
        for l in [
            Layout::single(),
            Layout::from_monitors([(0, 0, 2048, 768)], SCREEN),
            // Off screen entirely, and a mirror of the first: still one.
            Layout::from_monitors(
                [(0, 0, 2048, 768), (3000, 0, 10, 10), (0, 0, 2048, 768)],
                SCREEN,
            ),
        ] {
            assert!(!l.is_multi(), "{l:?}");
            assert_eq!(l.ids(), [0]);
            assert_eq!(l.whole(), 0);
            assert_eq!(l.resolve(2), 0);
            assert_eq!(
                l.area(ALL, SCREEN),
                Rect {
                    x: 0,
                    y: 0,
                    width: 2048,
                    height: 768
                }
            );
        }
    }

    #[test]
    fn monitors_are_numbered_from_one_with_all_last() {
        let l = two();
        assert_eq!(l.ids(), [1, 2, ALL]);
        assert_eq!(l.whole(), ALL);
        assert_eq!(
            l.area(2, SCREEN),
            Rect {
                x: 1024,
                y: 0,
                width: 1024,
                height: 768
            }
        );
        assert_eq!(l.area(ALL, SCREEN).width, 2048);
        assert!(l.knows(1) && l.knows(2) && l.knows(ALL));
        assert!(!l.knows(0) && !l.knows(3));
        assert_eq!(l.resolve(3), ALL);
        assert_eq!(l.area(3, SCREEN).width, 2048, "unknown: the whole screen");
    }

    #[test]
    fn monitors_are_clipped_to_the_screen() {
        let l = Layout::from_monitors([(-100, 0, 1124, 768), (1024, 0, 2000, 800)], SCREEN);
        assert_eq!(
            l.area(1, SCREEN),
            Rect {
                x: 0,
                y: 0,
                width: 1024,
                height: 768
            }
        );
        assert_eq!(
            l.area(2, SCREEN),
            Rect {
                x: 1024,
                y: 0,
                width: 1024,
                height: 768
            }
        );
    }

    #[test]
    fn the_announcement_is_the_list_then_the_layout() {
        let mut out = Vec::new();
        two().announce(2, &mut out);
        let mut d = Deframer::default();
        d.push(&out);
        let mut got = Vec::new();
        while let Some(raw) = d.next_command().unwrap() {
            got.push(ToViewer::decode(&raw).unwrap());
        }
        assert_eq!(
            got,
            [
                ToViewer::Displays {
                    ids: vec![1, 2, ALL],
                    selected: 2
                },
                ToViewer::DisplayLayout(vec![
                    DisplayRect {
                        id: 1,
                        x: 0,
                        y: 0,
                        width: 1024,
                        height: 768
                    },
                    DisplayRect {
                        id: 2,
                        x: 1024,
                        y: 0,
                        width: 1024,
                        height: 768
                    },
                ]),
            ]
        );
        let mut single = Vec::new();
        Layout::single().announce(0, &mut single);
        assert_eq!(
            single,
            ToViewer::Displays {
                ids: vec![0],
                selected: 0
            }
            .to_bytes()
        );
    }
}
