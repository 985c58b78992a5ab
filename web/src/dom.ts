// DOM building without HTML strings: every value becomes a text node or a property, so
// text reported by devices (host names, OS names, file names) can never become markup.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === "class") {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

export function replace(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A message strip: errors a person can act on, or a confirmation. */
export function notice(kind: "error" | "ok" | "info", text: string): HTMLElement {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

let toastTimer: number | undefined;

/** Shows a short message at the top of the page. */
export function toast(kind: "error" | "ok" | "info", text: string): void {
  const host = document.getElementById("toast") ?? document.body.appendChild(h("div", { id: "toast" }));
  replace(host, notice(kind, text));
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => host.replaceChildren(), kind === "error" ? 10000 : 4000);
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function formatTime(ms: number | string | undefined): string {
  if (ms === undefined || ms === null || ms === "" || ms === 0) return "never";
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toLocaleString();
}

/** A modal dialog; resolves when closed. */
export function dialog(title: string, body: Node[], actions: HTMLButtonElement[]): HTMLDialogElement {
  const close = h("button", { type: "button", class: "ghost", "aria-label": "Close" }, "✕");
  const dlg = h(
    "dialog",
    { class: "dialog" },
    h("header", {}, h("h2", {}, title), close),
    h("div", { class: "dialog-body" }, body),
    h("footer", {}, actions),
  );
  close.addEventListener("click", () => dlg.close());
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

/** Hands text to the browser as a file download (a Blob, nothing leaves the page). */
export function saveFile(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A local date and time for file names: 2024-05-01-1405. */
export function fileStamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
