// What the console knows: the signed-in user, device groups and devices, kept current by
// the control channel's events. Views read it and subscribe to changes.

import { ControlChannel, Json } from "./control";

export class App {
  readonly ctl = new ControlChannel();
  me: Json = {};
  server: Json = {};
  meshes = new Map<string, Json>();
  nodes = new Map<string, Json>();
  private changeListeners = new Set<() => void>();
  private eventListeners = new Set<(ev: Json) => void>();
  private notifyListeners = new Set<(msg: Json) => void>();
  private refreshTimer: number | undefined;
  private notifyTimer: number | undefined;
  private ready: Promise<void>;

  constructor() {
    let gotUser: () => void = () => {};
    this.ready = new Promise((r) => (gotUser = r));
    this.ctl.onMessage((msg) => {
      switch (msg.action) {
        case "serverinfo":
          this.server = msg.serverinfo ?? {};
          break;
        case "userinfo":
          this.me = msg.userinfo ?? {};
          gotUser();
          this.changed();
          break;
        case "event":
          this.onEvent(msg.event ?? {});
          break;
        case "msg":
          // A user manager's broadcast (`userbroadcast`, docs/protocol/control.md §2.6).
          if (msg.type === "notify") this.notifyListeners.forEach((f) => f(msg));
          break;
      }
    });
    this.ctl.onState((up) => {
      if (up) this.scheduleRefresh(0);
    });
  }

  async start(): Promise<void> {
    await this.ready;
    await this.refresh();
  }

  /** Waits for the server's greeting (who is signed in). */
  async greeted(): Promise<void> {
    await this.ready;
  }

  /** The site requires a second factor and this account has none yet: until one is added,
   *  only the account page works. */
  get enrolling(): boolean {
    return this.me.secondfactorpending === true;
  }

  /** Site rights of the signed-in user (0xFFFFFFFF: full administrator). */
  get siteRights(): number {
    return Number(this.me.siteadmin ?? 0) >>> 0;
  }

  canManageUsers(): boolean {
    return (this.siteRights & 2) !== 0;
  }

  canManageUserGroups(): boolean {
    return (this.siteRights & 256) !== 0;
  }

  onChange(f: () => void): () => void {
    this.changeListeners.add(f);
    return () => this.changeListeners.delete(f);
  }

  /** Notifications sent to this user (`{action:"msg", type:"notify", title, value}`). */
  onNotification(f: (msg: Json) => void): () => void {
    this.notifyListeners.add(f);
    return () => this.notifyListeners.delete(f);
  }

  /** Raw events from the server, for views that care about one device or group. */
  onServerEvent(f: (ev: Json) => void): () => void {
    this.eventListeners.add(f);
    return () => this.eventListeners.delete(f);
  }

  /** Tells views that the lists changed: at most every 200 ms, so a reconnect storm of
   *  thousands of devices re-renders the page a few times, not thousands of times. */
  private changed(): void {
    if (this.notifyTimer !== undefined) return;
    this.notifyTimer = window.setTimeout(() => {
      this.notifyTimer = undefined;
      this.changeListeners.forEach((f) => f());
    }, 200);
  }

  private onEvent(ev: Json): void {
    this.eventListeners.forEach((f) => f(ev));
    const node = ev.nodeid ? this.nodes.get(ev.nodeid) : undefined;
    if (ev.action === "nodeconnect" && node) {
      node.conn = ev.conn ?? 0;
      if (node.conn) node.lastconnect = Date.now();
      this.changed();
      return;
    }
    // Anything else (a new device, a group or account change): fetch the lists again, once.
    this.scheduleRefresh(150);
  }

  scheduleRefresh(delayMs: number): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => {
      this.refresh().catch(() => {});
    }, delayMs);
  }

  async refresh(): Promise<void> {
    if (this.enrolling) return;
    const [meshes, nodes] = await Promise.all([this.ctl.request("meshes"), this.ctl.request("nodes")]);
    this.meshes = new Map((meshes.meshes ?? []).map((m: Json) => [m._id, m]));
    this.nodes = new Map();
    for (const [meshid, list] of Object.entries<Json[]>(nodes.nodes ?? {})) {
      for (const node of list) this.nodes.set(node._id, { ...node, meshid });
    }
    this.changed();
  }
}
