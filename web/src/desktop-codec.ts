// The remote desktop's binary commands (relay protocol 2, docs/protocol/desktop.md): each
// `u16 cmd, u16 size` big-endian (the size counts the 4-byte header), then the body. They
// arrive as a byte stream (one WebSocket frame may hold several commands, or part of one);
// a command over 65,535 bytes comes wrapped in command 27. Pure: no DOM, no sockets, so the
// same code can be checked outside a browser (web/e2e/desktop-codec.mjs).

export const CMD = {
  KEY: 1,
  MOUSE: 2,
  TILE: 3,
  COMPRESSION: 5,
  REFRESH: 6,
  SCREEN_SIZE: 7,
  PAUSE: 8,
  CTRL_ALT_DEL: 10,
  DISPLAYS: 11,
  SET_DISPLAY: 12,
  TOUCH_INIT: 14,
  MESSAGE: 17,
  KEY_STATE: 18,
  JUMBO: 27,
  ALERT: 65,
  DISPLAY_LAYOUT: 82,
  KEY_UNICODE: 85,
  INPUT_LOCK: 87,
  CURSOR: 88,
} as const;

/** Mouse button bits: each button has a "down" and an "up" bit. */
export const BUTTON = {
  LEFT_DOWN: 0x02,
  LEFT_UP: 0x04,
  RIGHT_DOWN: 0x08,
  RIGHT_UP: 0x10,
  MIDDLE_DOWN: 0x20,
  MIDDLE_UP: 0x40,
  DOUBLE_CLICK: 0x88,
} as const;

/** Key actions on the wire. */
export const KEY = { DOWN: 0, UP: 1, EXTENDED_UP: 3, EXTENDED_DOWN: 4 } as const;

export const IMAGE_JPEG = 1;

/** The largest command accepted: a full 4K screen at top quality stays well under it. */
export const MAX_COMMAND = 16 * 1024 * 1024;

export class DesktopStreamError extends Error {}

/** Bytes backed by a plain ArrayBuffer (what Blob and WebSocket take). */
export type Bytes = Uint8Array<ArrayBuffer>;

export type RawCommand = { cmd: number; body: Bytes };

/** Cuts the byte stream into commands: `push` every binary frame, then take commands with
 *  `next` until it returns null. A thrown DesktopStreamError means the stream is broken. */
export class Deframer {
  private buf: Bytes = new Uint8Array(0);
  private start = 0;
  private end = 0;

  constructor(private limit = MAX_COMMAND) {}

  push(bytes: Uint8Array): void {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end + bytes.length > this.buf.length) {
      const pending = this.end - this.start;
      if (pending + bytes.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(Math.max(pending + bytes.length, this.buf.length * 2, 4096));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
      }
      this.start = 0;
      this.end = pending;
    }
    this.buf.set(bytes, this.end);
    this.end += bytes.length;
  }

  /** Bytes received and not yet returned as a command. */
  get pending(): number {
    return this.end - this.start;
  }

  next(): RawCommand | null {
    const b = this.buf;
    const at = this.start;
    const have = this.end - at;
    if (have < 4) return null;
    let cmd = (b[at] << 8) | b[at + 1];
    const size = (b[at + 2] << 8) | b[at + 3];
    let header = 4;
    let total = size;
    if (cmd === CMD.JUMBO) {
      if (size !== 8) throw new DesktopStreamError(`the wrapper command declares ${size} bytes instead of 8`);
      if (have < 12) return null;
      const inner = ((b[at + 4] << 24) >>> 0) + (b[at + 5] << 16) + (b[at + 6] << 8) + b[at + 7];
      cmd = (b[at + 8] << 8) | b[at + 9];
      if (inner < 4) throw new DesktopStreamError(`wrapped command ${cmd} declares ${inner} bytes`);
      header = 12;
      total = inner + 8;
    } else if (size < 4) {
      throw new DesktopStreamError(`command ${cmd} declares ${size} bytes, less than its header`);
    }
    if (total > this.limit) throw new DesktopStreamError(`command ${cmd} of ${total} bytes is over the limit of ${this.limit}`);
    if (have < total) return null;
    // A copy: the buffer is reused for later frames.
    const body = b.slice(at + header, at + total);
    this.start += total;
    return { cmd, body };
  }
}

/** What the agent sends, typed. */
export type FromAgent =
  | { kind: "screen"; width: number; height: number }
  | { kind: "tile"; x: number; y: number; image: Bytes }
  | { kind: "displays"; ids: number[]; selected: number }
  | { kind: "display-set" }
  | { kind: "message"; text: string }
  | { kind: "alert"; text: string }
  | { kind: "key-state"; state: number }
  | { kind: "input-lock"; locked: boolean }
  | { kind: "cursor"; index: number }
  | { kind: "touch-init" }
  | { kind: "other"; cmd: number };

const be16 = (b: Uint8Array, at: number) => (b[at] << 8) | b[at + 1];
const text = (b: Uint8Array) => new TextDecoder("utf-8", { fatal: false }).decode(b);

/** Types one command; malformed bodies of known commands throw (the stream is broken),
 *  unknown commands come back as "other" and are ignored by the viewer. */
