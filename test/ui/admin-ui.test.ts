import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { openBrowser, screenshot, unnamedControls, type BrowserSession } from '../helpers/browser.ts';
import { runFerry, startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { writeExampleProject } from '../helpers/example-project.ts';
import { fileTeardown } from '../helpers/file-teardown.ts';
import { connectOutcome } from '../helpers/listener.ts';
import { sendOnConnection, sendOnce } from '../helpers/mllp.ts';
import { freePort, tempDir } from '../helpers/temp.ts';

// The web admin as a night-shift operator uses it, in Debian's Chromium: log in, watch the example
// channels, stop one (its MLLP port then refuses connections) and start it again, send a message,
// find it by MRN, read it field by field, resend it. A viewer sees the buttons but cannot use them.
// One engine (the bundled example config, with users) and one browser per role, for the whole file.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UPDATE_DOCS = process.env.FERRY_UPDATE_DOCS === '1';

const OPERATOR = { name: 'olivia', password: 'night shift 4 ever', role: 'operator' };
const VIEWER = { name: 'victor', password: 'only looking, thanks', role: 'viewer' };
const MRN = `MRN${Date.now().toString(36).toUpperCase()}`;

const adt = (controlId: string, mrn: string): string =>
  [
    `MSH|^~\\&|REGADT|GOODHEALTH|FERRY|GOODHEALTH|20260101120000||ADT^A01^ADT_A01|${controlId}|P|2.5`,
    'EVN|A01|20260101120000',
    `PID|1||${mrn}^^^GOODHEALTH^MR~123-45-6789^^^USSSA^SS||Doe^Jane^Q||19700101|F`,
    'PV1|1|I|WARD2^202^B',
  ].join('\r') + '\r';

/** `ferry user add`, password on standard input as the docs show. */
const addUser = async (dir: string, user: typeof OPERATOR): Promise<void> => {
  const run = await runFerry(['user', 'add', user.name, '--role', user.role], { cwd: dir, input: `${user.password}\n` });
  if (run.code !== 0) throw new Error(`ferry user add exited ${run.code}: ${run.stdout}${run.stderr}`);
};

const collector = fileTeardown();
let engine: EngineProcess;
let projectDir: string;
let mllpPort: number;
let operator: BrowserSession;
let viewer: BrowserSession | undefined;

test.before(async () => {
  const dir = await tempDir(collector, 'ferry-ui-');
  projectDir = dir;
  mllpPort = await freePort();
  const config = await writeExampleProject(dir, mllpPort);
  await addUser(dir, OPERATOR);
  await addUser(dir, VIEWER);
  engine = await startEngineProcess(collector, config, dir);
  operator = await openBrowser(engine.adminUrl);
  collector.teardown(() => operator.close());
});

test.afterEach.always((t) => {
  // A page that threw or logged an error fails the test that caused it.
  t.deepEqual(operator?.errors.splice(0) ?? [], [], 'browser errors (operator)');
  t.deepEqual(viewer?.errors.splice(0) ?? [], [], 'browser errors (viewer)');
});

const logIn = async (page: Page, user: typeof OPERATOR): Promise<void> => {
  await page.getByLabel('Username').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
};

const row = (page: Page, channel: string) => page.locator(`tr[data-channel="${channel}"]`);

test.serial('login: a wrong password is refused, then the dashboard shows the example channels', async (t) => {
  const { page } = operator;
  await page.goto('/');
  await page.getByRole('heading', { name: 'Log in to Ferry' }).waitFor();
  t.is(await page.locator('#banner').textContent(), '', 'no open-mode banner when users exist');
  t.deepEqual(await unnamedControls(page), []);
  await screenshot(page, 'login');

  await logIn(page, { ...OPERATOR, password: 'wrong' });
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  t.is(await page.getByLabel('Password').inputValue(), '', 'the wrong password is cleared');

  await logIn(page, OPERATOR);
  await page.getByRole('heading', { name: 'Channels' }).waitFor();
  await row(page, 'lab-feed').waitFor();
  t.regex((await page.locator('.user').textContent()) ?? '', /olivia\s*operator/);
  t.is(await row(page, 'adt-archive').locator('td.state').textContent(), 'running');
  t.is(await row(page, 'adt-archive').locator('td.source').textContent(), `mllp 127.0.0.1:${mllpPort}`);
  t.is(await row(page, 'adt-archive').locator('td.script').textContent(), 'ok');
  t.is(await row(page, 'lab-feed').locator('td.source').textContent(), 'channel');
  t.is(await row(page, 'lab-feed').locator('td.script').textContent(), 'none');
  t.regex((await row(page, 'adt-archive').locator('td.queue-cell').textContent()) ?? '', /inbound\s*0.*archive\s*0.*to-lab\s*0/);
  t.regex((await row(page, 'adt-archive').getByRole('img').getAttribute('aria-label')) ?? '', /^adt-archive: 0 received in the last 15 minutes/);
  await page.locator('.live-status', { hasText: 'Live' }).waitFor();
  t.deepEqual(await unnamedControls(page), []);
  await screenshot(page, 'dashboard-after-login');
});

test.serial('stop a channel: its MLLP port refuses connections; start it and a message goes through', async (t) => {
  const { page } = operator;
  t.is(await connectOutcome(mllpPort), 'connected');

  // Cancel changes nothing.
  await page.getByRole('button', { name: 'Stop adt-archive' }).click();
  const dialog = page.getByRole('dialog', { name: 'Stop adt-archive?' });
  await dialog.waitFor();
  await screenshot(page, 'stop-confirmation');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  t.is(await row(page, 'adt-archive').locator('td.state').textContent(), 'running');

  await page.getByRole('button', { name: 'Stop adt-archive' }).click();
  await dialog.getByRole('button', { name: 'Stop channel' }).click();
  await row(page, 'adt-archive').locator('td.state', { hasText: 'stopped' }).waitFor();
  t.true(await page.getByRole('button', { name: 'Stop adt-archive' }).isDisabled());
  t.false(await page.getByRole('button', { name: 'Start adt-archive' }).isDisabled());
  // The live stream may show the new state before the stop call's own answer sets the flash.
  await page.getByRole('status').filter({ hasText: 'adt-archive stopped.' }).waitFor();
  t.is(await connectOutcome(mllpPort), 'ECONNREFUSED');
  t.is(await row(page, 'adt-archive').locator('td.script').textContent(), 'ok', 'a stopped channel keeps its script');
  await screenshot(page, 'dashboard-stopped');

  await page.getByRole('button', { name: 'Start adt-archive' }).click();
  await page.getByRole('dialog', { name: 'Start adt-archive?' }).getByRole('button', { name: 'Start channel' }).click();
  await row(page, 'adt-archive').locator('td.state', { hasText: 'running' }).waitFor();
  t.is(await connectOutcome(mllpPort), 'connected');

  // Our admission, and the bundled lab result sample, which the example script filters.
  const oru = await readFile(join(ROOT, 'scripts/samples/oru-r01.hl7'));
  for (const ack of await sendOnConnection(mllpPort, adt('UI00001', MRN), oru)) t.is(ack.code, 'AA');
  // The counters and the chart follow the event stream, without a reload.
  const adtRow = row(page, 'adt-archive');
  await adtRow.locator('td.count-received', { hasText: '2' }).waitFor();
  await adtRow.locator('td.count-filtered', { hasText: '1' }).waitFor();
  await row(page, 'lab-feed').locator('td.count-sent', { hasText: '1' }).waitFor({ timeout: 20_000 });
  t.regex((await adtRow.getByRole('img').getAttribute('aria-label')) ?? '', /2 received in the last 15 minutes; peak 2\/min; 2 this minute/);
  await screenshot(page, 'dashboard');
  if (UPDATE_DOCS) {
    // For the README: the header and the table, without the empty space below.
    const box = (await page.locator('.table-wrap').boundingBox())!;
    await page.screenshot({ path: join(ROOT, 'docs/dashboard.png'), clip: { x: 0, y: 0, width: 1366, height: Math.ceil(box.y + box.height + 24) } });
  }
});

test.serial('find the message by MRN, read its HL7 fields, resend it and open the copy', async (t) => {
  const { page } = operator;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Messages' }).click();
  await page.getByRole('heading', { name: 'Messages' }).waitFor();
  await page.getByLabel('Search content').fill(MRN);
  await page.getByLabel('Channel').selectOption('adt-archive');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('status').filter({ hasText: 'Newest messages: 1 shown.' }).waitFor();
  t.true(page.url().includes(`q=${MRN}`), 'the search is in the URL');
  const result = page.locator('table.messages tbody tr');
  t.is(await result.count(), 1);
  t.regex((await result.textContent()) ?? '', /adt-archive.*sent.*ADT\^A01\^ADT_A01.*UI00001.*REGADT@GOODHEALTH/);
  t.deepEqual(await unnamedControls(page), []);
  await screenshot(page, 'messages-search');

  const id = await result.getAttribute('data-id');
  await result.getByRole('link').click();
  await page.getByRole('heading', { name: `Message ${id}` }).waitFor();
  t.true(page.url().endsWith(`#/messages/${id}`));

  // The field table: positions in the engine's path syntax, leaves unescaped.
  const value = (position: string) => page.locator('table.hl7 tr', { has: page.getByRole('rowheader', { name: position, exact: true }) }).locator('td');
  await value('PID-5.1').waitFor();
  t.is(await value('PID-5.1').textContent(), 'Doe');
  t.is(await value('PID-5.2').textContent(), 'Jane');
  t.is(await value('PID-5').textContent(), 'Doe^Jane^Q');
  t.is(await value('PID-3[1].1').textContent(), MRN);
  t.is(await value('PID-3[2].1').textContent(), '123-45-6789');
  t.is(await value('MSH-10').textContent(), 'UI00001');
  t.is(await page.locator('table.hl7 tbody tr.segment').allTextContents().then((names) => names.join(' ')), 'MSH EVN PID PV1');
  // The script's log line and the stages, each with its status.
  t.regex((await page.locator('pre.log').textContent()) ?? '', new RegExp(`ADT\\^A01\\^ADT_A01 for MRN ${MRN}: DOE, JANE`));
  const stages = await page.locator('table.stages tbody tr').evaluateAll((rows) => rows.map((r) => [...(r as HTMLTableRowElement).cells].slice(0, 3).map((c) => c.textContent).join(' ')));
  t.deepEqual(stages.sort(), ['archive#0 sent 1', 'to-lab#0 sent 1', 'transform transformed 1']);
  t.regex((await page.locator('pre.raw').textContent()) ?? '', /^MSH\|\^~\\&\|REGADT[^\n]*\nEVN\|A01/);

  // The filter box narrows the table.
  await page.getByLabel('Filter fields').fill('PID-5');
  const visible = await page.locator('table.hl7 th.position:visible').allTextContents();
  t.deepEqual(visible, ['PID-5', 'PID-5.1', 'PID-5.2', 'PID-5.3']);
  await page.getByLabel('Filter fields').fill('');
  t.deepEqual(await unnamedControls(page), []);
  await screenshot(page, 'message', { fullPage: true });

  await page.getByRole('button', { name: 'Resend' }).click();
  await page.getByRole('dialog', { name: 'Resend message UI00001?' }).getByRole('button', { name: 'Resend' }).click();
  const flash = page.getByRole('status').filter({ hasText: 'Resent as new message' });
  await flash.waitFor();
  const newId = (await flash.getByRole('link').textContent())!;
  t.regex(newId, /^[0-9A-Z]{26}$/);
  t.not(newId, id);
  await screenshot(page, 'message-resent');

  await flash.getByRole('link').click();
  await page.getByRole('heading', { name: `Message ${newId}` }).waitFor();
  // The heading renders at once; the summary only after the message is fetched.
  await page.locator('.facts').waitFor();
  t.is(await page.locator('.facts dt', { hasText: 'Resent from' }).count(), 1);
  t.is(await page.locator('.facts dd a').filter({ hasText: id! }).count(), 1, 'the copy links back to the original');
  t.regex((await page.locator('.facts').textContent()) ?? '', /resend by olivia/);
});

test.serial('resend every message shown: confirmation, then one flash with the count', async (t) => {
  const { page } = operator;
  await page.goto(`/#/messages?q=${MRN}&channel=adt-archive`);
  // The original and the copy resent by the test before.
  await page.getByRole('status').filter({ hasText: 'Newest messages: 2 shown.' }).waitFor();
  await page.getByRole('button', { name: 'Resend 2 shown' }).click();
  const dialog = page.getByRole('dialog', { name: 'Resend 2 messages?' });
  t.regex((await dialog.textContent()) ?? '', /enter adt-archive again as new messages, oldest first/);
  await dialog.getByRole('button', { name: 'Resend all' }).click();
  await page.getByRole('status').filter({ hasText: 'Resent 2 of 2 as new messages.' }).waitFor();
  await screenshot(page, 'messages-resent');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('status').filter({ hasText: 'Newest messages: 4 shown.' }).waitFor();
  t.is(await page.locator('table.messages tbody tr', { hasText: /resend by olivia/ }).count(), 3);
});

test.serial('channel page: config and script; a failing message and a compile error show up live', async (t) => {
  const { page } = operator;
  await page.goto('/#/');
  await row(page, 'adt-archive').getByRole('link', { name: 'adt-archive' }).click();
  await page.getByRole('heading', { name: 'Channel adt-archive' }).waitFor();
  const config = page.getByLabel('Configuration of adt-archive');
  await config.waitFor();
  t.regex((await config.textContent()) ?? '', new RegExp(`"port": ${mllpPort}`));
  const script = page.getByRole('region', { name: 'Script' });
  t.regex((await script.textContent()) ?? '', /Statusok.*Filechannels\/adt-archive\.ts/);
  const version = (await script.locator('dd code').nth(1).textContent())!;
  const errors = page.getByRole('region', { name: 'Recent errors' });
  await errors.getByText('No failed messages in the log.').waitFor();
  t.deepEqual(await unnamedControls(page), []);

  // A new script version that refuses one MRN: the engine reloads it on save.
  const file = join(projectDir, 'channels/adt-archive.ts');
  const original = await readFile(file, 'utf8');
  const head = 'export default function (msg: Message, ctx: Context) {';
  t.true(original.includes(head));
  await writeFile(file, original.replace(head, `${head}\n  if (msg.get('PID-3.1') === 'BOOM') throw new Error('no BOOM patients here');`));
  await script.locator('dd code').filter({ hasNotText: version }).nth(1).waitFor({ timeout: 20_000 });

  t.is((await sendOnce(mllpPort, adt('UI00002', 'BOOM'))).code, 'AA');
  const failed = errors.locator('tbody tr');
  await failed.waitFor({ timeout: 20_000 });
  t.regex((await failed.textContent()) ?? '', /ADT\^A01\^ADT_A01UI00002.*no BOOM patients here/);
  await page.getByRole('region', { name: 'Overview' }).locator('li.attention', { hasText: '1 errored' }).waitFor();

  // A save that does not compile: the previous version keeps running and the error is shown.
  await writeFile(file, `${head}\n  return msg.get(;\n}\n`);
  const errorBox = script.locator('.error-box');
  await errorBox.waitFor({ timeout: 20_000 });
  t.regex((await errorBox.textContent()) ?? '', /^SCRIPT_COMPILE — the latest edit did not compile; the version above keeps running\./);
  t.is(await script.locator('.badge').textContent(), 'compile error');
  await screenshot(page, 'channel-compile-error', { fullPage: true });

  await page.getByRole('link', { name: 'Dashboard' }).first().click();
  const problems = page.locator('tr[data-channel-problems="adt-archive"]');
  await problems.waitFor();
  t.regex((await problems.textContent()) ?? '', /^Last error: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d SCRIPT_THREW: channels\/adt-archive\.ts:\d+:\d+: Error: no BOOM patients hereScript: SCRIPT_COMPILE/);
  t.is(await row(page, 'adt-archive').locator('td.script').textContent(), 'compile error');
  t.is(await row(page, 'adt-archive').locator('td.count-errored').textContent(), '1');
  await screenshot(page, 'dashboard-problems');

  await writeFile(file, original);
  await row(page, 'adt-archive').locator('td.script', { hasText: 'ok' }).waitFor({ timeout: 20_000 });
  // The compile error is gone; the last failed message stays the channel's last error.
  t.regex((await problems.textContent()) ?? '', /^Last error: .*no BOOM patients here$/);
});

test.serial('keyboard: Enter opens the confirmation on Cancel, Escape closes it and gives focus back', async (t) => {
  const { page } = operator;
  await page.goto('/#/');
  const stop = page.getByRole('button', { name: 'Stop lab-feed' });
  await stop.waitFor();
  await stop.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Stop lab-feed?' });
  await dialog.waitFor();
  t.is(await page.evaluate(() => document.activeElement?.textContent), 'Cancel', 'focus starts on the safe choice');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  t.is(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Stop lab-feed');
  t.is(await row(page, 'lab-feed').locator('td.state').textContent(), 'running');

  // Tab order from the top: the skip link first, then the header's links.
  await page.locator('body').click({ position: { x: 5, y: 300 } });
  await page.keyboard.press('Tab');
  t.is(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await page.keyboard.press('Tab');
  t.is(await page.evaluate(() => document.activeElement?.textContent), 'Ferry');
});

test.serial('a session that ends brings back the login, then the same page', async (t) => {
  const { page, context } = operator;
  await page.goto('/#/messages?channel=lab-feed');
  await page.getByRole('heading', { name: 'Messages' }).waitFor();
  await context.clearCookies();
  // Any call now gets 401: the Search click, or the live event stream reconnecting first (then the
  // login is already showing and there is no Search button to click).
  await page.getByRole('button', { name: 'Search' }).click({ timeout: 2_000 }).catch(() => undefined);
  await page.getByText('Your session has ended. Log in again to continue.').waitFor();
  await logIn(page, OPERATOR);
  await page.getByRole('heading', { name: 'Messages' }).waitFor();
  t.is(await page.getByLabel('Channel').inputValue(), 'lab-feed');

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in to Ferry' }).waitFor();
  t.is((await page.request.get('/api/session')).status(), 401, 'logged out on the engine too');
});

test.serial('a viewer sees Start, Stop and Resend disabled', async (t) => {
  viewer = await openBrowser(engine.adminUrl);
  collector.teardown(() => viewer?.close());
  const { page } = viewer;
  await page.goto('/');
  await logIn(page, VIEWER);
  await row(page, 'adt-archive').waitFor();
  const buttons = page.locator('.channel-actions button');
  t.is(await buttons.count(), 4);
  for (const button of await buttons.all()) {
    t.true(await button.isDisabled());
    t.is(await button.getAttribute('title'), 'Needs the operator or admin role');
  }
  await screenshot(page, 'dashboard-viewer');

  const { body } = await page.request.get(`/api/messages?q=${MRN}&channel=adt-archive`).then(async (r) => ({ body: (await r.json()) as { items: Array<{ id: string }> } }));
  await page.goto(`/#/messages/${body.items.at(-1)!.id}`);
  await page.locator('table.hl7').waitFor();
  t.true(await page.getByRole('button', { name: 'Resend' }).isDisabled());
  await page.goto(`/#/messages?q=${MRN}`);
  const resendShown = page.getByRole('button', { name: /^Resend \d+ shown$/ });
  await resendShown.waitFor();
  t.true(await resendShown.isDisabled());
  t.is(await resendShown.getAttribute('title'), 'Needs the operator or admin role');
  // The engine refuses the viewer too; the UI only mirrors it.
  const refused = await page.evaluate(async () => {
    const { csrfToken } = await (await fetch('/api/session')).json();
    const response = await fetch('/api/channels/adt-archive/stop', { method: 'POST', headers: { 'X-CSRF-Token': csrfToken } });
    return { status: response.status, body: await response.json() };
  });
  t.like(refused, { status: 403, body: { error: { code: 'AUTH_FORBIDDEN' } } });
  // That refusal was the point; the browser logs it as a failed load.
  const expected = viewer.errors.findIndex((e) => e.includes('status of 403'));
  if (expected >= 0) viewer.errors.splice(expected, 1);
});

// Last: the failures below may also lock out this address for the rest of the engine's life.
test.serial('repeated wrong passwords: the form says to wait', async (t) => {
  const { page } = operator;
  await page.goto('/');
  await page.getByRole('heading', { name: 'Log in to Ferry' }).waitFor();
  const alert = page.locator('#login-error');
  let text = '';
  for (let attempt = 1; attempt <= 20 && !text.startsWith('Too many'); attempt++) {
    await logIn(page, { ...VIEWER, password: `guess ${attempt}` });
    await alert.filter({ hasText: /./ }).waitFor();
    text = (await alert.textContent()) ?? '';
    if (!text.startsWith('Too many')) t.is(text, 'Wrong username or password.');
  }
  t.regex(text, /^Too many failed attempts\. Try again in \d+ (seconds|minutes)\.$/);
  // The browser logs each refused login as a failed load.
  operator.errors.splice(0, operator.errors.length, ...operator.errors.filter((e) => !/status of 429/.test(e)));
});
