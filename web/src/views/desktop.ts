// Remote desktop over the relay (protocol 2, docs/protocol/desktop.md): the agent's screen
// drawn tile by tile on a canvas; keyboard, mouse, wheel and touch sent back (unless view
// only); picture settings, displays, clipboard, full screen, and reconnection after a brief
// loss of the network. Text the device sends (alerts, clipboard) only ever becomes text nodes.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { dialog, formatBytes, h, notice, replace, toast } from "../dom";
import { DESKTOP, openRelay, RelayRefused } from "../relay";
import { BUTTON, decodeFromAgent, Deframer, DesktopStreamError, FromAgent, IMAGE_JPEG, imageSize, imageType, KEY, toAgent } from "../desktop-codec";
import { isExtended, SPECIAL_KEYS, typedText, virtualKey, VK } from "../desktop-keys";
import { FULL } from "../rights";

const CTRL_CHANNEL = "102938";
/** Group right: remote desktop, view only. */
const RIGHT_VIEW_ONLY = 256;
/** Reconnection after an unexpected close: this many tries, 1 s, 2 s, 4 s… apart. */
const RECONNECT_TRIES = 5;
/** A session that ends sooner than this without a picture is the device's answer (no
 *  display, refused), not a network loss: it is not retried. */
const SETTLED_MS = 5000;
const LONG_PRESS_MS = 600;
const TAP_SLOP_PX = 10;
/** CSS cursors by the index the agent sends (command 88). */
const CURSORS = ["default", "progress", "crosshair", "pointer", "help", "text", "no-drop", "move", "nesw-resize", "ns-resize", "nwse-resize", "w-resize", "alias", "wait", "none", "not-allowed", "col-resize", "row-resize", "copy", "zoom-in", "zoom-out"];

type Settings = { quality: number; scaling: number; frameMs: number };
const SETTINGS_KEY = "ironmesh.desktop";
const DEFAULTS: Settings = { quality: 50, scaling: 1024, frameMs: 100 };

function loadSettings(): Settings {
  try {
    const s = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}");
    return {
      quality: Number.isInteger(s.quality) ? s.quality : DEFAULTS.quality,
      scaling: Number.isInteger(s.scaling) ? s.scaling : DEFAULTS.scaling,
      frameMs: Number.isInteger(s.frameMs) ? s.frameMs : DEFAULTS.frameMs,
    };
  } catch {
    return { ...DEFAULTS };
  }
}

function select(id: string, label: string, options: [number | string, string][], value: number | string): HTMLSelectElement {
  const el = h("select", { id, "aria-label": label, title: label }, options.map(([v, text]) => h("option", { value: String(v) }, text)));
  el.value = String(value);
  return el;
}

/** The user's own rights in the device's group (FULL for site administrators). */
function groupRights(app: App, node: Json): number {
  if (app.siteRights === FULL) return FULL;
  const link = app.meshes.get(node.meshid)?.links?.[app.me._id];
  return Number(link?.rights ?? 0) >>> 0;
}

