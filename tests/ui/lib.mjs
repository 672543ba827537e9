// What the browser scripts share: the driver browser, sign-in, waits, screenshots, and failing
// loudly. Each script is one scenario that tests/web_ui.rs starts against a live
// `airlock serve`; a script exits non-zero (with a screenshot of where it stood) on failure.
//
// Waits are Playwright waits with generous timeouts, never assertions about how long something
// took: the CI machine is a loaded 2-core box.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** Longest wait for one thing to appear (a run reaching its approval, a page settling). */
export const PATIENCE_MS = 180_000;

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (tests/web_ui.rs sets it)`);
  return v;
}

export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

/** The browser that plays the reviewer: Debian's Chromium, headless. */
export async function launch() {
  const args = [
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
  ];
  // Chromium refuses to start its own sandbox as root (as the CI container runs). This is the
  // test's driver browser, standing in for a reviewer's; it loads only the local review UI.
  // It is not the product's browser: `airlock run` confines its Chromium in namespaces.
  if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
  return chromium.launch({
    executablePath: process.env.UI_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
  });
}

/**
 * A scenario: a browser, numbered screenshots in `UI_ARTIFACTS`, every console message
 * kept. `body(t)` does the work; failures leave a `FAILED` screenshot of each open page.
 */
export async function scenario(name, body) {
  const dir = join(env("UI_ARTIFACTS"), name);
  mkdirSync(dir, { recursive: true });
  const browser = await launch();
  const pages = [];
  let n = 0;
  const t = {
    url: process.env.UI_URL || "",
    dir,
    /** Console errors and uncaught exceptions, per page label. */
    problems: [],
    async context() {
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      ctx.setDefaultTimeout(60_000);
      ctx.setDefaultNavigationTimeout(90_000);
      return ctx;
    },
    /** A new tab, labelled for screenshots and error reports. */
    async page(ctx, label) {
      const page = await ctx.newPage();
      page.label = label;
      pages.push(page);
      page.on("console", (m) => {
        if (m.type() === "error") t.problems.push(`${label}: console error: ${m.text()}`);
      });
      page.on("pageerror", (e) => t.problems.push(`${label}: uncaught: ${e.message}`));
      return page;
    },
    async shot(page, what, options = {}) {
      n += 1;
      const file = join(dir, `${String(n).padStart(2, "0")}-${what}.png`);
      await (options.element ?? page).screenshot({ path: file, fullPage: !options.element });
      console.log(`screenshot ${file}`);
    },
    step(text) {
      console.log(`· ${text}`);
    },
  };
  try {
    await body(t);
    console.log(`${name}: passed`);
  } catch (e) {
    console.error(`${name}: FAILED: ${e && e.stack ? e.stack : e}`);
    for (const p of pages) {
      if (p.isClosed()) continue;
      const file = join(dir, `FAILED-${p.label}.png`);
      await p.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`  ${p.label} was at ${p.url()} (screenshot ${file})`);
    }
    if (t.problems.length) console.error(`  console: ${t.problems.join("\n  console: ")}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** Fails on the console errors that mean breakage: CSP refusals and script errors. */
export function noBrokenPages(t) {
  const bad = t.problems.filter((p) =>
    /uncaught|Content Security Policy|Refused to|SyntaxError|TypeError|ReferenceError/.test(p),
  );
  check(bad.length === 0, `the pages reported errors:\n${bad.join("\n")}`);
}

/** Reloads `page` until `locator` is visible: for server-rendered state such as a new request. */
export async function reloadUntil(page, locator, what) {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    if (await locator.first().isVisible().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} on ${page.url()}`);
    await page.waitForTimeout(1000);
    // The live run page reloads itself when the run ends; a person's reload that races it is
    // cut short ("Not attached to an active page", "interrupted by another navigation"). Look
    // again rather than fail: the page that won the race is the one to read.
    await page.reload().catch((e) => {
      if (!/Not attached to an active page|interrupted by another navigation|ERR_ABORTED/.test(String(e))) throw e;
    });
  }
}

/** Signs in on the login page `page` is on, as a person does: type, click, look. */
export async function signIn(page, name, password) {
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Opens `path` signed out, gets sent to the login page, signs in, lands on `path`. */
export async function signInAt(t, page, path, name, password) {
  await page.goto(t.url + path);
  await page.waitForURL((u) => u.pathname === "/login");
  await signIn(page, name, password);
  await page.waitForURL((u) => u.pathname === path);
  await page.getByText(`${name} ·`).waitFor();
}

/** The approval card of `run` on the queue page (reloading until it is there). */
export async function cardOf(page, run) {
  const card = page.locator("section.card.step").filter({
    has: page.locator(`a.mono[href="/runs/${run}"]`),
  });
  await reloadUntil(page, card, `the approval card of ${run}`);
  return card;
}

/** Checks that every screenshot `<image>` in `scope` loads and decodes in the page. */
export async function imagesLoad(scope, what) {
  const results = await scope.evaluate(async (root) => {
    const hrefs = [...root.querySelectorAll("image")].map((i) => i.getAttribute("href") || "");
    return Promise.all(
      hrefs.map(async (href) => {
        const img = new Image();
        img.src = href;
        try {
          await img.decode();
          return { href: href.slice(0, 60), ok: img.naturalWidth > 0, w: img.naturalWidth };
        } catch (e) {
          return { href: href.slice(0, 60), ok: false, error: String(e) };
        }
      }),
    );
  });
  check(results.length > 0, `${what}: no screenshot image at all`);
  const broken = results.filter((r) => !r.ok);
  check(broken.length === 0, `${what}: images that do not load: ${JSON.stringify(broken)}`);
  return results;
}
