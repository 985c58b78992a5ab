//! Finding the X display to show. The agent runs as a root service, outside any login
//! session, so it has no `DISPLAY` of its own; it looks where the logged-in user's display
//! is announced, in this order:
//!
//! 1. an explicit override: `IRONMESH_DISPLAY` (with `IRONMESH_XAUTHORITY`, else
//!    `XAUTHORITY`) — for tests and unusual setups; when set, nothing else is tried;
//! 2. the environment of running processes (`/proc/*/environ`): a desktop session's
//!    processes carry `DISPLAY` and `XAUTHORITY`; a user's processes come before root's;
//! 3. the X servers' sockets (`/tmp/.X11-unix/X<n>`), with the cookie file named by the
//!    server's `-auth FILE` argument (display managers start Xorg that way).
//!
//! Each candidate is then tried in turn; the first that accepts a connection wins.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use x11rb::reexports::x11rb_protocol::parse_display::parse_display;
use x11rb::rust_connection::{DefaultStream, RustConnection};

/// A display to try, and where the idea came from (for the log and the error).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayTarget {
    /// As in `DISPLAY`: `:0`, `:1.0`, `unix:2`.
    pub display: String,
    /// The cookie file (`XAUTHORITY`); `None` tries without a cookie.
    pub xauthority: Option<PathBuf>,
    pub source: String,
}

/// The candidates, most likely first (see the module comment for the order).
pub fn candidates() -> Vec<DisplayTarget> {
    if let Some(display) = std::env::var("IRONMESH_DISPLAY")
        .ok()
        .filter(|d| !d.is_empty())
    {
        let xauthority = std::env::var_os("IRONMESH_XAUTHORITY")
            .or_else(|| std::env::var_os("XAUTHORITY"))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        return vec![DisplayTarget {
            display,
            xauthority,
            source: "IRONMESH_DISPLAY".into(),
        }];
    }
    let mut out = from_process_environments(Path::new("/proc"));
    out.extend(from_server_sockets(
        Path::new("/tmp/.X11-unix"),
        Path::new("/proc"),
    ));
    let mut seen = HashSet::new();
    out.retain(|t| seen.insert((t.display.clone(), t.xauthority.clone())));
    out
}

/// Whether any process announces a Wayland session, to say so when no X display works.
pub fn wayland_seen() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read(e.path().join("environ"))
            .map(|env| {
                env.split(|b| *b == 0)
                    .any(|kv| kv.starts_with(b"WAYLAND_DISPLAY="))
            })
            .unwrap_or(false)
    })
}

fn uid_of(proc_entry: &Path) -> Option<u32> {
    let status = std::fs::read_to_string(proc_entry.join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `DISPLAY`/`XAUTHORITY` pairs from the processes' environments; users' before root's.
fn from_process_environments(proc_root: &Path) -> Vec<DisplayTarget> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found: Vec<(bool, DisplayTarget)> = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let (mut display, mut xauth, mut home) = (None, None, None);
        for kv in env.split(|b| *b == 0) {
            let kv = String::from_utf8_lossy(kv);
            if let Some(v) = kv.strip_prefix("DISPLAY=") {
                display = Some(v.to_string());
            } else if let Some(v) = kv.strip_prefix("XAUTHORITY=") {
                xauth = Some(PathBuf::from(v));
            } else if let Some(v) = kv.strip_prefix("HOME=") {
                home = Some(PathBuf::from(v));
            }
        }
        let Some(display) = display.filter(|d| !d.is_empty()) else {
            continue;
        };
        // Without XAUTHORITY, Xlib uses ~/.Xauthority: so does the user's session.
        let xauthority =
            xauth.or_else(|| home.map(|h| h.join(".Xauthority")).filter(|p| p.exists()));
        let root = uid_of(&entry.path()) == Some(0);
        found.push((
            root,
            DisplayTarget {
                display,
                xauthority,
                source: format!("environment of process {pid}"),
            },
        ));
    }
    found.sort_by_key(|(root, _)| *root);
    found.into_iter().map(|(_, t)| t).collect()
}

/// One target per X server socket, with the `-auth` file from that server's command line.
fn from_server_sockets(socket_dir: &Path, proc_root: &Path) -> Vec<DisplayTarget> {
    let Ok(dir) = std::fs::read_dir(socket_dir) else {
        return Vec::new();
    };
    let mut numbers: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('X')?.parse().ok())
        .collect();
    numbers.sort_unstable();
    let servers = server_command_lines(proc_root);
    numbers
        .into_iter()
        .map(|n| {
            let display = format!(":{n}");
            let xauthority = servers
                .iter()
                .find(|args| args.contains(&display))
                .and_then(|args| {
                    let i = args.iter().position(|a| a == "-auth")?;
                    args.get(i + 1).map(PathBuf::from)
                });
            DisplayTarget {
                display,
                xauthority,
                source: format!("socket {}/X{n}", socket_dir.display()),
            }
        })
        .collect()
}

