//! Reading the screen's pixels. With MIT-SHM (1.2, fd passing) the X server writes the
//! picture into memory shared with the agent: no 3 MB reply through the socket per capture.
//! The segment is an anonymous `memfd` handed to the server over the connection, so no
//! System V segment with world-readable permissions ever exists. Without MIT-SHM (a remote
//! or odd server) the plain `GetImage` request does the same, slower.
//!
//! The root window's size is read on every capture, so a resolution change is noticed at
//! the next frame. A capture covers one rectangle of the root window: the whole screen, or
//! the one monitor the viewer picked (`monitors`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder, Window};
use x11rb::rust_connection::RustConnection;

use super::change::{Frame, Rect};
use super::monitors::{self, Layout};

/// A shared memory segment the server knows as `seg`.
struct SharedSegment {
    seg: shm::Seg,
    map: *mut u8,
    len: usize,
}

impl SharedSegment {
    fn create(conn: &RustConnection, len: usize) -> anyhow::Result<SharedSegment> {
        // SAFETY: memfd_create with a valid NUL-terminated name; the fd is owned below.
        let fd = unsafe { libc::memfd_create(c"ironmesh-desktop".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("memfd_create");
        }
        // SAFETY: fd was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on a valid fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error()).context("sizing the shared segment");
        }
        // SAFETY: mapping `len` bytes of a memfd just sized to `len`; checked for failure.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mapping the shared segment");
        }
        let seg = conn.generate_id().context("allocating an X id")?;
        let segment = SharedSegment {
            seg,
            map: map as *mut u8,
            len,
        };
        // The server keeps its own reference to the memory; ours goes with `fd` here.
        conn.shm_attach_fd(seg, fd, false)?
            .check()
            .context("the X server refused the shared segment")?;
        Ok(segment)
    }

    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: the mapping is `self.len` bytes long and lives as long as `self`; the
        // server writes into it only during a ShmGetImage we have waited for.
        unsafe { std::slice::from_raw_parts(self.map, len.min(self.len)) }
    }

    fn release(&mut self, conn: &RustConnection) {
        let _ = conn.shm_detach(self.seg);
        let _ = conn.flush();
    }
}

impl Drop for SharedSegment {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned.
        unsafe {
            libc::munmap(self.map as *mut libc::c_void, self.len);
        }
    }
}

/// Captures the root window of one screen.
pub struct Capturer {
    conn: RustConnection,
    root: Window,
    shm: Option<SharedSegment>,
    /// False once MIT-SHM failed: later captures use GetImage without trying again.
    shm_usable: bool,
    /// The server has RandR 1.5: monitors can be read, and their changes are announced.
    randr: bool,
}

impl Capturer {
    /// Checks that the screen has a pixel format this agent can send (24 or 32-bit colour,
    /// 4 bytes per pixel, little-endian) and whether MIT-SHM with fd passing is there.
    pub fn new(conn: RustConnection, screen: usize) -> anyhow::Result<Capturer> {
        let setup = conn.setup();
        let root = setup
            .roots
            .get(screen)
            .with_context(|| format!("the X server has no screen {screen}"))?;
        let depth = root.root_depth;
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel)
            .unwrap_or(0);
        anyhow::ensure!(
            (depth == 24 || depth == 32) && bpp == 32 && setup.image_byte_order == ImageOrder::LSB_FIRST,
            "unsupported screen format: depth {depth}, {bpp} bits per pixel (24-bit colour in 32 bits is needed)"
        );
        let root = root.root;
        let shm_usable = match conn.shm_query_version().map(|c| c.reply()) {
            Ok(Ok(v)) => (v.major_version, v.minor_version) >= (1, 2),
            _ => false,
        };
        let randr = monitors::watch(&conn, root);
        Ok(Capturer {
            conn,
            root,
            shm: None,
            shm_usable,
            randr,
        })
    }

    /// Whether captures go through shared memory (for the log).
    pub fn uses_shm(&self) -> bool {
        self.shm_usable
    }

    /// The screen's current size.
    pub fn size(&self) -> anyhow::Result<(u16, u16)> {
        let g = self
            .conn
            .get_geometry(self.root)?
            .reply()
            .context("reading the screen size")?;
        Ok((g.width, g.height))
    }

    /// The screen's monitors (one display without RandR 1.5).
    pub fn layout(&self, screen: (u16, u16)) -> Layout {
        if self.randr {
            monitors::read(&self.conn, self.root, screen)
        } else {
            Layout::single()
        }
    }

    /// Reads the events waiting; true when one was RandR's (the monitors may have changed).
    pub fn poll_events(&mut self) -> anyhow::Result<bool> {
        // Every client gets keyboard-mapping events (the input side's spare keycodes cause
        // some); nothing else here wants them, but unread they would pile up in memory.
        let mut randr = false;
        while let Some(ev) = self.conn.poll_for_event()? {
            randr |= matches!(
                ev,
                x11rb::protocol::Event::RandrScreenChangeNotify(_)
                    | x11rb::protocol::Event::RandrNotify(_)
            );
        }
        Ok(randr)
    }

    /// Captures `area` of the screen (which must lie on it) into `frame`, resized to it.
    pub fn grab(&mut self, frame: &mut Frame, area: Rect) -> anyhow::Result<()> {
        let (x, y, w, h) = (area.x as i16, area.y as i16, area.width, area.height);
        frame.reshape(w, h);
        let len = frame.pixels.len();
        if self.shm_usable {
            match self.grab_shm(area, len) {
                Ok(()) => {
                    let seg = self.shm.as_ref().expect("segment just used");
                    frame.pixels.copy_from_slice(seg.bytes(len));
                    return Ok(());
                }
                Err(e) => {
                    tracing::info!(error = %format!("{e:#}"), "MIT-SHM capture failed; using GetImage");
                    self.shm_usable = false;
                    if let Some(mut seg) = self.shm.take() {
                        seg.release(&self.conn);
                    }
                }
            }
        }
        let reply = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, x, y, w, h, !0)?
            .reply()
            .context("capturing the screen (GetImage)")?;
        anyhow::ensure!(
            reply.data.len() >= len,
            "GetImage returned {} bytes for a {w}x{h} area",
            reply.data.len()
        );
        frame.pixels.copy_from_slice(&reply.data[..len]);
        Ok(())
    }

    fn grab_shm(&mut self, area: Rect, len: usize) -> anyhow::Result<()> {
        if self.shm.as_ref().is_none_or(|s| s.len < len) {
            if let Some(mut old) = self.shm.take() {
                old.release(&self.conn);
            }
            self.shm = Some(SharedSegment::create(&self.conn, len)?);
        }
        let seg = self.shm.as_ref().expect("segment created above").seg;
        self.conn
            .shm_get_image(
                self.root,
                area.x as i16,
                area.y as i16,
                area.width,
                area.height,
                !0,
                ImageFormat::Z_PIXMAP.into(),
                seg,
                0,
            )?
            .reply()
            .context("capturing the screen (ShmGetImage)")?;
        Ok(())
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        if let Some(mut seg) = self.shm.take() {
            seg.release(&self.conn);
        }
    }
}
