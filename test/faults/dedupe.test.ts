import test from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { MllpClient } from '../../engine/clients/mllp.ts';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { DELIVERY_FILENAME, loadMessage } from '../helpers/load.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// Duplicate suppression (issue 5, point 3). With `dedupe: { window }` a message whose sender
// (MSH-3, MSH-4) and MSH-10 were seen within the window is acknowledged again — AA, MSA-2 its
// control id — but not processed twice: the message log keeps the copy as `filtered` with
// MESSAGE_DUPLICATE naming the first message's id. The dedupe key lives in Redis (AOF), so it holds
// across an engine crash; channels without dedupe process every copy.

interface Summary {
  id: string;
  status: string;
  controlId: string;
  sender: string;
  error: string | null;
}

const send = async (client: MllpClient, text: string): Promise<string> => {
  const ack = await sendForAck(client, text);
  return `${ack.code} ${ack.controlId}`;
};

const messages = async (engine: EngineProcess, channel: string): Promise<Summary[]> =>
  (await engine.api<{ items: Summary[] }>(`/api/messages?channel=${channel}&limit=500`)).body.items.reverse();

const delivered = async (dir: string, folder: string): Promise<string[]> =>
  (await readdir(join(dir, 'out', folder)).catch(() => [])).filter((name) => name.endsWith('.hl7')).sort();

test('duplicates within the window are acknowledged, logged as duplicates of the first id and delivered once', async (t) => {
  const [shortPort, longPort, plainPort] = [await freePort(), await freePort(), await freePort()];
  const channel = (name: string, port: number, dedupe: string): string => `  - name: ${name}
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
${dedupe}
    destinations:
      - { name: out, type: file, dir: ./out/${name}, filename: "${DELIVERY_FILENAME}" }
`;
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `${channel('short', shortPort, '    dedupe: { window: 2s }')}${channel('long', longPort, '    dedupe: { window: 10m }')}${channel('plain', plainPort, '')}`,
    }),
  );
  let engine = await startEngineProcess(t, configFile, dir);
  const [short, plain] = [openMllpClient(t, shortPort), openMllpClient(t, plainPort)];

  // Three copies of D1 from REGSYS@HOSP; D1 from another sender application; D1 after the window.
  let sent = 0;
  const answers: string[] = [];
  for (const text of [loadMessage('D1'), loadMessage('D1'), loadMessage('D1'), loadMessage('D1', 'PHARMACY')]) {
    answers.push(await send(short, text));
    sent++;
  }
  t.deepEqual(answers, ['AA D1', 'AA D1', 'AA D1', 'AA D1']);
  const firstRound = await eventually(async () => {
    const log = await messages(engine, 'short');
    return log.length === 4 && log.every((m) => m.status === 'sent' || m.status === 'filtered') ? log : undefined;
  });
  const [first, copy1, copy2, pharmacy] = firstRound;
  t.like(first, { status: 'sent', sender: 'REGSYS@HOSP', error: null });
  for (const copy of [copy1!, copy2!]) {
    t.like(copy, { status: 'filtered', controlId: 'D1', error: `MESSAGE_DUPLICATE: duplicate of ${first!.id} (same sender and MSH-10 within 2s)` });
  }
  t.like(pharmacy, { status: 'sent', sender: 'PHARMACY@HOSP' });
  t.regex(engine.output(), new RegExp(`"duplicateOf":"${first!.id}"[^\\n]*"msg":"duplicate message: acknowledged, not processed again"`));
  t.deepEqual(await delivered(dir, 'short'), [`D1@${first!.id}.hl7`, `D1@${pharmacy!.id}.hl7`].sort());
  t.is(await readFile(join(dir, 'out', 'short', `D1@${first!.id}.hl7`), 'latin1'), loadMessage('D1'));

  // After the window, the same message is a new one.
  await new Promise((resolve) => setTimeout(resolve, 2_200));
  t.is(await send(short, loadMessage('D1')), 'AA D1');
  sent++;
  await eventually(async () => ((await delivered(dir, 'short')).length === 3 ? true : undefined));

  // Without dedupe every copy is processed, each under its own id.
  for (let i = 0; i < 3; i++) t.is(await send(plain, loadMessage('P1')), 'AA P1');
  await eventually(async () => ((await delivered(dir, 'plain')).length === 3 ? true : undefined));

  // The key is in Redis with an AOF: a copy sent after kill -9 and restart is still a duplicate.
  const long1 = openMllpClient(t, longPort);
  t.is(await send(long1, loadMessage('L1')), 'AA L1');
  const original = await eventually(async () => (await messages(engine, 'long')).find((m) => m.status === 'sent'));
  await engine.kill();
  engine = await startEngineProcess(t, configFile, dir);
  const long2 = openMllpClient(t, longPort);
  t.is(await send(long2, loadMessage('L1')), 'AA L1');
  const afterRestart = await eventually(async () => {
    const log = await messages(engine, 'long');
    return log.length === 2 && log[1]!.status !== 'received' ? log : undefined;
  });
  t.like(afterRestart[1], { status: 'filtered', error: `MESSAGE_DUPLICATE: duplicate of ${original.id} (same sender and MSH-10 within 10m)` });
  t.deepEqual(await delivered(dir, 'long'), [`L1@${original.id}.hl7`]);

  // The counts: every copy acknowledged; each distinct message delivered once; nothing lost.
  const { body } = await engine.api<Array<{ name: string; counts: Record<string, number> }>>('/api/channels');
  const counts = Object.fromEntries(body.map((c) => [c.name, c.counts]));
  t.like(counts['short'], { received: sent, sent: 3, filtered: 2, errored: 0 });
  t.like(counts['long'], { received: 2, sent: 1, filtered: 1, errored: 0 });
  t.like(counts['plain'], { received: 3, sent: 3, filtered: 0 });
  t.is(await engine.stop(), 0);
});
