// Administration: user accounts and device groups with their members' rights.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { dialog, formatTime, h, notice, replace, toast } from "../dom";
import { FULL, GROUP_RIGHTS, rightsSummary } from "../rights";

/** Runs a request from a dialog: closes it on success, shows the server's reason otherwise. */
async function submit(dlg: HTMLDialogElement, errorBox: HTMLElement, work: () => Promise<unknown>, done: string): Promise<void> {
  try {
    await work();
    dlg.close();
    toast("ok", done);
  } catch (e) {
    replace(errorBox, notice("error", errorText(e)));
  }
}

function field(label: string, input: HTMLElement): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

export function usersView(app: App, main: HTMLElement): () => void {
  if (!app.canManageUsers()) {
    replace(main, h("h1", {}, "Users"), notice("error", "Managing users needs the site right “manage users”. Ask an administrator."));
    return () => {};
  }
  const add = h("button", { type: "button", id: "add-user" }, "Add user");
  const list = h("div", { id: "user-list" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("div", { class: "toolbar" }, h("h1", {}, "Users"), add), list);

  const load = async () => {
    try {
      const r = await app.ctl.request("users");
      const users: Json[] = (r.users ?? []).sort((a: Json, b: Json) => String(a.name).localeCompare(String(b.name)));
      replace(
        list,
        h(
          "table",
          { class: "plain" },
          h("thead", {}, h("tr", {}, ["Name", "Email", "Site administrator", "Created", ""].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            users.map((u) => {
              const self = u._id === app.me._id;
              const admin = h("input", { type: "checkbox", "aria-label": `Site administrator: ${u.name}`, disabled: self });
              admin.checked = (Number(u.siteadmin ?? 0) >>> 0) === FULL;
              admin.addEventListener("change", async () => {
                try {
                  await app.ctl.request("edituser", { userid: u._id, siteadmin: admin.checked ? FULL : 0 });
                  toast("ok", `${u.name} is ${admin.checked ? "now" : "no longer"} a site administrator.`);
                } catch (e) {
                  admin.checked = !admin.checked;
                  toast("error", errorText(e));
                }
              });
              const reset = h("button", { type: "button", class: "small ghost" }, "Reset password");
              reset.addEventListener("click", () => resetPasswordDialog(app, u));
              const remove = h("button", { type: "button", class: "small danger", disabled: self }, "Remove");
              remove.addEventListener("click", () => removeUserDialog(app, u, load));
              return h("tr", { "data-user": u.name }, h("td", {}, u.name, self ? h("span", { class: "muted" }, " (you)") : null), h("td", {}, u.email ?? ""), h("td", {}, admin), h("td", {}, formatTime(u.creation ? u.creation * 1000 : undefined)), h("td", { class: "actions" }, reset, remove));
            }),
          ),
        ),
      );
    } catch (e) {
      replace(list, notice("error", `Could not load users: ${errorText(e)}`));
    }
  };
  add.addEventListener("click", () => addUserDialog(app, load));
  load();
  // Reload on account events only (debounced); device events do not change this page.
  let timer: number | undefined;
  const stop = app.onServerEvent((ev) => {
    if (ev.etype !== "user") return;
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300);
  });
  return () => {
    window.clearTimeout(timer);
    stop();
  };
}

function addUserDialog(app: App, reload: () => void): void {
  const name = h("input", { type: "text", id: "new-user-name", required: true, autocomplete: "off" });
  const email = h("input", { type: "email", id: "new-user-email", autocomplete: "off" });
  const pass = h("input", { type: "password", id: "new-user-password", required: true, autocomplete: "new-password" });
  const admin = h("input", { type: "checkbox", id: "new-user-admin" });
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "add-user-form", id: "add-user-submit" }, "Add user");
  const form = h("form", { id: "add-user-form" }, errorBox, field("User name", name), field("Email (optional)", email), field("Password", pass), h("label", { class: "check" }, admin, " Site administrator (all rights on the server)"));
  const dlg = dialog("Add user", [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fields: Json = { username: name.value.trim(), pass: pass.value, siteadmin: admin.checked ? FULL : 0 };
    if (email.value.trim()) fields.email = email.value.trim();
    submit(dlg, errorBox, async () => {
      await app.ctl.request("adduser", fields);
      reload();
    }, `User ${fields.username} added.`);
  });
  name.focus();
}

