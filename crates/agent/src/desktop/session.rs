//! One remote desktop session (relay protocol 2, docs/protocol/desktop.md).
//!
//! Three parts run side by side so that none waits for another:
//! - the **reader** cuts the viewer's byte stream into commands ([`Deframer`]), applies
//!   settings, and queues input for the injector;
//! - the **writer** owns the socket's sending half: it asks the capture thread for a frame,
//!   writes it, and only then (and no sooner than the frame interval after the previous
//!   capture) asks for the next — a slow viewer slows the captures, never fills memory;
//! - two threads own an X connection each: capture + encoding (CPU-bound, blocking) and
//!   input injection (so a key is applied the moment it arrives, not once per frame).

use std::sync::Mutex;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use ironmesh_proto::desktop::{self, Deframer, KeyAction, RawCommand, ToAgent, ToViewer};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use x11rb::rust_connection::RustConnection;

use super::capture::Capturer;
use super::change::{ChangeTracker, Frame};
use super::clipboard::{self, ClipboardRequest};
use super::display::{self, DisplayTarget};
use super::encode::{Quality, TileEncoder};
use super::input::{Injector, InputEvent};
use super::monitors::Layout;
use crate::tunnel::CTRL_CHANNEL;
use ironmesh_client::connect::Socket as AgentSocket;

/// The least and most time between two captures the viewer may ask for, in ms.
pub const FRAME_MS: std::ops::RangeInclusive<u16> = 10..=1000;
/// Frame interval until the viewer says otherwise (the browser's default).
const DEFAULT_FRAME_MS: u16 = 100;
/// Viewer commands are a few bytes; a text message is the longest. Anything near this is
/// not a viewer.
const MAX_VIEWER_COMMAND: usize = 64 * 1024;
/// Input events waiting for the injector; when full, reading from the viewer pauses.
const INPUT_QUEUE: usize = 256;
/// WebSocket messages read in one go before a held-back pointer move is applied: moves in
/// between are merged into the last one.
const READ_BURST: usize = 64;
/// Picture bytes per WebSocket message: well under the relay's 4 MiB message limit.
const MESSAGE_BYTES: usize = 1 << 20;
/// After a key, click or wheel is injected, the screen is captured this soon, whatever the
/// frame timer: the user is waiting to see what their input did, and applications answer
/// within a few milliseconds.
const ECHO_AFTER: Duration = Duration::from_millis(8);
/// ...and once more this long after that capture, for applications slower to repaint.
const ECHO_FOLLOW_UP: Duration = Duration::from_millis(40);
/// How often the monitors are read again although nothing announced a change: monitors
/// defined with `xrandr --setmonitor` come and go without any event.
const LAYOUT_RECHECK: Duration = Duration::from_secs(2);

/// What the viewer asked for, shared between the reader (who changes it) and the writer.
#[derive(Debug)]
struct View {
    /// Set once the viewer sent its settings or an unpause: pictures flow from then on.
    started: bool,
    paused: bool,
    quality: Quality,
    frame_ms: u16,
    /// The next picture must be the whole screen.
    refresh: bool,
    /// Input was injected: capture at this time, before the frame timer would.
    echo_at: Option<Instant>,
    /// The monitors, as the capture thread last read them.
    layout: Layout,
    /// The display shown (an id of `layout`); input coordinates are relative to it.
    display: u16,
}

impl View {
    /// Where the display shown starts on the screen: added to the viewer's coordinates.
    fn origin(&self) -> (u16, u16) {
        let area = self.layout.area(self.display, (0, 0));
        (area.x, area.y)
    }
}

/// The view state and a wake-up for the writer when it changes.
struct Shared {
    view: Mutex<View>,
    changed: Notify,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut View)) {
        f(&mut self.view.lock().expect("view lock"));
        self.changed.notify_one();
    }

    /// The picture's scale and the shown display's origin: what input coordinates need.
    fn mapping(&self) -> (Quality, (u16, u16)) {
        let v = self.view.lock().expect("view lock");
        (v.quality, v.origin())
    }
}

