// End-to-end tests of the web console in Debian's Chromium, driven by playwright-core.
// Started by the Rust test crates/server/tests/console.rs, which starts the real server and
// passes everything through the environment. Prints one line per step; exits non-zero on the
// first failure, after saving a screenshot of the page as it was.
//
//   node web/e2e/console.mjs <scenario>      scenarios: main, hostile-device

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("IRONMESH_URL");
const USER = env("IRONMESH_USER");
const PASS = env("IRONMESH_PASS");
const SHOTS = env("SCREENSHOT_DIR");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

const scenario = process.argv[2] ?? "main";
const problems = [];
let page;
let step = "start";
let agent = null;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${scenario}-${name}.png`), fullPage: true });
}

async function run(name, fn) {
  step = name;
  const t0 = Date.now();
  await fn();
  console.log(`ok  ${scenario}: ${name} (${Date.now() - t0} ms)`);
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
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await run("sign out", async () => {
    await page.click("#sign-out");
    await page.waitForURL(/\/login/);
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login$/);
    await shot("signed-out");
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

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let failed = false;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => {
    problems.push(`a JavaScript dialog opened: ${d.message()}`);
    d.dismiss();
  });
  if (scenario === "main") await main();
  else if (scenario === "hostile-device") await hostileDevice();
  else throw new Error(`unknown scenario ${scenario}`);
  if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join("\n  ")}`);
} catch (e) {
  failed = true;
  console.error(`FAIL ${scenario}: ${step}: ${e.stack ?? e}`);
  if (problems.length) console.error(`page problems:\n  ${problems.join("\n  ")}`);
  try {
    await shot(`FAILED-${step.replace(/[^a-z0-9]+/gi, "-")}`);
  } catch {
    // No screenshot (the page or browser is gone): the failure is reported above.
  }
} finally {
  if (agent) agent.kill("SIGKILL");
  await browser.close();
}
process.exit(failed ? 1 : 0);
