// Administration: user accounts and device groups with their members' rights.

import type { App } from "../app";
import { errorText, Json } from "../control";
import { dialog, formatTime, h, notice, replace, toast } from "../dom";
import { DEFAULT_MEMBER_RIGHTS, FULL, GROUP_OFFERED, GROUP_RIGHTS, mergeRights, rightsSummary, SITE_FROM_FULL, SITE_OFFERED, SITE_RIGHTS } from "../rights";
import { eventsHref } from "./events";

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
  const broadcast = h("button", { type: "button", id: "broadcast", class: "ghost" }, "Broadcast message");
  const list = h("div", { id: "user-list" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("div", { class: "toolbar" }, h("h1", {}, "Users"), add, broadcast), list);
  let users: Json[] = [];
  // Partial site rights of users made full administrators on this page: switching full
  // administration off again restores them (the server keeps only "full").
  const remembered = new Map<string, number>();

  const load = async () => {
    try {
      const r = await app.ctl.request("users");
      users = (r.users ?? []).sort((a: Json, b: Json) => String(a.name).localeCompare(String(b.name)));
      replace(
        list,
        h(
          "div",
          { class: "scroll" },
          h(
            "table",
            { class: "plain users" },
            h("thead", {}, h("tr", {}, ["Name", "Email", "State", "Full administrator", "Site rights", "Created", ""].map((t) => h("th", {}, t)))),
            h("tbody", {}, users.map((u) => userRow(app, u, remembered, load))),
          ),
        ),
      );
    } catch (e) {
      replace(list, notice("error", `Could not load users: ${errorText(e)}`));
    }
  };
  add.addEventListener("click", () => addUserDialog(app, load));
  broadcast.addEventListener("click", () => broadcastDialog(app, users));
  load();
  const groups = app.canManageUserGroups() ? userGroupsSection(app, main) : null;
  // Reload on account events only (debounced); device events do not change this page.
  let timer: number | undefined;
  const stop = app.onServerEvent((ev) => {
    if (ev.etype !== "user" && ev.etype !== "ugrp" && ev.etype !== "mesh") return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      if (ev.etype === "user") load();
      groups?.load();
    }, 300);
  });
  return () => {
    window.clearTimeout(timer);
    stop();
  };
}

/** Sends a notice to every signed-in user, or to one. */
function broadcastDialog(app: App, users: Json[]): void {
  const message = h("textarea", { id: "broadcast-message", required: true, maxlength: 512, rows: 4 });
  const target = h(
    "select",
    { id: "broadcast-target" },
    h("option", { value: "" }, "Everyone signed in"),
    users.map((u) => h("option", { value: u._id }, u.name)),
  );
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "broadcast-form", id: "broadcast-send" }, "Send");
  const form = h(
    "form",
    { id: "broadcast-form" },
    errorBox,
    field("Message (up to 512 characters)", message),
    field("To", target),
    h("p", { class: "muted" }, "Shown at the top of the console of each open session of the chosen users, until they dismiss it. Nobody signed in gets nothing later."),
  );
  const dlg = dialog("Broadcast message", [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fields: Json = { msg: message.value };
    if (target.value) fields.userid = target.value;
    const who = target.value ? target.selectedOptions[0]?.textContent ?? target.value : "everyone signed in";
    submit(dlg, errorBox, () => app.ctl.request("userbroadcast", fields), `Message sent to ${who}.`);
  });
  message.focus();
}

/** The bits of SITE_RIGHTS that `boxes` (in SITE_RIGHTS order) set. */
function siteBits(boxes: HTMLInputElement[]): number {
  return SITE_RIGHTS.reduce((bits, [bit, , , inverted], i) => ((inverted ? !boxes[i].checked : boxes[i].checked) ? bits | bit : bits), 0);
}