/// Why a session ended early, for the user's console.
#[derive(Debug)]
enum Ended {
    /// The viewer said `close` or went away.
    ByViewer,
    /// The viewer sent something that is not a desktop command.
    Malformed(String),
}

/// Runs a desktop session on an open relay socket; `view_only` passes pictures only.
pub async fn run(socket: &mut AgentSocket, view_only: bool) -> anyhow::Result<()> {
    let opened = tokio::task::spawn_blocking(open_display).await?;
    let (capture_conn, screen, target) = match opened {
        Ok(o) => o,
        Err(e) => {
            let text = format!("{e:#}");
            tracing::warn!(reason = %text, "desktop session without a display");
            tell(socket, &text).await;
            return Ok(());
        }
    };
    tracing::info!(display = %target.display, source = %target.source, view_only, "desktop session on X display");

    let (job_tx, job_rx) = mpsc::channel::<Job>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(1);
    std::thread::Builder::new()
        .name("desktop-capture".into())
        .spawn(move || capture_thread(capture_conn, screen, job_rx, done_tx))?;
    let (width, height, layout) = match done_rx.recv().await {
        Some(Done::Ready {
            width,
            height,
            shm,
            layout,
        }) => {
            tracing::info!(width, height, shm, monitors = ?layout, "desktop capture ready");
            (width, height, layout)
        }
        Some(Done::Failed(e)) => {
            tell(socket, &format!("Cannot capture this display: {e}")).await;
            return Ok(());
        }
        _ => anyhow::bail!("desktop capture thread ended at start"),
    };

    let input = if view_only {
        None
    } else {
        let t = target.clone();
        match tokio::task::spawn_blocking(move || open_injector(&t)).await? {
            Ok(injector) => Some(start_input_thread(injector)?),
            Err(e) => {
                let text = format!("Keyboard and mouse are not available: {e:#}");
                tracing::warn!(reason = %text, "desktop input");
                send_alert(socket, &text).await?;
                None
            }
        }
    };

    // The clipboard is control too: a view-only user neither reads nor sets it.
    let clip = if view_only {
        None
    } else {
        let t = target.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let (conn, screen) = display::connect(&t)?;
            clipboard::start(conn, screen)
        })
        .await?;
        match opened {
            Ok(tx) => Some(tx),
            Err(e) => {
                tracing::info!(error = %format!("{e:#}"), "desktop clipboard not available");
                None
            }
        }
    };

    let shared = Shared {
        view: Mutex::new(View {
            started: false,
            paused: false,
            quality: Quality::default(),
            frame_ms: DEFAULT_FRAME_MS,
            refresh: true,
            echo_at: None,
            display: layout.whole(),
            layout: layout.clone(),
        }),
        changed: Notify::new(),
    };
    // Sessions start on the whole screen, as they did before monitors were told apart;
    // with several monitors the viewer learns them at once, to offer a choice.
    let mut start = Vec::new();
    ToViewer::ScreenSize { width, height }.encode(&mut start);
    if layout.is_multi() {
        layout.announce(layout.whole(), &mut start);
    }
    socket.send(Message::Binary(start.into())).await?;

    let (out_tx, out_rx) = mpsc::channel::<Message>(32);
    let (mut sink, mut stream) = socket.split();
    let mut ignored_input = 0u64;
    let outcome = {
        let reader = read_viewer(
            &mut stream,
            &shared,
            out_tx,
            input.as_ref(),
            clip.as_ref(),
            view_only,
            &mut ignored_input,
        );
        let writer = write_frames(&mut sink, &shared, job_tx, &mut done_rx, out_rx);
        tokio::select! {
            r = reader => r,
            w = writer => w.map(|()| Ended::ByViewer),
        }
    };
    let socket = sink.reunite(stream).expect("halves of one socket");
    if ignored_input > 0 {
        tracing::info!(
            events = ignored_input,
            "view-only desktop session: input ignored"
        );
    }
    match outcome {
        Ok(Ended::ByViewer) => Ok(()),
        Ok(Ended::Malformed(why)) => {
            let text = format!("Desktop session closed: {why}");
            tracing::warn!(reason = %why, "desktop session ended on a malformed command");
            let _ = crate::tunnel::console(socket, &text, 2).await;
            Ok(())
        }
        Err(e) => {
            let _ =
                crate::tunnel::console(socket, &format!("Desktop session ended: {e:#}"), 2).await;
            Err(e)
        }
    }
}