/// Command lines of running X servers (Xorg, X, Xvfb, Xvnc, Xwayland…).
fn server_command_lines(proc_root: &Path) -> Vec<Vec<String>> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|args| {
            args.first().is_some_and(|prog| {
                let base = prog.rsplit('/').next().unwrap_or(prog);
                base == "X"
                    || base.starts_with("Xorg")
                    || base.starts_with("Xvfb")
                    || base.starts_with("Xvnc")
                    || base.starts_with("Xwayland")
                    || base.starts_with("Xephyr")
            })
        })
        .collect()
}

/// The MIT-MAGIC-COOKIE-1 for display `number` in an Xauthority file: an entry for this
/// display (or any display), a local one for this host first.
pub fn cookie_for(file: &[u8], number: u16, hostname: &[u8]) -> Option<Vec<u8>> {
    const LOCAL: u16 = 256;
    const WILD: u16 = 65535;
    let mut at = 0;
    let field = |at: &mut usize| -> Option<&[u8]> {
        let len = u16::from_be_bytes([*file.get(*at)?, *file.get(*at + 1)?]) as usize;
        let v = file.get(*at + 2..*at + 2 + len)?;
        *at += 2 + len;
        Some(v)
    };
    let want = number.to_string();
    let mut fallback = None;
    while at + 2 <= file.len() {
        let family = u16::from_be_bytes([file[at], file[at + 1]]);
        at += 2;
        let address = field(&mut at)?;
        let display = field(&mut at)?;
        let name = field(&mut at)?;
        let data = field(&mut at)?;
        if name != b"MIT-MAGIC-COOKIE-1" || !(display.is_empty() || display == want.as_bytes()) {
            continue;
        }
        if family == WILD || (family == LOCAL && address == hostname) {
            return Some(data.to_vec());
        }
        // A cookie written under another host name (the machine was renamed, or runs in a
        // container) still is the only one this display has.
        fallback.get_or_insert_with(|| data.to_vec());
    }
    fallback
}

fn hostname() -> Vec<u8> {
    std::fs::read("/proc/sys/kernel/hostname")
        .map(|h| h.trim_ascii().to_vec())
        .unwrap_or_default()
}

/// Connects to `target`; returns the connection and its screen number.
pub fn connect(target: &DisplayTarget) -> anyhow::Result<(RustConnection, usize)> {
    let parsed = parse_display(Some(&target.display))
        .map_err(|e| anyhow::anyhow!("display {:?}: {e}", target.display))?;
    // X over TCP listens on 6000 + n: larger numbers (which any process's DISPLAY may hold)
    // overflow x11rb's port arithmetic.
    anyhow::ensure!(
        parsed.display <= u16::MAX - 6000,
        "display {:?}: no X server can use display number {}",
        target.display,
        parsed.display
    );
    let cookie = match &target.xauthority {
        Some(path) => {
            let file = std::fs::read(path)
                .with_context(|| format!("reading the X cookie file {}", path.display()))?;
            cookie_for(&file, parsed.display, &hostname())
        }
        None => None,
    };
    let mut last = None;
    for addr in parsed.connect_instruction() {
        match DefaultStream::connect(&addr) {
            Ok((stream, _peer)) => {
                let (name, data) = match &cookie {
                    Some(c) => (b"MIT-MAGIC-COOKIE-1".to_vec(), c.clone()),
                    None => (Vec::new(), Vec::new()),
                };
                let conn = RustConnection::connect_to_stream_with_auth_info(
                    stream,
                    parsed.screen as usize,
                    name,
                    data,
                )
                .with_context(|| {
                    format!("X server of {} refused the connection", target.display)
                })?;
                return Ok((conn, parsed.screen as usize));
            }
            Err(e) => last = Some(e),
        }
    }
    let context = format!("cannot reach X display {}", target.display);
    Err(match last {
        // Kept as the io::Error, so a socket nobody listens on can be told apart.
        Some(e) => anyhow::Error::new(e).context(context),
        None => anyhow::anyhow!("{context}: no address"),
    })
}

/// Connects to the first candidate that works; the error lists what was tried and why each
/// failed, for the viewer.
pub fn open() -> anyhow::Result<(RustConnection, usize, DisplayTarget)> {
    open_first(candidates())
}