/** Checkboxes for SITE_RIGHTS showing `bits`. */
function siteBoxes(bits: number, label: (name: string) => string): { boxes: HTMLInputElement[]; labels: HTMLElement[] } {
  const boxes = SITE_RIGHTS.map(([bit, name, , inverted]) => {
    const box = h("input", { type: "checkbox", "data-site-bit": bit, "aria-label": label(name) });
    box.checked = inverted ? (bits & bit) === 0 : (bits & bit) !== 0;
    return box;
  });
  const labels = SITE_RIGHTS.map(([, name, what], i) => h("label", { class: "check", title: what }, boxes[i], ` ${name}`));
  return { boxes, labels };
}

function userRow(app: App, u: Json, remembered: Map<string, number>, reload: () => void): HTMLElement {
  const self = u._id === app.me._id;
  const current = Number(u.siteadmin ?? 0) >>> 0;
  const isFull = current === FULL;
  const partial = isFull ? remembered.get(u._id) ?? SITE_FROM_FULL : current & SITE_OFFERED;
  const full = h("input", { type: "checkbox", "aria-label": `Full administrator: ${u.name}`, "data-right": "full", disabled: self });
  full.checked = isFull;
  const { boxes, labels } = siteBoxes(partial, (name) => `${name}: ${u.name}`);
  const setEnabled = () => boxes.forEach((b) => (b.disabled = self || full.checked));
  setEnabled();
  const save = async (value: number, done: string): Promise<boolean> => {
    try {
      await app.ctl.request("edituser", { userid: u._id, siteadmin: value >>> 0 });
      toast("ok", done);
      return true;
    } catch (e) {
      toast("error", errorText(e));
      return false;
    }
  };
  full.addEventListener("change", async () => {
    if (full.checked) {
      full.checked = false;
      if (!(await confirmFullAdmin(u))) return;
      full.checked = true;
      setEnabled();
      remembered.set(u._id, siteBits(boxes));
      if (!(await save(FULL, `${u.name} is now a full administrator.`))) {
        remembered.delete(u._id);
        full.checked = false;
        setEnabled();
      }
    } else {
      // Back to the partial rights the checkboxes show (kept while full was on).
      setEnabled();
      if (await save(mergeRights(current, SITE_OFFERED, siteBits(boxes)), `${u.name} is no longer a full administrator.`)) {
        remembered.delete(u._id);
      } else {
        full.checked = true;
        setEnabled();
      }
    }
  });
  boxes.forEach((box) =>
    box.addEventListener("change", async () => {
      if (!(await save(mergeRights(current, SITE_OFFERED, siteBits(boxes)), `Site rights of ${u.name} saved.`))) box.checked = !box.checked;
    }),
  );
  const events = h("a", { href: eventsHref({ user: u._id }), class: "small-link", title: `Events caused by ${u.name}` }, "Events");
  const reset = h("button", { type: "button", class: "small ghost" }, "Reset password");
  reset.addEventListener("click", () => resetPasswordDialog(app, u));
  const factors = h("button", { type: "button", class: "small ghost", "data-action": "clear-factors" }, "Remove second factors");
  factors.addEventListener("click", () => clearFactorsDialog(app, u));
  const remove = h("button", { type: "button", class: "small danger", disabled: self }, "Remove");
  remove.addEventListener("click", () => removeUserDialog(app, u, reload));
  // Locked (site right 32): no sign-in, open sessions end. Restrictions do not apply to
  // full administrators, so they cannot be disabled.
  const locked = !isFull && (current & 32) !== 0;
  const lock = h(
    "button",
    {
      type: "button",
      class: locked ? "small" : "small ghost",
      "data-action": locked ? "enable" : "disable",
      disabled: self || isFull,
      title: isFull ? "A full administrator cannot be disabled." : null,
    },
    locked ? "Enable" : "Disable",
  );
  lock.addEventListener("click", async () => {
    if (locked) {
      if (await save((current & ~32) >>> 0, `${u.name} can sign in again.`)) reload();
    } else {
      disableUserDialog(u, async () => {
        if (await save((current | 32) >>> 0, `${u.name} is disabled.`)) reload();
      });
    }
  });
  return h(
    "tr",
    { "data-user": u.name, class: locked ? "locked" : null },
    h("td", {}, u.name, self ? h("span", { class: "muted" }, " (you)") : null),
    h("td", {}, u.email ?? ""),
    h("td", { class: "state" }, locked ? h("span", { class: "badge locked" }, "Locked") : "Active"),
    h("td", {}, full),
    h("td", { class: "site-rights" }, labels, isFull ? h("small", { class: "muted kept" }, "Kept for when full administration is switched off.") : null),
    h("td", {}, formatTime(u.creation ? u.creation * 1000 : undefined)),
    h("td", { class: "actions" }, events, lock, reset, factors, remove),
  );
}

