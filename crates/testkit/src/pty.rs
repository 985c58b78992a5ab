//! Drives a program on a pseudo-terminal, as a person at a terminal would (meshctrl's and
//! our CLI's `shell` need a TTY).

use std::process::{Child, Command};
use std::time::Duration;

use ironmesh_agent::tunnel::terminal::{spawn_on_pty, Pty};

pub struct PtyProcess {
    pty: Pty,
    child: Child,
    /// Everything the program has written so far.
    pub output: Vec<u8>,
}

impl PtyProcess {
    pub fn spawn(cmd: Command, cols: u16, rows: u16) -> PtyProcess {
        let (pty, slave) = Pty::open(cols, rows).expect("openpty");
        let child = spawn_on_pty(cmd, slave).expect("spawn on pty");
        PtyProcess {
            pty,
            child,
            output: Vec::new(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Reads until the output (since `from`) contains `needle`; false on timeout or exit.
    pub async fn expect_from(&mut self, from: usize, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if String::from_utf8_lossy(&self.output[from.min(self.output.len())..]).contains(needle)
            {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.pty.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                    return String::from_utf8_lossy(&self.output[from.min(self.output.len())..])
                        .contains(needle)
                }
                Ok(Ok(n)) => self.output.extend_from_slice(&buf[..n]),
            }
        }
    }

    pub async fn expect(&mut self, needle: &str, timeout: Duration) -> bool {
        self.expect_from(0, needle, timeout).await
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.pty.write_all(bytes).await.expect("write to pty");
    }

    /// Resizes the terminal; the kernel signals the program (SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) {
        self.pty.resize(cols, rows).expect("resize pty");
    }

    /// Waits for the program to exit (killing it after `timeout`).
    pub async fn finish(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), self.pty.read(&mut buf)).await
            {
                self.output.extend_from_slice(&buf[..n]);
            }
        }
    }
}

impl Drop for PtyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
