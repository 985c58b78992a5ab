//! Keyboard and mouse from the viewer, injected with XTEST as if typed on the device.
//!
//! Input is applied as it arrives, on its own X connection and thread, never waiting for a
//! capture: a key reaches the X server within a millisecond or two of arriving, where
//! waiting for the next capture cycle would add up to the frame interval.
//!
//! A keysym with no key on the current layout (an `é` on a US layout, any `ж`) is typed
//! by binding it for a moment to one of the keycodes the layout leaves empty, as xdotool
//! does; those keycodes are emptied again when the session ends.

use std::collections::HashMap;

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, Keycode, Mapping, Window};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::keymap::{keysym, unicode_to_keysym, vk_to_keysym};

/// One thing to do on the device, with coordinates already on the real screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    Key {
        vk: u8,
        down: bool,
        extended: bool,
    },
    /// A typed character: pressed and released at `down`, nothing at release (the
    /// Shift it may need is pressed and released around it).
    Unicode {
        unit: u16,
        down: bool,
    },
    Move {
        x: u16,
        y: u16,
    },
    /// Button bits of `ironmesh_proto::desktop::buttons` at a position.
    Buttons {
        bits: u8,
        x: u16,
        y: u16,
    },
    Wheel {
        x: u16,
        y: u16,
        delta: i16,
    },
    CtrlAltDel,
}

// XTEST event types (core protocol event codes).
const KEY_PRESS: u8 = 2;
const KEY_RELEASE: u8 = 3;
const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION_NOTIFY: u8 = 6;

/// How many empty keycodes are used in turn for unmapped keysyms: a client reads the
/// mapping when it handles the key, a little later, so the last few bindings are kept.
const SPARES: usize = 8;

/// Injects input into one X display.
pub struct Injector {
    conn: RustConnection,
    root: Window,
    min_keycode: u8,
    per_keycode: usize,
    /// keysyms of each keycode from `min_keycode`, `per_keycode` columns each.
    mapping: Vec<u32>,
    /// Empty keycodes this session may bind, and what each is bound to now.
    spares: Vec<(Keycode, u32)>,
    next_spare: usize,
    /// Keys held down by the viewer (virtual key → keycode pressed), to release the same
    /// keycode and to release everything when the session ends.
    held_keys: HashMap<u8, Keycode>,
    held_buttons: Vec<u8>,
}

impl Injector {
    pub fn new(conn: RustConnection, screen: usize) -> anyhow::Result<Injector> {
        conn.xtest_get_version(2, 2)?
            .reply()
            .context("the X server has no XTEST extension, needed for keyboard and mouse")?;
        let setup = conn.setup();
        let root = setup
            .roots
            .get(screen)
            .with_context(|| format!("the X server has no screen {screen}"))?
            .root;
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let mut injector = Injector {
            conn,
            root,
            min_keycode: min,
            per_keycode: 0,
            mapping: Vec::new(),
            spares: Vec::new(),
            next_spare: 0,
            held_keys: HashMap::new(),
            held_buttons: Vec::new(),
        };
        injector.load_mapping(max)?;
        injector.spares = (min..=max)
            .rev()
            .filter(|kc| injector.keysyms_of(*kc).iter().all(|k| *k == 0))
            .take(SPARES)
            .map(|kc| (kc, 0))
            .collect();
        Ok(injector)
    }

    fn load_mapping(&mut self, max: u8) -> anyhow::Result<()> {
        let count = max - self.min_keycode + 1;
        let reply = self
            .conn
            .get_keyboard_mapping(self.min_keycode, count)?
            .reply()
            .context("reading the keyboard mapping")?;
        self.per_keycode = reply.keysyms_per_keycode as usize;
        self.mapping = reply.keysyms;
        Ok(())
    }

    fn keysyms_of(&self, kc: Keycode) -> &[u32] {
        let at = (kc - self.min_keycode) as usize * self.per_keycode;
        self.mapping.get(at..at + self.per_keycode).unwrap_or(&[])
    }

