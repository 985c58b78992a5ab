// End-to-end test of the console's Desktop tab in Debian's Chromium, driven by playwright-core.
// Started by crates/server/tests/desktop_console.rs, which starts the real server, an Xvfb
// display painted with a known pattern by `ironmesh-xpattern`, and an agent on that display,
// and passes everything through the environment. The browser reaches the server through a
// TCP relay of this script's, so a step can cut every connection (a brief network loss).
// Prints one line per step; exits non-zero on the first failure, after a screenshot.
//
//   node web/e2e/desktop.mjs <scenario>     scenarios: desktop (ironmesh-agent), stock (MeshCentral's agent), no-display,
//                                           monitors (ironmesh-agent on a screen of two monitors)
//
// Environment: IRONMESH_URL, IRONMESH_USER, IRONMESH_PASS, SCREENSHOT_DIR, CHROMIUM;
// DESKTOP_SAMPLES: JSON [[x, y, [r, g, b]], …] of the pattern; DESKTOP_SIZE "1024x768";
// DESKTOP_ECHO: JSON {"x":…, "y":…, "colours":[[r,g,b], …]} (the box a key press repaints);
// PAINTER_EVENTS: the painter's JSON-lines file of the keys and clicks it got; DESKTOP_INPUT=1
// to check input; VIEWER_USER / NODESK_USER (password IRONMESH_PASS): a view-only member and a
// member without desktop rights; DESKTOP_CLIPBOARD=1 to check the clipboard round trip.
// The monitors scenario: DESKTOP_MONITORS=1, DESKTOP_SIZE the whole screen (two monitors side
// by side) and DESKTOP_SAMPLES its pattern; DESKTOP_MONITOR_SAMPLES the pattern as monitor 2
// shows it (coordinates relative to the monitor), DESKTOP_MONITOR_X where monitor 2 starts.

import { readFileSync } from "node:fs";
import net from "node:net";
import { check, env, launchChromium, scenarioSteps, sleep } from "./steps.mjs";

const SERVER = new URL(env("IRONMESH_URL"));
const USER = env("IRONMESH_USER");
const PASS = env("IRONMESH_PASS");
const TOLERANCE = 40;

const scenario = process.argv[2] ?? "desktop";
let page;
/** Binary frames the main page sent on relay sockets (byte arrays), and text frames. */
const sentFrames = [];
const sentText = [];
let BASE;
const { run, shot, poll, watch, exitAfter } = scenarioSteps({
  scenario,
  shots: env("SCREENSHOT_DIR"),
  prefix: `desktop-${scenario}`,
  page: () => page,
  pollMs: 100,
});

/** A TCP relay to the server: `drop()` cuts every open connection, as a network loss would;
 *  `block(true)` refuses new ones until `block(false)`. */
async function startRelay(port) {
  const open = new Set();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, "127.0.0.1");
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.pipe(upstream);
    upstream.pipe(client);
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    drop: () => {
      for (const s of open) s.destroy();
      open.clear();
    },
    /** While blocked, new connections are cut at once (the network is still down). */
    block: (b) => {
      blocked = b;
    },
    close: () => server.close(),
  };
}

/** The painter's events so far. */
function painterEvents() {
  const text = readFileSync(env("PAINTER_EVENTS"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    });
}

async function login(p, user) {
  await p.goto(`${BASE}/`);
  await p.waitForURL(/\/login$/);
  await p.fill('input[name="username"]', user);
  await p.fill('input[name="password"]', PASS);
  await p.click('button[type="submit"]');
  await p.waitForSelector(`#whoami:text-is('${user}')`);
}

async function openDesktop(p) {
  await p.click("tr.device.online td.name a", { timeout: 60000 });
  await p.click("#tab-desktop");
}

/** The canvas's colour at each sample point, and the points that differ from the pattern. */
async function canvasMismatches(p, samples) {
  const got = await p.evaluate((points) => {
    const c = document.querySelector("#desktop-canvas");
    if (!c || !c.width) return null;
    const ctx = c.getContext("2d");
    return points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
  }, samples);
  if (!got) return ["no picture"];
  return samples.flatMap(([x, y, want], i) => (want.every((v, k) => Math.abs(v - got[i][k]) <= TOLERANCE) ? [] : [`(${x},${y}) ${got[i]} ≠ ${want}`]));
}

