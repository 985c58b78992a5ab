//! Which JPEG encoder the desktop uses: `jpeg-encoder` (SIMD path on) against `image`'s
//! encoder, on a 1024×768 desktop-like frame whole and cut into 64×64 tiles, at the
//! browser's default quality 50. Ignored by default (timing, not correctness):
//!
//! ```text
//! cargo test -p ironmesh-agent --test jpeg_bench -- --ignored --nocapture
//! ```
//!
//! Both encoders are dependencies, built optimised even in test builds (the workspace's
//! `profile.dev.package."*"`), so the comparison is fair in a debug build. `image` only
//! takes RGB: the frame is converted before the clock starts, so its figures are the
//! encoder's alone (a real use would add that conversion pass).

use std::time::{Duration, Instant};

use ironmesh_agent::desktop::change::{Frame, Rect};
use ironmesh_agent::desktop::encode::{Quality, TileEncoder};

const W: u16 = 1024;
const H: u16 = 768;

/// Flat cells, a gradient band and some pseudo-random "text" strokes: what screens hold.
fn desktop() -> Frame {
    let mut f = Frame::default();
    f.reshape(W, H);
    let mut seed = 0x2545_f491u32;
    for y in 0..H as usize {
        for x in 0..W as usize {
            let at = (y * W as usize + x) * 4;
            let mut px = [(x / 128 * 30) as u8, (y / 128 * 40) as u8, 180, 0];
            if (300..400).contains(&y) {
                px = [x as u8, y as u8, (x + y) as u8, 0];
            }
            if (500..700).contains(&y) && (100..900).contains(&x) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                px = if seed & 7 < 2 {
                    [20, 20, 20, 0]
                } else {
                    [250, 250, 250, 0]
                };
            }
            f.pixels[at..at + 4].copy_from_slice(&px);
        }
    }
    f
}

fn tiles() -> Vec<Rect> {
    let mut out = Vec::new();
    for y in (0..H).step_by(64) {
        for x in (0..W).step_by(64) {
            out.push(Rect {
                x,
                y,
                width: 64,
                height: 64,
            });
        }
    }
    out
}

/// The rectangle as RGB, for `image`.
fn crop_rgb(f: &Frame, r: Rect) -> Vec<u8> {
    let mut v = Vec::new();
    for y in r.y as usize..(r.y + r.height) as usize {
        let at = (y * W as usize + r.x as usize) * 4;
        for px in f.pixels[at..at + r.width as usize * 4].chunks_exact(4) {
            v.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    v
}

fn time<F: FnMut() -> usize>(mut f: F) -> (Duration, usize) {
    f();
    let runs = 10;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..runs {
        bytes = f();
    }
    (start.elapsed() / runs, bytes)
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn jpeg_encoders() {
    let frame = desktop();
    let full = Rect {
        x: 0,
        y: 0,
        width: W,
        height: H,
    };
    let q = Quality::default();

    let mut ours = TileEncoder::default();
    let (t, n) = time(|| {
        let mut out = Vec::new();
        ours.encode(&frame, full, q, &mut out).unwrap();
        out.len()
    });
    println!(
        "jpeg-encoder  full frame  {:>7.2} ms  {n} bytes",
        t.as_secs_f64() * 1e3
    );
    let (t, n) = time(|| {
        let mut out = Vec::new();
        for r in tiles() {
            ours.encode(&frame, r, q, &mut out).unwrap();
        }
        out.len()
    });
    println!(
        "jpeg-encoder  192 tiles   {:>7.2} ms  {n} bytes",
        t.as_secs_f64() * 1e3
    );

    let whole = crop_rgb(&frame, full);
    let (t, n) = time(|| {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q.quality)
            .encode(&whole, W as u32, H as u32, image::ExtendedColorType::Rgb8)
            .unwrap();
        out.len()
    });
    println!(
        "image         full frame  {:>7.2} ms  {n} bytes",
        t.as_secs_f64() * 1e3
    );
    let cut: Vec<Vec<u8>> = tiles().into_iter().map(|r| crop_rgb(&frame, r)).collect();
    let (t, n) = time(|| {
        let mut total = 0;
        for px in &cut {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q.quality)
                .encode(px, 64, 64, image::ExtendedColorType::Rgb8)
                .unwrap();
            total += out.len();
        }
        total
    });
    println!(
        "image         192 tiles   {:>7.2} ms  {n} bytes",
        t.as_secs_f64() * 1e3
    );
}
