import test from 'ava';
import { readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildAck } from '../../engine/hl7/ack.ts';
import { readHeader } from '../../engine/hl7/header.ts';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { acceptingMllpServer } from '../helpers/mllp-server.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// `ferry start` as a process with a file source: files dropped in a folder go out over MLLP to a
// peer that is down at first; and a large file whose reading is cut short by kill -9 yields every
// message exactly once after the restart.

const message = (id: string): string => `MSH|^~\\&|LAB|REF|EHR|HOSP|20260101120000||ORU^R01^ORU_R01|${id}|P|2.5\nPID|1||MRN-${id}\nOBX|1|NM|GLU||5.4|mmol/L\n`;
const wire = (id: string): string => message(id).replaceAll('\n', '\r');

interface MessagePage {
  items: Array<{ id: string; controlId: string; status: string; source: string }>;
  nextCursor: string | null;
}

const allMessages = async (engine: EngineProcess, channel: string): Promise<MessagePage['items']> => {
  const items: MessagePage['items'] = [];
  let cursor: string | null = null;
  do {
    const { body }: { body: MessagePage } = await engine.api<MessagePage>(`/api/messages?channel=${channel}&limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    items.push(...body.items);
    cursor = body.nextCursor;
  } while (cursor);
  return items;
};

const received = async (engine: EngineProcess, channel: string): Promise<number> => {
  const { body } = await engine.api<Array<{ name: string; counts: { received: number } }>>('/api/channels');
  return body.find((c) => c.name === channel)?.counts.received ?? 0;
};

test('files → MLLP: a batch and a multi-message file, peer down at first; retried, delivered in order, ACKs logged, files moved', async (t) => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: lab
    source: { type: file, dir: ./inbox, pollInterval: 100ms }
    destinations:
      - name: ehr
        type: mllp
        host: 127.0.0.1
        port: ${port}
        ackTimeout: 2s
        retry: { attempts: 0, backoff: fixed, delay: 200ms }
`,
    }),
  );
  const engine = await startEngineProcess(t, configFile, dir);
  const inbox = join(dir, 'inbox');
  // Written under .part names and renamed, as a careful sender does; the older file is read first.
  await writeFile(join(inbox, 'first.hl7.part'), message('F1') + message('F2'));
  const past = new Date(Date.now() - 60_000);
  await utimes(join(inbox, 'first.hl7.part'), past, past);
  await writeFile(join(inbox, 'batch.hl7.part'), `FHS|^~\\&|LAB|REF\nBHS|^~\\&|LAB|REF\n${message('B1')}${message('B2')}${message('B3')}BTS|3\nFTS|1\n`);
  await rename(join(inbox, 'first.hl7.part'), join(inbox, 'first.hl7'));
  await rename(join(inbox, 'batch.hl7.part'), join(inbox, 'batch.hl7'));

  // All five committed while the peer is down; the first waits in its retry loop (fifo).
  await eventually(async () => ((await readdir(join(inbox, 'processed')).catch((): string[] => [])).length === 2 ? true : undefined), 20_000, 'both files processed');
  const messages = await eventually(async () => {
    const items = await allMessages(engine, 'lab');
    return items.length === 5 ? items : undefined;
  });
  const f1 = messages.find((m) => m.controlId === 'F1')!;
  t.regex(f1.source, /^file .*inbox\/first\.hl7#1$/);
  await eventually(async () => {
    const { body } = await engine.api<{ stages: Array<{ stage: string; attempts: number; error: string | null }> }>(`/api/messages/${f1.id}`);
    const stage = body.stages.find((s) => s.stage === 'ehr#0');
    return stage && stage.attempts >= 2 && /MLLP_CONNECT_FAILED/.test(stage.error ?? '') ? true : undefined;
  }, 20_000, 'retries while the peer is down');

  const peer = await acceptingMllpServer(t, port);
  await eventually(() => (peer.received.length >= 5 ? true : undefined), 30_000, 'five messages at the peer');
  t.deepEqual(peer.received, ['F1', 'F2', 'B1', 'B2', 'B3']);
  const detail = await eventually(async () => {
    const { body } = await engine.api<{ status: string; stages: Array<{ stage: string; status: string; content: string | null }> }>(`/api/messages/${f1.id}`);
    return body.status === 'sent' ? body : undefined;
  });
  const stage = detail.stages.find((s) => s.stage === 'ehr#0')!;
  t.is(stage.status, 'sent');
  t.is(stage.content, buildAck(readHeader(wire('F1')), 'AA', { controlId: 'ACK1', now: new Date(Date.UTC(2026, 0, 1)) }));
  t.deepEqual((await readdir(join(inbox, 'processed'))).sort(), ['batch.hl7', 'first.hl7']);
  t.deepEqual((await readdir(inbox)).sort(), ['processed']);
  t.is(await engine.stop(), 0);
});

test('kill -9 while a large file is being read: after the restart every message is in the log and delivered exactly once', async (t) => {
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: lab
    source: { type: file, dir: ./inbox, pollInterval: 100ms }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "{controlId}.hl7" }
`,
    }),
  );
  const TOTAL = 3000;
  const ids = Array.from({ length: TOTAL }, (_, i) => `K${String(i + 1).padStart(5, '0')}`);
  let engine = await startEngineProcess(t, configFile, dir);
  await writeFile(join(dir, 'inbox', 'big.hl7'), ids.map(message).join(''));

  const atKill = await eventually(async () => {
    const n = await received(engine, 'lab');
    return n >= 200 ? n : undefined;
  }, 60_000, 'the file half read');
  await engine.kill();
  t.true(atKill < TOTAL, `killed mid-file (${atKill} of ${TOTAL} committed when last looked)`);
  t.deepEqual(await readdir(join(dir, 'inbox')).then((names) => names.filter((n) => n !== 'processed' && n !== 'error')), ['big.hl7'], 'not finished: still in the folder');

  engine = await startEngineProcess(t, configFile, dir);
  const restartedAt = Date.now();
  await eventually(async () => ((await readdir(join(dir, 'inbox', 'processed')).catch((): string[] => [])).includes('big.hl7') ? true : undefined), 120_000, 'the file processed');
  const delivered = await eventually(async () => {
    const names = await readdir(join(dir, 'out')).catch((): string[] => []);
    return names.filter((n) => n.endsWith('.hl7')).length >= TOTAL ? names.filter((n) => n.endsWith('.hl7')) : undefined;
  }, 120_000, 'every message delivered');

  t.log(`killed with ${atKill} of ${TOTAL} committed; after the restart the file was read again and all delivered in ${Date.now() - restartedAt} ms`);
  const logged = await allMessages(engine, 'lab');
  t.is(logged.length, TOTAL, 'each message once in the message log');
  t.deepEqual(logged.map((m) => m.controlId).sort(), ids);
  t.is(new Set(logged.map((m) => m.id)).size, TOTAL);
  t.deepEqual(delivered.sort(), ids.map((id) => `${id}.hl7`));
  t.is(await readFile(join(dir, 'out', 'K01234.hl7'), 'latin1'), wire('K01234'));
  t.true(engine.output().includes('read big.hl7'), 'the restarted engine finished the file');
  t.is(await engine.stop(), 0);
});
