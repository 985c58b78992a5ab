// The event log (audit trail): filters by user, device, group, action and time, a table of
// what happened (newest first) with "Load more", and exports of the current filter as CSV or
// JSON Lines. What each user may see is decided by the server. The page `#/events` and the
// device page's events tab (one device) share it; `#/events?user=<id>` presets a filter.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { fileStamp, formatTime, h, notice, replace, saveFile, toast } from "../dom";
import { deviceHref } from "./devices";
import { playRecordingById } from "./recordings";

/** Rows per page, and what "Load more" adds. */
const PAGE = 100;
/** Most events an export holds (the server's limit per request). */
const EXPORT_MAX = 10000;

/** The actions the server records, with what they mean. */
const ACTIONS: [string, string][] = [
  ["login", "sign-ins"],
  ["logout", "sign-outs"],
  ["2fa", "second factors"],
  ["accountcreate", "account created"],
  ["accountchange", "account changed"],
  ["accountremove", "account removed"],
  ["loginTokenAdded", "login token created"],
  ["createmesh", "device group created"],
  ["meshchange", "device group changed"],
  ["deletemesh", "device group removed"],
  ["addmeshuser", "member added"],
  ["removemeshuser", "member removed"],
  ["addnode", "device added"],
  ["changenode", "device changed"],
  ["nodeconnect", "device connected"],
  ["runcommands", "commands run"],
  ["relaylog", "remote sessions"],
  ["fileop", "file operations"],
  ["gatewayconnect", "gateway connected"],
  ["gatewayapprove", "gateway admitted"],
  ["wifidogcmd", "gateway command"],
];

/** The filter as the URL and the form hold it. Times are `datetime-local` values. */
export type EventFilter = {
  user?: string;
  node?: string;
  group?: string;
  action?: string;
  from?: string;
  until?: string;
};

const FILTER_KEYS: (keyof EventFilter)[] = ["user", "node", "group", "action", "from", "until"];

/** `#/events` with a preset filter. */
export function eventsHref(filter: EventFilter): string {
  const q = new URLSearchParams();
  for (const k of FILTER_KEYS) if (filter[k]) q.set(k, filter[k]!);
  const s = q.toString();
  return s ? `#/events?${s}` : "#/events";
}