fn open_display() -> anyhow::Result<(RustConnection, usize, DisplayTarget)> {
    display::open()
}

fn open_injector(target: &DisplayTarget) -> anyhow::Result<Injector> {
    let (conn, screen) = display::connect(target)?;
    Injector::new(conn, screen)
}

/// A message for the user: shown by the browser's desktop view (Alert) and its console
/// line (the `console` control message).
async fn tell(socket: &mut AgentSocket, text: &str) {
    let _ = send_alert(socket, text).await;
    let _ = crate::tunnel::console(socket, text, 2).await;
}

async fn send_alert(socket: &mut AgentSocket, text: &str) -> anyhow::Result<()> {
    let bytes = ToViewer::Alert(text.to_string()).to_bytes();
    socket.send(Message::Binary(bytes.into())).await?;
    Ok(())
}

/// A capture request: the whole picture or only what changed, of this display, at these
/// settings.
struct Job {
    full: bool,
    quality: Quality,
    display: u16,
}

enum Done {
    Ready {
        width: u16,
        height: u16,
        shm: bool,
        layout: Layout,
    },
    /// Commands to send (display list, screen size, tiles), possibly none when nothing
    /// changed; with the new monitor layout when it changed.
    Frame(Vec<u8>, Option<Layout>),
    Failed(String),
}

fn capture_thread(
    conn: RustConnection,
    screen: usize,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Done>,
) {
    let mut capturer = match Capturer::new(conn, screen) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.blocking_send(Done::Failed(format!("{e:#}")));
            return;
        }
    };
    let (width, height) = match capturer.size() {
        Ok(s) => s,
        Err(e) => {
            let _ = done.blocking_send(Done::Failed(format!("{e:#}")));
            return;
        }
    };
    let shm = capturer.uses_shm();
    let mut screen = (width, height);
    let mut layout = capturer.layout(screen);
    let mut layout_read = std::time::Instant::now();
    let ready = Done::Ready {
        width,
        height,
        shm,
        layout: layout.clone(),
    };
    if done.blocking_send(ready).is_err() {
        return;
    }
    let mut frame = Frame::default();
    let mut tracker = ChangeTracker::default();
    let mut encoder = TileEncoder::default();
    // The display and its size (scaled) the viewer was last told about: a switch between
    // two monitors of one size is announced too, so the viewer starts a fresh picture.
    let mut announced = (layout.whole(), (width, height));
    while let Some(job) = jobs.blocking_recv() {
        let result = (|| -> anyhow::Result<(Vec<u8>, Option<Layout>)> {
            let randr_event = capturer.poll_events()?;
            let now = capturer.size()?;
            let mut out = Vec::new();
            let mut relaid = None;
            if now != screen || randr_event || layout_read.elapsed() >= LAYOUT_RECHECK {
                screen = now;
                layout_read = std::time::Instant::now();
                let fresh = capturer.layout(screen);
                if fresh != layout {
                    tracing::info!(monitors = ?fresh, "desktop monitors changed");
                    layout = fresh;
                    relaid = Some(layout.clone());
                }
            }
            // A display that went away falls back to the whole screen.
            let display = layout.resolve(job.display);
            if relaid.is_some() {
                layout.announce(display, &mut out);
            }
            capturer.grab(&mut frame, layout.area(display, screen))?;
            let q = job.quality;
            let size = (q.scaled(frame.width), q.scaled(frame.height));
            let mut full = job.full;
            if (display, size) != announced {
                announced = (display, size);
                full = true;
                ToViewer::ScreenSize {
                    width: size.0,
                    height: size.1,
                }
                .encode(&mut out);
            }
            for rect in tracker.changes(&frame, full) {
                encoder.encode(&frame, rect, q, &mut out)?;
            }
            Ok((out, relaid))
        })();
        let reply = match result {
            Ok((bytes, relaid)) => Done::Frame(bytes, relaid),
            Err(e) => Done::Failed(format!("{e:#}")),
        };
        let failed = matches!(reply, Done::Failed(_));
        if done.blocking_send(reply).is_err() || failed {
            break;
        }
    }
}

