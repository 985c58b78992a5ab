// The signed-in user's own account: password, and second factors (an authenticator app with
// recovery codes, passkeys). Every secret shown here (TOTP secret, recovery codes) is shown
// once and lives only in this page's DOM until it is closed.

import type { App } from "../app";
import { fromB64url, toB64url } from "../b64url";
import { errorText, Json } from "../control";
import { dialog, fileStamp, formatTime, h, notice, replace, saveFile, toast } from "../dom";
import { qrCanvas } from "../qr";

function field(label: string, input: HTMLElement): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

/** The account page for an account that must add the second factor the site requires
 *  before anything else: once one is added (and its recovery codes are saved), "Continue"
 *  opens the console. */
export function enrolmentView(app: App, main: HTMLElement): void {
  const banner = h(
    "div",
    { id: "enrolment" },
    notice("info", "This server requires a second factor. Add an authenticator app or a passkey below to continue."),
  );
  main.append(banner);
  accountView(app, main);
  app.onServerEvent(async (ev) => {
    if (ev.action !== "2fa") return;
    const info = await app.ctl.request("userinfo").catch(() => null);
    if (!info || info.userinfo?.secondfactorpending === true) return;
    const go = h("button", { type: "button", id: "enrolment-continue" }, "Continue to the console");
    go.addEventListener("click", () => location.reload());
    replace(banner, notice("ok", "Second factor added. Save your recovery codes, then continue."), go);
  });
}

export function accountView(app: App, main: HTMLElement): () => void {
  const factors = h("div", { id: "factors" }, h("p", { class: "muted" }, "Loading…"));
  main.append(
    h("div", { class: "toolbar" }, h("h1", {}, "Your account"), h("span", { class: "muted", id: "account-name" }, app.me.name ?? "")),
    passwordCard(app),
    h("section", { class: "card", id: "second-factors" }, h("h2", {}, "Second factors"), h("p", { class: "muted" }, "With a second factor, signing in needs a code from your authenticator app (or a recovery code) or one of your passkeys after the password."), factors),
  );
  let alive = true;
  const load = async () => {
    try {
      const st = await app.ctl.request("otp-status");
      if (alive) renderFactors(app, factors, st, load);
    } catch (e) {
      if (alive) replace(factors, notice("error", `Could not load your second factors: ${errorText(e)}`));
    }
  };
  load();
  // Changes made elsewhere (another tab, an administrator) show up here.
  let timer: number | undefined;
  const stop = app.onServerEvent((ev) => {
    if (ev.action !== "2fa") return;
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300);
  });
  return () => {
    alive = false;
    window.clearTimeout(timer);
    stop();
  };
}

function passwordCard(app: App): HTMLElement {
  const old = h("input", { type: "password", id: "old-password", required: true, autocomplete: "current-password" });
  const pass = h("input", { type: "password", id: "new-password", required: true, autocomplete: "new-password" });
  const again = h("input", { type: "password", id: "new-password-again", required: true, autocomplete: "new-password" });
  const status = h("div", { id: "password-status" });
  const save = h("button", { type: "submit", id: "change-password" }, "Change password");
  const form = h("form", { id: "password-form", class: "narrow" }, status, field("Current password", old), field("New password", pass), field("New password again", again), save);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (pass.value !== again.value) {
      replace(status, notice("error", "The two new passwords differ."));
      return;
    }
    save.disabled = true;
    try {
      await app.ctl.request("changepassword", { oldpass: old.value, newpass: pass.value });
      form.reset();
      replace(status, notice("ok", "Password changed. You stay signed in here; your other sessions were signed out."));
    } catch (e) {
      replace(status, notice("error", errorText(e)));
    } finally {
      save.disabled = false;
    }
  });
  return h("section", { class: "card", id: "password" }, h("h2", {}, "Password"), form);
}

