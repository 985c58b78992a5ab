//! Changed rectangles to JPEG tiles (docs/protocol/desktop.md §3, command 3).
//!
//! The encoder is `jpeg-encoder`: pure Rust, takes X's blue-green-red-unused pixels as they
//! are (no conversion pass), and with its SIMD path was the faster of the two measured
//! (`tests/jpeg_bench.rs`; figures in BENCHMARKS.md). Scaling is nearest-neighbour on the
//! way into the encoder's buffer: the output pixel `X` always samples source pixel
//! `X * 1024 / scaling`, so tiles encoded apart still line up on the viewer's canvas.

use anyhow::Context;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::change::{Frame, Rect};

/// 100 % in the viewer's `scaling` field.
pub const FULL_SCALE: u16 = 1024;

/// The encoding settings the viewer asked for (command 5), clamped to what is sane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    /// JPEG quality, 1..=100.
    pub quality: u8,
    /// Output size in 1024ths of the screen, 128..=1024 (12.5 %..100 %).
    pub scaling: u16,
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            quality: 50,
            scaling: FULL_SCALE,
        }
    }
}

impl Quality {
    pub fn new(quality: u8, scaling: u16) -> Quality {
        Quality {
            quality: quality.clamp(1, 100),
            scaling: if scaling == 0 {
                FULL_SCALE
            } else {
                scaling.clamp(128, FULL_SCALE)
            },
        }
    }

    /// A screen length as the viewer sees it.
    pub fn scaled(&self, v: u16) -> u16 {
        ((v as u32 * self.scaling as u32) / FULL_SCALE as u32).max(1) as u16
    }

    /// A viewer coordinate back on the real screen.
    pub fn unscaled(&self, v: u16) -> u16 {
        ((v as u32 * FULL_SCALE as u32) / self.scaling as u32).min(u16::MAX as u32) as u16
    }
}

/// Encodes rectangles of frames; keeps its buffers between calls so steady-state encoding
/// allocates only the output.
#[derive(Debug, Default)]
pub struct TileEncoder {
    scratch: Vec<u8>,
}

impl TileEncoder {
    /// Appends one tile command for `rect` of `frame` to `out`; nothing when the rectangle
    /// vanishes at this scale.
    pub fn encode(
        &mut self,
        frame: &Frame,
        rect: Rect,
        q: Quality,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let (x0, y0, w, h) = if q.scaling == FULL_SCALE {
            self.copy_rect(frame, rect);
            (rect.x, rect.y, rect.width, rect.height)
        } else {
            match self.copy_scaled(frame, rect, q) {
                Some(r) => r,
                None => return Ok(()),
            }
        };
        let mut jpeg = Vec::with_capacity(w as usize * h as usize / 4);
        let mut encoder = Encoder::new(&mut jpeg, q.quality);
        encoder.set_sampling_factor(SamplingFactor::F_2_2);
        encoder
            .encode(&self.scratch, w, h, ColorType::Bgra)
            .with_context(|| format!("encoding a {w}x{h} JPEG tile"))?;
        ironmesh_proto::desktop::encode_tile(x0, y0, &jpeg, out);
        Ok(())
    }

    fn copy_rect(&mut self, frame: &Frame, r: Rect) {
        let stride = frame.stride();
        let row = r.width as usize * 4;
        self.scratch.clear();
        self.scratch.reserve(row * r.height as usize);
        for y in r.y as usize..(r.y + r.height) as usize {
            let at = y * stride + r.x as usize * 4;
            self.scratch.extend_from_slice(&frame.pixels[at..at + row]);
        }
    }

    /// Copies the part of the scaled screen that `r` covers; returns its scaled position
    /// and size.
    fn copy_scaled(&mut self, frame: &Frame, r: Rect, q: Quality) -> Option<(u16, u16, u16, u16)> {
        let s = q.scaling as u32;
        let full = FULL_SCALE as u32;
        let (sw, sh) = (q.scaled(frame.width) as u32, q.scaled(frame.height) as u32);
        let x0 = r.x as u32 * s / full;
        let y0 = r.y as u32 * s / full;
        let x1 = ((r.x + r.width) as u32 * s).div_ceil(full).min(sw);
        let y1 = ((r.y + r.height) as u32 * s).div_ceil(full).min(sh);
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        let stride = frame.stride();
        self.scratch.clear();
        self.scratch.reserve(((x1 - x0) * (y1 - y0) * 4) as usize);
        for oy in y0..y1 {
            let sy = ((oy * full / s) as usize).min(frame.height as usize - 1);
            let row = &frame.pixels[sy * stride..sy * stride + stride];
            for ox in x0..x1 {
                let sx = ((ox * full / s) as usize).min(frame.width as usize - 1) * 4;
                self.scratch.extend_from_slice(&row[sx..sx + 4]);
            }
        }
        Some((x0 as u16, y0 as u16, (x1 - x0) as u16, (y1 - y0) as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironmesh_proto::desktop::{image_size, Deframer, ToViewer};

    fn gradient(w: u16, h: u16) -> Frame {
        let mut f = Frame::default();
        f.reshape(w, h);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let at = (y * w as usize + x) * 4;
                f.pixels[at..at + 4].copy_from_slice(&[x as u8, y as u8, 200, 0]);
            }
        }
        f
    }

    fn tiles(bytes: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
        let mut d = Deframer::default();
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(c) = d.next_command().unwrap() {
            match ToViewer::decode(&c).unwrap() {
                ToViewer::Tile { x, y, image } => out.push((x, y, image)),
                other => panic!("{other:?}"),
            }
        }
        out
    }

    #[test]
    fn tiles_land_where_the_rectangle_is() {
        let f = gradient(200, 100);
        let mut e = TileEncoder::default();
        let mut out = Vec::new();
        let r = Rect {
            x: 64,
            y: 32,
            width: 100,
            height: 50,
        };
        e.encode(&f, r, Quality::default(), &mut out).unwrap();
        let t = tiles(&out);
        assert_eq!((t[0].0, t[0].1), (64, 32));
        assert_eq!(image_size(&t[0].2), Some((100, 50)));
        // Half size: the same rectangle covers half the pixels, at half the position.
        out.clear();
        e.encode(&f, r, Quality::new(50, 512), &mut out).unwrap();
        let t = tiles(&out);
        assert_eq!((t[0].0, t[0].1), (32, 16));
        assert_eq!(image_size(&t[0].2), Some((50, 25)));
    }

    #[test]
    fn settings_are_clamped() {
        assert_eq!(Quality::new(0, 0), Quality::new(1, 1024));
        assert_eq!(Quality::new(200, 5000).quality, 100);
        assert_eq!(Quality::new(50, 1).scaling, 128);
        let half = Quality::new(50, 512);
        assert_eq!(half.scaled(1024), 512);
        assert_eq!(half.unscaled(100), 200);
    }
}