fn start_input_thread(mut injector: Injector) -> anyhow::Result<mpsc::Sender<InputEvent>> {
    let (tx, mut rx) = mpsc::channel::<InputEvent>(INPUT_QUEUE);
    std::thread::Builder::new()
        .name("desktop-input".into())
        .spawn(move || {
            while let Some(ev) = rx.blocking_recv() {
                if let Err(e) = injector.apply(ev) {
                    tracing::warn!(error = %format!("{e:#}"), "desktop input stopped");
                    break;
                }
            }
            injector.finish();
        })?;
    Ok(tx)
}

/// The writer: frames at the viewer's pace and settings, and the control replies.
async fn write_frames<S>(
    sink: &mut S,
    shared: &Shared,
    jobs: mpsc::Sender<Job>,
    done: &mut mpsc::Receiver<Done>,
    mut out: mpsc::Receiver<Message>,
) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let mut next_at = Instant::now();
    loop {
        let (active, full, frame_ms, display, echo_at) = {
            let v = shared.view.lock().expect("view lock");
            (
                v.started && !v.paused,
                v.refresh,
                v.frame_ms,
                v.display,
                v.echo_at,
            )
        };
        let due = match (full, echo_at) {
            (true, _) => Instant::now(),
            (false, Some(echo)) => echo.min(next_at),
            (false, None) => next_at,
        };
        tokio::select! {
            m = out.recv() => match m {
                Some(m) => sink.send(m).await?,
                None => return Ok(()),
            },
            _ = shared.changed.notified() => {}
            _ = tokio::time::sleep_until(due), if active => {
                let began = Instant::now();
                let (quality, echoed) = {
                    let mut v = shared.view.lock().expect("view lock");
                    v.refresh = false;
                    let echoed = v.echo_at.is_some_and(|e| e <= began);
                    if echoed {
                        v.echo_at = None;
                    }
                    (v.quality, echoed)
                };
                jobs.send(Job { full, quality, display }).await?;
                let reply = loop {
                    tokio::select! {
                        d = done.recv() => break d,
                        m = out.recv() => match m {
                            Some(m) => sink.send(m).await?,
                            None => return Ok(()),
                        },
                    }
                };
                match reply {
                    Some(Done::Frame(bytes, relaid)) => {
                        if let Some(layout) = relaid {
                            shared.update(|v| {
                                v.display = layout.resolve(v.display);
                                v.layout = layout;
                            });
                        }
                        send_picture(sink, bytes).await?
                    }
                    Some(Done::Failed(e)) => anyhow::bail!("screen capture failed: {e}"),
                    Some(Done::Ready { .. }) | None => anyhow::bail!("screen capture stopped"),
                }
                let period = Duration::from_millis(frame_ms as u64);
                if began >= next_at {
                    // A timed capture: keep the cadence (so 33 ms gives 30 pictures a
                    // second, not one per 33 ms plus the capture's own time), but after a
                    // late one leave at least half a period.
                    next_at = (next_at + period).max(began + period / 2);
                }
                // An early capture (input, refresh) leaves the timed one where it was.
                if echoed {
                    next_at = next_at.min(began + ECHO_FOLLOW_UP);
                }
            }
        }
    }
}

