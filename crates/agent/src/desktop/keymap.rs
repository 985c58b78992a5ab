//! What the viewer's keys mean on X: Windows virtual-key codes (the browser sends the
//! `keyCode` of a US layout, docs/protocol/desktop.md §4) and UTF-16 code units to X keysyms.
//! Pure tables; finding a keycode for a keysym is `input`'s job.

/// X keysyms used below (X11 `keysymdef.h` values).
pub mod keysym {
    pub const BACKSPACE: u32 = 0xff08;
    pub const TAB: u32 = 0xff09;
    pub const RETURN: u32 = 0xff0d;
    pub const PAUSE: u32 = 0xff13;
    pub const SCROLL_LOCK: u32 = 0xff14;
    pub const ESCAPE: u32 = 0xff1b;
    pub const HOME: u32 = 0xff50;
    pub const LEFT: u32 = 0xff51;
    pub const UP: u32 = 0xff52;
    pub const RIGHT: u32 = 0xff53;
    pub const DOWN: u32 = 0xff54;
    pub const PAGE_UP: u32 = 0xff55;
    pub const PAGE_DOWN: u32 = 0xff56;
    pub const END: u32 = 0xff57;
    pub const PRINT: u32 = 0xff61;
    pub const INSERT: u32 = 0xff63;
    pub const MENU: u32 = 0xff67;
    pub const NUM_LOCK: u32 = 0xff7f;
    pub const KP_ENTER: u32 = 0xff8d;
    pub const KP_MULTIPLY: u32 = 0xffaa;
    pub const KP_ADD: u32 = 0xffab;
    pub const KP_SUBTRACT: u32 = 0xffad;
    pub const KP_DECIMAL: u32 = 0xffae;
    pub const KP_DIVIDE: u32 = 0xffaf;
    pub const KP_0: u32 = 0xffb0;
    pub const F1: u32 = 0xffbe;
    pub const SHIFT_L: u32 = 0xffe1;
    pub const SHIFT_R: u32 = 0xffe2;
    pub const CONTROL_L: u32 = 0xffe3;
    pub const CONTROL_R: u32 = 0xffe4;
    pub const CAPS_LOCK: u32 = 0xffe5;
    pub const ALT_L: u32 = 0xffe9;
    pub const ALT_R: u32 = 0xffea;
    pub const SUPER_L: u32 = 0xffeb;
    pub const SUPER_R: u32 = 0xffec;
    pub const DELETE: u32 = 0xffff;
    /// AltGr on most European layouts.
    pub const ISO_LEVEL3_SHIFT: u32 = 0xfe03;
}

/// The keysym for a Windows virtual-key code; `extended` picks the right-hand modifier or the
/// keypad Enter, as the Windows extended-key flag does. `None` for codes with no X meaning.
pub fn vk_to_keysym(vk: u8, extended: bool) -> Option<u32> {
    use keysym::*;
    Some(match vk {
        0x08 => BACKSPACE,
        0x09 => TAB,
        0x0D if extended => KP_ENTER,
        0x0D => RETURN,
        0x10 if extended => SHIFT_R,
        0x10 | 0xA0 => SHIFT_L,
        0xA1 => SHIFT_R,
        0x11 if extended => CONTROL_R,
        0x11 | 0xA2 => CONTROL_L,
        0xA3 => CONTROL_R,
        0x12 if extended => ALT_R,
        0x12 | 0xA4 => ALT_L,
        0xA5 => ALT_R,
        0x13 => PAUSE,
        0x14 => CAPS_LOCK,
        0x1B => ESCAPE,
        0x20 => 0x20,
        0x21 => PAGE_UP,
        0x22 => PAGE_DOWN,
        0x23 => END,
        0x24 => HOME,
        0x25 => LEFT,
        0x26 => UP,
        0x27 => RIGHT,
        0x28 => DOWN,
        0x2C => PRINT,
        0x2D => INSERT,
        0x2E => DELETE,
        // Digits and letters: the unshifted symbol of the key; Shift is a key of its own.
        0x30..=0x39 => vk as u32,
        0x41..=0x5A => (vk + 0x20) as u32,
        0x5B => SUPER_L,
        0x5C => SUPER_R,
        0x5D => MENU,
        0x60..=0x69 => KP_0 + (vk - 0x60) as u32,
        0x6A => KP_MULTIPLY,
        0x6B => KP_ADD,
        0x6D => KP_SUBTRACT,
        0x6E => KP_DECIMAL,
        0x6F => KP_DIVIDE,
        0x70..=0x87 => F1 + (vk - 0x70) as u32,
        0x90 => NUM_LOCK,
        0x91 => SCROLL_LOCK,
        0xBA => b';' as u32,
        0xBB => b'=' as u32,
        0xBC => b',' as u32,
        0xBD => b'-' as u32,
        0xBE => b'.' as u32,
        0xBF => b'/' as u32,
        0xC0 => b'`' as u32,
        0xDB => b'[' as u32,
        0xDC => b'\\' as u32,
        0xDD => b']' as u32,
        0xDE => b'\'' as u32,
        // The extra key left of Z on ISO keyboards.
        0xE2 => b'<' as u32,
        // The browser's merged Ctrl+Alt (Windows' AltGr).
        0xE1 => ISO_LEVEL3_SHIFT,
        _ => return None,
    })
}

/// The keysym for a typed character (one UTF-16 code unit): Latin-1 characters are their
/// own keysyms, control characters the keys that type them, everything else
/// `0x0100_0000 + code point`. Surrogates (half a character) have none.
pub fn unicode_to_keysym(unit: u16) -> Option<u32> {
    match unit {
        0x08 => Some(keysym::BACKSPACE),
        0x09 => Some(keysym::TAB),
        0x0A | 0x0D => Some(keysym::RETURN),
        0x1B => Some(keysym::ESCAPE),
        0x7F => Some(keysym::DELETE),
        0x00..=0x1F | 0x80..=0x9F | 0xD800..=0xDFFF => None,
        0x20..=0x7E | 0xA0..=0xFF => Some(unit as u32),
        _ => Some(0x0100_0000 + unit as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_keys() {
        assert_eq!(vk_to_keysym(0x41, false), Some(b'a' as u32));
        assert_eq!(vk_to_keysym(0x5A, false), Some(b'z' as u32));
        assert_eq!(vk_to_keysym(0x37, false), Some(b'7' as u32));
        assert_eq!(vk_to_keysym(0x70, false), Some(keysym::F1));
        assert_eq!(vk_to_keysym(0x7B, false), Some(0xffc9), "F12");
        assert_eq!(vk_to_keysym(0x11, false), Some(keysym::CONTROL_L));
        assert_eq!(vk_to_keysym(0x11, true), Some(keysym::CONTROL_R));
        assert_eq!(vk_to_keysym(0x0D, true), Some(keysym::KP_ENTER));
        assert_eq!(vk_to_keysym(0xBA, false), Some(b';' as u32));
        assert_eq!(vk_to_keysym(0x07, false), None);
    }

    #[test]
    fn typed_characters() {
        assert_eq!(unicode_to_keysym('A' as u16), Some(0x41));
        assert_eq!(unicode_to_keysym('é' as u16), Some(0xe9));
        assert_eq!(unicode_to_keysym('€' as u16), Some(0x0100_20ac));
        assert_eq!(unicode_to_keysym('ж' as u16), Some(0x0100_0436));
        assert_eq!(unicode_to_keysym(0x0D), Some(keysym::RETURN));
        assert_eq!(unicode_to_keysym(0xD83D), None);
        assert_eq!(unicode_to_keysym(0x01), None);
    }
}