    /// The keycode producing `sym` and its column (0 plain, 1 with Shift); lowest column
    /// first.
    fn find(&self, sym: u32) -> Option<(Keycode, usize)> {
        if self.per_keycode == 0 {
            return None;
        }
        (0..self.per_keycode).find_map(|col| {
            self.mapping
                .chunks(self.per_keycode)
                .position(|syms| syms[col] == sym)
                .map(|i| (self.min_keycode + i as u8, col))
        })
    }

    /// Binds `sym` to a spare keycode (reusing a binding already made).
    fn bind_spare(&mut self, sym: u32) -> anyhow::Result<Keycode> {
        if let Some((kc, _)) = self.spares.iter().find(|(_, s)| *s == sym) {
            return Ok(*kc);
        }
        anyhow::ensure!(
            !self.spares.is_empty(),
            "no free keycode to type keysym {sym:#x}"
        );
        let i = self.next_spare % self.spares.len();
        self.next_spare += 1;
        let kc = self.spares[i].0;
        self.remap(kc, sym)?;
        self.spares[i].1 = sym;
        Ok(kc)
    }

    fn remap(&mut self, kc: Keycode, sym: u32) -> anyhow::Result<()> {
        // Same keysym with and without Shift: the character does not depend on modifiers.
        let mut syms = vec![0u32; self.per_keycode.max(2)];
        if sym != 0 {
            syms[0] = sym;
            syms[1] = sym;
        }
        self.conn
            .change_keyboard_mapping(1, kc, syms.len() as u8, &syms)?
            .check()
            .context("binding a keysym to a spare keycode")?;
        let at = (kc - self.min_keycode) as usize * self.per_keycode;
        if let Some(slot) = self.mapping.get_mut(at..at + self.per_keycode) {
            slot.copy_from_slice(&syms[..self.per_keycode]);
        }
        Ok(())
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> anyhow::Result<()> {
        self.conn
            .xtest_fake_input(kind, detail, 0, self.root, x, y, 0)?;
        Ok(())
    }

    fn key(&self, kc: Keycode, down: bool) -> anyhow::Result<()> {
        self.fake(if down { KEY_PRESS } else { KEY_RELEASE }, kc, 0, 0)
    }

    fn keycode_for(&mut self, sym: u32) -> anyhow::Result<Keycode> {
        match self.find(sym) {
            Some((kc, _)) => Ok(kc),
            None => self.bind_spare(sym),
        }
    }

    fn shift_held(&self) -> bool {
        self.held_keys.contains_key(&0x10)
            || self.held_keys.contains_key(&0xA0)
            || self.held_keys.contains_key(&0xA1)
    }

    fn move_to(&self, x: u16, y: u16) -> anyhow::Result<()> {
        self.fake(MOTION_NOTIFY, 0, clamp_i16(x), clamp_i16(y))
    }

    fn button(&mut self, button: u8, down: bool) -> anyhow::Result<()> {
        if down {
            if !self.held_buttons.contains(&button) {
                self.held_buttons.push(button);
            }
        } else {
            self.held_buttons.retain(|b| *b != button);
        }
        self.fake(
            if down { BUTTON_PRESS } else { BUTTON_RELEASE },
            button,
            0,
            0,
        )
    }

    /// Applies one event and sends it to the server at once.
    pub fn apply(&mut self, ev: InputEvent) -> anyhow::Result<()> {
        match ev {
            InputEvent::Key { vk, down, extended } => {
                if down {
                    let Some(sym) = vk_to_keysym(vk, extended) else {
                        tracing::debug!(vk, "virtual key with no X equivalent ignored");
                        return Ok(());
                    };
                    let kc = self.keycode_for(sym)?;
                    self.held_keys.insert(vk, kc);
                    self.key(kc, true)?;
                } else if let Some(kc) = self.held_keys.remove(&vk) {
                    // Only keys pressed here are released: the browser releases every
                    // modifier after a screen size change, pressed or not.
                    self.key(kc, false)?;
                }
            }
            InputEvent::Unicode { unit, down } => {
                if !down {
                    return Ok(());
                }
                let Some(sym) = unicode_to_keysym(unit) else {
                    return Ok(());
                };
                let (kc, col) = match self.find(sym) {
                    Some((kc, col)) if col < 2 => (kc, col),
                    _ => (self.bind_spare(sym)?, 0),
                };
                let shift = match (col, self.shift_held()) {
                    (1, false) => Some(self.keycode_for(keysym::SHIFT_L)?),
                    _ => None,
                };
                if let Some(s) = shift {
                    self.key(s, true)?;
                }
                self.key(kc, true)?;
                self.key(kc, false)?;
                if let Some(s) = shift {
                    self.key(s, false)?;
                }
            }
            InputEvent::Move { x, y } => self.move_to(x, y)?,
            InputEvent::Buttons { bits, x, y } => {
                use ironmesh_proto::desktop::buttons::*;
                self.move_to(x, y)?;
                // A double click arrives after the two clicks that make it; X programs see
                // those as a double click already, so it is only a position here.
                if bits != DOUBLE_CLICK {
                    for (bit, button, down) in [
                        (LEFT_DOWN, 1, true),
                        (LEFT_UP, 1, false),
                        (MIDDLE_DOWN, 2, true),
                        (MIDDLE_UP, 2, false),
                        (RIGHT_DOWN, 3, true),
                        (RIGHT_UP, 3, false),
                    ] {
                        if bits & bit != 0 {
                            self.button(button, down)?;
                        }
                    }
                }
            }
            InputEvent::Wheel { x, y, delta } => {
                self.move_to(x, y)?;
                // X has no wheel: buttons 4 (up) and 5 (down), one click per notch of 120.
                let button = if delta > 0 { 4 } else { 5 };
                let notches = (delta.unsigned_abs() / 120).clamp(1, 10);
                if delta != 0 {
                    for _ in 0..notches {
                        self.fake(BUTTON_PRESS, button, 0, 0)?;
                        self.fake(BUTTON_RELEASE, button, 0, 0)?;
                    }
                }
            }
            InputEvent::CtrlAltDel => {
                let keys = [keysym::CONTROL_L, keysym::ALT_L, keysym::DELETE]
                    .into_iter()
                    .map(|s| self.keycode_for(s))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                for kc in &keys {
                    self.key(*kc, true)?;
                }
                for kc in keys.iter().rev() {
                    self.key(*kc, false)?;
                }
            }
        }
        self.conn.flush()?;
        self.drain_events()
    }

    /// Reads the events the server sends every client (keyboard mapping changes) so they do
    /// not pile up in memory, and reloads the mapping when someone else changed it.
    fn drain_events(&mut self) -> anyhow::Result<()> {
        let mut reload = false;
        while let Some(ev) = self.conn.poll_for_event()? {
            if let Event::MappingNotify(m) = ev {
                reload |= m.request == Mapping::KEYBOARD;
            }
        }
        if reload {
            let max = self.conn.setup().max_keycode;
            self.load_mapping(max)?;
            // Our own bindings are in the new mapping too; others' changes win.
            for (kc, sym) in &mut self.spares {
                let at = (*kc - self.min_keycode) as usize * self.per_keycode;
                if self.mapping.get(at) != Some(sym) {
                    *sym = self.mapping.get(at).copied().unwrap_or(0);
                }
            }
        }
        Ok(())
    }

    /// Releases whatever the viewer left pressed and empties the keycodes bound here: a
    /// viewer that vanishes mid-drag must not leave a button or Ctrl held on the device.
    pub fn finish(&mut self) {
        let keys: Vec<Keycode> = self.held_keys.drain().map(|(_, kc)| kc).collect();
        for kc in keys {
            let _ = self.key(kc, false);
        }
        for b in std::mem::take(&mut self.held_buttons) {
            let _ = self.fake(BUTTON_RELEASE, b, 0, 0);
        }
        let bound: Vec<Keycode> = self
            .spares
            .iter()
            .filter(|(_, s)| *s != 0)
            .map(|(kc, _)| *kc)
            .collect();
        for kc in bound {
            let _ = self.remap(kc, 0);
        }
        let _ = self.conn.flush();
    }
}

fn clamp_i16(v: u16) -> i16 {
    v.min(i16::MAX as u16) as i16
}
