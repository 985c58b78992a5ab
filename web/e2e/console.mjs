// End-to-end tests of the web console in Debian's Chromium, driven by playwright-core.
// Started by the Rust test crates/server/tests/console.rs, which starts the real server and
// passes everything through the environment. Prints one line per step; exits non-zero on the
// first failure, after saving a screenshot of the page as it was.
//
//   node web/e2e/console.mjs <scenario>      scenarios: main, hostile-device, totp, passkey, required

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { check, env, launchChromium, scenarioSteps } from "./steps.mjs";

const BASE = env("IRONMESH_URL");
const USER = env("IRONMESH_USER");
const PASS = env("IRONMESH_PASS");

const scenario = process.argv[2] ?? "main";
let page;
let agent = null;
/** A second agent, for selecting several devices. */
let second = null;
const { run, shot, poll, watch, exitAfter } = scenarioSteps({
  scenario,
  shots: env("SCREENSHOT_DIR"),
  fullPage: true,
  page: () => page,
});

/** One control request on a fresh /control.ashx socket of the page's session: the server's
 *  view of what the console did. */
async function control(action, fields = {}) {
  return page.evaluate(
    ([action, fields]) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`wss://${location.host}/control.ashx`);
        const timer = setTimeout(() => reject(new Error(`no reply to ${action}`)), 15000);
        ws.onopen = () => ws.send(JSON.stringify({ ...fields, action, responseid: "e2e" }));
        ws.onmessage = (ev) => {
          const msg = JSON.parse(ev.data);
          if (msg.responseid === "e2e") {
            clearTimeout(timer);
            ws.close();
            resolve(msg);
          }
        };
        ws.onerror = () => reject(new Error("control channel failed"));
      }),
    [action, fields],
  );
}

async function siteRightsOf(name) {
  const r = await control("users");
  return (r.users ?? []).find((u) => u.name === name)?.siteadmin;
}

/** RFC 4648 base32 (authenticator secrets). */
function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${text}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The TOTP code of `secret` at 30-second step `step` (RFC 6238: HMAC-SHA1, 6 digits). */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 1000000).padStart(6, "0");
}

const currentStep = () => Math.floor(Date.now() / 30000);

/** Signs in with the password; returns when the console shows (or, with `secondStep`, when
 *  the sign-in page asks for the second factor). */
async function passwordStep(user, pass, secondStep = false) {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login$/);
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', pass);
  await page.click('button[type="submit"]');
  if (secondStep) await page.waitForSelector('input[name="code"]');
  else await page.waitForSelector(`#whoami:text-is('${user}')`);
}

async function signOut() {
  await page.click("#sign-out");
  await page.waitForURL(/\/login/);
}

async function login() {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login$/);
  await page.fill('input[name="username"]', USER);
  await page.fill('input[name="password"]', PASS);
  await page.click('button[type="submit"]');
  await page.waitForSelector("#whoami:text-is('" + USER + "')");
}