/** Asks before disabling an account; `yes` runs when confirmed. */
function disableUserDialog(u: Json, yes: () => Promise<void>): void {
  const ok = h("button", { type: "button", class: "danger", id: "confirm-disable-user" }, "Disable");
  const dlg = dialog(`Disable ${u.name}?`, [h("p", {}, `${u.name} can no longer sign in, and every open session of ${u.name} ends now. Nothing else changes: Enable undoes it.`)], [ok]);
  ok.addEventListener("click", async () => {
    dlg.close();
    await yes();
  });
}

/** The "User groups" part of the users page: named sets of users, which device groups take
 *  as members with rights. */
function userGroupsSection(app: App, main: HTMLElement): { load: () => void } {
  const add = h("button", { type: "button", id: "add-user-group" }, "New user group");
  const list = h("div", { id: "user-group-list" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("div", { class: "toolbar section-head" }, h("h2", {}, "User groups"), add), list);
  const load = async () => {
    try {
      const r = await app.ctl.request("usergroups");
      const groups = Object.entries<Json>(r.ugroups ?? {}).sort(([, a], [, b]) => String(a.name).localeCompare(String(b.name)));
      if (groups.length === 0) {
        replace(list, h("p", { class: "muted" }, "No user groups yet. A user group gives its members the rights it holds in device groups."));
        return;
      }
      replace(list, groups.map(([id, g]) => userGroupCard(app, id, g, load)));
    } catch (e) {
      replace(list, notice("error", `Could not load user groups: ${errorText(e)}`));
    }
  };
  add.addEventListener("click", () => {
    const name = h("input", { type: "text", id: "new-ugroup-name", required: true, autocomplete: "off", maxlength: 64 });
    const desc = h("input", { type: "text", id: "new-ugroup-desc", autocomplete: "off" });
    const errorBox = h("div");
    const ok = h("button", { type: "submit", form: "add-ugroup-form", id: "add-ugroup-submit" }, "Create");
    const form = h("form", { id: "add-ugroup-form" }, errorBox, field("Name", name), field("Description (optional)", desc));
    const dlg = dialog("New user group", [form], [ok]);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit(dlg, errorBox, async () => {
        await app.ctl.request("createusergroup", { name: name.value.trim(), desc: desc.value.trim() });
        load();
      }, `User group ${name.value.trim()} created.`);
    });
    name.focus();
  });
  load();
  return { load };
}