export function decodeFromAgent(raw: RawCommand): FromAgent {
  const b = raw.body;
  const bad = (need: string) => new DesktopStreamError(`command ${raw.cmd} has a ${b.length}-byte body; it needs ${need}`);
  switch (raw.cmd) {
    case CMD.SCREEN_SIZE:
      if (b.length !== 4) throw bad("4 bytes");
      return { kind: "screen", width: be16(b, 0), height: be16(b, 2) };
    case CMD.TILE:
      if (b.length < 5) throw bad("a position and an image");
      return { kind: "tile", x: be16(b, 0), y: be16(b, 2), image: b.subarray(4) };
    case CMD.DISPLAYS: {
      if (b.length < 2) throw bad("a display count");
      const count = be16(b, 0);
      if (b.length !== 4 + count * 2) throw bad(`${4 + count * 2} bytes for ${count} displays`);
      const ids = Array.from({ length: count }, (_, i) => be16(b, 2 + i * 2));
      return { kind: "displays", ids, selected: be16(b, 2 + count * 2) };
    }
    case CMD.SET_DISPLAY:
      return { kind: "display-set" };
    case CMD.MESSAGE:
      return { kind: "message", text: text(b) };
    case CMD.ALERT:
      return { kind: "alert", text: text(b) };
    case CMD.KEY_STATE:
      if (b.length !== 1) throw bad("1 byte");
      return { kind: "key-state", state: b[0] };
    case CMD.INPUT_LOCK:
      if (b.length !== 1) throw bad("1 byte");
      return { kind: "input-lock", locked: b[0] !== 0 };
    case CMD.CURSOR:
      if (b.length !== 1) throw bad("1 byte");
      return { kind: "cursor", index: b[0] };
    case CMD.TOUCH_INIT:
      return { kind: "touch-init" };
    default:
      return { kind: "other", cmd: raw.cmd };
  }
}

/** One command with its header (all the viewer sends are short). */
function command(cmd: number, ...body: number[]): Bytes {
  const out = new Uint8Array(4 + body.length);
  out[0] = cmd >> 8;
  out[1] = cmd & 0xff;
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  out.set(body, 4);
  return out;
}

const u16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const clamp16 = (v: number) => Math.max(0, Math.min(0xffff, Math.round(v)));

/** What the viewer sends. */
export const toAgent = {
  /** A key by Windows virtual-key code; `action` from KEY. */
  key: (action: number, vk: number) => command(CMD.KEY, action, vk & 0xff),
  /** A key by UTF-16 code unit (typed text). */
  keyUnicode: (up: boolean, unit: number) => command(CMD.KEY_UNICODE, up ? 1 : 0, ...u16(unit)),
  /** Pointer move (buttons 0) or button change (BUTTON bits) at screen coordinates. */
  mouse: (buttons: number, x: number, y: number) => command(CMD.MOUSE, 0, buttons, ...u16(clamp16(x)), ...u16(clamp16(y))),
  /** Wheel at screen coordinates: positive is up/away, 120 per notch. */
  wheel: (x: number, y: number, delta: number) => {
    const d = Math.max(-32768, Math.min(32767, Math.round(delta))) & 0xffff;
    return command(CMD.MOUSE, 0, 0, ...u16(clamp16(x)), ...u16(clamp16(y)), ...u16(d));
  },
  ctrlAltDel: () => command(CMD.CTRL_ALT_DEL),
  /** Image type (1 JPEG), quality 1–100, scaling (1024 = 100 %), least ms between captures. */
  compression: (type: number, quality: number, scaling: number, frameMs: number) =>
    command(CMD.COMPRESSION, type, Math.max(1, Math.min(100, quality)), ...u16(scaling), ...u16(frameMs)),
  refresh: () => command(CMD.REFRESH),
  pause: (paused: boolean) => command(CMD.PAUSE, paused ? 1 : 0),
  /** 2 asks whether the device's local input is locked. */
  inputLock: (v: number) => command(CMD.INPUT_LOCK, v),
  getDisplays: () => command(CMD.DISPLAYS),
  setDisplay: (id: number) => command(CMD.SET_DISPLAY, ...u16(id)),
};

/** The MIME type of an encoded tile, from its first bytes (the agent may send JPEG, PNG or
 *  WebP whatever was asked). */
export function imageType(image: Uint8Array): string {
  if (image[0] === 0x89 && image[1] === 0x50) return "image/png";
  if (image[0] === 0x52 && image[1] === 0x49 && image[8] === 0x57 && image[9] === 0x45) return "image/webp";
  return "image/jpeg";
}

/** The pixel size of a JPEG or PNG tile, read from its header (as proto::desktop's
 *  `image_size`); null when it is neither or is cut short. Lets the console refuse a tile
 *  that would fall outside the screen before the browser decodes it. */
export function imageSize(image: Uint8Array): { width: number; height: number } | null {
  const be16 = (at: number) => (image[at] << 8) | image[at + 1];
  if (image[0] === 0x89 && image[1] === 0x50 && image[2] === 0x4e && image[3] === 0x47) {
    if (image.length < 24) return null;
    const be32 = (at: number) => ((image[at] << 24) | (image[at + 1] << 16) | (image[at + 2] << 8) | image[at + 3]) >>> 0;
    return { width: be32(16), height: be32(20) };
  }
  if (image[0] !== 0xff || image[1] !== 0xd8) return null;
  let at = 2;
  while (at + 4 <= image.length) {
    if (image[at] !== 0xff) return null;
    const marker = image[at + 1];
    if (marker === 0xff) {
      at += 1;
      continue;
    }
    // Start of frame: SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at + 9 > image.length) return null;
      return { width: be16(at + 7), height: be16(at + 5) };
    }
    const len = be16(at + 2);
    if (len < 2) return null;
    at += 2 + len;
  }
  return null;
}
