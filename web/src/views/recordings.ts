// Session recordings: a device's list (its "Recordings" tab) and the player, which replays an
// asciicast v2 recording into xterm.js at the recorded pace (play/pause, 1×/2×/4×, skip to
// the end) with a download of the file. Who may watch is the server's decision: full
// administrators, and users with the "Recordings" site right on groups they see.

import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import type { App } from "../app";
import { errorText, Json } from "../control";
import { dialog, formatBytes, formatTime, h, notice, replace, toast } from "../dom";
import { FULL } from "../rights";

/** One recorded event: seconds from the start, kind ("o" output, "i" input, "r" resize), text. */
export type CastEvent = [number, string, string];

export type Cast = { width: number; height: number; title: string; events: CastEvent[]; duration: number };

/** Parses asciicast v2: a JSON header line, then one `[seconds, kind, text]` line per event.
 *  Lines that are not such arrays are skipped (a recording cut short still plays). */
export function parseCast(text: string): Cast {
  const lines = text.split("\n");
  let header: Json;
  try {
    header = JSON.parse(lines[0]);
  } catch {
    throw new Error("This is not an asciicast recording (its first line is not a JSON header).");
  }
  if (!header || typeof header !== "object" || header.version !== 2) {
    throw new Error("This recording is not asciicast version 2.");
  }
  const events: CastEvent[] = [];
  for (const line of lines.slice(1)) {
    if (!line.trim()) continue;
    try {
      const ev = JSON.parse(line);
      if (Array.isArray(ev) && typeof ev[0] === "number" && typeof ev[1] === "string" && typeof ev[2] === "string") events.push([ev[0], ev[1], ev[2]]);
    } catch {
      // A partial last line (the session was cut): skip it.
    }
  }
  events.sort((a, b) => a[0] - b[0]);
  const size = (v: unknown, dflt: number) => (typeof v === "number" && v >= 1 && v <= 1000 ? Math.floor(v) : dflt);
  return {
    width: size(header.width, 80),
    height: size(header.height, 24),
    title: typeof header.title === "string" ? header.title : "",
    events,
    duration: events.length ? events[events.length - 1][0] : 0,
  };
}

/** "COLSxROWS" of a resize event. */
function parseSize(text: string): [number, number] | null {
  const m = text.match(/^(\d+)x(\d+)$/);
  if (!m) return null;
  const cols = Number(m[1]);
  const rows = Number(m[2]);
  return cols >= 1 && cols <= 1000 && rows >= 1 && rows <= 1000 ? [cols, rows] : null;
}