/// Sends picture commands in messages of at most [`MESSAGE_BYTES`] (commands may span
/// messages: the viewer reads a byte stream).
async fn send_picture<S>(sink: &mut S, bytes: Vec<u8>) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() <= MESSAGE_BYTES {
        sink.send(Message::Binary(bytes.into())).await?;
        return Ok(());
    }
    for chunk in bytes.chunks(MESSAGE_BYTES) {
        sink.feed(Message::Binary(chunk.to_vec().into())).await?;
    }
    sink.flush().await?;
    Ok(())
}

/// The reader: settings, input and control messages from the viewer.
async fn read_viewer<S>(
    stream: &mut S,
    shared: &Shared,
    out: mpsc::Sender<Message>,
    input: Option<&mpsc::Sender<InputEvent>>,
    clip: Option<&std::sync::mpsc::Sender<ClipboardRequest>>,
    view_only: bool,
    ignored: &mut u64,
) -> anyhow::Result<Ended>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut deframer = Deframer::new(MAX_VIEWER_COMMAND);
    // A pointer move held back until the burst of messages ends (see READ_BURST).
    let mut pending_move: Option<InputEvent> = None;
    loop {
        let first = stream.next().await;
        let mut next = first;
        let mut burst = 0;
        loop {
            let msg = match next {
                None => return Ok(Ended::ByViewer),
                Some(m) => m?,
            };
            match msg {
                Message::Binary(data) => {
                    deframer.push(&data);
                    loop {
                        let raw = match deframer.next_command() {
                            Ok(Some(raw)) => raw,
                            Ok(None) => break,
                            Err(e) => return Ok(Ended::Malformed(e.to_string())),
                        };
                        let cmd = match decode(&raw) {
                            Ok(Some(cmd)) => cmd,
                            Ok(None) => continue,
                            Err(e) => return Ok(Ended::Malformed(e.to_string())),
                        };
                        if cmd.is_input() {
                            if view_only {
                                *ignored += 1;
                                tracing::debug!(?cmd, "view-only session: input ignored");
                                continue;
                            }
                            let Some(tx) = input else { continue };
                            let (q, origin) = shared.mapping();
                            let Some(ev) = to_input(&cmd, q, origin) else {
                                continue;
                            };
                            if matches!(ev, InputEvent::Move { .. }) {
                                pending_move = Some(ev);
                                continue;
                            }
                            if let Some(m) = pending_move.take() {
                                tx.send(m).await?;
                            }
                            tx.send(ev).await?;
                            // Show its effect soon (moves alone do not change the picture:
                            // the cursor is the viewer's own).
                            shared.update(|v| {
                                v.echo_at.get_or_insert(Instant::now() + ECHO_AFTER);
                            });
                        } else if let Some(reply) = apply(&cmd, shared) {
                            out.send(Message::Binary(reply.into())).await?;
                        }
                    }
                }
                Message::Text(text) if control(text.as_str(), &out, clip).await? => {
                    return Ok(Ended::ByViewer);
                }
                Message::Close(_) => return Ok(Ended::ByViewer),
                _ => {}
            }
            burst += 1;
            if burst >= READ_BURST {
                break;
            }
            // Take whatever else has already arrived before applying a held-back move.
            match stream.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        if let (Some(m), Some(tx)) = (pending_move.take(), input) {
            tx.send(m).await?;
        }
    }
}

/// Decodes a viewer command; `Ok(None)` for commands the browser sends that have no
/// meaning here (its own log messages, touch events).
fn decode(raw: &RawCommand) -> Result<Option<ToAgent>, desktop::DesktopError> {
    const VIEWER_MESSAGE: u16 = desktop::cmd::MESSAGE;
    const TOUCH: u16 = 15;
    if raw.cmd == VIEWER_MESSAGE || raw.cmd == TOUCH {
        return Ok(None);
    }
    ToAgent::decode(raw).map(Some)
}