function userGroupCard(app: App, id: string, g: Json, reload: () => void): HTMLElement {
  const links = Object.entries<Json>(g.links ?? {});
  const members = links.filter(([k]) => k.startsWith("user/")).sort(([, a], [, b]) => String(a.name).localeCompare(String(b.name)));
  const meshes = links.filter(([k]) => k.startsWith("mesh/"));
  const addMember = h("button", { type: "button", class: "small" }, "Add member");
  addMember.addEventListener("click", () => userGroupMemberDialog(app, id, g, reload));
  const remove = h("button", { type: "button", class: "small danger" }, "Remove");
  remove.addEventListener("click", () => {
    const errorBox = h("div");
    const yes = h("button", { type: "button", class: "danger", id: "confirm-remove-ugroup" }, "Remove");
    const dlg = dialog(`Remove the user group ${g.name}?`, [errorBox, h("p", {}, `Its members lose the rights ${g.name} gave them in device groups; the accounts themselves stay.`)], [yes]);
    yes.addEventListener("click", () =>
      submit(dlg, errorBox, async () => {
        await app.ctl.request("deleteusergroup", { ugrpid: id });
        reload();
      }, `User group ${g.name} removed.`),
    );
  });
  return h(
    "section",
    { class: "card ugroup-card", "data-ugroup": g.name },
    h("div", { class: "group-head" }, h("h3", {}, g.name), h("div", { class: "actions" }, remove)),
    g.desc ? h("p", { class: "muted" }, g.desc) : null,
    members.length === 0
      ? h("p", { class: "muted" }, "No members.")
      : h(
          "table",
          { class: "plain ugroup-members" },
          h("tbody", {}, members.map(([uid, link]) => {
            const drop = h("button", { type: "button", class: "small danger" }, "Remove");
            drop.addEventListener("click", async () => {
              try {
                await app.ctl.request("removeuserfromusergroup", { ugrpid: id, userid: uid });
                toast("ok", `${link.name ?? uid} removed from ${g.name}.`);
                reload();
              } catch (e) {
                toast("error", errorText(e));
              }
            });
            return h("tr", { "data-member": link.name ?? uid }, h("td", {}, link.name ?? uid), h("td", { class: "actions" }, drop));
          })),
        ),
    addMember,
    h(
      "p",
      { class: "muted ugroup-meshes" },
      meshes.length === 0
        ? "Member of no device group yet: add it on the Device groups page."
        : `Device groups: ${meshes.map(([, m]) => `${m.name} (${rightsSummary(Number(m.rights ?? 0))})`).join("; ")}`,
    ),
  );
}

function userGroupMemberDialog(app: App, id: string, g: Json, reload: () => void): void {
  const name = h("input", { type: "text", id: "ugroup-member-name", required: true, autocomplete: "off" });
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "ugroup-member-form", id: "ugroup-member-submit" }, "Add member");
  const form = h("form", { id: "ugroup-member-form" }, errorBox, field("User name", name));
  const dlg = dialog(`Add a member to ${g.name}`, [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const who = name.value.trim().replace(/^user\/\//, "");
    submit(dlg, errorBox, async () => {
      const r = await app.ctl.request("addusertousergroup", { ugrpid: id, usernames: [who] });
      // Unknown names are counted, not refused.
      if (Number(r.failed ?? 0) > 0) throw new Error(`There is no user named ${who}.`);
      reload();
    }, `${who} added to ${g.name}.`);
  });
  name.focus();
}

/** Asks before making someone a full administrator; resolves true when confirmed. */
function confirmFullAdmin(u: Json): Promise<boolean> {
  return new Promise((resolve) => {
    let yes = false;
    const ok = h("button", { type: "button", class: "danger", id: "confirm-full-admin" }, "Make full administrator");
    const cancel = h("button", { type: "button", class: "ghost", id: "cancel-full-admin" }, "Cancel");
    const dlg = dialog(
      `Make ${u.name} a full administrator?`,
      [
        h("p", {}, `${u.name} gets every right on this server: every device group and device, every account (including yours), and no restriction applies.`),
        h("p", { class: "muted" }, "The partial site rights below are kept, and apply again if full administration is switched off."),
      ],
      [cancel, ok],
    );
    ok.addEventListener("click", () => {
      yes = true;
      dlg.close();
    });
    cancel.addEventListener("click", () => dlg.close());
    dlg.addEventListener("close", () => resolve(yes));
  });
}

function clearFactorsDialog(app: App, user: Json): void {
  const errorBox = h("div");
  const yes = h("button", { type: "button", class: "danger", id: "confirm-clear-factors" }, "Remove second factors");
  const dlg = dialog(`Remove the second factors of ${user.name}?`, [errorBox, h("p", {}, `The authenticator app, passkeys and recovery codes of ${user.name} are removed (a lost phone or key): signing in then needs only the password.`)], [yes]);
  yes.addEventListener("click", () => submit(dlg, errorBox, () => app.ctl.request("otpauth-clear", { userid: user._id }), `Second factors of ${user.name} removed.`));
}

