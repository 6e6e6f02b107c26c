// Debian's chromium driven by playwright-core (which never downloads a
// browser), headless, each launch with a fresh profile (playwright makes a
// temporary user-data dir per launch and removes it at close).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/// The browser: SMSGATE_CHROMIUM overrides Debian's path.
export const CHROMIUM = process.env.SMSGATE_CHROMIUM || '/usr/bin/chromium';

/// Flags for a quiet, reproducible chromium in a container: no sandbox (we
/// run as root), nothing fetched from Google in the background, no GPU.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-gpu',
  '--disable-quic',
];

/// Screenshots land in the repository's target/screenshots/.
export const SCREENSHOTS =
  process.env.SMSGATE_SCREENSHOTS ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../target/screenshots');

export async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM} (apt-get install chromium, or set SMSGATE_CHROMIUM)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/// The desktop and phone widths every page is looked at.
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };

/// A fresh context (its own cookies) at `viewport`, failing on any page
/// error the page's script throws.
export async function newPage(browser, g, viewport = DESKTOP) {
  const context = await browser.newContext({ baseURL: g.url, viewport });
  // Keep the page's event streams where a test can see them: a text sent
  // before the page's stream is open is (by design) not replayed to it.
  await context.addInitScript(() => {
    const Native = window.EventSource;
    if (!Native) return;
    window.testEventSources = [];
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.testEventSources.push(this);
      }
    };
  });
  const page = await context.newPage();
  page.scriptErrors = [];
  page.on('pageerror', (e) => page.scriptErrors.push(e.message));
  return page;
}

/// Wait until the page's live updates listen (its event stream is open).
export async function liveReady(page) {
  await page.waitForFunction(() => (window.testEventSources || []).some((s) => s.readyState === 1));
}

/// Sign in through the form, by the contract's names.
export async function signIn(page, g) {
  await page.goto('/login');
  await page.getByLabel('Username').fill(g.user);
  await page.getByLabel('Password').fill(g.password);
  await Promise.all([
    page.waitForURL('**/inbox'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
}

/// A signed-in page at `viewport`.
export async function signedInPage(browser, g, viewport = DESKTOP) {
  const page = await newPage(browser, g, viewport);
  await signIn(page, g);
  return page;
}

/// `name`-WIDTH.png under SCREENSHOTS, the whole page.
export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  const file = path.join(SCREENSHOTS, `${name}-${width}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/// How far the page is wider than its viewport (0: no horizontal scroll).
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const doc = document.documentElement;
    return Math.max(doc.scrollWidth, document.body.scrollWidth) - doc.clientWidth;
  });
}