function resetPasswordDialog(app: App, user: Json): void {
  const pass = h("input", { type: "password", id: "reset-password", required: true, autocomplete: "new-password" });
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "reset-form" }, "Set password");
  const form = h("form", { id: "reset-form" }, errorBox, field(`New password for ${user.name}`, pass));
  const dlg = dialog("Reset password", [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit(dlg, errorBox, () => app.ctl.request("changeuserpass", { userid: user._id, pass: pass.value, removeMultiFactor: false }), `Password of ${user.name} changed.`);
  });
  pass.focus();
}

function removeUserDialog(app: App, user: Json, reload: () => void): void {
  const errorBox = h("div");
  const yes = h("button", { type: "button", class: "danger", id: "confirm-remove-user" }, "Remove");
  const dlg = dialog(`Remove ${user.name}?`, [errorBox, h("p", {}, `The account ${user.name} and its group memberships will be deleted.`)], [yes]);
  yes.addEventListener("click", () =>
    submit(dlg, errorBox, async () => {
      await app.ctl.request("deleteuser", { userid: user._id });
      reload();
    }, `User ${user.name} removed.`),
  );
}

export function groupsView(app: App, main: HTMLElement): () => void {
  const add = h("button", { type: "button", id: "add-group" }, "New device group");
  const list = h("div", { id: "group-list" });
  main.append(h("div", { class: "toolbar" }, h("h1", {}, "Device groups"), add), list);
  const render = () => {
    const groups = [...app.meshes.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    if (groups.length === 0) {
      replace(list, h("p", { class: "muted" }, "No device groups yet. Create one, then add devices to it."));
      return;
    }
    replace(
      list,
      groups.map((g) => {
        const myRights = Number(g.links?.[app.me._id]?.rights ?? 0) >>> 0;
        const canEdit = (myRights & 1) !== 0 || (app.siteRights >>> 0) === FULL;
        const canManage = (myRights & 2) !== 0 || (app.siteRights >>> 0) === FULL;
        const rename = h("button", { type: "button", class: "small ghost", disabled: !canEdit }, "Rename");
        rename.addEventListener("click", () => renameGroupDialog(app, g));
        const remove = h("button", { type: "button", class: "small danger", disabled: !canEdit }, "Remove");
        remove.addEventListener("click", () => removeGroupDialog(app, g));
        const addMember = h("button", { type: "button", class: "small", disabled: !canManage }, "Add member");
        addMember.addEventListener("click", () => memberDialog(app, g, null));
        const members = Object.entries<Json>(g.links ?? {}).sort(([, a], [, b]) => String(a.name).localeCompare(String(b.name)));
        return h(
          "section",
          { class: "card group-card", "data-group-name": g.name },
          h("div", { class: "group-head" }, h("h2", {}, g.name), h("div", { class: "actions" }, rename, remove)),
          g.desc ? h("p", { class: "muted" }, g.desc) : null,
          h("h3", {}, "Members"),
          h(
            "table",
            { class: "plain" },
            h("tbody", {}, members.map(([uid, link]) => {
              const edit = h("button", { type: "button", class: "small ghost", disabled: !canManage }, "Rights");
              edit.addEventListener("click", () => memberDialog(app, g, [uid, link]));
              const drop = h("button", { type: "button", class: "small danger", disabled: !canManage || uid === app.me._id }, "Remove");
              drop.addEventListener("click", async () => {
                try {
                  await app.ctl.request("removemeshuser", { meshid: g._id, userid: uid });
                  toast("ok", `${link.name ?? uid} removed from ${g.name}.`);
                } catch (e) {
                  toast("error", errorText(e));
                }
              });
              return h("tr", { "data-member": link.name ?? uid }, h("td", {}, link.name ?? uid), h("td", { class: "rights" }, rightsSummary(Number(link.rights ?? 0))), h("td", { class: "actions" }, edit, drop));
            })),
          ),
          addMember,
        );
      }),
    );
  };
  add.addEventListener("click", () => {
    const name = h("input", { type: "text", id: "new-group-name", required: true, autocomplete: "off" });
    const desc = h("input", { type: "text", id: "new-group-desc", autocomplete: "off" });
    const errorBox = h("div");
    const ok = h("button", { type: "submit", form: "add-group-form", id: "add-group-submit" }, "Create");
    const form = h("form", { id: "add-group-form" }, errorBox, field("Name", name), field("Description (optional)", desc));
    const dlg = dialog("New device group", [form], [ok]);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit(dlg, errorBox, async () => {
        await app.ctl.request("createmesh", { meshname: name.value.trim(), meshtype: 2, desc: desc.value.trim() });
        await app.refresh();
      }, `Device group ${name.value.trim()} created.`);
    });
    name.focus();
  });
  render();
  return app.onChange(render);
}