function renderFactors(app: App, host: HTMLElement, st: Json, reload: () => void): void {
  const passkeys: Json[] = st.passkeys ?? [];
  const any = st.totp === true || passkeys.length > 0;

  const totpAdd = h("button", { type: "button", class: "small", id: "totp-add" }, "Add an authenticator app");
  totpAdd.addEventListener("click", () => totpDialog(app, reload));
  const codesNew = h("button", { type: "button", class: "small ghost", id: "recovery-new" }, "New recovery codes");
  codesNew.addEventListener("click", () => newRecoveryCodes(app, reload));
  const passkeyAdd = h("button", { type: "button", class: "small", id: "passkey-add", disabled: st.passkeysavailable !== true }, "Add a passkey");
  passkeyAdd.addEventListener("click", () => passkeyDialog(app, !any, reload));
  const clearAll = h("button", { type: "button", class: "small danger", id: "factors-clear" }, "Remove every second factor");
  clearAll.addEventListener("click", () => clearDialog(app, reload));

  replace(
    host,
    h(
      "dl",
      { class: "facts", id: "factor-status" },
      h("dt", {}, "Authenticator app"),
      h("dd", { id: "totp-state" }, st.totp ? "On" : "Off", " ", st.totp ? null : totpAdd),
      h("dt", {}, "Passkeys"),
      h("dd", { id: "passkey-count" }, passkeys.length === 0 ? "None" : `${passkeys.length}`),
      h("dt", {}, "Recovery codes"),
      h("dd", { id: "recovery-count" }, any ? `${st.recoverycodes ?? 0} unused` : "None (they come with a second factor)", " ", any ? codesNew : null),
    ),
    h("h3", {}, "Passkeys"),
    passkeys.length
      ? h(
          "table",
          { class: "plain", id: "passkeys" },
          h("thead", {}, h("tr", {}, ["Name", "Added", "Last used", ""].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            passkeys.map((p) => {
              const remove = h("button", { type: "button", class: "small danger" }, "Remove");
              remove.addEventListener("click", () => removePasskeyDialog(app, p, reload));
              return h("tr", { "data-passkey": p.name }, h("td", {}, p.name), h("td", {}, formatTime(p.created)), h("td", {}, formatTime(p.lastused)), h("td", { class: "actions" }, remove));
            }),
          ),
        )
      : h("p", { class: "muted" }, "No passkeys yet."),
    st.passkeysavailable === true
      ? passkeyAdd
      : h("p", { class: "muted", id: "passkeys-unavailable" }, "Passkeys need the server to be reached by its host name (not an IP address): the server's setting server_name."),
    any ? h("div", { class: "danger-zone" }, clearAll, h("span", { class: "muted" }, " Signing in then needs only your password.")) : null,
  );
}

/** Shows recovery codes once, with copy and download. */
function recoveryCodesBlock(codes: string[]): HTMLElement {
  const text = codes.join("\n") + "\n";
  const copy = h("button", { type: "button", class: "small ghost", id: "recovery-copy" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      toast("ok", "Recovery codes copied.");
    } catch {
      toast("error", "The browser refused the clipboard: select the codes and copy them, or download them.");
    }
  });
  const download = h("button", { type: "button", class: "small ghost", id: "recovery-download" }, "Download");
  download.addEventListener("click", () => saveFile(`ironmesh-recovery-codes-${fileStamp()}.txt`, "text/plain;charset=utf-8", text));
  return h(
    "div",
    { class: "recovery" },
    notice("info", "Keep these recovery codes somewhere safe: each signs you in once if you lose your authenticator or passkeys. They are shown only now."),
    h("ol", { class: "codes", id: "recovery-codes" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
    h("div", { class: "toolbar" }, copy, download),
  );
}

function totpDialog(app: App, reload: () => void): void {
  const body = h("div", {}, h("p", { class: "muted" }, "Asking the server for a secret…"));
  const ok = h("button", { type: "submit", form: "totp-form", id: "totp-confirm", disabled: true }, "Turn on");
  const dlg = dialog("Add an authenticator app", [body], [ok]);
  let done = false;
  dlg.addEventListener("close", () => {
    if (done) reload();
  });
  app.ctl
    .request("otpauth-request")
    .then((r) => {
      const secret = String(r.secret ?? "");
      const url = String(r.url ?? "");
      const code = h("input", { type: "text", id: "totp-code", required: true, inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: 6 });
      const errorBox = h("div");
      const form = h(
        "form",
        { id: "totp-form" },
        h("p", {}, "Scan this code with your authenticator app (or type the secret into it), then enter the 6-digit code it shows."),
        h("div", { class: "qr-box" }, qrCanvas(url, 5, "QR code of your authenticator secret")),
        h("p", {}, "Secret: ", h("code", { id: "totp-secret", class: "secret" }, secret)),
        errorBox,
        field("Code from the app", code),
      );
      replace(body, form);
      ok.disabled = false;
      code.focus();
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        ok.disabled = true;
        try {
          const res = await app.ctl.request("otpauth-setup", { secret, token: code.value.trim() });
          done = true;
          replace(body, notice("ok", "The authenticator app is on: signing in now asks for its code."), recoveryCodesBlock(res.recoverycodes ?? []));
          ok.remove();
          dlg.querySelector("footer")?.append(closeButton(dlg));
        } catch (e) {
          replace(errorBox, notice("error", errorText(e)));
          ok.disabled = false;
        }
      });
    })
    .catch((e) => replace(body, notice("error", errorText(e))));
}

function closeButton(dlg: HTMLDialogElement): HTMLButtonElement {
  const b = h("button", { type: "button", id: "dialog-done" }, "Done");
  b.addEventListener("click", () => dlg.close());
  return b;
}

