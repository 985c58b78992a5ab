// The device list: grouped by device group, live, with search and an online filter.

import type { App } from "../app";
import type { Json } from "../control";
import { formatTime, h, replace } from "../dom";
import { addDeviceDialog } from "./adddevice";

export function deviceHref(id: string, tab = ""): string {
  return `#/device/${encodeURIComponent(id)}${tab ? `/${tab}` : ""}`;
}

export function online(node: Json): boolean {
  return (Number(node.conn ?? 0) & 1) === 1;
}

function matches(node: Json, query: string): boolean {
  if (!query) return true;
  const q = query.toLowerCase();
  return [node.name, node.rname, node.osdesc, node.ip, node.agent?.ver]
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
  main.append(h("div", { class: "toolbar" }, h("h1", {}, "Devices"), search, filter), summary, list);

  const render = () => {
    const query = search.value.trim();
    const show = filter.value;
    const groups = [...app.meshes.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const all = [...app.nodes.values()];
    summary.textContent = `${all.length} device${all.length === 1 ? "" : "s"}, ${all.filter(online).length} online`;
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
          .filter((n) => n.meshid === group._id && matches(n, query))
          .filter((n) => show === "all" || (show === "online") === online(n))
          .sort((a, b) => String(a.name).localeCompare(String(b.name)));
        const add = h("button", { type: "button", class: "small", "data-group": group._id }, "Add device");
        add.addEventListener("click", () => addDeviceDialog(group));
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
                h(
                  "tbody",
                  {},
                  nodes.map((n) =>
                    h(
                      "tr",
                      { class: online(n) ? "device online" : "device offline", "data-node": n._id },
                      h("td", {}, h("span", { class: "dot", title: online(n) ? "online" : "offline" }), h("span", { class: "sr" }, online(n) ? "online" : "offline")),
                      h("td", { class: "name" }, h("a", { href: deviceHref(n._id) }, n.name || n.rname || n._id)),
                      h("td", { "data-label": "OS" }, n.osdesc ?? ""),
                      h("td", { "data-label": "Agent" }, n.agent?.core ?? (n.agent?.ver ? `v${n.agent.ver}` : "")),
                      h("td", { "data-label": "Address" }, n.ip ?? ""),
                      h("td", { "data-label": "Last seen" }, online(n) ? "now" : formatTime(n.lastconnect)),
                    ),
                  ),
                ),
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