async function main() {
  await run("a wrong password is refused with a clear message", async () => {
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login$/);
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', "not-the-password");
    await page.click('button[type="submit"]');
    const msg = await page.textContent("#login-error");
    check(msg && msg.includes("Invalid user name or password"), `login error shown (got ${msg})`);
    await shot("login-error");
  });

  await run("sign in and see the device groups", async () => {
    await login();
    await page.waitForSelector('section.group[data-group-name="Lab"]');
    await page.waitForSelector("text=No devices in this group yet.");
    // The browser's control channel is compressed (permessage-deflate), and works.
    const negotiated = await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`wss://${location.host}/control.ashx`);
          ws.onmessage = (ev) => {
            const msg = JSON.parse(ev.data);
            if (msg.action === "userinfo") {
              resolve({ extensions: ws.extensions, user: msg.userinfo.name });
              ws.close();
            }
          };
          ws.onerror = () => reject(new Error("control channel failed"));
        }),
    );
    check(negotiated.extensions.startsWith("permessage-deflate"), `compression negotiated (got "${negotiated.extensions}")`);
    check(negotiated.user === USER, "the compressed channel carries the session");
    await shot("devices-empty");
  });

  await run("a new agent appears online without a reload", async () => {
    agent = spawn(env("AGENT_BIN"), ["--msh", env("AGENT_MSH"), "--state-dir", env("AGENT_STATE")], { stdio: "ignore" });
    const row = await page.waitForSelector('section.group[data-group-name="Lab"] tr.device.online', { timeout: 30000 });
    const text = await row.textContent();
    check(text.includes("now"), "online device shows last seen now");
    await shot("devices-live");
  });

  await run("the add-device dialog gives an install command", async () => {
    await page.click('section.group[data-group-name="Lab"] button:text("Add device")');
    const cmd = await page.textContent("#install-command");
    check(cmd.includes("/agents/ironmesh-agent") && cmd.includes("/meshsettings?id=") && cmd.includes("--msh"), `install command (got ${cmd})`);
    const msh = await page.getAttribute("#msh-download", "href");
    const res = await page.request.get(`${BASE}${msh}`);
    check(res.ok() && (await res.text()).includes("MeshID="), "the .msh link serves settings");
    await shot("add-device");
    await page.click("dialog footer button:text('Done')");
  });

  await run("device overview", async () => {
    await page.click('section.group[data-group-name="Lab"] tr.device.online td.name a');
    await page.waitForSelector("#device-state.online");
    await page.waitForSelector("dl.facts dt:text('Operating system')");
    // The week's connection bar: the device is online now, so its last segment is.
    await page.waitForSelector(".powerbar .seg.online:last-child");
    const segs = await page.$$eval(".powerbar .seg", (els) => els.map((e) => [e.dataset.state, parseFloat(e.style.width)]));
    const total = segs.reduce((t, [, w]) => t + w, 0);
    check(Math.abs(total - 100) < 0.5, `the bar spans the week (got ${JSON.stringify(segs)})`);
    check((await page.textContent(".powerbar-legend")).startsWith("Online "), "the bar has a legend");
    await shot("device-overview");
  });

  await run("terminal: a typed command's output comes back", async () => {
    await page.click("#tab-terminal");
    await page.waitForSelector("#terminal-status:text('Connected.')", { timeout: 30000 });
    await page.click("#terminal");
    await page.keyboard.type("echo ironmesh-$((6*7))\n");
    await page.waitForFunction(() => (document.querySelector(".xterm-rows")?.textContent ?? "").includes("ironmesh-42"), null, { timeout: 20000 });
    // Resize: the shell learns the new width.
    await page.setViewportSize({ width: 1000, height: 800 });
    await page.keyboard.type("stty size\n");
    await page.waitForFunction(() => /\d+ \d+/.test(document.querySelector(".xterm-rows")?.textContent ?? ""), null, { timeout: 10000 });
    await page.setViewportSize({ width: 1280, height: 800 });
    await shot("terminal");
  });

  const work = env("WORK_DIR");
  const content = Buffer.from(Array.from({ length: 300000 }, (_, i) => (i * 7 + 3) % 256));
  const localFile = join(work, "local", "payload.bin");
  mkdirSync(join(work, "local"), { recursive: true });
  mkdirSync(join(work, "remote"), { recursive: true });
  writeFileSync(localFile, content);

  await run("files: browse, upload with progress, download the same bytes", async () => {
    await page.click("#tab-files");
    await page.waitForSelector("#file-crumbs button");
    await page.fill("#file-path", join(work, "remote"));
    await page.press("#file-path", "Enter");
    await page.waitForSelector("#file-list:has-text('This folder is empty.')");
    await page.setInputFiles("#file-upload", localFile);
    await page.waitForSelector("#file-status:has-text('Uploaded payload.bin')", { timeout: 30000 });
    const landed = readFileSync(join(work, "remote", "payload.bin"));
    check(landed.equals(content), "uploaded bytes equal the local file");
    await page.waitForSelector('tr[data-name="payload.bin"]');
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('tr[data-name="payload.bin"] button:text("Download")')]);
    const saved = join(work, "downloaded.bin");
    await download.saveAs(saved);
    check(readFileSync(saved).equals(content), "downloaded bytes equal the uploaded file");
    await shot("files");
  });

  await run("files: new folder, rename, delete, breadcrumbs", async () => {
    await page.click("#file-mkdir");
    await page.fill("#name-input", "reports");
    await page.click("dialog footer button:text('Create')");
    await page.waitForSelector('tr[data-name="reports"]');
    check(existsSync(join(work, "remote", "reports")), "folder created on the device");
    await page.click('tr[data-name="payload.bin"] button:text("Rename")');
    await page.fill("#name-input", "renamed.bin");
    await page.click("dialog footer button:text('Rename')");
    await page.waitForSelector('tr[data-name="renamed.bin"]');
    check(existsSync(join(work, "remote", "renamed.bin")), "file renamed on the device");
    await page.click('tr[data-name="renamed.bin"] button:text("Delete")');
    await page.click("#confirm-delete");
    await page.waitForSelector('tr[data-name="renamed.bin"]', { state: "detached" });
    check(!existsSync(join(work, "remote", "renamed.bin")), "file deleted on the device");
    await page.click('tr[data-name="reports"] button.folder');
    await page.waitForSelector("#file-crumbs button:text('reports')");
    await page.click("#file-crumbs button:text('remote')");
    await page.waitForSelector('tr[data-name="reports"]');
  });

  await run("run a command and read its output", async () => {
    await page.click("#tab-run");
    await page.fill("#run-command", "echo run-$((2+3))");
    await page.click("#run-submit");
    await page.waitForSelector("#run-output:has-text('run-5')", { timeout: 30000 });
    await shot("run-command");
  });

  await run("the device's event log", async () => {
    await page.click("#tab-events");
    await page.waitForSelector("#event-log, #panel-events:has-text('No events')");
    await shot("events");
  });

  await run("events page: sign-ins and commands, the action filter, CSV and JSON Lines exports", async () => {
    await page.click("nav.nav a:text('Events')");
    await page.waitForSelector('#event-log tr[data-action="runcommands"]');
    await page.waitForSelector('#event-log tr[data-action="login"]');
    // The wrong password at the start is there too, as a failure.
    await page.waitForSelector('#event-log tr.failure[data-action="login"]');
    // The terminal session and the upload of the scenarios above are there as well.
    await page.waitForSelector('#event-log tr[data-action="relaylog"]:has-text("terminal")');
    await page.waitForSelector('#event-log tr[data-action="fileop"]:has-text("Upload: ")');
    const upload = await page.textContent('#event-log tr[data-action="fileop"]:has-text("Upload: ")');
    check(upload.includes("payload.bin") && upload.includes("300000 bytes"), `the upload names the file and its size (got ${upload})`);
    const cmdRow = await page.textContent('#event-log tr[data-action="runcommands"]');
    check(cmdRow.includes("echo run-$((2+3))"), `the command shows in its event (got ${cmdRow})`);
    const device = await page.textContent('#event-log tr[data-action="runcommands"] td:nth-child(6)');
    check(device && !device.includes("node/"), `the device is named, not an id (got ${device})`);
    await shot("events");
    await page.selectOption("#ev-action", "runcommands");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#event-log tbody tr")];
      return rows.length > 0 && rows.every((r) => r.dataset.action === "runcommands");
    });
    check(page.url().includes("action=runcommands"), `the filter is kept in the address (got ${page.url()})`);
    await shot("events-filtered");
    const [csv] = await Promise.all([page.waitForEvent("download"), page.click("#ev-export-csv")]);
    check(/\.csv$/.test(csv.suggestedFilename()), `CSV file name (got ${csv.suggestedFilename()})`);
    const csvText = readFileSync(await csv.path(), "utf8");
    const lines = csvText.trimEnd().split("\n");
    check(lines[0] === "time,action,outcome,user,address,device,group,message,client", `CSV header (got ${lines[0]})`);
    check(lines.length >= 2 && lines.slice(1).every((l) => l.split(",")[1] === "runcommands"), `CSV rows of the filter (got ${csvText})`);
    const [jsonl] = await Promise.all([page.waitForEvent("download"), page.click("#ev-export-jsonl")]);
    const records = readFileSync(await jsonl.path(), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    check(records.length === lines.length - 1 && records.every((e) => e.action === "runcommands" && e.cmds), "JSON Lines: the same events, whole");
    await page.click("#ev-clear");
    await page.waitForSelector('#event-log tr[data-action="login"]');
  });

  await run("session recording: record a group's terminal sessions, play one back", async () => {
    await page.click("nav.nav a:text('Device groups')");
    const box = 'section.group-card[data-group-name="Lab"] input.record-sessions';
    await page.check(box);
    await poll(async () => (await control("meshes")).meshes.find((m) => m.name === "Lab")?.flags & 4, "the group's record flag");
    await page.click("nav.nav a:text('Devices')");
    await page.click('section.group[data-group-name="Lab"] tr.device.online td.name a');
    await page.click("#tab-terminal");
    await page.waitForSelector("#terminal-status:text('Connected.')", { timeout: 30000 });
    await page.click("#terminal");
    await page.keyboard.type("echo rec-$((6*7))\n");
    await page.waitForFunction(() => (document.querySelector(".xterm-rows")?.textContent ?? "").includes("rec-42"), null, { timeout: 20000 });
    // Leaving the tab closes the session, which ends the recording.
    await page.click("#tab-recordings");
    await page.waitForSelector("#recordings tr[data-recording]", { timeout: 20000 });
    await page.click("#recordings tr[data-recording] button:text('Play')");
    await page.waitForSelector("#player-screen .xterm-rows");
    await page.click("#player-speed-4");
    await page.waitForFunction(() => (document.querySelector("#player-screen .xterm-rows")?.textContent ?? "").includes("rec-42"), null, { timeout: 30000 });
    await shot("recording-player");
    await page.click("#player-skip");
    await page.waitForSelector("#player-status:text('End of the recording.')");
    const href = await page.getAttribute("#player-download", "href");
    const res = await page.request.get(`${BASE}${href}`);
    const cast = await res.text();
    check(res.ok() && (res.headers()["content-disposition"] ?? "").startsWith("attachment"), "the download link serves the recording as a file");
    check(JSON.parse(cast.split("\n")[0]).version === 2 && cast.includes("rec-42"), "the download is the asciicast recording");
    await page.click("dialog footer button:text('Close')");
    // The session's event in the log carries the recording, with its own Play button.
    await page.click("#tab-events");
    await page.click('#event-log tr[data-action="relaylog"] button[data-recording]');
    await page.click("#player-skip");
    await page.waitForFunction(() => (document.querySelector("#player-screen .xterm-rows")?.textContent ?? "").includes("rec-42"));
    await page.click("dialog footer button:text('Close')");
  });

  await run("admin: add a user", async () => {
    await page.click("nav.nav a:text('Users')");
    await page.click("#add-user");
    await page.fill("#new-user-name", "operator");
    await page.fill("#new-user-password", "short");
    await page.click("#add-user-submit");
    await page.waitForSelector("dialog .notice.error");
    await shot("add-user-error");
    await page.fill("#new-user-password", "Operat0r-pass!");
    await page.click("#add-user-submit");
    await page.waitForSelector('tr[data-user="operator"]');
    await shot("users");
  });

  await run("admin: create a device group and give the user rights in it", async () => {
    await page.click("nav.nav a:text('Device groups')");
    await page.click("#add-group");
    await page.fill("#new-group-name", "Branch office");
    await page.click("#add-group-submit");
    const card = 'section.group-card[data-group-name="Branch office"]';
    await page.waitForSelector(card);
    await page.click(`${card} button:text("Add member")`);
    await page.fill("#member-name", "operator");
    await page.click("dialog footer button:text('Add member')");
    await page.waitForSelector(`${card} tr[data-member="operator"]`);
    const rights = await page.textContent(`${card} tr[data-member="operator"] td.rights`);
    check(rights.includes("Remote control") && rights.includes("Run commands"), `member rights shown by name (got ${rights})`);
    await shot("groups");
  });

  await run("member rights: exactly the enforced rights, explained; other bits kept", async () => {
    const card = 'section.group-card[data-group-name="Branch office"]';
    await page.click(`${card} tr[data-member="operator"] button:text("Rights")`);
    const bits = await page.$$eval("#rights-grid input[data-bit]", (els) => els.map((e) => Number(e.dataset.bit)));
    const enforced = [1, 2, 4, 8, 16, 64, 256, 512, 1024, 8192, 16384, 32768, 65536, 131072, 262144, 1048576, 2097152];
    check(JSON.stringify(bits) === JSON.stringify(enforced), `offered rights (got ${bits})`);
    check((await page.$$("#rights-grid small")).length === enforced.length, "each right is explained");
    await shot("rights-dialog");
    await page.click("dialog header button[aria-label='Close']");
    // Bits the console does not offer (set by another tool) survive a save.
    const meshid = (await control("meshes")).meshes.find((m) => m.name === "Branch office")._id;
    const other = 32 | 32768;
    const r = await control("addmeshuser", { meshid, userid: "operator", meshadmin: 8 | 131072 | other });
    check(!r.failed, `rights set directly (got ${JSON.stringify(r)})`);
    await page.waitForFunction(() => (document.querySelector('section.group-card[data-group-name="Branch office"] tr[data-member="operator"] td.rights')?.textContent ?? "").includes("other bits"));
    await page.click(`${card} tr[data-member="operator"] button:text("Rights")`);
    await page.waitForSelector("#rights-other");
    await page.check('#rights-grid input[data-bit="1048576"]');
    await page.click("dialog footer button:text('Save rights')");
    const rightsOf = async () => (await control("meshes")).meshes.find((m) => m.name === "Branch office").links["user//operator"]?.rights;
    const saved = await poll(async () => ((await rightsOf()) & 1048576 ? await rightsOf() : 0), "the saved rights");
    check(saved === (8 | 131072 | 1048576 | other), `other bits kept (got ${saved})`);
  });

  await run("site rights: partial rights, full administrator asks first and gives them back", async () => {
    await page.click("nav.nav a:text('Users')");
    const row = 'tr[data-user="operator"]';
    await page.waitForSelector(row);
    // New accounts may not create device groups unless allowed.
    check(!(await page.isChecked(`${row} input[data-site-bit="64"]`)), "a new user may not create device groups");
    check(((await siteRightsOf("operator")) & 64) === 64, "the server holds that as bit 64");
    await page.check(`${row} input[data-site-bit="2"]`);
    await poll(async () => (await siteRightsOf("operator")) === (2 | 64), "manage users saved");
    // Full administrator: asks; cancelling changes nothing.
    await page.click(`${row} input[data-right="full"]`);
    await page.waitForSelector("#confirm-full-admin");
    await shot("full-admin-confirm");
    await page.click("#cancel-full-admin");
    check(!(await page.isChecked(`${row} input[data-right="full"]`)), "cancelled: not full");
    check((await siteRightsOf("operator")) === (2 | 64), "cancelled: nothing saved");
    await page.click(`${row} input[data-right="full"]`);
    await page.click("#confirm-full-admin");
    await poll(async () => (await siteRightsOf("operator")) === 0xffffffff, "full administrator saved");
    await page.waitForSelector(`${row} input[data-site-bit="2"]:disabled:checked`);
    await shot("users-full-admin");
    // Switching it off saves the partial rights again, not nothing.
    await page.uncheck(`${row} input[data-right="full"]`);
    await poll(async () => (await siteRightsOf("operator")) === (2 | 64), "partial rights restored");
    await page.waitForSelector(`${row} input[data-site-bit="2"]:enabled:checked`);
    check(!(await page.isChecked(`${row} input[data-site-bit="64"]`)), "still may not create device groups");
    await shot("users-site-rights");
    // A user manager removes another account's second factors (a lost phone).
    await page.click(`${row} button[data-action="clear-factors"]`);
    await page.click("#confirm-clear-factors");
    await page.waitForSelector("#toast .notice.ok:has-text('Second factors of operator removed')");
    // The user's events, from the users page.
    await page.click(`${row} a:text('Events')`);
    await page.waitForURL(/#\/events\?user=/);
    check((await page.inputValue("#ev-user")) === "user//operator", "the events page is filtered by the user");
    await page.waitForSelector("#event-log, #ev-empty");
  });

  await run("user groups: create one, add a member, give it rights on a device group", async () => {
    await page.click("nav.nav a:text('Users')");
    await page.click("#add-user-group");
    await page.fill("#new-ugroup-name", "Night shift");
    await page.fill("#new-ugroup-desc", "Out-of-hours operators");
    await page.click("#add-ugroup-submit");
    const card = 'section.ugroup-card[data-ugroup="Night shift"]';
    await page.waitForSelector(card);
    // An unknown user is refused in the dialog, by name.
    await page.click(`${card} button:text("Add member")`);
    await page.fill("#ugroup-member-name", "nobody-here");
    await page.click("#ugroup-member-submit");
    await page.waitForSelector("dialog .notice.error:has-text('no user named nobody-here')");
    await page.fill("#ugroup-member-name", "operator");
    await page.click("#ugroup-member-submit");
    await page.waitForSelector(`${card} tr[data-member="operator"]`);
    const ugroups = async () => Object.entries((await control("usergroups")).ugroups ?? {});
    const [ugrpid, group] = (await ugroups()).find(([, g]) => g.name === "Night shift");
    check(group.links?.["user//operator"], `the server holds the member (got ${JSON.stringify(group)})`);
    await shot("user-groups");
    // The device group takes the user group as a member, with rights.
    await page.click("nav.nav a:text('Device groups')");
    const branch = 'section.group-card[data-group-name="Branch office"]';
    await page.click(`${branch} button:text("Add member")`);
    await page.selectOption("#member-kind", "ugroup");
    await page.waitForSelector("#member-ugroup option:text('Night shift')", { state: "attached" });
    await page.selectOption("#member-ugroup", ugrpid);
    await page.uncheck('#rights-grid input[data-bit="131072"]');
    await page.click("dialog footer button:text('Add member')");
    await page.waitForSelector(`${branch} tr[data-member="Night shift"][data-kind="ugroup"]`);
    const rights = await page.textContent(`${branch} tr[data-member="Night shift"] td.rights`);
    check(rights.includes("Remote control") && !rights.includes("Run commands"), `the group's rights shown (got ${rights})`);
    const link = (await control("meshes")).meshes.find((m) => m.name === "Branch office").links[ugrpid];
    check(link && link.rights === (8 | 1048576), `the server holds the user group's rights (got ${JSON.stringify(link)})`);
    await shot("device-group-user-group");
    // The users page lists the device group on the user group's card.
    await page.click("nav.nav a:text('Users')");
    await page.waitForSelector('section.ugroup-card[data-ugroup="Night shift"] .ugroup-meshes:has-text("Branch office")');
  });

  // A second browser, signed in as another user (operator).
  const other = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page2 = await other.newPage();
  watch(page2);
  const signInOther = async () => {
    await page2.goto(`${BASE}/`);
    await page2.waitForURL(/\/login$/);
    await page2.fill('input[name="username"]', "operator");
    await page2.fill('input[name="password"]', "Operat0r-pass!");
    await page2.click('button[type="submit"]');
  };

  await run("disable then enable a user: a disabled user cannot sign in", async () => {
    const row = 'tr[data-user="operator"]';
    await page.waitForSelector(`${row} td.state:text-is("Active")`);
    check(await page.isDisabled('tr[data-user="admin"] button[data-action="disable"]'), "one cannot disable oneself");
    await page.click(`${row} button[data-action="disable"]`);
    await page.click("#confirm-disable-user");
    await page.waitForSelector(`${row} td.state:has-text("Locked")`);
    check(((await siteRightsOf("operator")) & 32) === 32, "the server holds the lock");
    await shot("user-disabled");
    await signInOther();
    const msg = await page2.textContent("#login-error");
    check(msg && msg.includes("Sign-in refused"), `the disabled user's sign-in fails (got ${msg})`);
    await page.click(`${row} button[data-action="enable"]`);
    await page.waitForSelector(`${row} td.state:text-is("Active")`);
    check(((await siteRightsOf("operator")) & 32) === 0, "the lock is gone");
    await signInOther();
    await page2.waitForSelector("#whoami:text-is('operator')");
  });

  await run("broadcast a message: shown as text in every signed-in console, dismissible", async () => {
    const text = `Maintenance at 22:00 <img src=x onerror="window.__ironmeshPwned=true"> & <b>not bold</b>`;
    await page.click("#broadcast");
    await page.fill("#broadcast-message", text);
    await page.click("#broadcast-send");
    await page.waitForSelector("#toast .notice.ok:has-text('Message sent')");
    for (const p of [page2, page]) {
      await p.waitForSelector("#broadcasts .broadcast");
      const shown = await p.textContent("#broadcasts .broadcast .broadcast-message");
      check(shown === text, `the message verbatim (got ${shown})`);
      check((await p.textContent("#broadcasts .broadcast .broadcast-from")) === USER, "the sender is named");
      check((await p.$$("#broadcasts img, #broadcasts b")).length === 0, "no element was made from the message");
      check(!(await p.evaluate(() => window.__ironmeshPwned === true)), "no script ran");
    }
    await shot("broadcast", page2);
    await page2.click("#broadcasts .broadcast-dismiss");
    await page2.waitForSelector("#broadcasts .broadcast", { state: "detached" });
    await page.click("#broadcasts .broadcast-dismiss");
    // To one user: only that user's console shows it.
    await page.click("#broadcast");
    await page.fill("#broadcast-message", "Only for operator");
    await page.selectOption("#broadcast-target", "user//operator");
    await page.click("#broadcast-send");
    await page2.waitForSelector("#broadcasts .broadcast-message:text-is('Only for operator')");
    await page.waitForTimeout(500);
    check(!(await page.$("#broadcasts .broadcast")), "the sender, not chosen, got nothing");
    await other.close();
  });

  await run("narrow (mobile) layout has no sideways scrolling", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click("nav.nav a:text('Devices')");
    await page.waitForSelector("tr.device.online");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `page is ${overflow}px wider than the window`);
    await shot("narrow-devices");
    await page.click("tr.device.online td.name a");
    await page.click("#tab-files");
    await page.waitForSelector("#file-crumbs button");
    await shot("narrow-files");
    await page.click("nav.nav a:text('Events')");
    await page.waitForSelector("#event-log");
    const eventsOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(eventsOverflow <= 1, `the events page is ${eventsOverflow}px wider than the window (its table scrolls by itself)`);
    await shot("narrow-events");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  let lab;
  let nodeIds;
  await run("device page: rename, describe and tag a device", async () => {
    await page.click("nav.nav a:text('Devices')");
    await page.click('section.group[data-group-name="Lab"] tr.device.online td.name a');
    await page.waitForSelector("#device-settings");
    await page.fill("#device-rename", "lab-pc-1");
    await page.fill("#device-desc", "Rack 4, <b>second</b> shelf");
    await page.fill("#device-tags", "linux, lab, linux");
    await page.click("#device-save");
    await page.waitForSelector("#device-settings-status .notice.ok");
    await page.waitForSelector("#device-name:text-is('lab-pc-1')");
    lab = (await control("meshes")).meshes.find((m) => m.name === "Lab")._id;
    const node = await poll(async () => (await control("nodes")).nodes[lab]?.find((n) => n.name === "lab-pc-1"), "the renamed device listed");
    check(node.desc === "Rack 4, <b>second</b> shelf", `description stored as typed (got ${node.desc})`);
    check(JSON.stringify(node.tags) === '["lab","linux"]', `tags stored sorted, once each (got ${JSON.stringify(node.tags)})`);
    // Shown as text, in the overview and the list.
    await page.waitForSelector("dl.facts dd:text-is('Rack 4, <b>second</b> shelf')");
    check((await page.$$("dl.facts b")).length === 0, "the description made no element");
    const events = await control("events", { nodeid: node._id, filter: "changenode" });
    check(
      events.events.some((e) => e.msg === "Changed device lab-pc-1 from group Lab: name, description, tags" && e.msgid === 140),
      `the change is in the device's events (got ${JSON.stringify(events.events.map((e) => e.msg))})`,
    );
    await shot("device-settings");
    await page.click("nav.nav a:text('Devices')");
    await page.waitForSelector('tr.device td.name .tag:text-is("linux")');
  });

  const secondState = `${env("AGENT_STATE")}-second`;
  await run("device list: select two devices and move them to another group", async () => {
    second = spawn(env("AGENT_BIN"), ["--msh", env("AGENT_MSH"), "--state-dir", secondState], { stdio: "ignore" });
    await page.waitForFunction(() => document.querySelectorAll('section.group[data-group-name="Lab"] tr.device.online').length === 2, null, { timeout: 60000 });
    nodeIds = (await control("nodes")).nodes[lab].map((n) => n._id);
    check(nodeIds.length === 2, `two devices in Lab (got ${nodeIds.length})`);
    for (const id of nodeIds) await page.check(`input.select[data-node="${id}"]`);
    await page.waitForSelector("#selection-bar:visible #selection-count:text('2 selected')");
    await shot("devices-selected");
    await page.click("#selection-move");
    await page.selectOption("#move-group", { label: "Branch office" });
    await page.click("#move-submit");
    await page.waitForSelector("#toast .notice.ok:has-text('Moved 2 devices to Branch office')");
    // Both are listed in their new group, still online: their agents kept their connections.
    await page.waitForFunction(() => document.querySelectorAll('section.group[data-group-name="Branch office"] tr.device.online').length === 2);
    check((await page.$$('section.group[data-group-name="Lab"] tr.device')).length === 0, "none left in Lab");
    check(await page.isHidden("#selection-bar"), "the selection is cleared");
    const branch = (await control("meshes")).meshes.find((m) => m.name === "Branch office")._id;
    const moved = (await control("nodes")).nodes[branch] ?? [];
    check(moved.length === 2 && moved.every((n) => n.conn === 1), `the server lists both in Branch office, online (got ${JSON.stringify(moved.map((n) => [n.name, n.conn]))})`);
    await shot("devices-moved");
  });

  await run("remove devices: from the list, then from the device page; each agent uninstalls itself", async () => {
    const branch = (await control("meshes")).meshes.find((m) => m.name === "Branch office")._id;
    const [other] = (await control("nodes")).nodes[branch].filter((n) => n.name !== "lab-pc-1");
    check(other && nodeIds.includes(other._id), "the second device is listed");
    await page.check(`input.select[data-node="${other._id}"]`);
    await page.click("#selection-remove");
    await page.click("#confirm-remove-devices");
    await page.waitForSelector(`tr[data-node="${other._id}"]`, { state: "detached" });
    await poll(async () => second.exitCode !== null, "the second agent to exit");
    check(second.exitCode === 0, `the agent exited cleanly (got ${second.exitCode})`);
    check(!existsSync(secondState), "the agent's state folder is gone");
    // The first one from its own page.
    await page.click('tr.device td.name a:text-is("lab-pc-1")');
    await page.click("#device-remove");
    await shot("device-remove-confirm");
    await page.click("#confirm-remove-devices");
    await page.waitForURL(/#\/devices$/);
    await page.waitForSelector('tr.device td.name a:text-is("lab-pc-1")', { state: "detached" });
    await poll(async () => agent.exitCode !== null, "the first agent to exit");
    check(!existsSync(env("AGENT_STATE")), "the first agent's state folder is gone");
    const left = Object.values((await control("nodes")).nodes).flat();
    check(left.length === 0, `no device is left (got ${left.length})`);
    const removals = await control("events", { filter: "removenode" });
    check(removals.events.some((e) => e.msg === "Removed device lab-pc-1 from device group Branch office"), `the removal is in the event log (got ${JSON.stringify(removals.events.map((e) => e.msg))})`);
    await shot("devices-removed");
  });

  await run("sign out", async () => {
    await page.click("#sign-out");
    await page.waitForURL(/\/login/);
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login$/);
    await shot("signed-out");
  });
}