function renameGroupDialog(app: App, g: Json): void {
  const name = h("input", { type: "text", id: "rename-group", required: true, value: g.name });
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "rename-group-form" }, "Rename");
  const form = h("form", { id: "rename-group-form" }, errorBox, field("New name", name));
  const dlg = dialog(`Rename ${g.name}`, [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit(dlg, errorBox, async () => {
      await app.ctl.request("editmesh", { meshid: g._id, meshname: name.value.trim() });
      await app.refresh();
    }, "Device group renamed.");
  });
  name.select();
}

function removeGroupDialog(app: App, g: Json): void {
  const errorBox = h("div");
  const yes = h("button", { type: "button", class: "danger", id: "confirm-remove-group" }, "Remove");
  const dlg = dialog(`Remove ${g.name}?`, [errorBox, h("p", {}, "The group and its device records are deleted; connected agents of this group are refused from then on.")], [yes]);
  yes.addEventListener("click", () =>
    submit(dlg, errorBox, async () => {
      await app.ctl.request("deletemesh", { meshid: g._id });
      await app.refresh();
    }, `Device group ${g.name} removed.`),
  );
}

/** Adds a member (member null) or edits one member's rights, as named checkboxes. */
function memberDialog(app: App, g: Json, member: [string, Json] | null): void {
  const errorBox = h("div");
  const user = h("input", { type: "text", id: "member-name", required: true, autocomplete: "off", value: member ? member[1].name ?? member[0] : "" });
  if (member) user.disabled = true;
  const current = member ? Number(member[1].rights ?? 0) >>> 0 : 8 | 131072;
  const full = h("input", { type: "checkbox", id: "right-full" });
  full.checked = current === FULL;
  const boxes = GROUP_RIGHTS.map(([bit, label]) => {
    const box = h("input", { type: "checkbox", "data-bit": bit });
    box.checked = current === FULL || (current & bit) !== 0;
    return h("label", { class: "check" }, box, ` ${label}`);
  });
  const inputs = () => boxes.map((l) => l.querySelector("input")!);
  full.addEventListener("change", () => inputs().forEach((b) => ((b.checked = full.checked), (b.disabled = full.checked))));
  inputs().forEach((b) => (b.disabled = full.checked));
  const ok = h("button", { type: "submit", form: "member-form" }, member ? "Save rights" : "Add member");
  const form = h("form", { id: "member-form" }, errorBox, field("User name", user), h("label", { class: "check" }, full, " Full rights (all below, and any added later)"), h("div", { class: "rights-grid" }, boxes));
  const dlg = dialog(member ? `Rights of ${member[1].name ?? member[0]} in ${g.name}` : `Add a member to ${g.name}`, [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    let rights = 0;
    if (full.checked) rights = FULL;
    else inputs().forEach((b) => b.checked && (rights |= Number(b.dataset.bit)));
    const who = member ? member[0] : user.value.trim();
    submit(dlg, errorBox, async () => {
      await app.ctl.request("addmeshuser", { meshid: g._id, userid: who, meshadmin: rights >>> 0 });
      await app.refresh();
    }, `Rights saved.`);
  });
}
