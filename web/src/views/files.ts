// File manager over the relay (protocol 5): browse with breadcrumbs, upload with a progress
// bar, download, delete, rename, new folder. One relay socket per open tab; operations on
// it run one at a time.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { dialog, formatBytes, h, notice, replace, toast } from "../dom";
import { FILES, openRelay, relayJson } from "../relay";

const UPLOAD_CHUNK = 65536;
const UPLOAD_WINDOW = 16;
const DOWNLOAD_WINDOW = 8;
const STALL_MS = 60000;

type Frame = { json: Json | null; bytes: Uint8Array | null };

class FilesSession {
  private queue: Frame[] = [];
  private waiter: ((f: Frame | null) => void) | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private reqid = 1;
  closedReason: string | null = null;

  constructor(private ws: WebSocket, onClose: (reason: string) => void) {
    ws.onmessage = (ev) => {
      const json = relayJson(ev.data);
      const frame: Frame = { json, bytes: json === null && ev.data instanceof ArrayBuffer ? new Uint8Array(ev.data) : null };
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(frame);
      } else {
        this.queue.push(frame);
      }
    };
    ws.onclose = (ev) => {
      this.closedReason = ev.reason || "the session closed";
      if (this.waiter) this.waiter(null);
      onClose(this.closedReason);
    };
    ws.send(String(FILES));
  }

  /** Runs `op` after every earlier operation has finished. */
  run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => {});
    return next;
  }

  send(msg: Json | Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) throw new Error(`The file session is closed (${this.closedReason ?? "closed"}).`);
    this.ws.send(msg instanceof Uint8Array ? msg : JSON.stringify(msg));
  }

  next(): Promise<Frame> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closedReason) return Promise.reject(new Error(`The file session closed: ${this.closedReason}.`));
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.waiter = null;
        reject(new Error("The device stopped answering."));
      }, STALL_MS);
      this.waiter = (f) => {
        window.clearTimeout(timer);
        if (f) resolve(f);
        else reject(new Error(`The file session closed: ${this.closedReason}.`));
      };
    });
  }

  async nextJson(): Promise<Json> {
    for (;;) {
      const f = await this.next();
      if (f.json) return f.json;
    }
  }

  list(path: string): Promise<Json[] | null> {
    return this.run(async () => {
      const reqid = this.reqid++;
      this.send({ action: "ls", reqid, path });
      for (;;) {
        const m = await this.nextJson();
        if ("dir" in m && (m.reqid === reqid || m.reqid === undefined)) return Array.isArray(m.dir) ? m.dir : null;
      }
    });
  }

  command(msg: Json): Promise<void> {
    return this.run(async () => this.send({ ...msg, reqid: this.reqid++ }));
  }

  upload(dir: string, file: File, progress: (sent: number) => void): Promise<void> {
    return this.run(async () => {
      const reqid = `up${this.reqid++}`;
      this.send({ action: "upload", reqid, path: dir, name: file.name, size: file.size });
      const answer = await this.nextJson();
      if (answer.action !== "uploadstart") throw new Error(`The device cannot write ${file.name} in ${dir} (is the folder writable?).`);
      let offset = 0;
      let inFlight = 0;
      while (offset < file.size || inFlight > 0) {
        while (offset < file.size && inFlight < UPLOAD_WINDOW) {
          const chunk = new Uint8Array(await file.slice(offset, offset + UPLOAD_CHUNK).arrayBuffer());
          let frame = chunk;
          if (chunk[0] === 0 || chunk[0] === 0x7b) {
            frame = new Uint8Array(chunk.length + 1);
            frame.set(chunk, 1);
          }
          this.send(frame);
          offset += chunk.length;
          inFlight++;
        }
        const ack = await this.nextJson();
        if (ack.action === "uploadack") {
          inFlight--;
          progress(Math.max(0, offset - inFlight * UPLOAD_CHUNK));
        } else if (ack.action === "uploaderror") {
          throw new Error(`The device could not write ${file.name}; the remote copy is incomplete.`);
        }
      }
      this.send({ action: "uploaddone", reqid });
      for (;;) {
        if ((await this.nextJson()).action === "uploaddone") break;
      }
      progress(file.size);
    });
  }

  download(path: string, progress: (received: number) => void): Promise<Blob> {
    return this.run(async () => {
      const id = `dl${this.reqid++}`;
      this.send({ action: "download", sub: "start", id, path });
      const answer = await this.nextJson();
      if (answer.sub !== "start") throw new Error(`The device cannot read ${path}.`);
      this.send({ action: "download", sub: "startack", id, ack: DOWNLOAD_WINDOW });
      const parts: Uint8Array[] = [];
      let received = 0;
      for (;;) {
        const f = await this.next();
        if (!f.bytes) {
          if (f.json?.sub === "cancel") throw new Error(`The device stopped sending ${path}.`);
          continue;
        }
        if (f.bytes.length < 4) throw new Error("Malformed data from the device.");
        parts.push(f.bytes.slice(4));
        received += f.bytes.length - 4;
        progress(received);
        if ((f.bytes[3] & 1) === 1) break;
        this.send({ action: "download", sub: "ack", id });
      }
      return new Blob(parts as BlobPart[]);
    });
  }

  close(): void {
    this.ws.onclose = null;
    this.ws.close();
  }
}

