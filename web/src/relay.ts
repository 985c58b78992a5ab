// A relay session to a device (/meshrelay.ashx): the server asks the agent to join; the
// session starts when the server sends "c". The browser's session cookie authenticates.

import type { Json } from "./control";

export const TERMINAL = 1;
export const DESKTOP = 2;
export const FILES = 5;

/** A session that ended before it started, with the server's close code and reason (4403:
 *  no rights, 4412: the device is offline). */
export class RelayRefused extends Error {
  constructor(message: string, readonly code: number, readonly reason: string) {
    super(message);
  }
}

export function openRelay(nodeId: string, protocol: number): Promise<WebSocket> {
  const url =
    `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/meshrelay.ashx` +
    `?nodeid=${encodeURIComponent(nodeId)}&p=${protocol}&browser=1`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const timer = window.setTimeout(() => {
      ws.close();
      reject(new RelayRefused("The device did not join the session within 30 s. Is it online?", 0, ""));
    }, 30000);
    ws.onmessage = (ev) => {
      if (ev.data === "c" || ev.data === "cr") {
        window.clearTimeout(timer);
        ws.onmessage = null;
        ws.onclose = null;
        resolve(ws);
      }
    };
    ws.onclose = (ev) => {
      window.clearTimeout(timer);
      const text = ev.reason ? `The session was refused: ${ev.reason}` : "The session closed before it started.";
      reject(new RelayRefused(text, ev.code, ev.reason));
    };
  });
}

/** Parses a JSON message of the files protocol (text, or binary starting with `{`). */
export function relayJson(data: unknown): Json | null {
  let text: string | null = null;
  if (typeof data === "string") text = data;
  else if (data instanceof ArrayBuffer) {
    const bytes = new Uint8Array(data);
    if (bytes[0] === 0x7b) text = new TextDecoder().decode(bytes);
  }
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
