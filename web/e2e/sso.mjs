// Single sign-on end to end in Debian's Chromium: the sign-in page's SSO link, the
// provider's sign-in and consent pages, back to the console signed in; and the refusals
// (a forged state, an expired code, an ID token signed by another key), each with a page
// that says what went wrong. Started by crates/server/tests/sso.rs with the real server and
// a real OpenID Connect provider (web/e2e/oidc-provider.mjs).

import { chromium } from "playwright-core";
import { check, env, scenarioSteps } from "./steps.mjs";

const BASE = env("IRONMESH_URL");
const ISSUER = env("OIDC_ISSUER");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let browser;
let page;
const { run, shot, step } = scenarioSteps({ scenario: "sso", shots: env("SCREENSHOT_DIR"), fullPage: true, page: () => page });

async function mode(query) {
  const r = await fetch(`${ISSUER}/__test/mode?${query}`, { method: "POST" });
  check(r.ok, `provider mode ${query}`);
}

/// A fresh browser context (no cookies) on the sign-in page.
async function fresh() {
  if (page) await page.context().close();
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  page = await context.newPage();
}

/// From the sign-in page through the provider's pages, as `login`.
async function throughProvider(login) {
  await page.goto(`${BASE}/login`);
  await page.click("#sso-sign-in");
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "anything");
  await page.click('button[type="submit"]');
  await page.waitForSelector('button:text("Continue")');
  await page.click('button:text("Continue")');
}

async function main() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

  await run("a forged state is refused with a clear page", async () => {
    await fresh();
    await page.goto(`${BASE}/oidc/callback?code=made-up&state=forged`);
    const text = await page.textContent("#sso-error");
    check(text.includes("state does not match"), `state refusal (got ${text})`);
    await shot("forged-state");
  });

  await run("single sign-on creates the account and opens the console", async () => {
    await fresh();
    await throughProvider("ops-alice");
    await page.waitForSelector("#whoami:text-is('ops-alice')", { timeout: 20000 });
    // The mapped group is visible to the new account.
    await page.waitForSelector('section.group[data-group-name="Servers"]');
    await shot("signed-in");
  });

  await run("a second sign-in finds the same account", async () => {
    await fresh();
    await throughProvider("ops-alice");
    await page.waitForSelector("#whoami:text-is('ops-alice')", { timeout: 20000 });
  });

  await run("an expired code is refused with a clear page", async () => {
    // Codes live 1 s, and the provider holds the redirect carrying one for 2.5 s.
    await mode("codeTtl=1&holdCodes=1&resign=0");
    await fresh();
    await throughProvider("ops-bob");
    const text = await page.textContent("#sso-error", { timeout: 20000 });
    check(text.includes("refused the sign-in code") && text.includes("invalid_grant"), `expired code refusal (got ${text})`);
    await shot("expired-code");
  });

  await run("an ID token signed by another key is refused with a clear page", async () => {
    await mode("codeTtl=60&holdCodes=0&resign=1");
    await fresh();
    await throughProvider("ops-carol");
    const text = await page.textContent("#sso-error", { timeout: 20000 });
    check(text.includes("signature does not verify"), `forged token refusal (got ${text})`);
    await shot("forged-token");
  });
}

main()
  .then(async () => {
    await browser.close();
  })
  .catch(async (e) => {
    console.error(`FAILED sso: ${step()}: ${e.stack || e}`);
    try {
      if (page) await shot(`failed-${step().replace(/\W+/g, "-")}`);
    } catch {
      // The screenshot is a courtesy; the failure above is what matters.
    }
    if (browser) await browser.close();
    process.exit(1);
  });