async function waitForPattern(p, what) {
  const samples = JSON.parse(env("DESKTOP_SAMPLES"));
  const [w, h] = env("DESKTOP_SIZE").split("x").map(Number);
  await p.waitForFunction(([w, h]) => {
    const c = document.querySelector("#desktop-canvas");
    return c && c.width === w && c.height === h && Number(c.dataset.tiles ?? 0) > 0;
  }, [w, h], { timeout: 30000 });
  let last = [];
  await poll(async () => {
    last = await canvasMismatches(p, samples);
    return last.length === 0;
  }, `${what}: the canvas shows the pattern (${samples.length} points); off: ${last.slice(0, 5).join("; ")}`, 20000);
}

async function pixel(p, x, y) {
  return p.evaluate(([x, y]) => Array.from(document.querySelector("#desktop-canvas").getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3)), [x, y]);
}

/** Page coordinates of device pixel (x, y) on the canvas as shown, once its layout has held
 *  still for a moment (after full screen or a zoom the page settles over a few frames). */
async function onCanvas(p, x, y) {
  let last = "";
  await poll(async () => {
    const now = await p.evaluate(() => JSON.stringify(document.querySelector("#desktop-canvas").getBoundingClientRect()));
    const same = now === last;
    last = now;
    return same;
  }, "the canvas to hold still");
  return p.evaluate(([x, y]) => {
    const c = document.querySelector("#desktop-canvas");
    const r = c.getBoundingClientRect();
    return { x: r.left + ((x + 0.5) * r.width) / c.width, y: r.top + ((y + 0.5) * r.height) / c.height };
  }, [x, y]);
}

async function waitPainter(pred, what, from, timeoutMs = 10000) {
  return poll(() => painterEvents().slice(from).find(pred), `the painter to report ${what}`, timeoutMs);
}

/** A raw relay session of the page's user, bypassing the console: sends `commands` (byte
 *  arrays) once the agent has sent something, and reports how the session went. */
async function rawSession(p, nodeId, commands) {
  return p.evaluate(
    ([nodeId, commands]) =>
      new Promise((resolve) => {
        const ws = new WebSocket(`wss://${location.host}/meshrelay.ashx?nodeid=${encodeURIComponent(nodeId)}&p=2&browser=1`);
        ws.binaryType = "arraybuffer";
        let received = 0;
        let sent = false;
        ws.onmessage = (ev) => {
          if (ev.data === "c" || ev.data === "cr") {
            ws.send("2");
            return;
          }
          received += typeof ev.data === "string" ? ev.data.length : ev.data.byteLength;
          if (!sent && typeof ev.data !== "string") {
            sent = true;
            for (const c of commands) ws.send(new Uint8Array(c));
            setTimeout(() => {
              ws.close();
              resolve({ received, sent });
            }, 2500);
          }
        };
        ws.onclose = (ev) => resolve({ received, sent, code: ev.code, reason: ev.reason });
        setTimeout(() => resolve({ received, sent, timeout: true }), 20000);
      }),
    [nodeId, commands],
  );
}

const cmd = (n, ...body) => [n >> 8, n & 255, (4 + body.length) >> 8, (4 + body.length) & 255, ...body];

