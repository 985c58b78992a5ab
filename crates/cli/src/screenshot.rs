//! `ironmesh screenshot DEVICE FILE.png`: one whole frame of a device's screen, through a
//! desktop session (docs/protocol/desktop.md).

use std::path::Path;
use std::time::Duration;

use ironmesh_client::desktop::{Coverage, DesktopSession, Settings};
use ironmesh_proto::desktop::{Rect, ToViewer};

use crate::config::Store;
use crate::session::{connect, resolve_device, target};

/// How long the device may stay silent before the screenshot is given up.
const SILENCE: Duration = Duration::from_secs(30);

pub async fn screenshot(
    store: &Store,
    device: &str,
    out: &Path,
    quality: u8,
) -> anyhow::Result<()> {
    let (login, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    let (server, creds) = target(&login)?;
    let settings = Settings {
        quality: quality.clamp(1, 100),
        ..Settings::default()
    };
    let mut session =
        DesktopSession::open(&server, &creds, Some(&login.tls_hash), &id, settings).await?;
    let mut screen: Option<Screen> = None;
    let picture = loop {
        match session.next(SILENCE).await? {
            ToViewer::ScreenSize { width, height } => screen = Some(Screen::new(width, height)),
            ToViewer::Tile { x, y, image } => {
                let s = screen
                    .as_mut()
                    .expect("the session checks the size comes first");
                s.draw(x, y, &image)?;
                if s.complete() {
                    break screen.take().unwrap();
                }
            }
            ToViewer::Alert(text) | ToViewer::Message(text) if !text.starts_with('.') => {
                anyhow::bail!("the device says: {text}")
            }
            _ => {}
        }
    };
    session.close().await;
    picture.write_png(out)?;
    eprintln!(
        "{}×{} screenshot written to {}",
        picture.width,
        picture.height,
        out.display()
    );
    Ok(())
}

/// The screen being put together from tiles: RGB pixels and which of them a tile has drawn.
pub struct Screen {
    pub width: u16,
    pub height: u16,
    rgb: Vec<u8>,
    drawn: Coverage,
}

impl Screen {
    pub fn new(width: u16, height: u16) -> Screen {
        let n = width as usize * height as usize;
        Screen {
            width,
            height,
            rgb: vec![0; n * 3],
            drawn: Coverage::new(width, height),
        }
    }

    /// Draws one JPEG or PNG tile at (x, y); the session checked it lies on the screen.
    pub fn draw(&mut self, x: u16, y: u16, image: &[u8]) -> anyhow::Result<()> {
        let (w, h, rgb) = decode(image)?;
        anyhow::ensure!(
            x as usize + w <= self.width as usize && y as usize + h <= self.height as usize,
            "a {w}×{h} picture at {x},{y} does not fit the {}×{} screen",
            self.width,
            self.height
        );
        for row in 0..h {
            let at = (y as usize + row) * self.width as usize + x as usize;
            self.rgb[at * 3..(at + w) * 3].copy_from_slice(&rgb[row * w * 3..(row + 1) * w * 3]);
        }
        self.drawn.mark(Rect {
            x,
            y,
            width: w as u16,
            height: h as u16,
        });
        Ok(())
    }

    /// Whether every pixel has been drawn at least once.
    pub fn complete(&self) -> bool {
        self.drawn.complete()
    }

    pub fn write_png(&self, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.rgb)?;
        writer.finish()?;
        Ok(())
    }
}

/// Width, height and RGB pixels of a JPEG or PNG.
fn decode(image: &[u8]) -> anyhow::Result<(usize, usize, Vec<u8>)> {
    if image.starts_with(b"\x89PNG") {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(image));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info()?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf)?;
        let (w, h) = (info.width as usize, info.height as usize);
        let rgb = match info.color_type {
            png::ColorType::Rgb => buf[..w * h * 3].to_vec(),
            png::ColorType::Rgba => buf[..w * h * 4]
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            png::ColorType::Grayscale => buf[..w * h].iter().flat_map(|&g| [g, g, g]).collect(),
            png::ColorType::GrayscaleAlpha => buf[..w * h * 2]
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0]])
                .collect(),
            png::ColorType::Indexed => anyhow::bail!("indexed PNG after expansion"),
        };
        return Ok((w, h, rgb));
    }
    let options = zune_jpeg::zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_jpeg::zune_core::bytestream::ZCursor::new(image),
        options,
    );
    let rgb = decoder
        .decode()
        .map_err(|e| anyhow::anyhow!("the device sent a picture that does not decode: {e:?}"))?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| anyhow::anyhow!("a picture without a size"))?;
    Ok((w, h, rgb))
}