/** Second factor by authenticator app: enrol on the account page, then sign in with a code. */
async function totpScenario() {
  let secret;
  await run("enrol an authenticator app on the account page", async () => {
    await passwordStep(USER, PASS);
    await page.click("#whoami");
    await page.waitForSelector("#totp-state:has-text('Off')");
    await page.click("#totp-add");
    await page.waitForSelector("#totp-secret");
    check(await page.$("#totp-form canvas.qr"), "a QR code is shown");
    secret = (await page.textContent("#totp-secret")).trim();
    check(/^[A-Z2-7]{32}$/.test(secret), `a base32 secret is shown (got ${secret})`);
    await shot("enrol");
    // A wrong code is refused in the dialog.
    await page.fill("#totp-code", totp(secret, currentStep() + 10));
    await page.click("#totp-confirm");
    await page.waitForSelector("#totp-form .notice.error");
    await page.fill("#totp-code", totp(secret, currentStep()));
    await page.click("#totp-confirm");
    await page.waitForSelector("#recovery-codes li");
    const codes = await page.$$eval("#recovery-codes li", (els) => els.map((e) => e.textContent.trim()));
    check(codes.length === 10 && codes.every((c) => /^[A-Z2-7]{5}-[A-Z2-7]{5}$/.test(c)), `ten recovery codes (got ${codes})`);
    const [file] = await Promise.all([page.waitForEvent("download"), page.click("#recovery-download")]);
    check(readFileSync(await file.path(), "utf8").trim().split("\n").length === 10, "the codes download as a file");
    await shot("recovery-codes");
    await page.click("#dialog-done");
    await page.waitForSelector("#totp-state:has-text('On')");
    await page.waitForSelector("#recovery-count:has-text('10 unused')");
  });

  await run("sign in again: the password, then a wrong code is refused, then the right code", async () => {
    await signOut();
    await passwordStep(USER, PASS, true);
    await shot("second-step");
    const step = currentStep();
    const valid = new Set([step - 1, step, step + 1, step + 2].map((s) => totp(secret, s)));
    let wrong = "000000";
    while (valid.has(wrong)) wrong = String(Number(wrong) + 1).padStart(6, "0");
    await page.fill('input[name="code"]', wrong);
    await page.click('form[action="/login/code"] button[type="submit"]');
    const msg = await page.textContent("#login-error");
    check(msg && msg.includes("Wrong code"), `a wrong code is refused with a message (got ${msg})`);
    await shot("wrong-code");
    // The next step's code: the enrolment used this step's, and each step counts once.
    await page.fill('input[name="code"]', totp(secret, currentStep() + 1));
    await page.click('form[action="/login/code"] button[type="submit"]');
    await page.waitForSelector(`#whoami:text-is('${USER}')`);
    await shot("signed-in");
  });

  await run("the sign-ins are in the user's own event log", async () => {
    await page.click("nav.nav a:text('Events')");
    await page.waitForSelector('#event-log tr[data-action="2fa"]');
    await page.waitForSelector('#event-log tr[data-action="login"]:has-text("password and code")');
    await page.click("#whoami");
    await page.click("#factors-clear");
    await page.click("#confirm-factors-clear");
    await page.waitForSelector("#totp-state:has-text('Off')");
  });
}

