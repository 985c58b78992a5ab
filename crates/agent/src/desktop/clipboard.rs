//! The X clipboard (the `CLIPBOARD` selection) for the viewer's `clipboard` and
//! `getclipboard` control messages.
//!
//! X has no clipboard storage: the program that owns the selection hands its text to each
//! program that asks. So setting the clipboard from the viewer makes this session own the
//! selection, from a small invisible window on its own connection and thread, and answer
//! requests until another program takes ownership or the session ends (then the text is
//! gone, as when any X program that copied something exits, unless a clipboard manager
//! kept a copy). Reading asks the current owner to convert the selection to UTF-8 text.
//! Transfers in pieces (INCR, for texts over ~256 KiB) are not done: such a text is
//! refused rather than cut.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, SelectionNotifyEvent,
    SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::CURRENT_TIME;

/// The longest clipboard text passed either way.
pub const MAX_TEXT: usize = 256 * 1024;
/// How long the owner of the selection has to answer.
const ANSWER_TIME: Duration = Duration::from_secs(2);
/// How often the thread looks at the X connection while waiting for a request.
const TICK: Duration = Duration::from_millis(50);

pub enum ClipboardRequest {
    Set(String),
    /// The text now on the clipboard, sent back on the channel given.
    Get(tokio::sync::oneshot::Sender<anyhow::Result<String>>),
}

struct Atoms {
    clipboard: Atom,
    utf8: Atom,
    targets: Atom,
    property: Atom,
}

struct Clipboard {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
    /// The text this session put on the clipboard, while it owns the selection.
    owned: Option<String>,
}

/// Starts the clipboard thread on its own connection; requests go in through the sender.
pub fn start(
    conn: RustConnection,
    screen: usize,
) -> anyhow::Result<std_mpsc::Sender<ClipboardRequest>> {
    let root = conn
        .setup()
        .roots
        .get(screen)
        .with_context(|| format!("the X server has no screen {screen}"))?
        .root;
    let window = conn.generate_id()?;
    conn.create_window(
        0,
        window,
        root,
        -1,
        -1,
        1,
        1,
        0,
        WindowClass::INPUT_ONLY,
        0,
        &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )?
    .check()
    .context("creating the clipboard window")?;
    let intern =
        |name: &[u8]| -> anyhow::Result<Atom> { Ok(conn.intern_atom(false, name)?.reply()?.atom) };
    let atoms = Atoms {
        clipboard: intern(b"CLIPBOARD")?,
        utf8: intern(b"UTF8_STRING")?,
        targets: intern(b"TARGETS")?,
        property: intern(b"IRONMESH_CLIPBOARD")?,
    };
    let mut clipboard = Clipboard {
        conn,
        window,
        atoms,
        owned: None,
    };
    let (tx, rx) = std_mpsc::channel();
    std::thread::Builder::new()
        .name("desktop-clipboard".into())
        .spawn(move || clipboard.run(rx))?;
    Ok(tx)
}

impl Clipboard {
    fn run(&mut self, requests: std_mpsc::Receiver<ClipboardRequest>) {
        loop {
            if let Err(e) = self.serve_events() {
                tracing::warn!(error = %format!("{e:#}"), "desktop clipboard stopped");
                return;
            }
            match requests.recv_timeout(TICK) {
                Ok(ClipboardRequest::Set(text)) => {
                    if let Err(e) = self.set(text) {
                        tracing::info!(error = %format!("{e:#}"), "setting the clipboard failed");
                    }
                }
                Ok(ClipboardRequest::Get(reply)) => {
                    let _ = reply.send(self.get());
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn set(&mut self, text: String) -> anyhow::Result<()> {
        self.conn
            .set_selection_owner(self.window, self.atoms.clipboard, CURRENT_TIME)?;
        let owner = self
            .conn
            .get_selection_owner(self.atoms.clipboard)?
            .reply()?
            .owner;
        anyhow::ensure!(owner == self.window, "another program kept the clipboard");
        self.owned = Some(text);
        Ok(())
    }

    fn get(&mut self) -> anyhow::Result<String> {
        if let Some(text) = &self.owned {
            return Ok(text.clone());
        }
        self.conn.convert_selection(
            self.window,
            self.atoms.clipboard,
            self.atoms.utf8,
            self.atoms.property,
            CURRENT_TIME,
        )?;
        self.conn.flush()?;
        let until = Instant::now() + ANSWER_TIME;
        let notify = loop {
            match self.conn.poll_for_event()? {
                Some(Event::SelectionNotify(n)) if n.requestor == self.window => break n,
                Some(other) => self.handle(other)?,
                None if Instant::now() >= until => {
                    anyhow::bail!("the clipboard's owner did not answer")
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        if notify.property == u32::from(AtomEnum::NONE) {
            return Ok(String::new());
        }
        let reply = self
            .conn
            .get_property(
                true,
                self.window,
                self.atoms.property,
                AtomEnum::ANY,
                0,
                (MAX_TEXT / 4) as u32,
            )?
            .reply()
            .context("reading the clipboard")?;
        anyhow::ensure!(
            reply.bytes_after == 0,
            "the clipboard holds more than {MAX_TEXT} bytes"
        );
        Ok(String::from_utf8_lossy(&reply.value).into_owned())
    }

    fn serve_events(&mut self) -> anyhow::Result<()> {
        while let Some(ev) = self.conn.poll_for_event()? {
            self.handle(ev)?;
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) -> anyhow::Result<()> {
        match ev {
            Event::SelectionClear(c) if c.selection == self.atoms.clipboard => {
                self.owned = None;
            }
            Event::SelectionRequest(r) => self.answer(r)?,
            _ => {}
        }
        Ok(())
    }

    /// Gives our text to a program that asked for it (ICCCM §2.2).
    fn answer(&mut self, r: SelectionRequestEvent) -> anyhow::Result<()> {
        // Old clients name no property: the target is the property then.
        let property = if r.property == u32::from(AtomEnum::NONE) {
            r.target
        } else {
            r.property
        };
        let given = match &self.owned {
            Some(text) if r.selection == self.atoms.clipboard => {
                if r.target == self.atoms.targets {
                    let targets = [self.atoms.targets, self.atoms.utf8, AtomEnum::STRING.into()];
                    self.conn.change_property32(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        AtomEnum::ATOM,
                        &targets,
                    )?;
                    true
                } else if r.target == self.atoms.utf8 || r.target == u32::from(AtomEnum::STRING) {
                    self.conn.change_property8(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        r.target,
                        text.as_bytes(),
                    )?;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        let notify = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: r.time,
            requestor: r.requestor,
            selection: r.selection,
            target: r.target,
            property: if given {
                property
            } else {
                AtomEnum::NONE.into()
            },
        };
        self.conn
            .send_event(false, r.requestor, EventMask::NO_EVENT, notify)?;
        self.conn.flush()?;
        Ok(())
    }
}
