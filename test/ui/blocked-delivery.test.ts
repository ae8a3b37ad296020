import test from 'ava';
import { startTestEngine } from '../helpers/admin.ts';
import { openBrowser, screenshot, unnamedControls } from '../helpers/browser.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { hl7Receiver } from '../helpers/hl7-receiver.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// The channel page of a channel whose fifo destination is held by a message its receiver keeps
// refusing (503, retried forever): the page lists it with its tries and last error, and Skip —
// after a confirmation that Cancel backs out of — records it as failed and lets the next one go.

test('the channel page shows the blocked delivery; Skip (confirmed) errors it and the queue goes on', async (t) => {
  const far = await hl7Receiver(t);
  far.refuse.add('POISON');
  const port = await freePort();
  const engine = await startTestEngine(
    t,
    channelsYaml({
      channels: `  - name: site
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - name: central
        type: https
        url: ${far.url}/in
        retry: { attempts: 0, backoff: fixed, delay: 300ms }
        circuitBreaker: { failures: 1000, cooldown: 1s }
`,
    }),
  );
  const client = openMllpClient(t, port);
  for (const controlId of ['POISON', 'NEXT']) t.is((await sendForAck(client, adtMessage({ controlId, mrn: 'MRN1', brief: true }))).code, 'AA');
  const idOf = (controlId: string): Promise<string> =>
    eventually(async () => (await engine.api('GET', '/api/messages?channel=site')).body.items.find((m: any) => m.controlId === controlId)?.id, 30_000, controlId);
  const poison = await idOf('POISON');
  const next = await idOf('NEXT');

  const browser = await openBrowser(engine.base);
  t.teardown(() => browser.close());
  const { page } = browser;
  await page.goto('/#/channels/site');
  const row = page.locator('table.blocked tbody tr');
  await row.waitFor({ timeout: 30_000 });
  t.is(await row.locator('td').nth(0).textContent(), 'central');
  t.is(await row.getByRole('link').textContent(), poison);
  t.regex((await row.locator('td.error-text').textContent()) ?? '', /^HTTP_RETRYABLE_STATUS: .* answered 503: try later$/);
  // The tries go up live while the page is open.
  await eventually(async () => (Number(await row.locator('td.num').textContent()) >= 3 ? true : undefined), 30_000, 'three tries shown');
  t.deepEqual(await unnamedControls(page), []);
  await screenshot(page, 'blocked-delivery');

  const skip = page.getByRole('button', { name: `Skip message ${poison} at central` });
  await skip.click();
  const dialog = page.getByRole('dialog', { name: `Skip message ${poison} at central?` });
  await dialog.waitFor();
  t.regex((await dialog.textContent()) ?? '', /recorded as failed \(DELIVERY_SKIPPED, with your name\); central goes on with the next message/);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  t.is((await engine.api('GET', `/api/messages/${next}`)).body.status, 'queued', 'Cancel skipped nothing');

  await skip.click();
  await dialog.getByRole('button', { name: 'Skip delivery' }).click();
  await page.getByRole('status').filter({ hasText: new RegExp(`^Skipped message ${poison} at central after \\d+ tries\\.$`) }).waitFor();
  await page.getByText('Nothing is held up: no delivery is being retried.').waitFor();
  await eventually(async () => ((await engine.api('GET', `/api/messages/${next}`)).body.status === 'sent' ? true : undefined), 30_000, 'NEXT sent');
  const skipped = (await engine.api('GET', `/api/messages/${poison}`)).body;
  t.is(skipped.status, 'error');
  t.regex(skipped.error, /^DELIVERY_SKIPPED: skipped by \(open mode\) after \d+ attempts; last error: HTTP_RETRYABLE_STATUS: /);
  // The page's list of recent errors picks it up.
  await page.locator('table.messages:not(.blocked) td.error-text', { hasText: 'DELIVERY_SKIPPED' }).waitFor({ timeout: 30_000 });
  t.deepEqual(far.accepted, ['NEXT']);
  t.deepEqual(browser.errors, []);
});