/// Settings and queries; returns bytes to send back, if any.
fn apply(cmd: &ToAgent, shared: &Shared) -> Option<Vec<u8>> {
    match *cmd {
        ToAgent::Compression {
            image,
            quality,
            scaling,
            frame_ms,
        } => {
            if image != desktop::image_type::JPEG {
                tracing::debug!(image, "only JPEG tiles are sent");
            }
            shared.update(|v| {
                v.started = true;
                v.quality = Quality::new(quality, scaling);
                v.frame_ms = if frame_ms == 0 {
                    DEFAULT_FRAME_MS
                } else {
                    frame_ms.clamp(*FRAME_MS.start(), *FRAME_MS.end())
                };
            });
            None
        }
        ToAgent::Refresh => {
            shared.update(|v| v.refresh = true);
            None
        }
        ToAgent::Pause(paused) => {
            shared.update(|v| {
                v.paused = paused;
                v.started |= !paused;
            });
            None
        }
        ToAgent::GetDisplays => {
            let v = shared.view.lock().expect("view lock");
            let mut out = Vec::new();
            v.layout.announce(v.display, &mut out);
            Some(out)
        }
        ToAgent::SetDisplay(id) => {
            // An id the layout does not know keeps the display shown; either way the
            // viewer gets its acknowledgement and a whole picture.
            let mut out = Vec::new();
            ToViewer::DisplaySet.encode(&mut out);
            shared.update(|v| {
                v.refresh = true;
                if v.layout.knows(id) {
                    v.display = id;
                    // The list again, so a viewer's display picker shows the new choice.
                    if v.layout.is_multi() {
                        v.layout.announce(id, &mut out);
                    }
                } else {
                    tracing::debug!(id, "no such display; the current one stays");
                }
            });
            Some(out)
        }
        // One X screen: never locked by the agent.
        ToAgent::InputLock(_) => Some(ToViewer::InputLock(false).to_bytes()),
        _ => None,
    }
}

/// An input command as an injector event, with viewer coordinates mapped back to the
/// screen: unscaled when the picture is scaled, then offset by the shown display's
/// `origin` (the viewer's picture of one monitor starts at its own 0,0).
fn to_input(cmd: &ToAgent, q: Quality, origin: (u16, u16)) -> Option<InputEvent> {
    let x = |v: u16| q.unscaled(v).saturating_add(origin.0);
    let y = |v: u16| q.unscaled(v).saturating_add(origin.1);
    Some(match *cmd {
        ToAgent::Key { action, code } => InputEvent::Key {
            vk: code,
            down: action.is_down(),
            extended: matches!(action, KeyAction::ExtendedDown | KeyAction::ExtendedUp),
        },
        ToAgent::KeyUnicode { up, unit } => InputEvent::Unicode { unit, down: !up },
        ToAgent::Mouse {
            buttons: 0,
            x: vx,
            y: vy,
        } => InputEvent::Move { x: x(vx), y: y(vy) },
        ToAgent::Mouse {
            buttons,
            x: vx,
            y: vy,
        } => InputEvent::Buttons {
            bits: buttons,
            x: x(vx),
            y: y(vy),
        },
        ToAgent::Wheel {
            x: vx,
            y: vy,
            delta,
        } => InputEvent::Wheel {
            x: x(vx),
            y: y(vy),
            delta,
        },
        ToAgent::CtrlAltDel => InputEvent::CtrlAltDel,
        _ => return None,
    })
}