async function desktopScenario(relay, browser) {
  const input = process.env.DESKTOP_INPUT === "1";
  const [W, H] = env("DESKTOP_SIZE").split("x").map(Number);

  await run("the Desktop tab shows the device's screen", async () => {
    await login(page, USER);
    await openDesktop(page);
    await waitForPattern(page, "first picture");
    await page.waitForSelector("#desktop-status:text('Connected.')");
    await shot("pattern");
  });

  await run("status line: frames per second and bandwidth", async () => {
    const text = await poll(async () => {
      const t = await page.textContent("#desktop-stats");
      return /\d+ frames\/s · [\d.]+ (B|KiB|MiB)\/s · \d+×\d+/.test(t) ? t : null;
    }, "the statistics");
    check(text.includes(`${W}×${H}`), `the screen size is shown (got ${text})`);
  });

  await run("fit to the window and 1:1", async () => {
    const fitted = await page.evaluate(() => document.querySelector("#desktop-canvas").getBoundingClientRect().width);
    check(fitted < W, `fitted to the window: ${fitted} px for a ${W} px screen`);
    await page.click("#desktop-scale");
    await page.waitForFunction((w) => Math.abs(document.querySelector("#desktop-canvas").getBoundingClientRect().width - w) < 1, W);
    await shot("one-to-one");
    await page.click("#desktop-scale");
    await page.waitForFunction((w) => document.querySelector("#desktop-canvas").getBoundingClientRect().width < w, W);
  });

  await run("full screen and back", async () => {
    await page.click("#desktop-fullscreen");
    await page.waitForFunction(() => document.fullscreenElement?.id === "desktop");
    await page.waitForSelector("#desktop-fullscreen:text('Exit full screen')");
    await page.click("#desktop-fullscreen");
    await page.waitForFunction(() => document.fullscreenElement === null);
  });

  if (input) {
    await run("a click and a right click arrive where they were made", async () => {
      const from = painterEvents().length;
      const at = await onCanvas(page, 300, 200);
      await page.mouse.click(at.x, at.y);
      const left = await waitPainter((e) => e.button === 1, "a left click", from);
      check(Math.abs(left.x - 300) <= 2 && Math.abs(left.y - 200) <= 2, `left click at (300,200) arrived at (${left.x},${left.y})`);
      const at2 = await onCanvas(page, 700, 500);
      await page.mouse.click(at2.x, at2.y, { button: "right" });
      const right = await waitPainter((e) => e.button === 3, "a right click", from);
      check(Math.abs(right.x - 700) <= 2 && Math.abs(right.y - 500) <= 2, `right click at (700,500) arrived at (${right.x},${right.y})`);
      await page.mouse.click(at.x, at.y, { button: "middle" });
      await waitPainter((e) => e.button === 2, "a middle click", from);
      await page.mouse.move(at.x, at.y);
      await page.mouse.wheel(0, -200);
      await waitPainter((e) => e.button === 4, "a wheel notch up", from);
    });

    await run("typed text arrives as typed, Enter as a key; the screen follows", async () => {
      const echo = JSON.parse(env("DESKTOP_ECHO"));
      const before = await pixel(page, echo.x, echo.y);
      const from = painterEvents().length;
      await page.keyboard.type("Hi, ironmesh!");
      await page.keyboard.press("Enter");
      await waitPainter((e) => e.keysym === 0xff0d, "Return", from);
      const typed = painterEvents()
        .slice(from)
        .map((e) => e.key ?? "")
        .join("");
      check(typed === "Hi, ironmesh!", `the painter got "${typed}"`);
      // Each key press repaints the echo box: the canvas follows.
      await poll(async () => {
        const now = await pixel(page, echo.x, echo.y);
        return echo.colours.some((c) => c.every((v, k) => Math.abs(v - now[k]) <= TOLERANCE)) && now.some((v, k) => Math.abs(v - before[k]) > TOLERANCE);
      }, "the echo box repainted on the canvas");
      await shot("typed");
    });

    await run("special keys: the menu sends F5 and Esc", async () => {
      const from = painterEvents().length;
      await page.selectOption("#desktop-keys", { label: "F5" });
      await waitPainter((e) => e.keysym === 0xffc2, "F5", from);
      await page.selectOption("#desktop-keys", { label: "Esc" });
      await waitPainter((e) => e.keysym === 0xff1b, "Escape", from);
      check((await page.inputValue("#desktop-keys")) === "", "the menu goes back to its title");
    });

    await run("view only: no input reaches the device", async () => {
      await page.click("#desktop-viewonly");
      await page.waitForSelector("#desktop-viewonly[aria-pressed='true']");
      check(await page.isDisabled("#desktop-cad"), "Ctrl+Alt+Del is off in view only");
      const from = painterEvents().length;
      const at = await onCanvas(page, 400, 300);
      await page.mouse.click(at.x, at.y);
      await page.keyboard.type("nope");
      await sleep(1500);
      check(painterEvents().length === from, `nothing arrived (got ${JSON.stringify(painterEvents().slice(from))})`);
      await page.click("#desktop-viewonly");
      await page.waitForSelector("#desktop-viewonly[aria-pressed='false']");
      await page.mouse.click(at.x, at.y);
      await waitPainter((e) => e.button === 1, "a click after view only", from);
    });
  }

  await run("picture settings: quality, size and frame rate are sent and kept", async () => {
    const from = sentFrames.length;
    await page.selectOption("#desktop-quality", "30");
    await page.selectOption("#desktop-rate", "33");
    await page.selectOption("#desktop-scaling", "512");
    // Compression command: type 1 (JPEG), quality, scaling (1024 = 100 %), frame timer ms.
    const want = [0, 5, 0, 10, 1, 30, 2, 0, 0, 33];
    await poll(() => sentFrames.slice(from).some((f) => f.length === 10 && f.every((b, i) => b === want[i])), `the compression command ${want}`);
    if (process.env.DESKTOP_SCALING === "1") {
      // The agent sends the half-size screen, and the full size again after.
      await page.waitForFunction((w) => document.querySelector("#desktop-canvas").width === w / 2, W, { timeout: 15000 });
    }
    await page.selectOption("#desktop-scaling", "1024");
    await page.waitForFunction((w) => document.querySelector("#desktop-canvas").width === w, W, { timeout: 15000 });
    await waitForPattern(page, "after the settings changed");
    const saved = await page.evaluate(() => JSON.parse(localStorage.getItem("ironmesh.desktop")));
    check(saved.quality === 30 && saved.frameMs === 33 && saved.scaling === 1024, `settings kept (got ${JSON.stringify(saved)})`);
    await page.reload();
    await page.waitForSelector("#desktop-status:text('Connected.')", { timeout: 30000 });
    check((await page.inputValue("#desktop-quality")) === "30" && (await page.inputValue("#desktop-rate")) === "33", "the settings are back after a reload");
    await waitForPattern(page, "after a reload");
    await page.selectOption("#desktop-quality", "50");
    await page.selectOption("#desktop-rate", "100");
  });

  await run("a brief network loss: the session comes back by itself", async () => {
    const before = Number(await page.getAttribute("#desktop-canvas", "data-tiles"));
    relay.drop();
    await page.waitForSelector("#desktop-status:has-text('reconnecting')", { timeout: 10000 });
    await page.waitForSelector("#desktop-status:text('Connected.')", { timeout: 40000 });
    await poll(async () => Number(await page.getAttribute("#desktop-canvas", "data-tiles")) > before, "pictures after the reconnection", 20000);
    await waitForPattern(page, "after the reconnection");
  });

  await run("a longer loss: retries back off, then the session comes back", async () => {
    const before = Number(await page.getAttribute("#desktop-canvas", "data-tiles"));
    relay.block(true);
    relay.drop();
    // The first retry (after 1 s) fails too; the second waits 2 s more.
    await page.waitForSelector("#desktop-status:has-text('attempt 2 of 5')", { timeout: 10000 });
    await shot("reconnecting");
    relay.block(false);
    await page.waitForSelector("#desktop-status:text('Connected.')", { timeout: 40000 });
    await poll(async () => Number(await page.getAttribute("#desktop-canvas", "data-tiles")) > before, "pictures after the reconnection", 20000);
  });

  await run("clipboard: the console sends the text and asks for the device's", async () => {
    const from = sentText.length;
    await page.click("#desktop-clip-send");
    await page.fill("#desktop-clip-text", "ironmesh clipboard ✓ 42");
    await page.click("#desktop-clip-confirm");
    await page.click("#desktop-clip-get");
    const sent = await poll(() => {
      const msgs = sentText.slice(from).flatMap((t) => {
        try {
          return [JSON.parse(t)];
        } catch {
          return [];
        }
      });
      const set = msgs.find((m) => m.type === "clipboard");
      const get = msgs.find((m) => m.type === "getclipboard");
      return set && get ? { set, get } : null;
    }, "the clipboard messages");
    check(sent.set.ctrlChannel === "102938" && sent.set.data === "ironmesh clipboard ✓ 42", `clipboard message (got ${JSON.stringify(sent.set)})`);
    check(sent.get.ctrlChannel === "102938", "getclipboard on the control channel");
    if (process.env.DESKTOP_CLIPBOARD !== "1") {
      // An agent without clipboard support: the console says so instead of waiting forever.
      await page.waitForSelector("#toast .notice.error:has-text('did not send its clipboard')", { timeout: 10000 });
    }
  });

  if (process.env.DESKTOP_CLIPBOARD === "1") {
    await run("clipboard: text sent to the device comes back", async () => {
      await page.waitForSelector("#desktop-clip-received");
      check((await page.inputValue("#desktop-clip-received")) === "ironmesh clipboard ✓ 42", "the device's clipboard holds the text");
      await page.click("dialog header button[aria-label='Close']");
    });
  }

  const nodeId = await page.evaluate(() => decodeURIComponent(location.hash.split("/")[2]));

  if (process.env.VIEWER_USER) {
    await run("a view-only member sees the screen; input does not arrive, even sent by hand", async () => {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
      const p = await ctx.newPage();
      watch(p);
      await login(p, process.env.VIEWER_USER);
      await openDesktop(p);
      await waitForPattern(p, "view-only member");
      await p.waitForSelector("#desktop-viewonly[aria-pressed='true']:disabled");
      await p.waitForSelector("#desktop-status:text('Connected, view only.')");
      const from = painterEvents().length;
      const at = await onCanvas(p, 400, 300);
      await p.mouse.click(at.x, at.y);
      await p.keyboard.type("nope");
      // Bypassing the console: key and mouse commands on a relay session of the member's own.
      const raw = await rawSession(p, nodeId, [cmd(85, 0, 0, 0x71), cmd(85, 1, 0, 0x71), cmd(1, 0, 0x0d), cmd(1, 1, 0x0d), cmd(2, 0, 0x02, 1, 0, 1, 0), cmd(2, 0, 0x04, 1, 0, 1, 0)]);
      check(raw.sent, `the raw session got a picture and sent its input (${JSON.stringify(raw)})`);
      await sleep(1500);
      check(painterEvents().length === from, `no input arrived (got ${JSON.stringify(painterEvents().slice(from))})`);
      await shot("view-only-member", p);
      await ctx.close();
    });
  }

  if (process.env.NODESK_USER) {
    await run("a member without desktop rights is refused, with the reason", async () => {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
      const p = await ctx.newPage();
      watch(p);
      await login(p, process.env.NODESK_USER);
      await openDesktop(p);
      const msg = await p.waitForSelector("#desktop-message .notice.error:has-text('The session was refused')");
      const text = await msg.textContent();
      check(/desktop/i.test(text), `the reason names the desktop (got ${text})`);
      await p.waitForSelector("#desktop-reconnect:visible");
      await shot("refused", p);
      await ctx.close();
    });
  }

  await run("phone: tap clicks, long press right-clicks, pinch zooms", async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    const p = await ctx.newPage();
    watch(p);
    await login(p, USER);
    await openDesktop(p);
    await waitForPattern(p, "phone");
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the page is ${overflow}px wider than the phone`);
    await shot("phone", p);
    if (!input) {
      await ctx.close();
      return;
    }
    const from = painterEvents().length;
    const at = await onCanvas(p, 500, 400);
    await p.touchscreen.tap(at.x, at.y);
    const tap = await waitPainter((e) => e.button === 1, "a tap as a click", from);
    check(Math.abs(tap.x - 500) <= 4 && Math.abs(tap.y - 400) <= 4, `tap at (500,400) arrived at (${tap.x},${tap.y})`);
    const cdp = await ctx.newCDPSession(p);
    const point = { x: at.x, y: at.y, id: 1 };
    await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [point] });
    await sleep(900);
    await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    await waitPainter((e) => e.button === 3, "a long press as a right click", from);
    // Pinch out: two fingers moving apart zoom in.
    const width0 = await p.evaluate(() => document.querySelector("#desktop-canvas").getBoundingClientRect().width);
    const a = { x: at.x - 20, y: at.y, id: 1 };
    const b = { x: at.x + 20, y: at.y, id: 2 };
    await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [a, b] });
    for (let i = 1; i <= 5; i++) {
      await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: [{ ...a, x: a.x - i * 15 }, { ...b, x: b.x + i * 15 }] });
    }
    await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    const width1 = await p.evaluate(() => document.querySelector("#desktop-canvas").getBoundingClientRect().width);
    check(width1 > width0 * 1.5, `pinching zoomed in (${width0} → ${width1} px)`);
    // The on-screen keyboard's field types on the device.
    const from2 = painterEvents().length;
    await p.click("#desktop-keyboard");
    await p.keyboard.insertText("ok");
    const text = await poll(() => {
      const t = painterEvents()
        .slice(from2)
        .map((e) => e.key ?? "")
        .join("");
      return t === "ok" ? t : null;
    }, "the on-screen keyboard's text on the device");
    check(text === "ok", "typed through the hidden field");
    await ctx.close();
  });
}

async function stockScenario() {
  await run("the stock MeshCentral agent's screen shows in the Desktop tab", async () => {
    await login(page, USER);
    await openDesktop(page);
    await waitForPattern(page, "stock agent");
    await shot("pattern");
  });
  if (process.env.DESKTOP_INPUT === "1") {
    await run("stock agent: a click and typed text arrive", async () => {
      const from = painterEvents().length;
      const at = await onCanvas(page, 300, 200);
      await page.mouse.click(at.x, at.y);
      await waitPainter((e) => e.button === 1, "a left click", from);
      await page.keyboard.type("ok");
      await page.keyboard.press("Enter");
      await waitPainter((e) => e.keysym === 0xff0d, "Return", from);
    });
  }
}

/** ironmesh-agent on one X screen of two monitors: the console offers them, shows monitor 2
 *  alone when picked, sends clicks on it to the right place, and goes back to all. */
async function monitorsScenario() {
  check(process.env.DESKTOP_MONITORS === "1", "DESKTOP_MONITORS=1 (a screen of two monitors)");
  const monitorSamples = JSON.parse(env("DESKTOP_MONITOR_SAMPLES"));
  const offset = Number(env("DESKTOP_MONITOR_X"));
  const [, H] = env("DESKTOP_SIZE").split("x").map(Number);

  await run("the whole screen first, and a display picker naming both monitors", async () => {
    await login(page, USER);
    await openDesktop(page);
    await waitForPattern(page, "all displays");
    await page.waitForSelector("#desktop-display:not([hidden])");
    const options = await page.$$eval("#desktop-display option", (os) => os.map((o) => [o.value, o.textContent]));
    check(
      JSON.stringify(options) === JSON.stringify([["1", "Display 1"], ["2", "Display 2"], ["65535", "All displays"]]),
      `the picker offers the two monitors and all (got ${JSON.stringify(options)})`,
    );
    check((await page.inputValue("#desktop-display")) === "65535", "all displays selected at first");
  });

  await run("picking display 2 shows that monitor alone; a click on it lands there", async () => {
    await page.selectOption("#desktop-display", "2");
    await page.waitForFunction((h) => {
      const c = document.querySelector("#desktop-canvas");
      return c && c.width === 1024 && c.height === h;
    }, H, { timeout: 20000 });
    let last = [];
    await poll(async () => {
      last = await canvasMismatches(page, monitorSamples);
      return last.length === 0;
    }, `monitor 2's picture; off: ${last.slice(0, 5).join("; ")}`, 20000);
    check((await page.inputValue("#desktop-display")) === "2", "the picker shows display 2");
    await shot("monitor-2");
    const from = painterEvents().length;
    const at = await onCanvas(page, 10, 10);
    await page.mouse.click(at.x, at.y);
    const click = await waitPainter((e) => e.button === 1, "a click on monitor 2", from);
    check(Math.abs(click.x - (offset + 10)) <= 2 && Math.abs(click.y - 10) <= 2, `a click at (10,10) on monitor 2 arrived at (${click.x},${click.y})`);
  });

  await run("all displays again", async () => {
    await page.selectOption("#desktop-display", "65535");
    await waitForPattern(page, "all displays again");
  });
}