function showCodesDialog(title: string, codes: string[], reload: () => void): void {
  const dlg = dialog(title, [recoveryCodesBlock(codes)], []);
  dlg.querySelector("footer")?.append(closeButton(dlg));
  dlg.addEventListener("close", reload);
}

async function newRecoveryCodes(app: App, reload: () => void): Promise<void> {
  const yes = h("button", { type: "button", id: "confirm-recovery-new" }, "Make new codes");
  const errorBox = h("div");
  const dlg = dialog("New recovery codes?", [errorBox, h("p", {}, "Your current recovery codes stop working.")], [yes]);
  yes.addEventListener("click", async () => {
    try {
      const r = await app.ctl.request("otpauth-getpasswords");
      dlg.close();
      showCodesDialog("Your new recovery codes", r.passwords ?? [], reload);
    } catch (e) {
      replace(errorBox, notice("error", errorText(e)));
    }
  });
}

/** Registers a passkey: the server's options to the browser's authenticator and back. */
function passkeyDialog(app: App, first: boolean, reload: () => void): void {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    toast("error", "This browser has no passkey support (WebAuthn).");
    return;
  }
  const name = h("input", { type: "text", id: "passkey-name", required: true, maxlength: 64, value: "My passkey", autocomplete: "off" });
  const errorBox = h("div");
  const ok = h("button", { type: "submit", form: "passkey-form", id: "passkey-create" }, "Continue");
  const form = h("form", { id: "passkey-form" }, errorBox, field("Name (to tell your passkeys apart)", name), h("p", { class: "muted" }, "Your browser then asks your authenticator (security key, phone or this device) to make the passkey."));
  const dlg = dialog("Add a passkey", [form], [ok]);
  name.select();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    try {
      const start = await app.ctl.request("webauthn-startregister");
      const pk: Json = start.request?.publicKey;
      if (!pk) throw new Error("The server sent no passkey options.");
      pk.challenge = fromB64url(pk.challenge);
      pk.user = { ...pk.user, id: fromB64url(pk.user.id) };
      pk.excludeCredentials = (pk.excludeCredentials ?? []).map((c: Json) => ({ ...c, id: fromB64url(c.id) }));
      const cred = (await navigator.credentials.create({ publicKey: pk as PublicKeyCredentialCreationOptions })) as PublicKeyCredential | null;
      if (!cred) throw new Error("The authenticator made no passkey.");
      const att = cred.response as AuthenticatorAttestationResponse;
      await app.ctl.request("webauthn-endregister", {
        name: name.value.trim(),
        response: {
          id: cred.id,
          rawId: toB64url(cred.rawId),
          type: cred.type,
          extensions: cred.getClientExtensionResults(),
          response: {
            attestationObject: toB64url(att.attestationObject),
            clientDataJSON: toB64url(att.clientDataJSON),
            transports: typeof att.getTransports === "function" ? att.getTransports() : undefined,
          },
        },
      });
      dlg.close();
      if (first) {
        // The first factor: recovery codes to go with it, shown now (the server made some
        // with the passkey but does not hand them out; these replace them).
        const r = await app.ctl.request("otpauth-getpasswords");
        showCodesDialog("Passkey added: your recovery codes", r.passwords ?? [], reload);
      } else {
        toast("ok", "Passkey added.");
        reload();
      }
    } catch (e) {
      const text = e instanceof DOMException && e.name === "NotAllowedError" ? "The authenticator did not make a passkey (cancelled or timed out)." : errorText(e);
      replace(errorBox, notice("error", text));
      ok.disabled = false;
    }
  });
}

function removePasskeyDialog(app: App, p: Json, reload: () => void): void {
  const yes = h("button", { type: "button", class: "danger", id: "confirm-passkey-remove" }, "Remove");
  const errorBox = h("div");
  const dlg = dialog(`Remove the passkey ${p.name}?`, [errorBox, h("p", {}, "It no longer signs you in.")], [yes]);
  yes.addEventListener("click", async () => {
    try {
      await app.ctl.request("otp-hkey-remove", { id: p.id });
      dlg.close();
      toast("ok", `Passkey ${p.name} removed.`);
      reload();
    } catch (e) {
      replace(errorBox, notice("error", errorText(e)));
    }
  });
}

function clearDialog(app: App, reload: () => void): void {
  const yes = h("button", { type: "button", class: "danger", id: "confirm-factors-clear" }, "Remove every second factor");
  const errorBox = h("div");
  const dlg = dialog("Remove every second factor?", [errorBox, h("p", {}, "Your authenticator app, passkeys and recovery codes are removed: signing in then needs only your password.")], [yes]);
  yes.addEventListener("click", async () => {
    try {
      await app.ctl.request("otpauth-clear");
      dlg.close();
      toast("ok", "Second factors removed.");
      reload();
    } catch (e) {
      replace(errorBox, notice("error", errorText(e)));
    }
  });
}
