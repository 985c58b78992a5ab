// One device: overview, desktop, terminal, files, run command and its event log, as tabs.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { formatTime, h, notice, replace } from "../dom";
import { deviceHref, online } from "./devices";
import { terminalTab } from "./terminal";
import { filesTab } from "./files";
import { desktopTab } from "./desktop";
import { eventLog, eventsHref } from "./events";
import { recordingsTab } from "./recordings";
import { settingsCard, tagsOf } from "./device-manage";

type Tab = (app: App, node: Json, body: HTMLElement) => (() => void) | void;

const TABS: [string, string, Tab][] = [
  ["overview", "Overview", overviewTab],
  ["desktop", "Desktop", desktopTab],
  ["terminal", "Terminal", terminalTab],
  ["files", "Files", filesTab],
  ["run", "Run command", runTab],
  ["events", "Events", eventsTab],
  ["recordings", "Recordings", recordingsTab],
];

export function deviceView(app: App, main: HTMLElement, [id, tabName]: string[]): () => void {
  const node = app.nodes.get(id);
  if (!node) {
    replace(main, h("h1", {}, "Device not found"), notice("error", "This device does not exist or you have no rights to it."), h("a", { href: "#/devices" }, "Back to the devices"));
    return () => {};
  }
  const current = TABS.find(([name]) => name === tabName) ?? TABS[0];
  const state = h("span", { id: "device-state", class: "badge" });
  const title = h("h1", { id: "device-name" });
  const renderHead = () => {
    const n = app.nodes.get(id);
    if (!n) {
      // Removed (here or elsewhere) while shown.
      state.textContent = "removed";
      state.className = "badge";
      return;
    }
    title.textContent = n.name || n.rname || id;
    state.textContent = online(n) ? "online" : "offline";
    state.className = `badge ${online(n) ? "online" : "offline"}`;
  };
  renderHead();
  const crumbGroup = h("span", { id: "device-group" });
  const renderGroup = () => {
    // A device moved elsewhere shows its new group.
    const n = app.nodes.get(id) ?? node;
    crumbGroup.textContent = app.meshes.get(n.meshid)?.name ?? "";
  };
  renderGroup();
  const tabs = h(
    "nav",
    { class: "tabs", role: "tablist" },
    TABS.map(([name, label]) =>
      h("a", { href: deviceHref(id, name), role: "tab", class: name === current[0] ? "active" : "", "aria-selected": name === current[0] ? "true" : "false", id: `tab-${name}` }, label),
    ),
  );
  const body = h("div", { class: "tab-body", id: `panel-${current[0]}` });
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/devices" }, "Devices"), " / ", crumbGroup),
    h("div", { class: "device-head" }, title, state),
    tabs,
    body,
  );
  const stopHead = app.onChange(() => {
    renderHead();
    renderGroup();
  });
  const stopTab = current[2](app, node, body);
  return () => {
    stopHead();
    if (stopTab) stopTab();
  };
}

function facts(rows: [string, unknown][]): HTMLElement {
  return h(
    "dl",
    { class: "facts" },
    rows
      .filter(([, v]) => v !== undefined && v !== null && v !== "")
      .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]),
  );
}

const WEEK_MS = 7 * 86400000;

/** MeshCentral's compact power timeline (`[before, start s, state, delta s, state, …]`) as
 *  spans of [start ms, state]. */
export function decodeTimeline(t: unknown[]): [number, number][] {
  const spans: [number, number][] = [];
  if (t.length < 3) return spans;
  let at = Number(t[1]) * 1000;
  spans.push([at, Number(t[2])]);
  for (let i = 3; i + 1 < t.length; i += 2) {
    at += Number(t[i]) * 1000;
    spans.push([at, Number(t[i + 1])]);
  }
  return spans.filter(([time, state]) => Number.isFinite(time) && Number.isFinite(state));
}

/** The week up to `now` as a bar of online and offline segments (unknown before the first
 *  record), each with its times in a tooltip. */
function powerBar(spans: [number, number][], now: number): HTMLElement {
  const from = now - WEEK_MS;
  const segments: [number, number, string][] = [];
  const first = spans.length ? Math.max(spans[0][0], from) : now;
  if (first > from) segments.push([from, first, "unknown"]);
  spans.forEach(([start, state], i) => {
    const end = i + 1 < spans.length ? spans[i + 1][0] : now;
    const a = Math.max(start, from);
    if (end > a) segments.push([a, end, state === 0 ? "offline" : "online"]);
  });
  const bar = h("div", { class: "powerbar", role: "img", "aria-label": "Online and offline over the last 7 days" });
  for (const [a, b, kind] of segments) {
    const seg = h("div", { class: `seg ${kind}`, title: `${kind}: ${formatTime(a)} – ${formatTime(b)}`, "data-state": kind });
    // Through the CSSOM, which the page's style policy allows (no style attribute text).
    seg.style.width = `${((b - a) / WEEK_MS) * 100}%`;
    bar.append(seg);
  }
  const online = segments.filter(([, , k]) => k === "online").reduce((t, [a, b]) => t + (b - a), 0);
  return h(
    "div",
    {},
    bar,
    h("p", { class: "muted powerbar-legend" }, `Online ${Math.round((online / WEEK_MS) * 1000) / 10}% of the last 7 days (green online, grey offline, blank unknown).`),
  );
}