/** m:ss.d (tenths: many recordings are short). */
function clock(seconds: number): string {
  const tenths = Math.max(0, Math.floor(seconds * 10));
  const s = Math.floor(tenths / 10);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}.${tenths % 10}`;
}

/** Replays a cast into a terminal on a timer. */
class Player {
  private pos = 0;
  /** Recorded seconds reached when the clock was last synced, and when that was. */
  private base = 0;
  private syncedAt = 0;
  private timer: number | undefined;
  playing = false;
  speed = 1;
  onState: () => void = () => {};

  constructor(
    private readonly term: Terminal,
    private readonly cast: Cast,
  ) {}

  /** Recorded seconds now. */
  position(): number {
    const t = this.playing ? this.base + ((performance.now() - this.syncedAt) / 1000) * this.speed : this.base;
    return Math.min(t, this.cast.duration);
  }

  get ended(): boolean {
    return this.pos >= this.cast.events.length;
  }

  /** Writes every event up to `until` seconds (output batched between resizes). */
  private applyUntil(until: number): void {
    let out = "";
    const events = this.cast.events;
    while (this.pos < events.length && events[this.pos][0] <= until) {
      const [, kind, text] = events[this.pos++];
      if (kind === "o") out += text;
      else if (kind === "r") {
        const size = parseSize(text);
        if (size) {
          if (out) this.term.write(out);
          out = "";
          this.term.resize(size[0], size[1]);
        }
      }
      // "i" (what was typed) is not shown: the terminal's echo already is.
    }
    if (out) this.term.write(out);
  }

  private tick = (): void => {
    this.timer = undefined;
    if (!this.playing) return;
    const now = this.position();
    this.applyUntil(now);
    if (this.ended) {
      this.base = this.cast.duration;
      this.playing = false;
      this.onState();
      return;
    }
    const wait = ((this.cast.events[this.pos][0] - now) / this.speed) * 1000;
    this.timer = window.setTimeout(this.tick, Math.max(0, Math.min(wait, 1000)));
  };

  play(): void {
    if (this.playing) return;
    if (this.ended) this.restart();
    this.playing = true;
    this.syncedAt = performance.now();
    this.onState();
    this.tick();
  }

  pause(): void {
    if (!this.playing) return;
    this.base = this.position();
    this.playing = false;
    window.clearTimeout(this.timer);
    this.timer = undefined;
    this.onState();
  }

  setSpeed(speed: number): void {
    this.base = this.position();
    this.syncedAt = performance.now();
    this.speed = speed;
    if (this.playing) {
      window.clearTimeout(this.timer);
      this.tick();
    }
    this.onState();
  }

  skipToEnd(): void {
    this.pause();
    this.applyUntil(Infinity);
    this.base = this.cast.duration;
    this.onState();
  }

  private restart(): void {
    this.term.reset();
    this.term.resize(this.cast.width, this.cast.height);
    this.pos = 0;
    this.base = 0;
  }

  stop(): void {
    this.playing = false;
    window.clearTimeout(this.timer);
  }
}

/** Opens the player for a recording (`url` as the server lists it). */
export function playRecording(rec: Json): void {
  // Recordings are this server's own files; nothing else is fetched or linked.
  const url = String(rec.url ?? "");
  if (!/^\/recordings\/[0-9a-f]+\.cast$/.test(url)) {
    toast("error", "This recording has no valid address.");
    return;
  }
  const status = h("p", { class: "muted", id: "player-status" }, "Loading the recording…");
  const host = h("div", { class: "player-screen", id: "player-screen" });
  const playBtn = h("button", { type: "button", class: "small", id: "player-play", disabled: true }, "Play");
  const speeds = [1, 2, 4].map((s) => h("button", { type: "button", class: "small ghost", "data-speed": s, id: `player-speed-${s}`, "aria-pressed": s === 1 ? "true" : "false" }, `${s}×`));
  const skip = h("button", { type: "button", class: "small ghost", id: "player-skip", disabled: true }, "Skip to end");
  const time = h("span", { class: "muted player-time", id: "player-time" }, "0:00");
  const download = h("a", { href: url, download: "", class: "button small-link", id: "player-download" }, "Download");
  const close = h("button", { type: "button" }, "Close");
  const who = [rec.username, formatTime(rec.started)].filter(Boolean).join(", ");
  const dlg = dialog(
    `Recording${who ? ` (${who})` : ""}`,
    [status, h("div", { class: "toolbar player-controls" }, playBtn, ...speeds, skip, time, download), host],
    [close],
  );
  dlg.classList.add("wide", "player");
  close.addEventListener("click", () => dlg.close());

  let player: Player | null = null;
  let term: Terminal | null = null;
  let ticker: number | undefined;
  dlg.addEventListener("close", () => {
    player?.stop();
    window.clearInterval(ticker);
    term?.dispose();
  });

  fetch(url, { credentials: "same-origin" })
    .then(async (r) => {
      if (!r.ok) throw new Error(r.status === 404 ? "The recording is gone, or you may not watch it." : `The server answered ${r.status} ${await r.text()}`);
      return parseCast(await r.text());
    })
    .then((cast) => {
      if (!dlg.open) return;
      term = new Terminal({ cols: cast.width, rows: cast.height, disableStdin: true, cursorBlink: false, fontSize: 13, scrollback: 2000, convertEol: false });
      term.open(host);
      const p = new Player(term, cast);
      player = p;
      const show = () => {
        playBtn.textContent = p.playing ? "Pause" : p.ended ? "Replay" : "Play";
        time.textContent = `${clock(p.position())} / ${clock(cast.duration)}`;
        for (const b of speeds) b.setAttribute("aria-pressed", Number(b.dataset.speed) === p.speed ? "true" : "false");
        status.textContent = p.playing ? `Playing at ${p.speed}×.` : p.ended ? "End of the recording." : "Paused.";
      };
      p.onState = show;
      playBtn.disabled = false;
      skip.disabled = false;
      playBtn.addEventListener("click", () => (p.playing ? p.pause() : p.play()));
      for (const b of speeds) b.addEventListener("click", () => p.setSpeed(Number(b.dataset.speed)));
      skip.addEventListener("click", () => p.skipToEnd());
      ticker = window.setInterval(() => {
        if (p.playing) time.textContent = `${clock(p.position())} / ${clock(cast.duration)}`;
      }, 250);
      if (cast.events.length === 0) status.textContent = "This recording is empty.";
      p.play();
    })
    .catch((e) => replace(status, notice("error", errorText(e))));
}

/** Plays a recording named by an event (`recording` id), looked up among those the user may
 *  watch. */
export async function playRecordingById(app: App, id: string, nodeId?: string): Promise<void> {
  try {
    const r = await app.ctl.request("recordings", nodeId ? { nodeid: nodeId, limit: 5000 } : { limit: 5000 });
    const rec = (r.recordings ?? []).find((x: Json) => x.id === id);
    if (!rec) {
      toast("error", "This recording is gone, or you may not watch it (watching needs the site right “Recordings”).");
      return;
    }
    playRecording(rec);
  } catch (e) {
    toast("error", errorText(e));
  }
}

/** Whether the signed-in user may watch recordings at all. */
export function mayWatch(app: App): boolean {
  return app.siteRights === FULL || (app.siteRights & 512) !== 0;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The device page's "Recordings" tab. */
export function recordingsTab(app: App, node: Json, body: HTMLElement): () => void {
  const group = app.meshes.get(node.meshid);
  const recording = (Number(group?.flags ?? 0) & 4) !== 0;
  const list = h("div", { id: "recording-list" }, h("p", { class: "muted" }, "Loading recordings…"));
  body.append(
    h(
      "p",
      { class: "muted" },
      recording
        ? `Terminal sessions with devices of ${group?.name ?? "this group"} are recorded.`
        : `Terminal sessions with devices of ${group?.name ?? "this group"} are not recorded (the group's settings turn it on).`,
    ),
    list,
  );
  if (!mayWatch(app)) {
    replace(list, notice("info", "Watching recordings needs the site right “Recordings”. Ask an administrator."));
    return () => {};
  }
  const load = () =>
    app.ctl
      .request("recordings", { nodeid: node._id })
      .then((r) => {
        const recs: Json[] = r.recordings ?? [];
        if (recs.length === 0) {
          replace(list, h("p", { class: "muted", id: "recordings-empty" }, "No recordings of this device."));
          return;
        }
        replace(
          list,
          h(
            "table",
            { class: "plain", id: "recordings" },
            h("thead", {}, h("tr", {}, ["Started", "Length", "User", "Size", ""].map((t) => h("th", {}, t)))),
            h(
              "tbody",
              {},
              recs.map((rec) => {
                const play = h("button", { type: "button", class: "small", onclick: () => playRecording(rec) }, "Play");
                const dl = h("a", { href: rec.url, download: "", class: "small-link" }, "Download");
                return h(
                  "tr",
                  { "data-recording": rec.id },
                  h("td", {}, formatTime(rec.started)),
                  h("td", {}, duration(Number(rec.ended) - Number(rec.started))),
                  h("td", {}, rec.username ?? ""),
                  h("td", {}, formatBytes(Number(rec.size))),
                  h("td", { class: "actions" }, play, " ", dl),
                );
              }),
            ),
          ),
        );
      })
      .catch((e) => replace(list, notice("error", `Could not load recordings: ${errorText(e)}`)));
  load();
  // A session with this device that ended may have left a recording.
  let timer: number | undefined;
  const stop = app.onServerEvent((ev) => {
    if (ev.nodeid !== node._id || ev.action !== "relaylog") return;
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300);
  });
  return () => {
    window.clearTimeout(timer);
    stop();
  };
}