/** A server that requires a second factor: an account without one sees only its account
 *  page until it adds one, then the console. */
async function requiredScenario() {
  await run("signed in without a second factor: only the account page, with the reason", async () => {
    await passwordStep(USER, PASS);
    await page.waitForSelector("#enrolment:has-text('requires a second factor')");
    check(await page.isHidden("nav.nav"), "the navigation is hidden");
    check(!(await page.$("section.group")), "no device list is shown");
    await shot("enrolment");
  });

  await run("adding an authenticator app opens the console", async () => {
    await page.click("#totp-add");
    await page.waitForSelector("#totp-secret");
    const secret = (await page.textContent("#totp-secret")).trim();
    await page.fill("#totp-code", totp(secret, currentStep()));
    await page.click("#totp-confirm");
    await page.waitForSelector("#recovery-codes li");
    await page.click("#dialog-done");
    await page.click("#enrolment-continue");
    await page.waitForSelector("nav.nav a:text('Devices')");
    check(!(await page.$("#enrolment")), "the banner is gone");
    await shot("after-enrolment");
  });
}

/** Second factor by passkey, with Chromium's virtual authenticator (WebAuthn needs a host
 *  name: this scenario runs at https://localhost). */
async function passkeyScenario() {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });
  await run("register a passkey on the account page", async () => {
    await passwordStep(USER, PASS);
    await page.click("#whoami");
    await page.waitForSelector("#passkey-add:enabled");
    await page.click("#passkey-add");
    await page.fill("#passkey-name", "Test key");
    await page.click("#passkey-create");
    // The first factor comes with recovery codes, shown once.
    await page.waitForSelector("#recovery-codes li", { timeout: 20000 });
    await page.click("#dialog-done");
    await page.waitForSelector('#passkeys tr[data-passkey="Test key"]');
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    check(credentials.length === 1, `the authenticator holds one credential (got ${credentials.length})`);
    await shot("registered");
  });

  await run("sign in with the password, then the passkey", async () => {
    await signOut();
    await passwordStep(USER, PASS, true);
    await page.waitForSelector("#use-passkey");
    await shot("second-step");
    await page.click("#use-passkey");
    await page.waitForSelector(`#whoami:text-is('${USER}')`, { timeout: 20000 });
    await page.click("#whoami");
    await page.waitForFunction(() => !(document.querySelector('#passkeys tr[data-passkey="Test key"]')?.textContent ?? "never").includes("never"));
    await shot("signed-in");
  });

  await run("remove the passkey", async () => {
    await page.click('#passkeys tr[data-passkey="Test key"] button:text("Remove")');
    await page.click("#confirm-passkey-remove");
    await page.waitForSelector("#passkey-count:text('None')");
  });

  await run("change the password: the old one is checked, this session stays", async () => {
    await page.fill("#old-password", "not-my-password");
    await page.fill("#new-password", "N3w-passkey-pass!");
    await page.fill("#new-password-again", "N3w-passkey-pass!");
    await page.click("#change-password");
    await page.waitForSelector("#password-status .notice.error");
    await page.fill("#old-password", PASS);
    await page.click("#change-password");
    await page.waitForSelector("#password-status .notice.ok");
    await shot("password-changed");
    // Still signed in: the page's session goes on and a new control channel is accepted.
    const me = await control("userinfo");
    check(me.userinfo?.name === USER, `this session still works (got ${JSON.stringify(me)})`);
    await signOut();
    await passwordStep(USER, "N3w-passkey-pass!");
  });
}

