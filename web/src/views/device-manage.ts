// Changing devices: name, description and tags (`changedevice`), group (`changeDeviceMesh`)
// and removal (`removedevices`). Several devices are changed one request each, so every
// device's refusal is reported with its name.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { dialog, h, notice, replace, toast } from "../dom";

/** A device's tags (the server keeps them sorted and distinct). */
export function tagsOf(node: Json): string[] {
  return Array.isArray(node.tags) ? node.tags.map(String) : [];
}

/** Tags typed as text: comma-separated, trimmed, empty ones dropped. */
export function parseTags(text: string): string[] {
  return text
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "");
}

/** MeshCentral removes every tag when given "". */
function tagsField(tags: string[]): string[] | string {
  return tags.length ? tags : "";
}

function nameOf(node: Json): string {
  return String(node.name || node.rname || node._id);
}

/** Runs `work` for each device; returns "name: reason" for each refusal. */
async function eachDevice(nodes: Json[], work: (node: Json) => Promise<unknown>): Promise<string[]> {
  const failures: string[] = [];
  for (const node of nodes) {
    try {
      await work(node);
    } catch (e) {
      failures.push(`${nameOf(node)}: ${errorText(e)}`);
    }
  }
  return failures;
}

/** Closes the dialog and confirms when every device was changed; otherwise lists the
 *  refusals in it. */
function report(dlg: HTMLDialogElement, errorBox: HTMLElement, failures: string[], done: string, after?: () => void): void {
  if (failures.length === 0) {
    dlg.close();
    toast("ok", done);
    after?.();
    return;
  }
  replace(errorBox, failures.map((f) => notice("error", f)));
}

function counted(nodes: Json[]): string {
  return nodes.length === 1 ? nameOf(nodes[0]) : `${nodes.length} devices`;
}

/** Moves devices to another device group (edit group on both groups, manage devices on the
 *  target). */
export function moveDialog(app: App, nodes: Json[], after?: () => void): void {
  const current = new Set(nodes.map((n) => n.meshid));
  const groups = [...app.meshes.values()]
    .filter((g) => !(current.size === 1 && current.has(g._id)))
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const select = h("select", { id: "move-group", "aria-label": "Device group" }, groups.map((g) => h("option", { value: g._id }, g.name)));
  const errorBox = h("div");
  const ok = h("button", { type: "button", id: "move-submit", disabled: groups.length === 0 }, "Move");
  const dlg = dialog(
    `Move ${counted(nodes)}`,
    [errorBox, groups.length ? h("label", { class: "field" }, h("span", {}, "To the device group"), select) : h("p", { class: "muted" }, "There is no other device group.")],
    [ok],
  );
  ok.addEventListener("click", async () => {
    ok.disabled = true;
    const target = app.meshes.get(select.value);
    const failures = await eachDevice(nodes, (n) => app.ctl.request("changeDeviceMesh", { nodeids: [n._id], meshid: select.value }));
    ok.disabled = false;
    report(dlg, errorBox, failures, `Moved ${counted(nodes)} to ${target?.name ?? "the group"}.`, after);
  });
}

/** Adds and removes tags on devices. */
export function tagDialog(app: App, nodes: Json[], after?: () => void): void {
  const add = h("input", { type: "text", id: "tag-add", placeholder: "e.g. office, linux", autocomplete: "off" });
  const remove = h("input", { type: "text", id: "tag-remove", autocomplete: "off" });
  const errorBox = h("div");
  const ok = h("button", { type: "button", id: "tag-submit" }, "Apply");
  const dlg = dialog(
    `Tags of ${counted(nodes)}`,
    [
      errorBox,
      h("label", { class: "field" }, h("span", {}, "Add tags (comma-separated)"), add),
      h("label", { class: "field" }, h("span", {}, "Remove tags (comma-separated)"), remove),
    ],
    [ok],
  );
  add.focus();
  ok.addEventListener("click", async () => {
    const added = parseTags(add.value);
    const removed = new Set(parseTags(remove.value));
    ok.disabled = true;
    const failures = await eachDevice(nodes, (n) => {
      const tags = [...new Set([...tagsOf(n), ...added])].filter((t) => !removed.has(t));
      return app.ctl.request("changedevice", { nodeid: n._id, tags: tagsField(tags) });
    });
    ok.disabled = false;
    report(dlg, errorBox, failures, `Tags of ${counted(nodes)} changed.`, after);
  });
}