/** Unix ms of a `datetime-local` value (local time), or undefined. */
function localMs(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

/** The `events` request for a filter. */
export function eventsRequest(filter: EventFilter, limit: number): Json {
  const req: Json = { limit };
  if (filter.node) req.nodeid = filter.node;
  if (filter.user) req.userid = filter.user;
  if (filter.group) req.meshid = filter.group;
  if (filter.action) req.filter = filter.action;
  const since = localMs(filter.from);
  const until = localMs(filter.until);
  if (since !== undefined) req.since = since;
  if (until !== undefined) req.until = until;
  return req;
}

/** A short name for an id the app does not know: the part after the last slash. */
function shortId(id: string): string {
  return id.slice(id.lastIndexOf("/") + 1, id.lastIndexOf("/") + 13);
}

function deviceName(app: App, e: Json): string {
  if (!e.nodeid) return "";
  const n = app.nodes.get(e.nodeid);
  return n ? String(n.name || n.rname || e.nodeid) : String(e.node?.name ?? shortId(e.nodeid));
}

function groupName(app: App, e: Json): string {
  if (!e.meshid) return "";
  const g = app.meshes.get(e.meshid);
  if (g) return String(g.name);
  // A removed group's own event names it.
  return String(e.action === "deletemesh" && e.name ? e.name : shortId(e.meshid));
}

function userName(e: Json): string {
  return String(e.username ?? (e.userid ? String(e.userid).replace(/^user\/[^/]*\//, "") : ""));
}

/** The browser or tool of a user agent, in a few words (the whole text is the tooltip). */
export function shortClient(ua: string | undefined): string {
  if (!ua) return "";
  const known: [RegExp, string][] = [
    [/Edg\/(\d+)/, "Edge"],
    [/OPR\/(\d+)/, "Opera"],
    [/Firefox\/(\d+)/, "Firefox"],
    [/HeadlessChrome\/(\d+)/, "Chrome (headless)"],
    [/Chrom(?:e|ium)\/(\d+)/, "Chrome"],
    [/Version\/(\d+).*Safari/, "Safari"],
  ];
  for (const [re, name] of known) {
    const m = ua.match(re);
    if (m) return `${name} ${m[1]}`;
  }
  return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
}

/** The message, with the details some actions carry. */
function message(e: Json): string {
  let msg = String(e.msg ?? "");
  if (e.action === "runcommands" && typeof e.cmds === "string") msg += `: ${e.cmds}`;
  if (e.action === "login" && e.method && !msg.includes(String(e.method))) msg += ` (${e.method})`;
  return msg;
}

/** One CSV field: quoted when it holds a comma, quote or line break (RFC 4180). */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const CSV_COLUMNS = ["time", "action", "outcome", "user", "address", "device", "group", "message", "client"];

function csvRow(app: App, e: Json): string {
  return [
    String(e.time ?? ""),
    String(e.action ?? ""),
    String(e.outcome ?? "success"),
    userName(e),
    String(e.remoteaddr ?? ""),
    deviceName(app, e),
    groupName(app, e),
    String(e.msg ?? ""),
    String(e.useragent ?? ""),
  ]
    .map(csvField)
    .join(",");
}

type Options = {
  /** Filters that are fixed (the device page's tab fixes the device) and not shown. */
  fixed?: EventFilter;
  /** Called with the filter when it changes (the page keeps it in its URL). */
  onFilter?: (f: EventFilter) => void;
};

/** The event log with its filters, into `host`; returns its cleanup. */
export function eventLog(app: App, host: HTMLElement, initial: EventFilter, opts: Options = {}): () => void {
  const fixed = opts.fixed ?? {};
  let filter: EventFilter = { ...initial, ...fixed };
  let limit = PAGE;
  let seq = 0;

  const select = (id: string, label: string, any: string) =>
    h("select", { id, "aria-label": label }, h("option", { value: "" }, any));
  const userSel = select("ev-user", "User", "Any user");
  const deviceSel = select("ev-device", "Device", "Any device");
  const groupSel = select("ev-group", "Device group", "Any group");
  const actionSel = select("ev-action", "Action", "Any action");
  const from = h("input", { type: "datetime-local", id: "ev-from", "aria-label": "From" });
  const until = h("input", { type: "datetime-local", id: "ev-until", "aria-label": "Until" });
  const clear = h("button", { type: "button", class: "small ghost", id: "ev-clear" }, "Clear filters");
  const csv = h("button", { type: "button", class: "small", id: "ev-export-csv" }, "Export CSV");
  const jsonl = h("button", { type: "button", class: "small", id: "ev-export-jsonl" }, "Export JSON Lines");
  const summary = h("p", { class: "muted", id: "ev-summary" });
  const list = h("div", { id: "ev-list" }, h("p", { class: "muted" }, "Loading events…"));
  const more = h("button", { type: "button", class: "small ghost", id: "ev-more", hidden: true }, "Load more");

  const labeled = (text: string, el: HTMLElement) => h("label", { class: "filter" }, h("span", {}, text), el);
  host.append(
    h(
      "div",
      { class: "filters", id: "ev-filters" },
      fixed.user ? null : labeled("User", userSel),
      fixed.node ? null : labeled("Device", deviceSel),
      fixed.node || fixed.group ? null : labeled("Group", groupSel),
      labeled("Action", actionSel),
      labeled("From", from),
      labeled("Until", until),
      h("div", { class: "filter-actions" }, clear, csv, jsonl),
    ),
    summary,
    list,
    more,
  );

  // Options of the selects: what the app knows, plus the filter's own value.
  const fill = (sel: HTMLSelectElement, entries: [string, string][], value: string | undefined) => {
    const first = sel.options[0];
    const seen = new Set(entries.map(([v]) => v));
    if (value && !seen.has(value)) entries.push([value, shortId(value) || value]);
    // Unchanged lists are left alone (an open select would close on every device change).
    const key = JSON.stringify(entries);
    if (sel.dataset.key !== key) {
      sel.dataset.key = key;
      sel.replaceChildren(first, ...entries.map(([v, label]) => h("option", { value: v }, label)));
    }
    sel.value = value ?? "";
  };
  const knownUsers = new Map<string, string>();
  const fillUsers = () => {
    if (app.me._id) knownUsers.set(app.me._id, String(app.me.name ?? app.me._id));
    for (const m of app.meshes.values()) {
      for (const [uid, link] of Object.entries<Json>(m.links ?? {})) if (!knownUsers.has(uid)) knownUsers.set(uid, String(link.name ?? shortId(uid)));
    }
    fill(userSel, [...knownUsers].sort((a, b) => a[1].localeCompare(b[1])), filter.user);
  };
  const fillLists = () => {
    fillUsers();
    fill(
      deviceSel,
      [...app.nodes.values()].map((n): [string, string] => [n._id, String(n.name || n.rname || n._id)]).sort((a, b) => a[1].localeCompare(b[1])),
      filter.node,
    );
    fill(groupSel, [...app.meshes.values()].map((g): [string, string] => [g._id, String(g.name)]).sort((a, b) => a[1].localeCompare(b[1])), filter.group);
  };
  fill(actionSel, ACTIONS.map(([a, what]) => [a, `${a} (${what})`]), filter.action);
  fillLists();
  from.value = filter.from ?? "";
  until.value = filter.until ?? "";
  if (app.canManageUsers()) {
    app.ctl
      .request("users")
      .then((r) => {
        for (const u of r.users ?? []) knownUsers.set(u._id, String(u.name));
        fillUsers();
      })
      .catch(() => {});
  }

  const render = (events: Json[]) => {
    summary.textContent =
      events.length === 0
        ? ""
        : `${events.length} event${events.length === 1 ? "" : "s"}, newest first${events.length >= limit ? " (there are more)" : ""}.`;
    more.hidden = events.length < limit || limit >= EXPORT_MAX;
    if (events.length === 0) {
      replace(list, h("p", { class: "muted", id: "ev-empty" }, "No events match."));
      return;
    }
    replace(
      list,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "plain events", id: "event-log" },
          h("thead", {}, h("tr", {}, ["Time", "Action", "Outcome", "User", "Address", "Device", "Group", "Message", "Client"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            events.map((e) => {
              const failed = e.outcome === "failure";
              const device = deviceName(app, e);
              const play =
                e.action === "relaylog" && typeof e.recording === "string"
                  ? h("button", { type: "button", class: "small", "data-recording": e.recording, onclick: () => playRecordingById(app, e.recording, e.nodeid) }, "Play")
                  : null;
              return h(
                "tr",
                { "data-action": e.action ?? "", class: failed ? "failure" : "" },
                h("td", { class: "time", title: String(e.time ?? "") }, formatTime(e.time)),
                h("td", {}, e.action ?? ""),
                h("td", {}, h("span", { class: failed ? "badge failure" : "badge success" }, failed ? "failure" : "success")),
                h("td", {}, userName(e)),
                h("td", {}, e.remoteaddr ?? ""),
                h("td", {}, e.nodeid && app.nodes.has(e.nodeid) && !fixed.node ? h("a", { href: deviceHref(e.nodeid) }, device) : device),
                h("td", {}, groupName(app, e)),
                h("td", { class: "msg" }, message(e), play ? " " : null, play),
                h("td", { title: e.useragent ?? "" }, shortClient(e.useragent)),
              );
            }),
          ),
        ),
      ),
    );
  };

  const load = async () => {
    const mine = ++seq;
    try {
      const r = await app.ctl.request("events", eventsRequest(filter, limit));
      if (mine !== seq) return;
      render(r.events ?? []);
    } catch (e) {
      if (mine !== seq) return;
      replace(list, notice("error", `Could not load events: ${errorText(e)}`));
      more.hidden = true;
    }
  };

  const changed = () => {
    filter = {
      ...fixed,
      ...(fixed.user ? {} : { user: userSel.value || undefined }),
      ...(fixed.node ? {} : { node: deviceSel.value || undefined }),
      ...(fixed.node || fixed.group ? {} : { group: groupSel.value || undefined }),
      action: actionSel.value || undefined,
      from: from.value || undefined,
      until: until.value || undefined,
    };
    limit = PAGE;
    opts.onFilter?.(filter);
    load();
  };
  for (const el of [userSel, deviceSel, groupSel, actionSel, from, until]) el.addEventListener("change", changed);
  clear.addEventListener("click", () => {
    for (const el of [userSel, deviceSel, groupSel, actionSel, from, until]) el.value = "";
    changed();
  });
  more.addEventListener("click", () => {
    limit = Math.min(EXPORT_MAX, limit + PAGE);
    load();
  });

  const exportAs = async (kind: "csv" | "jsonl", button: HTMLButtonElement) => {
    button.disabled = true;
    try {
      const r = await app.ctl.request("events", eventsRequest(filter, EXPORT_MAX), 120000);
      const events: Json[] = r.events ?? [];
      const name = `ironmesh-events-${fileStamp()}.${kind === "csv" ? "csv" : "jsonl"}`;
      if (kind === "csv") {
        saveFile(name, "text/csv;charset=utf-8", [CSV_COLUMNS.join(","), ...events.map((e) => csvRow(app, e))].join("\n") + "\n");
      } else {
        saveFile(name, "application/jsonl;charset=utf-8", events.map((e) => JSON.stringify(e) + "\n").join(""));
      }
      toast(
        events.length >= EXPORT_MAX ? "info" : "ok",
        events.length >= EXPORT_MAX
          ? `Exported the newest ${EXPORT_MAX.toLocaleString()} events; narrow the filter (e.g. "Until") for older ones.`
          : `Exported ${events.length} event${events.length === 1 ? "" : "s"}.`,
      );
    } catch (e) {
      toast("error", `Export failed: ${errorText(e)}`);
    } finally {
      button.disabled = false;
    }
  };
  csv.addEventListener("click", () => exportAs("csv", csv));
  jsonl.addEventListener("click", () => exportAs("jsonl", jsonl));

  load();
  // New events that may match: reload (debounced, at most every 1.5 s).
  let timer: number | undefined;
  const stopEvents = app.onServerEvent((ev) => {
    if (filter.node && ev.nodeid !== filter.node) return;
    if (filter.group && ev.meshid !== filter.group) return;
    if (filter.user && ev.userid !== filter.user) return;
    if (filter.action && ev.action !== filter.action) return;
    if (filter.until) return;
    if (timer !== undefined) return;
    timer = window.setTimeout(() => {
      timer = undefined;
      load();
    }, 1500);
  });
  const stopChange = app.onChange(fillLists);
  return () => {
    window.clearTimeout(timer);
    stopEvents();
    stopChange();
  };
}

/** `#/events[?filter]`: the whole event log. */
export function eventsView(app: App, main: HTMLElement): () => void {
  // Read from the address itself: the router's decoded parameters would lose "&" and "%".
  const hash = location.hash;
  const params = new URLSearchParams(hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "");
  const initial: EventFilter = {};
  for (const k of FILTER_KEYS) {
    const v = params.get(k);
    if (v) initial[k] = v;
  }
  main.append(
    h("div", { class: "toolbar" }, h("h1", {}, "Events")),
    h("p", { class: "muted" }, "What happened on this server that you may see: sign-ins, changes, remote sessions and commands."),
  );
  const body = h("div");
  main.append(body);
  return eventLog(app, body, initial, {
    // Keep the filter in the address (shareable, kept on reload) without re-rendering.
    onFilter: (f) => history.replaceState(null, "", eventsHref(f)),
  });
}