export function desktopTab(app: App, node: Json, body: HTMLElement): () => void {
  const rights = groupRights(app, node);
  const forcedViewOnly = rights !== FULL && (rights & RIGHT_VIEW_ONLY) !== 0;
  const settings = loadSettings();

  // Controls.
  const status = h("span", { class: "muted", id: "desktop-status", role: "status" }, "Connecting to the device…");
  const stats = h("span", { class: "muted desktop-stats", id: "desktop-stats" });
  const scaleBtn = h("button", { type: "button", class: "small ghost", id: "desktop-scale", title: "Show the screen at its own size (1:1) or fitted to the window" }, "1:1");
  const fullBtn = h("button", { type: "button", class: "small ghost", id: "desktop-fullscreen" }, "Full screen");
  const viewOnlyBtn = h("button", { type: "button", class: "small ghost toggle", id: "desktop-viewonly", "aria-pressed": "false" }, "View only");
  const cadBtn = h("button", { type: "button", class: "small ghost", id: "desktop-cad" }, "Ctrl+Alt+Del");
  const keysMenu = select("desktop-keys", "Send a special key", [["", "Special keys…"], ...SPECIAL_KEYS.map((c, i): [number, string] => [i, c.label])], "");
  const kbdBtn = h("button", { type: "button", class: "small ghost", id: "desktop-keyboard", title: "Open the on-screen keyboard (phones and tablets)" }, "Keyboard");
  const clipSendBtn = h("button", { type: "button", class: "small ghost", id: "desktop-clip-send" }, "Send clipboard");
  const clipGetBtn = h("button", { type: "button", class: "small ghost", id: "desktop-clip-get" }, "Get clipboard");
  const reconnectBtn = h("button", { type: "button", class: "small", id: "desktop-reconnect", hidden: true }, "Reconnect");
  const quality = select("desktop-quality", "Picture quality", [[90, "Quality 90"], [70, "Quality 70"], [50, "Quality 50"], [30, "Quality 30"], [10, "Quality 10"]], settings.quality);
  const scaling = select("desktop-scaling", "Picture size on the device", [[1024, "Size 100 %"], [768, "Size 75 %"], [512, "Size 50 %"], [256, "Size 25 %"]], settings.scaling);
  const rate = select("desktop-rate", "Frame rate", [[16, "Fastest (60/s)"], [33, "Fast (30/s)"], [100, "Normal (10/s)"], [250, "Slow (4/s)"], [1000, "Very slow (1/s)"]], settings.frameMs);
  const displays = h("select", { id: "desktop-display", "aria-label": "Display", title: "Display", hidden: true });
  const message = h("div", { id: "desktop-message", "aria-live": "polite" });
  const canvas = h("canvas", { id: "desktop-canvas", class: "desktop-canvas", width: 0, height: 0, hidden: true });
  const input = h("input", {
    id: "desktop-input",
    class: "desktop-input",
    type: "text",
    autocomplete: "off",
    autocapitalize: "off",
    spellcheck: "false",
    "aria-label": "Type on the device",
  });
  const screen = h("div", { class: "desktop-screen", id: "desktop-screen", tabindex: 0, hidden: true, "aria-label": "Remote screen: click to control, keys go to the device" }, canvas, input);
  const panel = h(
    "div",
    { class: "desktop", id: "desktop" },
    h("div", { class: "toolbar desktop-bar" }, status, reconnectBtn, viewOnlyBtn, cadBtn, keysMenu, kbdBtn, clipSendBtn, clipGetBtn, scaleBtn, fullBtn),
    h("div", { class: "toolbar desktop-bar" }, quality, scaling, rate, displays, stats),
    message,
    screen,
  );
  body.append(panel);
  const ctx = canvas.getContext("2d", { alpha: false })!;

  // Session state.
  let ws: WebSocket | null = null;
  let closed = false;
  let viewOnly = forcedViewOnly;
  let deframer = new Deframer();
  let width = 0;
  let height = 0;
  /** Bumped on each screen size: tiles decoded for an older size are dropped. */
  let generation = 0;
  let drawChain: Promise<void> = Promise.resolve();
  let tiles = 0;
  let openedAt = 0;
  let pictureSeen = false;
  let reconnectTries = 0;
  let reconnectTimer: number | undefined;
  let rttTimer: number | undefined;
  let latency: number | null = null;
  let agentClosed = false;
  const pressed = new Set<number>();
  const typedCodes = new Set<string>();

  // Statistics: updates (bursts of tiles) and bytes per second.
  let frames = 0;
  let bytes = 0;
  let lastTileAt = 0;
  const statsTimer = window.setInterval(() => {
    const parts = [`${frames} frames/s`, `${formatBytes(bytes)}/s`];
    if (width) parts.push(`${width}×${height}`);
    if (latency !== null) parts.push(`${latency} ms round trip`);
    stats.textContent = ws ? parts.join(" · ") : "";
    frames = 0;
    bytes = 0;
  }, 1000);

  // Scale: fitted to the window, or a zoom factor (1 = one device pixel per CSS pixel).
  let fit = true;
  let zoom = 1;
  const layout = () => {
    if (!width || !height) return;
    const top = screen.getBoundingClientRect().top;
    const availW = Math.max(100, screen.clientWidth);
    const availH = Math.max(160, window.innerHeight - Math.max(0, top) - (document.fullscreenElement ? 0 : 16));
    const s = fit ? Math.min(availW / width, availH / height) : zoom;
    canvas.style.width = `${Math.round(width * s)}px`;
    canvas.style.height = `${Math.round(height * s)}px`;
    screen.style.height = fit ? "" : `${Math.round(Math.min(availH, height * s + 4))}px`;
    scaleBtn.textContent = fit ? "1:1" : "Fit";
  };
  const setFit = (f: boolean, z = 1) => {
    fit = f;
    zoom = z;
    layout();
  };

  const setStatus = (text: string) => replace(status, text);
  const showMessage = (kind: "error" | "info", text: string) => {
    replace(message, notice(kind, text));
  };

  const send = (bytes: Uint8Array) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(bytes);
  };
  const sendJson = (msg: Json) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ ctrlChannel: CTRL_CHANNEL, ...msg }));
  };
  const sendInput = (bytes: Uint8Array) => {
    if (!viewOnly) send(bytes);
  };
  const sendCompression = () => send(toAgent.compression(IMAGE_JPEG, settings.quality, settings.scaling, settings.frameMs));
  const releaseKeys = () => {
    for (const vk of pressed) sendInput(toAgent.key(KEY.UP, vk));
    pressed.clear();
  };

  // What the agent sends.
  const onCommand = (c: FromAgent) => {
    switch (c.kind) {
      case "screen": {
        if (c.width !== width || c.height !== height) {
          generation++;
          width = c.width;
          height = c.height;
          canvas.width = width;
          canvas.height = height;
          canvas.hidden = width === 0;
          screen.hidden = width === 0;
          layout();
        }
        // Settings, unpause and the input-lock question follow every size message (the
        // agent starts sending pictures after them); keys held during a change are released.
        sendCompression();
        send(toAgent.pause(false));
        send(toAgent.inputLock(2));
        if (!viewOnly) {
          for (const vk of [VK.SHIFT, VK.CONTROL, VK.ALT, VK.LEFT_WIN, VK.RIGHT_WIN]) send(toAgent.key(KEY.UP, vk));
          pressed.clear();
        }
        break;
      }
      case "tile": {
        const now = performance.now();
        if (now - lastTileAt > 20) frames++;
        lastTileAt = now;
        if (!pictureSeen) {
          pictureSeen = true;
          message.replaceChildren();
          setStatus(viewOnly ? "Connected, view only." : "Connected.");
        }
        const gen = generation;
        const { x, y } = c;
        // A picture must say its size and lie on the screen: anything else is a broken or
        // hostile device, and is not handed to the browser's decoder.
        const size = imageSize(c.image);
        if (!size || width === 0 || x + size.width > width || y + size.height > height) {
          const what = size ? `a ${size.width}×${size.height} picture at ${x},${y}` : "a picture of no known format";
          throw new DesktopStreamError(`${what}, on a ${width}×${height} screen`);
        }
        const decoded = createImageBitmap(new Blob([c.image], { type: imageType(c.image) }));
        drawChain = drawChain.then(async () => {
          let bitmap: ImageBitmap;
          try {
            bitmap = await decoded;
          } catch {
            return; // A tile the browser cannot decode: the next update covers it.
          }
          if (gen === generation && !closed) {
            ctx.drawImage(bitmap, x, y);
            canvas.dataset.tiles = String(++tiles);
          }
          bitmap.close();
        });
        break;
      }
      case "displays": {
        const ids = c.ids;
        displays.hidden = ids.length < 2;
        replace(displays, ids.map((id) => h("option", { value: String(id) }, id === 0xffff ? "All displays" : `Display ${id}`)));
        displays.value = String(c.selected);
        break;
      }
      case "message":
        if (c.text) showMessage("info", c.text);
        break;
      case "alert":
        // A leading "." marks a note for the log only.
        if (c.text.startsWith(".")) console.info(`desktop: ${c.text.slice(1)}`);
        else if (c.text) showMessage("error", c.text);
        break;
      case "input-lock":
        if (c.locked) showMessage("info", "The device's own keyboard and mouse are locked.");
        break;
      case "cursor":
        canvas.style.cursor = CURSORS[c.index] ?? "default";
        break;
      default:
        break;
    }
  };

  const onControl = (msg: Json) => {
    switch (msg.type) {
      case "ping":
        sendJson({ type: "pong" });
        break;
      case "rtt":
        if (typeof msg.time === "number") latency = Math.max(0, Date.now() - msg.time);
        break;
      case "console":
        if (typeof msg.msg === "string" && msg.msg) showMessage("info", msg.msg);
        else if (msg.msg === null || msg.msg === "") message.replaceChildren();
        break;
      case "clipboard":
        if (typeof msg.data === "string") onClipboard(msg.data);
        break;
      case "close":
        agentClosed = true;
        ws?.close();
        break;
    }
  };

  const onMessage = (ev: MessageEvent) => {
    if (typeof ev.data === "string") {
      bytes += ev.data.length;
      let msg: Json;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && String(msg.ctrlChannel) === CTRL_CHANNEL) onControl(msg);
      return;
    }
    const data = new Uint8Array(ev.data as ArrayBuffer);
    bytes += data.length;
    deframer.push(data);
    try {
      for (let c = deframer.next(); c; c = deframer.next()) onCommand(decodeFromAgent(c));
    } catch (e) {
      if (!(e instanceof DesktopStreamError)) throw e;
      showMessage("error", `The device sent something the console cannot read (${e.message}); the session was closed.`);
      agentClosed = true;
      ws?.close(1000, "the device sent what the console cannot read");
    }
  };

  const stopSession = () => {
    window.clearInterval(rttTimer);
    ws = null;
    stats.textContent = "";
  };

  const connect = async () => {
    window.clearTimeout(reconnectTimer);
    reconnectBtn.hidden = true;
    agentClosed = false;
    let socket: WebSocket;
    try {
      socket = await openRelay(node._id, DESKTOP);
    } catch (e) {
      if (closed) return;
      const code = e instanceof RelayRefused ? e.code : 0;
      // No rights, unknown device or a signed-out session: the answer will not change.
      const final = code === 4401 || code === 4403 || code === 4404 || code === 1008;
      if (reconnectTries > 0 && !final) return retryLater();
      setStatus("Not connected.");
      showMessage("error", errorText(e));
      reconnectBtn.hidden = false;
      return;
    }
    if (closed) {
      socket.close();
      return;
    }
    ws = socket;
    deframer = new Deframer();
    width = height = 0;
    generation++;
    openedAt = Date.now();
    pictureSeen = false;
    reconnectTries = 0;
    socket.onmessage = onMessage;
    socket.onclose = (ev) => {
      if (ws !== socket) return;
      releaseKeysLocally();
      stopSession();
      if (closed) return;
      const settled = pictureSeen || Date.now() - openedAt > SETTLED_MS;
      if (!agentClosed && settled && ev.code !== 4403 && ev.code !== 4401) {
        retryLater();
        return;
      }
      setStatus(ev.reason ? `Session ended: ${ev.reason}` : "Session ended.");
      reconnectBtn.hidden = false;
    };
    socket.send(String(DESKTOP));
    setStatus("Connected, waiting for the screen…");
    sendJson({ type: "rtt", time: Date.now() });
    rttTimer = window.setInterval(() => sendJson({ type: "rtt", time: Date.now() }), 10000);
  };

  const retryLater = () => {
    if (reconnectTries >= RECONNECT_TRIES) {
      setStatus("Not connected.");
      showMessage("error", `The connection to the device was lost and ${RECONNECT_TRIES} attempts to reconnect failed.`);
      reconnectTries = 0;
      reconnectBtn.hidden = false;
      return;
    }
    const delay = 1000 * 2 ** reconnectTries++;
    setStatus(`Connection lost; reconnecting (attempt ${reconnectTries} of ${RECONNECT_TRIES})…`);
    reconnectTimer = window.setTimeout(connect, delay);
  };

  /** The socket is gone: forget held keys (the agent releases them with the session). */
  const releaseKeysLocally = () => {
    pressed.clear();
    typedCodes.clear();
  };

  // Pointer position in device pixels.
  const devicePoint = (clientX: number, clientY: number): [number, number] => {
    const r = canvas.getBoundingClientRect();
    const x = ((clientX - r.left) * width) / Math.max(1, r.width);
    const y = ((clientY - r.top) * height) / Math.max(1, r.height);
    return [Math.max(0, Math.min(width - 1, x)), Math.max(0, Math.min(height - 1, y))];
  };
  const buttonBits = (button: number, down: boolean): number => {
    if (button === 1) return down ? BUTTON.MIDDLE_DOWN : BUTTON.MIDDLE_UP;
    if (button === 2) return down ? BUTTON.RIGHT_DOWN : BUTTON.RIGHT_UP;
    return down ? BUTTON.LEFT_DOWN : BUTTON.LEFT_UP;
  };
  const click = (x: number, y: number, button: number) => {
    sendInput(toAgent.mouse(0, x, y));
    sendInput(toAgent.mouse(buttonBits(button, true), x, y));
    sendInput(toAgent.mouse(buttonBits(button, false), x, y));
  };

  // Mouse moves are sent at most once per animation frame.
  let pendingMove: [number, number] | null = null;
  const queueMove = (p: [number, number]) => {
    if (pendingMove === null) {
      requestAnimationFrame(() => {
        if (pendingMove) sendInput(toAgent.mouse(0, pendingMove[0], pendingMove[1]));
        pendingMove = null;
      });
    }
    pendingMove = p;
  };
  const flushMove = () => {
    if (pendingMove) sendInput(toAgent.mouse(0, pendingMove[0], pendingMove[1]));
    pendingMove = null;
  };

  // Touch: tap = click, long press = right click, one finger drags the view, two pinch-zoom.
  const touches = new Map<number, { x: number; y: number }>();
  let touchStart: { x: number; y: number; moved: boolean; longPressed: boolean } | null = null;
  let longPressTimer: number | undefined;
  let pinch: { dist: number; zoom: number } | null = null;
  const touchDistance = () => {
    const [a, b] = [...touches.values()];
    return Math.hypot(a.x - b.x, a.y - b.y);
  };
  const currentScale = () => canvas.getBoundingClientRect().width / Math.max(1, width);

  canvas.addEventListener("pointerdown", (e) => {
    screen.focus({ preventScroll: true });
    if (e.pointerType === "touch") {
      touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (touches.size === 1) {
        touchStart = { x: e.clientX, y: e.clientY, moved: false, longPressed: false };
        window.clearTimeout(longPressTimer);
        longPressTimer = window.setTimeout(() => {
          if (!touchStart || touchStart.moved) return;
          touchStart.longPressed = true;
          const [x, y] = devicePoint(touchStart.x, touchStart.y);
          click(x, y, 2);
        }, LONG_PRESS_MS);
      } else if (touches.size === 2) {
        window.clearTimeout(longPressTimer);
        if (touchStart) touchStart.moved = true;
        pinch = { dist: touchDistance(), zoom: currentScale() };
      }
      e.preventDefault();
      return;
    }
    canvas.setPointerCapture(e.pointerId);
    e.preventDefault();
    const [x, y] = devicePoint(e.clientX, e.clientY);
    flushMove();
    sendInput(toAgent.mouse(0, x, y));
    sendInput(toAgent.mouse(buttonBits(e.button, true), x, y));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (e.pointerType === "touch") {
      const prev = touches.get(e.pointerId);
      if (!prev) return;
      touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (pinch && touches.size === 2) {
        setFit(false, Math.max(0.1, Math.min(4, (pinch.zoom * touchDistance()) / Math.max(1, pinch.dist))));
      } else if (touchStart && touches.size === 1) {
        if (Math.hypot(e.clientX - touchStart.x, e.clientY - touchStart.y) > TAP_SLOP_PX) touchStart.moved = true;
        if (touchStart.moved) {
          screen.scrollLeft -= e.clientX - prev.x;
          screen.scrollTop -= e.clientY - prev.y;
        }
      }
      return;
    }
    queueMove(devicePoint(e.clientX, e.clientY));
  });
  const pointerEnd = (e: PointerEvent) => {
    if (e.pointerType === "touch") {
      touches.delete(e.pointerId);
      if (touches.size < 2) pinch = null;
      if (touches.size === 0) {
        window.clearTimeout(longPressTimer);
        if (e.type === "pointerup" && touchStart && !touchStart.moved && !touchStart.longPressed) {
          const [x, y] = devicePoint(touchStart.x, touchStart.y);
          click(x, y, 0);
        }
        touchStart = null;
      }
      return;
    }
    if (e.type !== "pointerup") return;
    const [x, y] = devicePoint(e.clientX, e.clientY);
    flushMove();
    sendInput(toAgent.mouse(buttonBits(e.button, false), x, y));
  };
  canvas.addEventListener("pointerup", pointerEnd);
  canvas.addEventListener("pointercancel", pointerEnd);
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  let wheelAcc = 0;
  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      // About 100 pixels, 3 lines or one page a notch; the agent takes 120 per notch.
      wheelAcc += e.deltaMode === 1 ? e.deltaY * 33 : e.deltaMode === 2 ? e.deltaY * 100 : e.deltaY;
      const notches = Math.trunc(wheelAcc / 100);
      if (notches === 0) return;
      wheelAcc -= notches * 100;
      const [x, y] = devicePoint(e.clientX, e.clientY);
      sendInput(toAgent.wheel(x, y, -notches * 120));
    },
    { passive: false },
  );

  // Keyboard: text as Unicode, other keys as virtual keys.
  const sendText = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      sendInput(toAgent.keyUnicode(false, unit));
      sendInput(toAgent.keyUnicode(true, unit));
    }
  };
  const keyDown = (e: KeyboardEvent) => {
    if (e.isComposing) return;
    const text = typedText(e);
    if (text !== null) {
      e.preventDefault();
      typedCodes.add(e.code);
      sendText(text);
      return;
    }
    const vk = virtualKey(e.code);
    if (vk === undefined) return;
    e.preventDefault();
    pressed.add(vk);
    sendInput(toAgent.key(KEY.DOWN, vk));
  };
  const keyUp = (e: KeyboardEvent) => {
    if (typedCodes.delete(e.code)) {
      e.preventDefault();
      return;
    }
    const vk = virtualKey(e.code);
    if (vk === undefined) return;
    e.preventDefault();
    pressed.delete(vk);
    sendInput(toAgent.key(KEY.UP, vk));
  };
  screen.addEventListener("keydown", (e) => {
    if (e.target === input) return;
    keyDown(e);
  });
  screen.addEventListener("keyup", (e) => {
    if (e.target === input) return;
    keyUp(e);
  });
  screen.addEventListener("blur", releaseKeys);

  // The on-screen keyboard of phones: a hidden input keeps one character so that Backspace
  // on an "empty" field still reports a deletion.
  const SENTINEL = " ";
  input.value = SENTINEL;
  input.addEventListener("keydown", (e) => {
    // Named keys the input would swallow; text comes through "input" events.
    if (["Enter", "Tab", "Escape", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Backspace", "Delete"].includes(e.key)) {
      e.preventDefault();
      const vk = virtualKey(e.code) ?? { Enter: VK.ENTER, Backspace: VK.BACKSPACE, Tab: VK.TAB, Escape: VK.ESCAPE, Delete: VK.DELETE }[e.key as string];
      if (vk !== undefined) {
        sendInput(toAgent.key(KEY.DOWN, vk));
        sendInput(toAgent.key(KEY.UP, vk));
      }
    } else if (e.ctrlKey || e.altKey || e.metaKey) {
      keyDown(e);
    }
  });
  input.addEventListener("keyup", (e) => {
    if ((e.ctrlKey || e.altKey || e.metaKey) && typedText(e) === null) keyUp(e);
  });
  input.addEventListener("input", (e) => {
    const ev = e as InputEvent;
    if (ev.inputType === "deleteContentBackward") {
      sendInput(toAgent.key(KEY.DOWN, VK.BACKSPACE));
      sendInput(toAgent.key(KEY.UP, VK.BACKSPACE));
    } else if (ev.inputType === "insertLineBreak" || ev.inputType === "insertParagraph") {
      sendInput(toAgent.key(KEY.DOWN, VK.ENTER));
      sendInput(toAgent.key(KEY.UP, VK.ENTER));
    } else if (!ev.isComposing) {
      // Whatever was inserted: the field's value without the sentinel.
      sendText(input.value.startsWith(SENTINEL) ? input.value.slice(SENTINEL.length) : input.value);
    }
    if (!ev.isComposing) {
      input.value = SENTINEL;
      input.setSelectionRange(1, 1);
    }
  });
  input.addEventListener("compositionend", () => {
    sendText(input.value.startsWith(SENTINEL) ? input.value.slice(SENTINEL.length) : input.value);
    input.value = SENTINEL;
  });
  kbdBtn.addEventListener("click", () => {
    input.focus({ preventScroll: true });
    input.setSelectionRange(1, 1);
  });

  // Toolbar.
  const renderViewOnly = () => {
    viewOnlyBtn.setAttribute("aria-pressed", viewOnly ? "true" : "false");
    viewOnlyBtn.disabled = forcedViewOnly;
    if (forcedViewOnly) viewOnlyBtn.title = "Your rights in this device group allow viewing only.";
    for (const b of [cadBtn, kbdBtn, clipSendBtn]) b.disabled = viewOnly;
    keysMenu.disabled = viewOnly;
    screen.classList.toggle("view-only", viewOnly);
    if (ws && pictureSeen) setStatus(viewOnly ? "Connected, view only." : "Connected.");
  };
  viewOnlyBtn.addEventListener("click", () => {
    if (forcedViewOnly) return;
    if (!viewOnly) releaseKeys();
    viewOnly = !viewOnly;
    renderViewOnly();
  });
  cadBtn.addEventListener("click", () => {
    sendInput(toAgent.ctrlAltDel());
    screen.focus({ preventScroll: true });
  });
  keysMenu.addEventListener("change", () => {
    const combo = SPECIAL_KEYS[Number(keysMenu.value)];
    keysMenu.value = "";
    if (!combo) return;
    for (const vk of combo.keys) sendInput(toAgent.key(isExtended(vk) ? KEY.EXTENDED_DOWN : KEY.DOWN, vk));
    for (const vk of [...combo.keys].reverse()) sendInput(toAgent.key(isExtended(vk) ? KEY.EXTENDED_UP : KEY.UP, vk));
    screen.focus({ preventScroll: true });
  });
  scaleBtn.addEventListener("click", () => setFit(!fit, 1));
  fullBtn.addEventListener("click", async () => {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await panel.requestFullscreen();
    } catch {
      toast("error", "The browser refused full screen.");
    }
  });
  const onFullscreen = () => {
    fullBtn.textContent = document.fullscreenElement === panel ? "Exit full screen" : "Full screen";
    setFit(true);
    if (document.fullscreenElement === panel) screen.focus({ preventScroll: true });
  };
  document.addEventListener("fullscreenchange", onFullscreen);
  const saveSettings = () => {
    settings.quality = Number(quality.value);
    settings.scaling = Number(scaling.value);
    settings.frameMs = Number(rate.value);
    try {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
    } catch {
      /* private mode: the settings last for this page */
    }
    sendCompression();
  };
  for (const s of [quality, scaling, rate]) s.addEventListener("change", saveSettings);
  displays.addEventListener("change", () => send(toAgent.setDisplay(Number(displays.value))));
  reconnectBtn.addEventListener("click", () => {
    reconnectTries = 0;
    message.replaceChildren();
    setStatus("Connecting to the device…");
    connect();
  });

  // Clipboard, through the relay's control messages (agents that support it answer).
  let clipWaiter: number | undefined;
  const onClipboard = (text: string) => {
    window.clearTimeout(clipWaiter);
    clipWaiter = undefined;
    const area = h("textarea", { id: "desktop-clip-received", rows: 6, readonly: true, "aria-label": "The device's clipboard" });
    area.value = text;
    const copy = h("button", { type: "button", id: "desktop-clip-copy" }, "Copy to this computer");
    const dlg = dialog("The device's clipboard", [area], [copy]);
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        toast("ok", "Copied.");
        dlg.close();
      } catch {
        area.select();
        toast("error", "The browser refused the clipboard; the text is selected, copy it with Ctrl+C.");
      }
    });
  };
  clipGetBtn.addEventListener("click", () => {
    sendJson({ type: "getclipboard" });
    window.clearTimeout(clipWaiter);
    clipWaiter = window.setTimeout(() => toast("error", "The device did not send its clipboard (its agent may not support it)."), 5000);
  });
  clipSendBtn.addEventListener("click", async () => {
    const area = h("textarea", { id: "desktop-clip-text", rows: 6, "aria-label": "Text for the device's clipboard" });
    const sendBtn = h("button", { type: "button", id: "desktop-clip-confirm" }, "Send to the device");
    const dlg = dialog("Send text to the device's clipboard", [h("p", { class: "muted" }, "Paste or type the text; it replaces the device's clipboard."), area], [sendBtn]);
    sendBtn.addEventListener("click", () => {
      sendJson({ type: "clipboard", data: area.value });
      toast("ok", "Sent to the device's clipboard.");
      dlg.close();
    });
    try {
      const text = await navigator.clipboard.readText();
      if (!area.value) area.value = text;
    } catch {
      /* no permission: the user pastes by hand */
    }
    area.focus();
  });

  const observer = new ResizeObserver(() => layout());
  observer.observe(screen);
  window.addEventListener("resize", layout);
  renderViewOnly();
  connect();

  return () => {
    closed = true;
    releaseKeys();
    window.clearTimeout(reconnectTimer);
    window.clearTimeout(clipWaiter);
    window.clearInterval(statsTimer);
    observer.disconnect();
    window.removeEventListener("resize", layout);
    document.removeEventListener("fullscreenchange", onFullscreen);
    if (document.fullscreenElement === panel) document.exitFullscreen().catch(() => {});
    const socket = ws;
    stopSession();
    socket?.close(1000);
  };
}
