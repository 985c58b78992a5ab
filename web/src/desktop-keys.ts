// Keyboard input for the remote desktop: the agent takes Windows virtual-key codes for keys
// that are not text (docs/protocol/desktop.md §4), and UTF-16 code units for typed text, so
// text arrives as typed whatever the keyboard layouts of either side.

/** Windows virtual-key codes by `KeyboardEvent.code` (the physical key), for keys that do not
 *  type text or that are pressed with Ctrl/Alt/Meta. Letters, digits, numpad digits and
 *  function keys follow below by rule. */
const VK_BY_CODE: Record<string, number> = {
  Backspace: 0x08,
  Tab: 0x09,
  Enter: 0x0d,
  NumpadEnter: 0x0d,
  ShiftLeft: 0x10,
  ShiftRight: 0x10,
  ControlLeft: 0x11,
  ControlRight: 0x11,
  AltLeft: 0x12,
  AltRight: 0x12,
  Pause: 0x13,
  CapsLock: 0x14,
  Escape: 0x1b,
  Space: 0x20,
  PageUp: 0x21,
  PageDown: 0x22,
  End: 0x23,
  Home: 0x24,
  ArrowLeft: 0x25,
  ArrowUp: 0x26,
  ArrowRight: 0x27,
  ArrowDown: 0x28,
  PrintScreen: 0x2c,
  Insert: 0x2d,
  Delete: 0x2e,
  MetaLeft: 0x5b,
  OSLeft: 0x5b,
  MetaRight: 0x5c,
  OSRight: 0x5c,
  ContextMenu: 0x5d,
  NumpadMultiply: 0x6a,
  NumpadAdd: 0x6b,
  NumpadSubtract: 0x6d,
  NumpadDecimal: 0x6e,
  NumpadDivide: 0x6f,
  NumLock: 0x90,
  ScrollLock: 0x91,
  Semicolon: 0xba,
  Equal: 0xbb,
  Comma: 0xbc,
  Minus: 0xbd,
  Period: 0xbe,
  Slash: 0xbf,
  Backquote: 0xc0,
  BracketLeft: 0xdb,
  Backslash: 0xdc,
  BracketRight: 0xdd,
  Quote: 0xde,
  IntlBackslash: 0xe2,
};

export const VK = {
  BACKSPACE: 0x08,
  TAB: 0x09,
  ENTER: 0x0d,
  SHIFT: 0x10,
  CONTROL: 0x11,
  ALT: 0x12,
  ESCAPE: 0x1b,
  PRINT_SCREEN: 0x2c,
  DELETE: 0x2e,
  LEFT_WIN: 0x5b,
  RIGHT_WIN: 0x5c,
  F1: 0x70,
  F4: 0x73,
} as const;

/** The virtual-key code of a physical key, or undefined for keys the agent cannot take. */
export function virtualKey(code: string): number | undefined {
  const fixed = VK_BY_CODE[code];
  if (fixed !== undefined) return fixed;
  let m = /^Key([A-Z])$/.exec(code);
  if (m) return m[1].charCodeAt(0); // VK_A..VK_Z are the capital letters' codes
  m = /^Digit([0-9])$/.exec(code);
  if (m) return m[1].charCodeAt(0);
  m = /^Numpad([0-9])$/.exec(code);
  if (m) return 0x60 + Number(m[1]);
  m = /^F([0-9]{1,2})$/.exec(code);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= 24) return 0x70 + Number(m[1]) - 1;
  return undefined;
}

/** The text a key event types, or null when it is a command key (a named key, or a
 *  character with Ctrl, Alt or Meta held: a shortcut the remote side must see as keys).
 *  AltGr (Ctrl+Alt on Windows) types text. */
export function typedText(e: KeyboardEvent): string | null {
  if ([...e.key].length !== 1) return null;
  const altGr = e.getModifierState("AltGraph");
  if (!altGr && (e.ctrlKey || e.altKey || e.metaKey)) return null;
  return e.key;
}

/** A key combination of the special-keys menu: virtual keys pressed in order, released in
 *  reverse. */
export type Combo = { label: string; keys: number[] };

/** Keys sent with the extended-key flag from the menu (the Windows keys, which Windows
 *  only takes as extended keys). */
export function isExtended(vk: number): boolean {
  return vk === VK.LEFT_WIN || vk === VK.RIGHT_WIN;
}

export const SPECIAL_KEYS: Combo[] = [
  { label: "Windows key", keys: [VK.LEFT_WIN] },
  { label: "Alt+Tab", keys: [VK.ALT, VK.TAB] },
  { label: "Esc", keys: [VK.ESCAPE] },
  { label: "Ctrl+Esc", keys: [VK.CONTROL, VK.ESCAPE] },
  { label: "Ctrl+Shift+Esc", keys: [VK.CONTROL, VK.SHIFT, VK.ESCAPE] },
  { label: "Alt+F4", keys: [VK.ALT, VK.F4] },
  { label: "Print Screen", keys: [VK.PRINT_SCREEN] },
  { label: "Windows+L (lock)", keys: [VK.LEFT_WIN, 0x4c] },
  ...Array.from({ length: 12 }, (_, i) => ({ label: `F${i + 1}`, keys: [VK.F1 + i] })),
];