/// A text control message; true when the viewer closes the session.
async fn control(
    text: &str,
    out: &mpsc::Sender<Message>,
    clip: Option<&std::sync::mpsc::Sender<ClipboardRequest>>,
) -> anyhow::Result<bool> {
    let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
        return Ok(false);
    };
    match msg.get("type").and_then(Value::as_str) {
        Some("close") => return Ok(true),
        Some("ping") => {
            let pong = json!({"ctrlChannel": CTRL_CHANNEL, "type": "pong"});
            out.send(Message::Text(pong.to_string().into())).await?;
        }
        Some("clipboard") => {
            let data = msg.get("data").and_then(Value::as_str).unwrap_or("");
            match clip {
                Some(_) if data.len() > clipboard::MAX_TEXT => {
                    tracing::info!(bytes = data.len(), "clipboard text too long; not set");
                }
                Some(c) => {
                    let _ = c.send(ClipboardRequest::Set(data.to_string()));
                }
                None => {}
            }
        }
        Some("getclipboard") => {
            if let Some(c) = clip {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if c.send(ClipboardRequest::Get(tx)).is_ok() {
                    // Answered when the clipboard's owner has answered, without holding up
                    // the viewer's input meanwhile.
                    let out = out.clone();
                    tokio::spawn(async move {
                        match rx.await {
                            Ok(Ok(data)) => {
                                let msg = json!({"ctrlChannel": CTRL_CHANNEL, "type": "clipboard", "data": data});
                                let _ = out.send(Message::Text(msg.to_string().into())).await;
                            }
                            Ok(Err(e)) => {
                                tracing::info!(error = %format!("{e:#}"), "reading the clipboard failed")
                            }
                            Err(_) => {}
                        }
                    });
                }
            }
        }
        // The browser measures its round trip by having this echoed.
        Some("rtt") => {
            out.send(Message::Text(text.to_string().into())).await?;
        }
        _ => {}
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            view: Mutex::new(View {
                started: false,
                paused: false,
                quality: Quality::default(),
                frame_ms: DEFAULT_FRAME_MS,
                refresh: false,
                echo_at: None,
                layout: Layout::single(),
                display: 0,
            }),
            changed: Notify::new(),
        }
    }

    #[test]
    fn settings_start_pictures_and_are_clamped() {
        let s = shared();
        let settings = |frame_ms| ToAgent::Compression {
            image: 1,
            quality: 0,
            scaling: 512,
            frame_ms,
        };
        assert_eq!(apply(&settings(1), &s), None);
        {
            let v = s.view.lock().unwrap();
            assert!(v.started);
            assert_eq!(v.frame_ms, 10);
            assert_eq!(v.quality, Quality::new(1, 512));
        }
        apply(&settings(60_000), &s);
        assert_eq!(s.view.lock().unwrap().frame_ms, 1000);
        apply(&ToAgent::Pause(true), &s);
        assert!(s.view.lock().unwrap().paused);
        assert!(apply(&ToAgent::GetDisplays, &s).is_some());
    }

    /// Decodes what `apply` answered.
    fn replies(bytes: Option<Vec<u8>>) -> Vec<ToViewer> {
        let mut d = Deframer::default();
        d.push(&bytes.unwrap_or_default());
        let mut got = Vec::new();
        while let Some(raw) = d.next_command().unwrap() {
            got.push(ToViewer::decode(&raw).unwrap());
        }
        got
    }

    #[test]
    fn displays_are_listed_and_switched() {
        use super::super::monitors::ALL;
        let s = shared();
        // One display: the list and the answers of before.
        assert_eq!(
            replies(apply(&ToAgent::GetDisplays, &s)),
            [ToViewer::Displays {
                ids: vec![0],
                selected: 0
            }]
        );
        assert_eq!(
            replies(apply(&ToAgent::SetDisplay(ALL), &s)),
            [ToViewer::DisplaySet]
        );
        assert_eq!(s.view.lock().unwrap().display, 0);

        // Two monitors side by side.
        s.update(|v| {
            v.layout =
                Layout::from_monitors([(0, 0, 1024, 768), (1024, 0, 1024, 768)], (2048, 768));
            v.display = ALL;
            v.refresh = false;
        });
        let got = replies(apply(&ToAgent::GetDisplays, &s));
        assert_eq!(
            got[0],
            ToViewer::Displays {
                ids: vec![1, 2, ALL],
                selected: ALL
            }
        );
        assert!(matches!(&got[1], ToViewer::DisplayLayout(r) if r.len() == 2));
        let got = replies(apply(&ToAgent::SetDisplay(2), &s));
        assert_eq!(got[0], ToViewer::DisplaySet);
        assert_eq!(
            got[1],
            ToViewer::Displays {
                ids: vec![1, 2, ALL],
                selected: 2
            }
        );
        {
            let v = s.view.lock().unwrap();
            assert_eq!((v.display, v.refresh, v.origin()), (2, true, (1024, 0)));
        }
        // Unknown: acknowledged, nothing else changes.
        assert_eq!(
            replies(apply(&ToAgent::SetDisplay(7), &s)),
            [ToViewer::DisplaySet]
        );
        assert_eq!(s.view.lock().unwrap().display, 2);
    }

    #[test]
    fn viewer_coordinates_follow_the_scale() {
        let half = Quality::new(50, 512);
        let click = ToAgent::Mouse {
            buttons: 2,
            x: 100,
            y: 50,
        };
        assert_eq!(
            to_input(&click, half, (0, 0)),
            Some(InputEvent::Buttons {
                bits: 2,
                x: 200,
                y: 100
            })
        );
        // On a monitor at x 1024, after unscaling.
        assert_eq!(
            to_input(&click, half, (1024, 0)),
            Some(InputEvent::Buttons {
                bits: 2,
                x: 1224,
                y: 100
            })
        );
        assert_eq!(to_input(&ToAgent::Refresh, half, (0, 0)), None);
    }

    #[test]
    fn browser_chatter_is_not_an_error_but_garbage_is() {
        let raw = |cmd, body: &[u8]| RawCommand {
            cmd,
            body: body.to_vec(),
        };
        assert_eq!(decode(&raw(17, b"hello")), Ok(None), "browser log line");
        assert_eq!(decode(&raw(15, &[1, 2, 3])), Ok(None), "touch");
        assert!(decode(&raw(99, &[])).is_err());
        assert!(decode(&raw(1, &[0])).is_err());
    }

    /// Runs the reader over `frames` as a viewer would send them; returns how it ended,
    /// the input events it passed on and the count of input it ignored.
    async fn read(frames: Vec<Vec<u8>>, view_only: bool) -> (Ended, Vec<InputEvent>, u64) {
        let mut stream = futures_util::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok(Message::Binary(f.into())))
                .collect::<Vec<_>>(),
        );
        let (out_tx, _out_rx) = mpsc::channel(32);
        let (input_tx, mut input_rx) = mpsc::channel(64);
        let mut ignored = 0;
        let s = shared();
        let ended = read_viewer(
            &mut stream,
            &s,
            out_tx,
            Some(&input_tx),
            None,
            view_only,
            &mut ignored,
        )
        .await
        .unwrap();
        drop(input_tx);
        let mut events = Vec::new();
        while let Some(e) = input_rx.recv().await {
            events.push(e);
        }
        (ended, events, ignored)
    }

    /// The agent holds a view-only session to pictures by itself, whatever the server
    /// passed on: no keyboard, mouse, wheel or Ctrl-Alt-Del reaches the input thread.
    #[tokio::test]
    async fn view_only_sessions_pass_no_input() {
        let input = [
            ToAgent::Key {
                action: ironmesh_proto::desktop::KeyAction::Down,
                code: 65,
            },
            ToAgent::KeyUnicode {
                up: false,
                unit: 0x41,
            },
            ToAgent::Mouse {
                buttons: 2,
                x: 5,
                y: 5,
            },
            ToAgent::Wheel {
                x: 5,
                y: 5,
                delta: 120,
            },
            ToAgent::CtrlAltDel,
        ];
        let frames: Vec<Vec<u8>> = input
            .iter()
            .chain([&ToAgent::Refresh])
            .map(ToAgent::to_bytes)
            .collect();
        let (ended, events, ignored) = read(frames.clone(), true).await;
        assert!(matches!(ended, Ended::ByViewer));
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(ignored, 5);
        // The same frames with control do reach the input thread.
        let (_, events, ignored) = read(frames, false).await;
        assert!(events.len() >= 4, "{events:?}");
        assert_eq!(ignored, 0);
    }
}