async function hostileDevice() {
  const payload = env("HOSTILE_NAME");
  await run("a device-reported name full of markup is shown as text", async () => {
    await login();
    await page.waitForSelector("tr.device.online");
    const shown = await page.textContent("tr.device.online td.name a");
    check(shown === payload, `name shown verbatim (got ${shown})`);
    check((await page.$$("tr.device img, tr.device script")).length === 0, "no element was made from the name");
    await page.click("tr.device.online td.name a");
    await page.waitForSelector("#device-name");
    check((await page.textContent("#device-name")) === payload, "device page title verbatim");
    check((await page.$$("main img, main script")).length === 0, "no element on the device page either");
    check(!(await page.evaluate(() => window.__ironmeshPwned === true)), "no script ran");
    await shot("hostile-name");
  });
}

const browser = await launchChromium();
await exitAfter(
  async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    watch(page);
    if (scenario === "main") await main();
    else if (scenario === "hostile-device") await hostileDevice();
    else if (scenario === "totp") await totpScenario();
    else if (scenario === "passkey") await passkeyScenario();
    else if (scenario === "required") await requiredScenario();
    else throw new Error(`unknown scenario ${scenario}`);
  },
  async () => {
    if (agent) agent.kill("SIGKILL");
    if (second) second.kill("SIGKILL");
    await browser.close();
  },
);
