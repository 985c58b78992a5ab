//! Terminal sessions (`p=1`): a login shell on a real pseudo-terminal. Shell output goes
//! to the user as binary frames, the user's binary frames go to the shell unchanged, and
//! text frames are control messages (`termsize` resizes the terminal).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::io::unix::AsyncFd;
use tokio_tungstenite::tungstenite::Message;

use super::CTRL_CHANNEL;
use ironmesh_client::connect::Socket as AgentSocket;

/// The master side of a pseudo-terminal, non-blocking, driven by the reactor.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
}

impl Pty {
    /// Opens a pty pair sized `cols`×`rows`; returns it and the slave side.
    pub fn open(cols: u16, rows: u16) -> io::Result<(Pty, OwnedFd)> {
        let (mut master, mut slave) = (-1, -1);
        let size = winsize(cols, rows);
        // SAFETY: openpty writes two fds into valid pointers; name and termios may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just returned by openpty and are owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: fcntl on a valid fd.
        unsafe {
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
        // SAFETY: the AsyncFd owns the descriptor, so it stays open (and is not reused)
        // for as long as it is registered.
        let master = unsafe { AsyncFd::register(master)? };
        Ok((Pty { master }, slave))
    }

    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let size = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads some output; Ok(0) when the shell side is gone.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| {
                // SAFETY: reading into a valid buffer from a valid fd.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => return Ok(n),
                // EIO: every slave descriptor is closed, i.e. the shell has exited.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| {
                // SAFETY: writing from a valid buffer to a valid fd.
                let n = unsafe {
                    libc::write(
                        fd.as_raw_fd(),
                        data.as_ptr() as *const libc::c_void,
                        data.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: if rows == 0 { 24 } else { rows },
        ws_col: if cols == 0 { 80 } else { cols },
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The user's login shell if it exists, else bash, else sh.
fn shell() -> String {
    let candidates = [
        std::env::var("SHELL").unwrap_or_default(),
        "/bin/bash".into(),
        "/bin/sh".into(),
    ];
    candidates
        .into_iter()
        .find(|s| !s.is_empty() && std::path::Path::new(s).exists())
        .unwrap_or_else(|| "/bin/sh".into())
}

/// Starts a login shell with the pty's slave side as its controlling terminal.
pub fn spawn_shell(slave: OwnedFd, cols: u16, rows: u16) -> io::Result<Child> {
    let mut cmd = Command::new(shell());
    cmd.arg("-l")
        .env("TERM", "xterm-256color")
        .env("COLUMNS", winsize(cols, rows).ws_col.to_string())
        .env("LINES", winsize(cols, rows).ws_row.to_string());
    if let Ok(home) = std::env::var("HOME") {
        cmd.current_dir(home);
    }
    spawn_on_pty(cmd, slave)
}

/// Starts `cmd` in a new session whose controlling terminal is the pty's slave side
/// (stdin, stdout and stderr all on it).
pub fn spawn_on_pty(mut cmd: Command, slave: OwnedFd) -> io::Result<Child> {
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

fn dimension(options: &Map<String, Value>, key: &str) -> u16 {
    options
        .get(key)
        .and_then(Value::as_u64)
        .map(|v| v.min(1000) as u16)
        .unwrap_or(0)
}

/// Runs the terminal until the shell exits or the user leaves.
pub async fn run(socket: &mut AgentSocket, options: &Map<String, Value>) -> anyhow::Result<()> {
    let (cols, rows) = (dimension(options, "cols"), dimension(options, "rows"));
    let (pty, slave) = Pty::open(cols, rows)?;
    let mut child = spawn_shell(slave, cols, rows)?;
    let mut buf = vec![0u8; 16 * 1024];
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                n = pty.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(());
                    }
                    socket.send(Message::Binary(buf[..n].to_vec().into())).await?;
                }
                msg = socket.next() => {
                    let Some(msg) = msg else { return Ok(()) };
                    match msg? {
                        Message::Binary(data) => pty.write_all(&data).await?,
                        Message::Text(text) => {
                            if let Ok(Value::Object(ctrl)) = serde_json::from_str::<Value>(text.as_str()) {
                                match ctrl.get("type").and_then(Value::as_str) {
                                    Some("termsize") => {
                                        let _ = pty.resize(dimension(&ctrl, "cols"), dimension(&ctrl, "rows"));
                                    }
                                    Some("close") => return Ok(()),
                                    Some("ping") => {
                                        let pong = json!({"ctrlChannel": CTRL_CHANNEL, "type": "pong"});
                                        socket.send(Message::Text(pong.to_string().into())).await?;
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Message::Close(_) => return Ok(()),
                        _ => {}
                    }
                }
            }
        }
    }
    .await;
    // Hang up the shell (and its job) and reap it.
    let _ = child.kill();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    result
}
