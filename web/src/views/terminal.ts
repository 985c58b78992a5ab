// Terminal over the relay (protocol 1): xterm.js, resize, copy and paste.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import type { App } from "../app";
import { errorText, Json } from "../control";
import { h, notice, replace, toast } from "../dom";
import { openRelay, TERMINAL } from "../relay";

const CTRL_CHANNEL = "102938";

export function terminalTab(_app: App, node: Json, body: HTMLElement): () => void {
  const status = h("p", { class: "muted", id: "terminal-status" }, "Connecting to the device…");
  const copy = h("button", { type: "button", class: "small", id: "terminal-copy" }, "Copy selection");
  const paste = h("button", { type: "button", class: "small", id: "terminal-paste" }, "Paste");
  const reconnect = h("button", { type: "button", class: "small", id: "terminal-reconnect", hidden: true }, "Reconnect");
  const host = h("div", { class: "terminal", id: "terminal" });
  body.append(h("div", { class: "toolbar" }, status, copy, paste, reconnect), host);

  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, convertEol: false });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();
  let ws: WebSocket | null = null;
  let closed = false;
  const encoder = new TextEncoder();

  const send = (data: string) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  };
  const resize = () => {
    try {
      fit.fit();
    } catch {
      return;
    }
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ ctrlChannel: CTRL_CHANNEL, type: "termsize", cols: term.cols, rows: term.rows }));
    }
  };

  const connect = async () => {
    reconnect.hidden = true;
    status.textContent = "Connecting to the device…";
    try {
      ws = await openRelay(node._id, TERMINAL);
    } catch (e) {
      status.replaceChildren(notice("error", errorText(e)));
      reconnect.hidden = false;
      return;
    }
    if (closed) {
      ws.close();
      return;
    }
    ws.send(JSON.stringify({ ctrlChannel: CTRL_CHANNEL, type: "options", cols: term.cols, rows: term.rows }));
    ws.send(String(TERMINAL));
    status.textContent = "Connected.";
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        if (ev.data.startsWith("{")) {
          try {
            if (JSON.parse(ev.data).ctrlChannel) return;
          } catch {
            /* plain text output */
          }
        }
        term.write(ev.data);
      } else {
        term.write(new Uint8Array(ev.data as ArrayBuffer));
      }
    };
    ws.onclose = (ev) => {
      if (closed) return;
      status.replaceChildren(notice("info", ev.reason ? `Session ended: ${ev.reason}` : "Session ended."));
      reconnect.hidden = false;
    };
    term.focus();
  };

  term.onData(send);
  copy.addEventListener("click", async () => {
    const text = term.getSelection();
    if (!text) {
      toast("info", "Select text in the terminal first.");
      return;
    }
    try {
      await navigator.clipboard.writeText(text);
      toast("ok", "Copied.");
    } catch {
      toast("error", "The browser refused the clipboard; use Ctrl+Shift+C or the context menu.");
    }
  });
  paste.addEventListener("click", async () => {
    try {
      term.paste(await navigator.clipboard.readText());
      term.focus();
    } catch {
      toast("error", "The browser refused the clipboard; use Ctrl+Shift+V or the context menu.");
    }
  });
  reconnect.addEventListener("click", () => {
    replace(status, "Connecting…");
    connect();
  });
  const observer = new ResizeObserver(() => resize());
  observer.observe(host);
  connect();
  return () => {
    closed = true;
    observer.disconnect();
    ws?.close();
    term.dispose();
  };
}
