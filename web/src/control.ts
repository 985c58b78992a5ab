// The browser's side of /control.ashx: MeshCentral's JSON actions, matched to their replies
// by `responseid`, and the server's pushed events. Reconnects with backoff when the socket
// drops (a server restart), and tells the page so it can show it.

// A JSON object as the server sends it: fields are read as the protocol defines them, so the
// values stay `any` here, at the one boundary, rather than being cast at every use.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

type Pending = { resolve: (v: Json) => void; reject: (e: Error) => void; timer: number };

export class ServerError extends Error {}

export class ControlChannel {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private listeners = new Set<(msg: Json) => void>();
  private stateListeners = new Set<(up: boolean) => void>();
  private retry = 0;
  private closedByUs = false;
  private opened: Promise<void>;
  private markOpen: () => void = () => {};

  constructor() {
    this.opened = new Promise((r) => (this.markOpen = r));
    this.connect();
  }

  private connect(): void {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/control.ashx`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.markOpen();
      this.stateListeners.forEach((f) => f(true));
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      let msg: Json;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.action === "close" && msg.cause) {
        // The server refuses the session (e.g. it expired): back to the sign-in page.
        location.href = "/login";
        return;
      }
      const waiting = msg.responseid !== undefined ? this.pending.get(String(msg.responseid)) : undefined;
      if (waiting) {
        this.pending.delete(String(msg.responseid));
        window.clearTimeout(waiting.timer);
        // The server marks refusals with `failed: true` (`result` alone is also used for
        // successes, e.g. "Added user …").
        if (msg.failed === true) {
          waiting.reject(new ServerError(String(msg.result ?? "The server refused the request.")));
        } else {
          waiting.resolve(msg);
        }
        return;
      }
      this.listeners.forEach((f) => f(msg));
    };
    ws.onclose = (ev) => {
      this.stateListeners.forEach((f) => f(false));
      for (const [id, p] of this.pending) {
        window.clearTimeout(p.timer);
        p.reject(new Error("The connection to the server was lost; try again in a moment."));
        this.pending.delete(id);
      }
      if (this.closedByUs) return;
      if (ev.code === 4401 || ev.code === 1008) {
        location.href = "/login";
        return;
      }
      this.opened = new Promise((r) => (this.markOpen = r));
      const delay = Math.min(30000, 500 * 2 ** this.retry++) * (0.5 + Math.random() / 2);
      window.setTimeout(() => this.connect(), delay);
    };
  }

  /** Sends an action and waits for its reply; a refusal is thrown with the server's reason. */
  async request(action: string, fields: Json = {}, timeoutMs = 30000): Promise<Json> {
    await this.opened;
    const id = `w${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`The server did not answer "${action}" within ${timeoutMs / 1000} s.`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws!.send(JSON.stringify({ ...fields, action, responseid: id }));
    });
  }

  /** Messages that are not replies: events and pushes. */
  onMessage(f: (msg: Json) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  onState(f: (up: boolean) => void): void {
    this.stateListeners.add(f);
  }

  close(): void {
    this.closedByUs = true;
    this.ws?.close();
  }
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