export function joinPath(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "")}/${name}`;
}

export function filesTab(_app: App, node: Json, body: HTMLElement): () => void {
  let session: FilesSession | null = null;
  let cwd = "/";
  let entries: Json[] = [];
  const crumbs = h("nav", { class: "breadcrumbs", id: "file-crumbs", "aria-label": "Folder" });
  const pathInput = h("input", { type: "text", id: "file-path", "aria-label": "Folder path", spellcheck: "false" });
  const go = h("button", { type: "submit", class: "small" }, "Go");
  const upInput = h("input", { type: "file", id: "file-upload", multiple: true, class: "sr" });
  const upButton = h("button", { type: "button", class: "small", id: "file-upload-button" }, "Upload…");
  const mkdir = h("button", { type: "button", class: "small", id: "file-mkdir" }, "New folder");
  const refresh = h("button", { type: "button", class: "small ghost", id: "file-refresh" }, "Refresh");
  const status = h("div", { id: "file-status" });
  const table = h("div", { id: "file-list" }, h("p", { class: "muted" }, "Connecting to the device…"));
  const pathForm = h("form", { class: "path" }, pathInput, go);
  body.append(h("div", { class: "toolbar" }, crumbs), h("div", { class: "toolbar" }, pathForm, upButton, upInput, mkdir, refresh), status, table);

  const fail = (e: unknown) => replace(status, notice("error", errorText(e)));

  const renderCrumbs = () => {
    const parts = cwd.split("/").filter(Boolean);
    const items: Node[] = [h("button", { type: "button", class: "link", "data-path": "/" }, "/")];
    parts.forEach((p, i) => {
      const path = "/" + parts.slice(0, i + 1).join("/");
      items.push(h("span", { class: "sep" }, " › "), h("button", { type: "button", class: "link", "data-path": path }, p));
    });
    replace(crumbs, items);
    crumbs.querySelectorAll<HTMLButtonElement>("button").forEach((b) => b.addEventListener("click", () => open(b.dataset.path!)));
    pathInput.value = cwd;
  };

  const renderList = () => {
    const sorted = [...entries].sort((a, b) => (a.t === b.t ? String(a.n).localeCompare(String(b.n)) : Number(b.t) - Number(a.t)));
    if (sorted.length === 0) {
      replace(table, h("p", { class: "muted" }, "This folder is empty."));
      return;
    }
    replace(
      table,
      h(
        "table",
        { class: "files" },
        h("thead", {}, h("tr", {}, ["Name", "Size", "Modified", ""].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          sorted.map((e) => {
            const folder = Number(e.t) === 2 || Number(e.t) === 1;
            const name = String(e.n);
            const nameCell = folder
              ? h("button", { type: "button", class: "link folder" }, `${name}/`)
              : h("button", { type: "button", class: "link file" }, name);
            nameCell.addEventListener("click", () => (folder ? open(joinPath(cwd, name)) : download(name, Number(e.s ?? 0))));
            const rename = h("button", { type: "button", class: "small ghost", "aria-label": `Rename ${name}` }, "Rename");
            rename.addEventListener("click", () => renameDialog(name));
            const del = h("button", { type: "button", class: "small danger", "aria-label": `Delete ${name}` }, "Delete");
            del.addEventListener("click", () => deleteDialog(name, folder));
            const actions: Node[] = [rename, del];
            if (!folder) {
              const dl = h("button", { type: "button", class: "small ghost", "aria-label": `Download ${name}` }, "Download");
              dl.addEventListener("click", () => download(name, Number(e.s ?? 0)));
              actions.unshift(dl);
            }
            return h("tr", { "data-name": name }, h("td", {}, nameCell), h("td", {}, folder ? "" : formatBytes(Number(e.s ?? 0))), h("td", {}, e.d ? new Date(e.d).toLocaleString() : ""), h("td", { class: "actions" }, actions));
          }),
        ),
      ),
    );
  };

  const open = async (path: string) => {
    if (!session) return;
    try {
      const list = await session.list(path || "/");
      if (list === null) {
        replace(status, notice("error", `Cannot open ${path}: it does not exist or the agent may not read it.`));
        return;
      }
      // Navigating clears the last message; re-listing after an operation keeps it.
      if ((path || "/") !== cwd) status.replaceChildren();
      cwd = path || "/";
      entries = list;
      renderCrumbs();
      renderList();
    } catch (e) {
      fail(e);
    }
  };

  const progressRow = (label: string, total: number) => {
    const bar = h("progress", { max: Math.max(total, 1), value: 0, id: "transfer-progress" });
    const text = h("span", {}, `${label}: 0 of ${formatBytes(total)}`);
    replace(status, h("div", { class: "transfer" }, text, bar));
    return (n: number) => {
      bar.value = n;
      text.textContent = `${label}: ${formatBytes(n)} of ${formatBytes(total)}`;
    };
  };

  const download = async (name: string, size: number) => {
    if (!session) return;
    const update = progressRow(`Downloading ${name}`, size);
    try {
      const blob = await session.download(joinPath(cwd, name), update);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, class: "sr" });
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60000);
      replace(status, notice("ok", `Downloaded ${name} (${formatBytes(blob.size)}).`));
    } catch (e) {
      fail(e);
    }
  };

  const upload = async (files: FileList) => {
    if (!session) return;
    for (const file of Array.from(files)) {
      const update = progressRow(`Uploading ${file.name}`, file.size);
      try {
        await session.upload(cwd, file, update);
        replace(status, notice("ok", `Uploaded ${file.name} (${formatBytes(file.size)}).`));
      } catch (e) {
        fail(e);
        break;
      }
    }
    await open(cwd);
  };

  const nameDialog = (title: string, label: string, initial: string, submit: string, then: (name: string) => Promise<void>) => {
    const input = h("input", { type: "text", value: initial, id: "name-input", required: true, spellcheck: "false" });
    const ok = h("button", { type: "submit", form: "name-form" }, submit);
    const form = h("form", { id: "name-form" }, h("label", {}, label, input));
    const dlg = dialog(title, [form], [ok]);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name || name.includes("/")) {
        toast("error", "Give a name without slashes.");
        return;
      }
      dlg.close();
      try {
        await then(name);
      } catch (e) {
        fail(e);
      }
    });
    input.focus();
    input.select();
  };

  const renameDialog = (old: string) =>
    nameDialog(`Rename ${old}`, "New name", old, "Rename", async (name) => {
      await session!.command({ action: "rename", path: cwd, oldname: old, newname: name });
      await open(cwd);
      if (!entries.some((e) => e.n === name)) replace(status, notice("error", `Could not rename ${old} (is ${name} taken, is the folder writable?).`));
    });

  const deleteDialog = (name: string, folder: boolean) => {
    const yes = h("button", { type: "button", class: "danger", id: "confirm-delete" }, "Delete");
    const dlg = dialog(`Delete ${name}?`, [h("p", {}, folder ? `The folder ${name} and everything in it will be deleted from the device.` : `${name} will be deleted from the device.`)], [yes]);
    yes.addEventListener("click", async () => {
      dlg.close();
      try {
        await session!.command({ action: "rm", path: cwd, delfiles: [name], rec: folder });
        await open(cwd);
        if (entries.some((e) => e.n === name)) replace(status, notice("error", `Could not delete ${name}.`));
      } catch (e) {
        fail(e);
      }
    });
  };

  pathForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    open(pathInput.value.trim() || "/");
  });
  upButton.addEventListener("click", () => upInput.click());
  upInput.addEventListener("change", () => {
    if (upInput.files && upInput.files.length) upload(upInput.files);
    upInput.value = "";
  });
  mkdir.addEventListener("click", () =>
    nameDialog("New folder", "Folder name", "", "Create", async (name) => {
      await session!.command({ action: "mkdir", path: joinPath(cwd, name) });
      await open(cwd);
      if (!entries.some((e) => e.n === name)) replace(status, notice("error", `Could not create ${name} (is the folder writable?).`));
    }),
  );
  refresh.addEventListener("click", () => open(cwd));

  let stopped = false;
  openRelay(node._id, FILES)
    .then((ws) => {
      if (stopped) {
        ws.close();
        return;
      }
      session = new FilesSession(ws, (reason) => replace(status, notice("error", `The file session ended (${reason}). Open the tab again to reconnect.`)));
      return open("/");
    })
    .catch((e) => replace(table, notice("error", errorText(e))));
  return () => {
    stopped = true;
    session?.close();
  };
}