function addUserDialog(app: App, reload: () => void): void {
  const name = h("input", { type: "text", id: "new-user-name", required: true, autocomplete: "off" });
  const email = h("input", { type: "email", id: "new-user-email", autocomplete: "off" });
  const pass = h("input", { type: "password", id: "new-user-password", required: true, autocomplete: "new-password" });
  const admin = h("input", { type: "checkbox", id: "new-user-admin" });
  // New accounts may not create device groups unless allowed here (the server's default).
  const { boxes, labels } = siteBoxes(64, (n) => n);
  boxes.forEach((b) => (b.id = `new-user-right-${b.dataset.siteBit}`));
  const partial = h("fieldset", { class: "rights-grid plain-fieldset" }, h("legend", {}, "Site rights"), labels.filter((_, i) => SITE_RIGHTS[i][0] !== 32));
  admin.addEventListener("change", () => boxes.forEach((b) => (b.disabled = admin.checked)));
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "add-user-form", id: "add-user-submit" }, "Add user");
  const form = h(
    "form",
    { id: "add-user-form" },
    errorBox,
    field("User name", name),
    field("Email (optional)", email),
    field("Password", pass),
    h("label", { class: "check" }, admin, " Full administrator (every right on the server)"),
    partial,
    h("p", { class: "muted" }, "New accounts may not create device groups unless “May create device groups” is ticked."),
  );
  const dlg = dialog("Add user", [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const rights = admin.checked ? FULL : siteBits(boxes);
    const fields: Json = { username: name.value.trim(), pass: pass.value, siteadmin: rights };
    if (email.value.trim()) fields.email = email.value.trim();
    submit(dlg, errorBox, async () => {
      await app.ctl.request("adduser", fields);
      // MeshCentral's reply carries no id: an account's id is user// + its lower-cased name.
      const userid = `user//${String(fields.username).toLowerCase()}`;
      if (rights !== FULL && (rights & 64) === 0) {
        // The server adds "no new device groups" to new accounts by default: lift it.
        const list = await app.ctl.request("users");
        const made = (list.users ?? []).find((u: Json) => u._id === userid);
        if (made && (Number(made.siteadmin) & 64) !== 0) await app.ctl.request("edituser", { userid, siteadmin: rights });
      }
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
        const flags = Number(g.flags ?? 0);
        const record = h("input", { type: "checkbox", class: "record-sessions", disabled: !canEdit });
        record.checked = (flags & 4) !== 0;
        record.addEventListener("change", async () => {
          try {
            await app.ctl.request("editmesh", { meshid: g._id, flags: record.checked ? flags | 4 : flags & ~4 });
            toast("ok", `Terminal sessions in ${g.name} are ${record.checked ? "now" : "no longer"} recorded.`);
            await app.refresh();
          } catch (e) {
            record.checked = !record.checked;
            toast("error", errorText(e));
          }
        });
        return h(
          "section",
          { class: "card group-card", "data-group-name": g.name },
          h("div", { class: "group-head" }, h("h2", {}, g.name), h("div", { class: "actions" }, rename, remove)),
          g.desc ? h("p", { class: "muted" }, g.desc) : null,
          h("h3", {}, "Settings"),
          h("label", { class: "check", title: "Recordings are listed on each device's Recordings tab and in the event log." }, record, " Record terminal sessions (watched by full administrators and users with the site right “Recordings”)"),
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
              const isUserGroup = uid.startsWith("ugrp/");
              return h(
                "tr",
                { "data-member": link.name ?? uid, "data-kind": isUserGroup ? "ugroup" : "user" },
                h("td", {}, link.name ?? uid, isUserGroup ? h("span", { class: "muted" }, " (user group)") : null),
                h("td", { class: "rights" }, rightsSummary(Number(link.rights ?? 0))),
                h("td", { class: "actions" }, edit, drop),
              );
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

/** Adds a member (member null) or edits one member's rights: the rights the server enforces,
 *  as explained checkboxes. Bits a member holds beyond these are kept. A member is a user or
 *  a user group (whose users all get its rights). */
function memberDialog(app: App, g: Json, member: [string, Json] | null): void {
  const errorBox = h("div");
  const user = h("input", { type: "text", id: "member-name", required: true, autocomplete: "off", value: member ? member[1].name ?? member[0] : "" });
  if (member) user.disabled = true;
  const kind = h("select", { id: "member-kind" }, h("option", { value: "user" }, "User"), h("option", { value: "ugroup" }, "User group"));
  const ugroup = h("select", { id: "member-ugroup" });
  const userField = field("User name", user);
  const ugroupField = field("User group", ugroup);
  const kindField = field("Member", kind);
  const showKind = () => {
    const isGroup = kind.value === "ugroup";
    userField.hidden = isGroup;
    user.required = !isGroup;
    ugroupField.hidden = !isGroup;
    ugroup.required = isGroup;
  };
  kind.addEventListener("change", showKind);
  showKind();
  if (member) {
    kindField.hidden = true;
  } else {
    app.ctl
      .request("usergroups")
      .then((r) => {
        const groups = Object.entries<Json>(r.ugroups ?? {}).sort(([, a], [, b]) => String(a.name).localeCompare(String(b.name)));
        replace(ugroup, groups.map(([id, ug]) => h("option", { value: id }, ug.name ?? id)));
        if (groups.length === 0) kind.options[1].disabled = true;
      })
      .catch((e) => replace(errorBox, notice("error", `Could not load user groups: ${errorText(e)}`)));
  }
  const current = member ? Number(member[1].rights ?? 0) >>> 0 : DEFAULT_MEMBER_RIGHTS;
  const full = h("input", { type: "checkbox", id: "right-full" });
  full.checked = current === FULL;
  const boxes = GROUP_RIGHTS.map(([bit, label]) => {
    const box = h("input", { type: "checkbox", "data-bit": bit, "aria-label": label });
    box.checked = current === FULL || (current & bit) !== 0;
    return box;
  });
  const labels = GROUP_RIGHTS.map(([, label, what], i) => h("label", { class: "check right" }, boxes[i], h("span", {}, h("strong", {}, label), h("small", { class: "muted" }, what))));
  full.addEventListener("change", () => boxes.forEach((b) => ((b.checked = full.checked || b.checked), (b.disabled = full.checked))));
  boxes.forEach((b) => (b.disabled = full.checked));
  const other = current !== FULL ? (current & ~GROUP_OFFERED) >>> 0 : 0;
  const ok = h("button", { type: "submit", form: "member-form" }, member ? "Save rights" : "Add member");
  const form = h(
    "form",
    { id: "member-form" },
    errorBox,
    kindField,
    userField,
    ugroupField,
    h("label", { class: "check right" }, full, h("span", {}, h("strong", {}, "Full rights"), h("small", { class: "muted" }, "Everything below and more (removing the group, rights added later); no restriction applies."))),
    h("div", { class: "rights-grid", id: "rights-grid" }, labels),
    other ? h("p", { class: "muted", id: "rights-other" }, `This member also holds rights this console does not offer (bits 0x${other.toString(16)}); they are kept.`) : null,
  );
  const dlg = dialog(member ? `Rights of ${member[1].name ?? member[0]} in ${g.name}` : `Add a member to ${g.name}`, [form], [ok]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    let checked = 0;
    boxes.forEach((b) => b.checked && (checked |= Number(b.dataset.bit)));
    const rights = full.checked ? FULL : mergeRights(current, GROUP_OFFERED, checked);
    const who = member ? member[0] : kind.value === "ugroup" ? ugroup.value : user.value.trim();
    submit(dlg, errorBox, async () => {
      await app.ctl.request("addmeshuser", { meshid: g._id, userid: who, meshadmin: rights >>> 0 });
      await app.refresh();
    }, `Rights saved.`);
  });
}