fn open_first(
    candidates: Vec<DisplayTarget>,
) -> anyhow::Result<(RustConnection, usize, DisplayTarget)> {
    let mut tried = Vec::new();
    // Sockets left behind by X servers that died (nothing listens on them): counted, not
    // listed one by one.
    let mut stale = 0;
    for target in candidates {
        match connect(&target) {
            Ok((conn, screen)) => return Ok((conn, screen, target)),
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) =>
            {
                stale += 1
            }
            Err(e) => tried.push(format!("{} ({}): {e:#}", target.display, target.source)),
        }
    }
    const LISTED: usize = 3;
    if tried.len() > LISTED {
        let more = tried.len() - LISTED;
        tried.truncate(LISTED);
        tried.push(format!(
            "{more} more displays that failed the same way or otherwise"
        ));
    }
    if stale > 0 {
        tried.push(format!(
            "{stale} X socket{} with no X server behind {}",
            if stale == 1 { "" } else { "s" },
            if stale == 1 { "it" } else { "them" }
        ));
    }
    let wayland = if wayland_seen() {
        " A Wayland session is running: ironmesh-agent captures X11 sessions only, for now."
    } else {
        " Remote desktop needs a running X11 session (someone logged in to a desktop)."
    };
    if tried.is_empty() {
        anyhow::bail!("No X display found on this device: no X server is running and no process has DISPLAY set.{wayland}");
    }
    anyhow::bail!(
        "No X display found on this device: {}.{wayland}",
        tried.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dead X servers' sockets are summed up, other failures listed (at most three): the
    /// message stays readable on a machine littered with them.
    #[test]
    fn failures_are_summed_up() {
        let target = |display: &str| DisplayTarget {
            display: display.into(),
            xauthority: None,
            source: "test".into(),
        };
        // Display numbers nobody serves: nothing listens there.
        let mut all: Vec<DisplayTarget> =
            (0..6).map(|i| target(&format!(":{}", 5_900 + i))).collect();
        all.extend((0..4).map(|_| target("not a display")));
        // A number past the last X port is refused, not overflowed.
        all.push(target(":65000"));
        let Err(err) = open_first(all) else {
            panic!("no display should have been found")
        };
        let err = format!("{err:#}");
        assert!(
            err.contains("6 X sockets with no X server behind them"),
            "{err}"
        );
        assert_eq!(err.matches("\"not a display\"").count(), 3, "{err}");
        assert!(err.contains("2 more displays"), "{err}");
        assert!(err.len() < 600, "{} characters: {err}", err.len());
    }

    fn entry(family: u16, addr: &[u8], num: &[u8], name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = family.to_be_bytes().to_vec();
        for f in [addr, num, name, data] {
            v.extend_from_slice(&(f.len() as u16).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn cookies_are_found_by_display_and_host() {
        let mut file = entry(256, b"other", b"0", b"MIT-MAGIC-COOKIE-1", b"elsewhere");
        file.extend(entry(256, b"box", b"1", b"MIT-MAGIC-COOKIE-1", b"one"));
        file.extend(entry(256, b"box", b"0", b"XDM-AUTHORIZATION-1", b"no"));
        file.extend(entry(256, b"box", b"0", b"MIT-MAGIC-COOKIE-1", b"zero"));
        assert_eq!(cookie_for(&file, 0, b"box").as_deref(), Some(&b"zero"[..]));
        assert_eq!(cookie_for(&file, 1, b"box").as_deref(), Some(&b"one"[..]));
        assert_eq!(
            cookie_for(&file, 0, b"renamed").as_deref(),
            Some(&b"elsewhere"[..]),
            "another host's entry when nothing better"
        );
        assert_eq!(cookie_for(&file, 7, b"box"), None);
        assert_eq!(cookie_for(&file[..5], 0, b"box"), None, "cut short");
    }

    #[test]
    fn servers_are_found_by_socket_and_command_line() {
        let tmp = tempfile::tempdir().unwrap();
        let sockets = tmp.path().join("x11");
        let procs = tmp.path().join("proc");
        std::fs::create_dir_all(&sockets).unwrap();
        std::fs::write(sockets.join("X3"), b"").unwrap();
        std::fs::write(sockets.join("X5"), b"").unwrap();
        std::fs::create_dir_all(procs.join("42")).unwrap();
        std::fs::write(
            procs.join("42/cmdline"),
            b"/usr/lib/xorg/Xorg\0:3\0-auth\0/run/lightdm/root/:3\0-nolisten\0tcp\0",
        )
        .unwrap();
        std::fs::create_dir_all(procs.join("43")).unwrap();
        std::fs::write(
            procs.join("43/environ"),
            b"HOME=/nowhere\0DISPLAY=:5\0XAUTHORITY=/tmp/cookie\0",
        )
        .unwrap();
        std::fs::write(
            procs.join("43/status"),
            b"Name:\tx\nUid:\t1000\t1000\t1000\t1000\n",
        )
        .unwrap();
        let got = from_server_sockets(&sockets, &procs);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].display, ":3");
        assert_eq!(
            got[0].xauthority.as_deref(),
            Some(Path::new("/run/lightdm/root/:3"))
        );
        assert_eq!(got[1].xauthority, None);
        let env = from_process_environments(&procs);
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].display, ":5");
        assert_eq!(env[0].xauthority.as_deref(), Some(Path::new("/tmp/cookie")));
    }
}