/** Removes devices from the server, after asking. */
export function removeDialog(app: App, nodes: Json[], after?: () => void): void {
  const errorBox = h("div");
  const yes = h("button", { type: "button", class: "danger", id: "confirm-remove-devices" }, nodes.length === 1 ? "Remove device" : `Remove ${nodes.length} devices`);
  const dlg = dialog(
    `Remove ${counted(nodes)}?`,
    [
      errorBox,
      h("p", {}, "The server forgets the device, its settings and who may use it; its history stays in the event log."),
      h("p", { class: "muted" }, "A connected ironmesh-agent uninstalls itself. Another agent that connects again joins its group as a new device."),
    ],
    [yes],
  );
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    const failures = await eachDevice(nodes, (n) => app.ctl.request("removedevices", { nodeids: [n._id] }));
    yes.disabled = false;
    report(dlg, errorBox, failures, `Removed ${counted(nodes)}.`, after);
  });
}

/** The device page's settings: name, description, tags, group, removal. */
export function settingsCard(app: App, node: Json): HTMLElement {
  const n = app.nodes.get(node._id) ?? node;
  const name = h("input", { type: "text", id: "device-rename", value: String(n.name ?? ""), "aria-label": "Name", autocomplete: "off" });
  const desc = h("textarea", { id: "device-desc", rows: 2, "aria-label": "Description" });
  desc.value = String(n.desc ?? "");
  const tags = h("input", { type: "text", id: "device-tags", value: tagsOf(n).join(", "), "aria-label": "Tags", autocomplete: "off" });
  const status = h("div", { id: "device-settings-status" });
  const save = h("button", { type: "submit", id: "device-save" }, "Save");
  const form = h(
    "form",
    { class: "settings", id: "device-settings" },
    h("label", { class: "field" }, h("span", {}, "Name"), name),
    h("label", { class: "field" }, h("span", {}, "Description"), desc),
    h("label", { class: "field" }, h("span", {}, "Tags (comma-separated)"), tags),
    save,
    status,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const now = app.nodes.get(node._id) ?? n;
    const fields: Json = {};
    if (name.value.trim() !== String(now.name ?? "")) fields.name = name.value;
    if (desc.value !== String(now.desc ?? "")) fields.desc = desc.value;
    const wanted = [...new Set(parseTags(tags.value))].sort();
    if (wanted.join("\n") !== tagsOf(now).join("\n")) fields.tags = tagsField(wanted);
    if (Object.keys(fields).length === 0) {
      replace(status, notice("info", "Nothing changed."));
      return;
    }
    save.disabled = true;
    try {
      await app.ctl.request("changedevice", { nodeid: node._id, ...fields });
      replace(status, notice("ok", "Saved."));
      // The fields as the server keeps them (a trimmed name, sorted tags).
      await app.refresh();
      const saved = app.nodes.get(node._id);
      if (saved) {
        name.value = String(saved.name ?? "");
        desc.value = String(saved.desc ?? "");
        tags.value = tagsOf(saved).join(", ");
      }
    } catch (e) {
      replace(status, notice("error", errorText(e)));
    } finally {
      save.disabled = false;
    }
  });
  const move = h("button", { type: "button", class: "ghost", id: "device-move" }, "Move to another group…");
  move.addEventListener("click", () => moveDialog(app, [app.nodes.get(node._id) ?? n]));
  const remove = h("button", { type: "button", class: "danger", id: "device-remove" }, "Remove device…");
  remove.addEventListener("click", () => removeDialog(app, [app.nodes.get(node._id) ?? n], () => (location.hash = "#/devices")));
  return h("section", { class: "card" }, h("h2", {}, "Settings"), form, h("div", { class: "device-actions" }, move, remove));
}