async function noDisplayScenario() {
  await run("without a display the agent's message is shown, not a blank canvas", async () => {
    await login(page, USER);
    await openDesktop(page);
    const msg = await page.waitForSelector("#desktop-message .notice", { timeout: 30000 });
    const text = (await msg.textContent()).trim();
    check(text.length > 0, "a message is shown");
    check(await page.isHidden("#desktop-canvas"), "no empty canvas");
    console.log(`    the agent said: ${text}`);
    await shot("message");
  });
}

async function hostileScenario() {
  await run("a device sending a picture outside its screen is refused, with the reason", async () => {
    await login(page, USER);
    await openDesktop(page);
    const msg = await page.waitForSelector("#desktop-message .notice", { timeout: 30000 });
    const text = (await msg.textContent()).trim();
    check(text.includes("cannot read") && text.includes("64×64 picture at 1000,760") && text.includes("1024×768 screen"), `the reason is shown (got ${text})`);
    check(!(await page.$eval("#desktop-canvas", (c) => c.dataset.tiles)), "nothing was drawn");
    // The console goes on working.
    await page.click("nav.nav a:text('Devices')");
    await page.waitForSelector("tr.device");
    await shot("hostile");
  });
}

const relay = await startRelay(Number(SERVER.port));
BASE = `${SERVER.protocol}//${SERVER.hostname}:${relay.port}`;
const browser = await launchChromium();
await exitAfter(
  async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    watch(page);
    page.on("websocket", (ws) => {
      if (!ws.url().includes("/meshrelay.ashx")) return;
      ws.on("framesent", (f) => {
        if (typeof f.payload !== "string") sentFrames.push([...f.payload]);
        else sentText.push(f.payload);
      });
    });
    if (scenario === "desktop") await desktopScenario(relay, browser);
    else if (scenario === "stock") await stockScenario();
    else if (scenario === "no-display") await noDisplayScenario();
    else if (scenario === "hostile") await hostileScenario();
    else if (scenario === "monitors") await monitorsScenario();
    else throw new Error(`unknown scenario ${scenario}`);
  },
  async () => {
    await browser.close();
    relay.close();
  },
);
