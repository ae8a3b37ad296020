import test from 'ava';
import { openBrowser, screenshot, unnamedControls } from '../helpers/browser.ts';
import { startEngineProcess } from '../helpers/engine-process.ts';
import { writeExampleProject } from '../helpers/example-project.ts';
import { freePort, tempDir } from '../helpers/temp.ts';

// With no users configured the admin needs no login, listens on loopback only, and the UI says so.

test('no users: no login form, a banner explains the loopback-only open mode', async (t) => {
  const dir = await tempDir(t, 'ferry-ui-open-');
  const port = await freePort();
  const engine = await startEngineProcess(t, await writeExampleProject(dir, port), dir);
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
