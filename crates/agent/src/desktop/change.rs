//! Which parts of the screen changed since the last picture sent: the screen is cut into
//! square tiles, each compared byte for byte with the copy kept from the last capture (a
//! `memcmp` per tile row, as fast as hashing and never wrong), and the changed tiles are
//! merged into few rectangles so that a moving window becomes one JPEG, not dozens.

/// Tile side in pixels: small enough that a blinking cursor costs one small JPEG, large
/// enough that a full repaint stays a few hundred comparisons.
pub const TILE: u16 = 64;

pub use ironmesh_proto::desktop::Rect;

/// A picture of the screen: 4 bytes per pixel, blue-green-red-unused (X's 24/32-bit
/// little-endian ZPixmap), rows `width * 4` bytes apart.
#[derive(Debug, Default, Clone)]
pub struct Frame {
    pub width: u16,
    pub height: u16,
    pub pixels: Vec<u8>,
}

impl Frame {
    pub fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// Resizes in place (contents undefined); keeps the allocation when it is large enough,
    /// so an idle session allocates nothing per capture.
    pub fn reshape(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
        self.pixels.resize(width as usize * height as usize * 4, 0);
    }
}

/// Remembers the last picture sent and tells what differs in the next.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    last: Frame,
    dirty: Vec<bool>,
}

impl ChangeTracker {
    /// The rectangles of `now` that differ from the last frame (all of it when `full`, or
    /// when the size changed), and remembers `now` as the last frame.
    pub fn changes(&mut self, now: &Frame, full: bool) -> Vec<Rect> {
        let (w, h) = (now.width, now.height);
        if w == 0 || h == 0 {
            return Vec::new();
        }
        let full = full || self.last.width != w || self.last.height != h;
        if full {
            self.last.reshape(w, h);
            self.last.pixels.copy_from_slice(&now.pixels);
            return vec![Rect {
                x: 0,
                y: 0,
                width: w,
                height: h,
            }];
        }
        let cols = w.div_ceil(TILE) as usize;
        let rows = h.div_ceil(TILE) as usize;
        self.dirty.clear();
        self.dirty.resize(cols * rows, false);
        let stride = now.stride();
        for row in 0..rows {
            let y0 = row * TILE as usize;
            let y1 = (y0 + TILE as usize).min(h as usize);
            for col in 0..cols {
                let x0 = col * TILE as usize * 4;
                let x1 = ((col + 1) * TILE as usize).min(w as usize) * 4;
                let changed = (y0..y1).any(|y| {
                    let at = y * stride;
                    now.pixels[at + x0..at + x1] != self.last.pixels[at + x0..at + x1]
                });
                if changed {
                    self.dirty[row * cols + col] = true;
                    for y in y0..y1 {
                        let at = y * stride;
                        self.last.pixels[at + x0..at + x1]
                            .copy_from_slice(&now.pixels[at + x0..at + x1]);
                    }
                }
            }
        }
        merge(&self.dirty, cols, rows, w, h)
    }

    /// Forgets the last frame, so the next one is sent whole; frees its memory.
    pub fn reset(&mut self) {
        self.last = Frame::default();
        self.dirty = Vec::new();
    }
}

/// Merges dirty tiles: runs along each tile row, then runs of the same span in consecutive
/// rows, clipped to the screen.
fn merge(dirty: &[bool], cols: usize, rows: usize, w: u16, h: u16) -> Vec<Rect> {
    // (first col, end col, first row, end row) of open rectangles.
    let mut done: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut open: Vec<(usize, usize, usize, usize)> = Vec::new();
    for row in 0..rows {
        let mut runs = Vec::new();
        let mut col = 0;
        while col < cols {
            if dirty[row * cols + col] {
                let start = col;
                while col < cols && dirty[row * cols + col] {
                    col += 1;
                }
                runs.push((start, col));
            } else {
                col += 1;
            }
        }
        let mut next_open = Vec::with_capacity(runs.len());
        for (c0, c1) in runs {
            match open.iter().position(|r| r.0 == c0 && r.1 == c1) {
                Some(i) => {
                    let mut r = open.swap_remove(i);
                    r.3 = row + 1;
                    next_open.push(r);
                }
                None => next_open.push((c0, c1, row, row + 1)),
            }
        }
        done.append(&mut open);
        open = next_open;
    }
    done.append(&mut open);
    let t = TILE as usize;
    done.into_iter()
        .map(|(c0, c1, r0, r1)| {
            let x = c0 * t;
            let y = r0 * t;
            Rect {
                x: x as u16,
                y: y as u16,
                width: ((c1 * t).min(w as usize) - x) as u16,
                height: ((r1 * t).min(h as usize) - y) as u16,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u16, h: u16) -> Frame {
        let mut f = Frame::default();
        f.reshape(w, h);
        f
    }

    fn paint(f: &mut Frame, x: usize, y: usize, v: u8) {
        let at = y * f.stride() + x * 4;
        f.pixels[at] = v;
    }

    #[test]
    fn first_frame_and_size_change_are_whole() {
        let mut t = ChangeTracker::default();
        let f = frame(100, 50);
        assert_eq!(
            t.changes(&f, false),
            [Rect {
                x: 0,
                y: 0,
                width: 100,
                height: 50
            }]
        );
        assert!(t.changes(&f, false).is_empty(), "nothing changed");
        assert_eq!(t.changes(&f, true).len(), 1, "a refresh is whole");
        assert_eq!(t.changes(&frame(80, 50), false)[0].width, 80);
    }

    #[test]
    fn changed_tiles_merge_into_rectangles() {
        let mut t = ChangeTracker::default();
        let mut f = frame(300, 200);
        t.changes(&f, false);
        // A 2×2 block of tiles, and one lone pixel in the clipped bottom-right tile.
        paint(&mut f, 70, 70, 1);
        paint(&mut f, 130, 130, 1);
        paint(&mut f, 70, 130, 1);
        paint(&mut f, 130, 70, 1);
        paint(&mut f, 299, 199, 1);
        let mut got = t.changes(&f, false);
        got.sort_by_key(|r| (r.y, r.x));
        assert_eq!(
            got,
            [
                Rect {
                    x: 64,
                    y: 64,
                    width: 128,
                    height: 128
                },
                Rect {
                    x: 256,
                    y: 192,
                    width: 44,
                    height: 8
                }
            ]
        );
        assert!(t.changes(&f, false).is_empty(), "remembered");
    }
}
