import test from 'ava';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowser, screenshot, unnamedControls } from '../helpers/browser.ts';
import { startEngineProcess } from '../helpers/engine-process.ts';
import { freePort, tempDir } from '../helpers/temp.ts';

// With no users configured the admin needs no login, listens on loopback only, and the UI says so.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('no users: no login form, a banner explains the loopback-only open mode', async (t) => {
  const dir = await tempDir(t, 'ferry-ui-open-');
  const port = await freePort();
  await cp(join(ROOT, 'channels'), join(dir, 'channels'), { recursive: true });
  const config = (await readFile(join(ROOT, 'channels.yaml'), 'utf8')).replace('port: 6661', `port: ${port}`).replace('port: 8470', 'port: 0');
  await writeFile(join(dir, 'channels.yaml'), config);
  const engine = await startEngineProcess(t, join(dir, 'channels.yaml'), dir);
  const browser = await openBrowser(engine.adminUrl);
  t.teardown(() => browser.close());
  const { page } = browser;

  await page.goto('/');
  await page.getByRole('heading', { name: 'Channels' }).waitFor();
  const banner = page.getByRole('note');
  t.regex((await banner.textContent()) ?? '', /^No users are configured\. .*listens on loopback \(127\.0\.0\.1\) only\. Add a user with ferry user add <name> --role admin/);
  t.is(await page.locator('.user').textContent(), 'open mode (admin)');
  t.is(await page.getByRole('button', { name: 'Log out' }).count(), 0, 'nothing to log out of');
  t.is(await page.getByLabel('Password').count(), 0);
  await page.locator('tr[data-channel="adt-archive"]').waitFor();
  t.false(await page.getByRole('button', { name: 'Stop adt-archive' }).isDisabled(), 'open mode acts as admin');
  t.deepEqual(await unnamedControls(page), []);
  await screenshot(page, 'open-mode');
  t.deepEqual(browser.errors, []);
});
