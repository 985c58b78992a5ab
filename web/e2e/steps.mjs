// What the browser scenarios (console.mjs, desktop.mjs, sso.mjs) share: the step runner, its
// checks and waits, screenshots, the watch for page problems, and the run of a whole scenario
// (`exitAfter`). The Rust side (ironmesh_testkit::browser::run_scenario,
// crates/server/tests/sso.rs) reads the lines they print: `ok  <scenario>: <step> (N ms)` per
// step, and from `exitAfter` `FAIL <scenario>: <step>: …` on a failure.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** The environment variable `name`; throws when it is not set. */
export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Debian's Chromium (or `CHROMIUM`), headless. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** The steps of one scenario run:
 *  - `scenario`: its name in the printed lines;
 *  - `shots`: the folder for screenshots (created), each `<prefix>-<name>.png` (`prefix` is
 *    the scenario's name unless given), of the whole page with `fullPage`;
 *  - `page`: returns the page `shot` takes unless given another;
 *  - `pollMs`: the pause between two checks of `poll`. */
export function scenarioSteps({ scenario, shots, prefix = scenario, fullPage = false, page, pollMs = 250 }) {
  mkdirSync(shots, { recursive: true });
  let step = "start";
  const problems = [];

  async function shot(name, p = page()) {
    await p.screenshot({ path: join(shots, `${prefix}-${name}.png`), fullPage });
  }

  /** Throws when a watched page reported a problem. */
  function checkProblems() {
    if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join("\n  ")}`);
  }

  /** Reports `e` as the failure of the running step (`FAIL <scenario>: <step>: …`), with the
   *  page problems, and saves a screenshot of the page as it was if it can. */
  async function fail(e) {
    console.error(`FAIL ${scenario}: ${step}: ${e.stack ?? e}`);
    if (problems.length) console.error(`page problems:\n  ${problems.join("\n  ")}`);
    try {
      await shot(`FAILED-${step.replace(/[^a-z0-9]+/gi, "-")}`);
    } catch {
      // No screenshot (the page or browser is gone): the failure is reported above.
    }
  }

  return {
    shot,

    /** The step running (or "start"). */
    step: () => step,

    /** Runs step `name`; prints `ok  <scenario>: <name> (N ms)` when it succeeds. */
    async run(name, fn) {
      step = name;
      const t0 = Date.now();
      await fn();
      console.log(`ok  ${scenario}: ${name} (${Date.now() - t0} ms)`);
    },

    /** Waits until `fn` returns a truthy value (polled), or fails naming `what`. */
    async poll(fn, what, timeoutMs = 15000) {
      const until = Date.now() + timeoutMs;
      let last;
      for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > until) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
        await sleep(pollMs);
      }
    },

    /** Records what goes wrong on page `p` as a problem: page errors, console errors about
     *  the Content Security Policy, and JavaScript dialogs (dismissed). */
    watch(p) {
      p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      p.on("console", (m) => {
        if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
      });
      p.on("dialog", (d) => {
        problems.push(`a JavaScript dialog opened: ${d.message()}`);
        d.dismiss();
      });
    },

    /** Runs `body`, then fails it (`fail`) if it threw or a watched page reported a problem;
     *  then `cleanup`, whatever happened; then exits, non-zero after a failure. */
    async exitAfter(body, cleanup) {
      let failed = false;
      try {
        await body();
        checkProblems();
      } catch (e) {
        failed = true;
        await fail(e);
      } finally {
        await cleanup();
      }
      process.exit(failed ? 1 : 0);
    },
  };
}
