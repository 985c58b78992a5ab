// The device list: grouped by device group, live, with search and an online filter; devices
// can be selected to move, tag or remove them together.

import type { App } from "../app";
import type { Json } from "../control";
import { formatTime, h, replace } from "../dom";
import { addDeviceDialog } from "./adddevice";
import { moveDialog, removeDialog, tagDialog, tagsOf } from "./device-manage";

export function deviceHref(id: string, tab = ""): string {
  return `#/device/${encodeURIComponent(id)}${tab ? `/${tab}` : ""}`;
}

export function online(node: Json): boolean {
  return (Number(node.conn ?? 0) & 1) === 1;
}

function matches(node: Json, query: string): boolean {
  if (!query) return true;
  const q = query.toLowerCase();
  return [node.name, node.rname, node.osdesc, node.ip, node.agent?.ver, node.desc, ...tagsOf(node)]
    .filter((v) => v !== undefined && v !== null)
    .some((v) => String(v).toLowerCase().includes(q));
}

export function devicesView(app: App, main: HTMLElement): () => void {
  const search = h("input", { type: "search", id: "device-search", placeholder: "Search name, OS, address…", "aria-label": "Search devices" });
  const filter = h(
    "select",
    { id: "device-filter", "aria-label": "Show" },
    h("option", { value: "all" }, "All devices"),
    h("option", { value: "online" }, "Online"),
    h("option", { value: "offline" }, "Offline"),
  );
  const summary = h("p", { class: "muted", id: "device-summary" });
  const list = h("div", { id: "device-groups" });
  // The devices ticked, by id; what is no longer listed drops out at the next render.
  const selected = new Set<string>();
  const count = h("span", { id: "selection-count" });
  const chosen = () => [...selected].map((id) => app.nodes.get(id)).filter((n): n is Json => n !== undefined);
  const clearSelection = () => {
    selected.clear();
    render();
  };
  const action = (id: string, label: string, open: (app: App, nodes: Json[], after?: () => void) => void, cls = "small") => {
    const b = h("button", { type: "button", class: cls, id }, label);
    b.addEventListener("click", () => open(app, chosen(), clearSelection));
    return b;
  };
  const unselect = h("button", { type: "button", class: "small ghost", id: "selection-clear" }, "Clear selection");
  unselect.addEventListener("click", clearSelection);
  const bar = h(
    "div",
    { class: "selection-bar", id: "selection-bar", hidden: true },
    count,
    action("selection-move", "Move to group…", moveDialog),
    action("selection-tag", "Tags…", tagDialog),
    action("selection-remove", "Remove…", removeDialog, "small danger"),
    unselect,
  );
  main.append(h("div", { class: "toolbar" }, h("h1", {}, "Devices"), search, filter), summary, bar, list);

  const showSelection = () => {
    bar.hidden = selected.size === 0;
    count.textContent = `${selected.size} selected`;
  };
  const row = (n: Json) => {
    const box = h("input", { type: "checkbox", class: "select", "data-node": n._id, "aria-label": `Select ${n.name || n.rname || n._id}` });
    box.checked = selected.has(n._id);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(n._id);
      else selected.delete(n._id);
      showSelection();
    });
    const tags = tagsOf(n);
    return h(
      "tr",
      { class: online(n) ? "device online" : "device offline", "data-node": n._id },
      h("td", { class: "pick" }, box, h("span", { class: "dot", title: online(n) ? "online" : "offline" }), h("span", { class: "sr" }, online(n) ? "online" : "offline")),
      h(
        "td",
        { class: "name" },
        h("a", { href: deviceHref(n._id) }, n.name || n.rname || n._id),
        tags.length ? h("span", { class: "tags" }, tags.map((t) => h("span", { class: "tag" }, t))) : null,
      ),
      h("td", { "data-label": "OS" }, n.osdesc ?? ""),
      h("td", { "data-label": "Agent" }, n.agent?.core ?? (n.agent?.ver ? `v${n.agent.ver}` : "")),
      h("td", { "data-label": "Address" }, n.ip ?? ""),
      h("td", { "data-label": "Last seen" }, online(n) ? "now" : formatTime(n.lastconnect)),
    );
  };

  const render = () => {
    const query = search.value.trim();
    const show = filter.value;
    const groups = [...app.meshes.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const all = [...app.nodes.values()];
    for (const id of selected) if (!app.nodes.has(id)) selected.delete(id);
    showSelection();
    summary.textContent = `${all.length} device${all.length === 1 ? "" : "s"}, ${all.filter(online).length} online`;
    // Devices shared with this user one by one, whose group they cannot see.
    const loose = all.filter((n) => !app.meshes.has(n.meshid));
    if (loose.length) groups.push({ _id: null, name: "Other devices shared with you", loose: true });
    if (groups.length === 0) {
      replace(
        list,
        h("div", { class: "empty" }, h("p", {}, "No device groups yet. A device joins a group when its agent is installed."), h("a", { href: "#/admin/groups", class: "button" }, "Create a device group")),
      );
      return;
    }
    replace(
      list,
      groups.map((group) => {
        const nodes = all
          .filter((n) => (group.loose ? !app.meshes.has(n.meshid) : n.meshid === group._id) && matches(n, query))
          .filter((n) => show === "all" || (show === "online") === online(n))
          .sort((a, b) => String(a.name).localeCompare(String(b.name)));
        const add = group.loose ? null : h("button", { type: "button", class: "small", "data-group": group._id }, "Add device");
        add?.addEventListener("click", () => addDeviceDialog(group));
        return h(
          "section",
          { class: "group", "data-group-name": group.name },
          h("div", { class: "group-head" }, h("h2", {}, group.name), add),
          nodes.length === 0
            ? h("p", { class: "muted" }, query || show !== "all" ? "No device matches." : "No devices in this group yet.")
            : h(
                "table",
                { class: "devices" },
                h("thead", {}, h("tr", {}, ["", "Name", "Operating system", "Agent", "Address", "Last seen"].map((t) => h("th", {}, t)))),
                h("tbody", {}, nodes.map(row)),
              ),
        );
      }),
    );
  };
  search.addEventListener("input", render);
  filter.addEventListener("change", render);
  render();
  return app.onChange(render);
}
