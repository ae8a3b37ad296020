import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { pino } from 'pino';
import { addToken } from '../../engine/auth/tokens.ts';
import { loadConfig } from '../../engine/config/load.ts';
import { startEngine } from '../../engine/engine.ts';
import { CHROMIUM, screenshot, unnamedControls } from '../helpers/browser.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, writeProject } from '../helpers/project.ts';
import { tempDir } from '../helpers/temp.ts';
import { makeCerts } from '../https/helpers.ts';

// A browser (Chromium) on the shipped demo page, docs/websocket-demo.html, subscribes over wss with
// a token and shows an HL7 message that arrived over MLLP a moment later, turned into JSON by the
// channel's script and published by its websocket destination.

const DEMO = fileURLToPath(new URL('../../docs/websocket-demo.html', import.meta.url));

const SCRIPT = `
export default function (msg: Message) {
  return { mrn: msg.get('PID-3.1'), name: msg.get('PID-5.1') + ', ' + msg.get('PID-5.2') };
}
`;

const ADT =
  ['MSH|^~\\&|REGSYS|HOSP|FERRY|BOARD|20260101120000||ADT^A01^ADT_A01|UI0001|P|2.5', 'PID|1||MRN4711^^^HOSP^MR||LOVELACE^ADA||18151210|F'].join('\r') +
  '\r';

test('the demo page subscribes over wss and shows a message that came in over MLLP', async (t) => {
  const dir = await tempDir(t, 'ferry-ui-push-');
  await makeCerts(join(dir, 'certs'));
  const configFile = await writeProject(
    dir,
    channelsYaml({
      engine: `https: { host: 127.0.0.1, port: 0, cert: certs/server.crt, key: certs/server.key }
websocket: { path: /ws }`,
      channels: `  - name: ward-board
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations:
      - { name: browsers, type: websocket, topic: adt.ward-5 }
`,
    }),
    { 'channels/ward-board.ts': SCRIPT },
  );
  const token = await addToken(join(dir, 'tokens.yaml'), 'ward-5-screen', ['adt']);
  const engine = await startEngine(await loadConfig(configFile), pino({ level: 'silent' }));
  t.teardown(() => engine.stop());
  const wsUrl = `${engine.https!.url.replace(/^https/, 'wss')}/ws`;

  // The page from a web server of its own, as a web app would serve it.
  const page = await readFile(DEMO);
  const web = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page));
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => web.close(() => resolve())));
  const pageUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}/websocket-demo.html?url=${encodeURIComponent(wsUrl)}&topic=adt.ward-5`;

  const profile = await mkdtemp(join(tmpdir(), 'ferry-chromium-'));
  t.teardown(() => rm(profile, { recursive: true, force: true }));
  // The engine's certificate is from a test CA the browser does not know.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1366, height: 768 },
  });
  t.teardown(() => context.close());
  context.setDefaultTimeout(15_000);
  const tab = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  tab.on('pageerror', (error) => errors.push(error.message));
  tab.on('console', (message) => message.type() === 'error' && errors.push(message.text()));

  await tab.goto(pageUrl);
  t.is(await tab.getByLabel('Endpoint').inputValue(), wsUrl);
  await tab.getByLabel('Token').fill(token);
  await tab.getByRole('button', { name: 'Connect' }).click();
  await tab.getByRole('status').filter({ hasText: 'subscribed to adt.ward-5' }).waitFor();

  const mllp = openMllpClient(t, engine.channels.get('ward-board')!.sourcePort()!);
  t.is((await sendForAck(mllp, ADT)).code, 'AA');

  const item = tab.getByRole('list', { name: 'Events' }).getByRole('listitem').first();
  await item.waitFor();
  t.regex((await item.textContent()) ?? '', /^adt\.ward-5 [0-9a-f]{8}-1: \{"mrn":"MRN4711","name":"LOVELACE, ADA"\} \[\]$/);
  t.regex((await tab.getByRole('status').textContent()) ?? '', /^Connected as [A-Za-z0-9_-]{16}, subscribed to adt\.ward-5$/);
  t.deepEqual(await unnamedControls(tab), []);
  await screenshot(tab, 'websocket-push');
  t.deepEqual(errors, []);
});
