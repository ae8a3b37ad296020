import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

// Debian's Chromium driven by playwright-core (which never downloads a browser of its own). Each
// context gets a fresh profile folder, so no cookie or cache leaks between tests or runs.

export const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Screenshots and other artifacts go here (git-ignored). */
export const RESULTS_DIR = fileURLToPath(new URL('../../test-results/ui/', import.meta.url));

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Browser console errors and uncaught page errors seen so far: a page that throws fails its test. */
  errors: string[];
  close(): Promise<void>;
}

/** A laptop-sized (1366×768) browser with one page; `close` is safe to call twice. */
export const openBrowser = async (baseURL: string): Promise<BrowserSession> => {
  const profile = await mkdtemp(join(tmpdir(), 'ferry-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    baseURL,
    viewport: { width: 1366, height: 768 },
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  // Fail in seconds, not the default 30 s: everything here is local.
  context.setDefaultTimeout(10_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A 401 while logged out is the app's normal way of finding that out; the browser logs it.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) errors.push(`console: ${message.text()}`);
  });
  let closed: Promise<void> | undefined;
  return {
    context,
    page,
    errors,
    close: () =>
      (closed ??= (async () => {
        await context.close().catch(() => {});
        await rm(profile, { recursive: true, force: true });
      })()),
  };
};

/** Saves a screenshot of the page as test-results/ui/<name>.png and returns its path. */
export const screenshot = async (page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<string> => {
  await mkdir(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? false });
  return path;
};

// Plain JavaScript text, not a function: tsx compiles functions with name helpers (`__name`) that
// do not exist inside the page.
const UNNAMED_CONTROLS = `(() => {
  const named = (el) => {
    if (el.getAttribute('aria-label')?.trim()) return true;
    const labelledBy = el.getAttribute('aria-labelledby');
    if (labelledBy && labelledBy.split(/\\s+/).some((id) => document.getElementById(id)?.textContent?.trim())) return true;
    if (el.labels?.length) return true;
    if (el.matches('input, select, textarea')) return false;
    return Boolean(el.textContent?.trim());
  };
  return [...document.querySelectorAll('button, a[href], input, select, textarea, [role="img"]')]
    .filter((el) => el.checkVisibility() && !named(el))
    .map((el) => el.outerHTML.slice(0, 160));
})()`;

/**
 * Visible controls (buttons, links, form fields, images) without an accessible name, as HTML snippets:
 * every control must have a label, text content, aria-label or aria-labelledby.
 */
export const unnamedControls = (page: Page): Promise<string[]> => page.evaluate(UNNAMED_CONTROLS);