function overviewTab(app: App, node: Json, body: HTMLElement): () => void {
  const sys = h("div", {}, h("p", { class: "muted" }, "Loading system information…"));
  const net = h("div", {}, h("p", { class: "muted" }, "Loading network information…"));
  const timeline = h("div", {}, h("p", { class: "muted" }, "Loading connection history…"));
  const device = h("div");
  // What users change (name, description, tags) shows as soon as the server has it.
  const renderDevice = () => {
    const n = app.nodes.get(node._id) ?? node;
    replace(
      device,
      facts([
        ["Name", n.name],
        ["Description", n.desc],
        ["Tags", tagsOf(n).join(", ")],
        ["Host name", n.rname],
        ["Operating system", n.osdesc],
        ["Address", n.ip],
        ["Agent version", n.agent?.ver ? String(n.agent.ver) : undefined],
        ["Agent core", n.agent?.core],
        ["First seen", formatTime(n.firstconnect)],
        ["Last connected", formatTime(n.lastconnect)],
        ["Device id", n._id],
      ]),
    );
  };
  renderDevice();
  body.append(
    h("section", { class: "card" }, h("h2", {}, "Device"), device),
    settingsCard(app, node),
    h("section", { class: "card" }, h("h2", {}, "Last 7 days"), timeline),
    h("section", { class: "card" }, h("h2", {}, "System"), sys),
    h("section", { class: "card" }, h("h2", {}, "Network"), net),
  );
  app.ctl
    .request("powertimeline", { nodeid: node._id })
    .then((r) => replace(timeline, powerBar(decodeTimeline(r.timeline ?? []), Date.now())))
    .catch((e) => replace(timeline, h("p", { class: "muted" }, `No connection history: ${errorText(e)}`)));
  app.ctl
    .request("getsysinfo", { nodeid: node._id })
    .then((r) => {
      const hw = r.hardware ?? {};
      const rows: [string, unknown][] = [];
      const walk = (prefix: string, v: unknown, depth: number) => {
        if (depth > 3 || rows.length > 60) return;
        if (v && typeof v === "object" && !Array.isArray(v)) {
          for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix} ${k}` : k, x, depth + 1);
        } else if (Array.isArray(v)) {
          rows.push([prefix, v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ")]);
        } else if (v !== undefined && v !== null && v !== "") {
          rows.push([prefix, v]);
        }
      };
      walk("", hw, 0);
      replace(sys, rows.length ? facts(rows) : h("p", { class: "muted" }, "The agent has not reported system information."));
    })
    .catch((e) => replace(sys, h("p", { class: "muted" }, `No system information: ${errorText(e)}`)));
  app.ctl
    .request("getnetworkinfo", { nodeid: node._id })
    .then((r) => {
      const ifs = Object.entries<Json[]>(r.netif2 ?? {});
      if (ifs.length === 0) {
        replace(net, h("p", { class: "muted" }, "The agent has not reported network interfaces."));
        return;
      }
      replace(
        net,
        h(
          "table",
          { class: "plain" },
          h("thead", {}, h("tr", {}, ["Interface", "MAC", "Address", "Netmask", "Gateway"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            ifs.flatMap(([name, addrs]) =>
              (addrs ?? []).map((a) => h("tr", {}, h("td", {}, name), h("td", {}, a.mac ?? ""), h("td", {}, a.address ?? ""), h("td", {}, a.netmask ?? ""), h("td", {}, a.gateway ?? ""))),
            ),
          ),
        ),
      );
    })
    .catch((e) => replace(net, h("p", { class: "muted" }, `No network information: ${errorText(e)}`)));
  return app.onChange(renderDevice);
}

function runTab(app: App, node: Json, body: HTMLElement): void {
  const cmd = h("textarea", { id: "run-command", rows: 3, placeholder: "uname -a", "aria-label": "Command", spellcheck: "false" });
  const run = h("button", { type: "submit", id: "run-submit" }, "Run");
  const out = h("pre", { class: "output", id: "run-output", "aria-live": "polite" });
  const form = h("form", { class: "run" }, h("label", { for: "run-command" }, "Shell command (runs with the agent's account; output is returned when it ends)"), cmd, run);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = cmd.value.trim();
    if (!text) return;
    run.disabled = true;
    out.textContent = "Running…";
    try {
      const r = await app.ctl.request("runcommands", { nodeids: [node._id], type: 0, cmds: text, runAsUser: 0, reply: true }, 120000);
      out.textContent = typeof r.result === "string" ? r.result : "";
      if (!out.textContent) out.textContent = "(no output)";
    } catch (e) {
      out.textContent = "";
      out.append(notice("error", errorText(e)));
    } finally {
      run.disabled = false;
    }
  });
  body.append(form, out);
}

function eventsTab(app: App, node: Json, body: HTMLElement): () => void {
  body.append(h("p", { class: "muted" }, h("a", { href: eventsHref({ node: node._id }) }, "Open in the event log"), " (all devices, more filters)."));
  return eventLog(app, body, {}, { fixed: { node: node._id } });
}
