import test from 'ava';
import { Redis } from 'ioredis';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { blockedProject } from '../helpers/blocked-folder.ts';
import { runFerry, startEngineProcess } from '../helpers/engine-process.ts';
import { loadMessage, checkDeliveries, formatReport, startLoad, watchDeliveries, type Load } from '../helpers/load.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { eventually } from '../helpers/temp.ts';

// Backpressure and limits (issue 5, point 2): a channel at maxQueued refuses new messages (AE over
// MLLP, QUEUE_FULL) instead of growing without bound, and takes them again once its backlog drains;
// an external Redis that may evict keys is refused at start; a queued message costs Redis a bounded
// number of bytes whatever its size, its content being in the message log on disk.

test.serial('maxQueued: above it MLLP answers AE (QUEUE_FULL) and nothing is stored; intake resumes once the backlog drains', async (t) => {
  const project = await blockedProject(t, { channelExtra: '    maxQueued: 50' });
  const watch = await watchDeliveries(join(project.dir, 'out', 'real'));
  t.teardown(() => watch.close());
  const engine = await startEngineProcess(t, project.configFile, project.dir);

  // One sender, 80 messages, no resend yet: 50 fit, 30 are refused.
  const client = openMllpClient(t, project.port);
  const answers: string[] = [];
  for (let seq = 1; seq <= 80; seq++) {
    const ack = await sendForAck(client, loadMessage(`C1-${String(seq).padStart(6, '0')}`));
    answers.push(`${ack.code} ${ack.text}`);
  }
  t.deepEqual(answers.slice(0, 50), Array(50).fill('AA '));
  t.deepEqual(answers.slice(50), Array(30).fill('AE channel is full, please resend later'));
  t.is(engine.output().match(/"code":"QUEUE_FULL"[^\n]*"msg":"channel is full: refusing new messages until its backlog drains"/g)?.length, 1);
  const counts = async () => {
    const { body } = await engine.api<Array<{ name: string; counts: Record<string, number> }>>('/api/channels');
    return body.find((c) => c.name === 'adt')!.counts;
  };
  t.like(await counts(), { received: 50, queued: 50, sent: 0 });

  // The destination comes back: the backlog drains and the refused messages get in when resent.
  await project.unblock();
  const load: Load = startLoad({ port: project.port, connections: 2, prefix: 'R' });
  t.teardown(() => load.stop());
  await eventually(() => (load.acked().length >= 100 ? true : undefined), 30_000, 'ACKs after the backlog drained');
  await load.stop();
  await eventually(async () => ((await counts()).sent === 50 + load.acked().length ? true : undefined), 30_000, 'everything sent');
  t.regex(engine.output(), /"msg":"channel below maxQueued again: accepting messages"/);

  const report = checkDeliveries(load, watch.names());
  t.log(`after unblocking: ${formatReport(report)}`);
  t.deepEqual(report.lost, []);
  t.deepEqual(report.outOfOrder, []);
  // The first 50, held through the block, arrive first and in order.
  t.deepEqual(
    watch.names().slice(0, 50).map((name) => name.split('@')[0]),
    Array.from({ length: 50 }, (_, i) => `C1-${String(i + 1).padStart(6, '0')}`),
  );
  t.is(await engine.stop(), 0);
});

test.serial('an external Redis that may evict keys is refused at start; with noeviction the engine starts', async (t) => {
  const redis = await startTestRedis({ tcp: true });
  t.teardown(() => redis.stop());
  const admin = new Redis({ path: redis.path });
  t.teardown(() => admin.disconnect());
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');

  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      engine: `redis: ${redis.url}`,
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations:
      - { name: archive, type: file, dir: ./out }
`,
    }),
  );
  const refused = await runFerry(['start', '-c', 'channels.yaml'], { cwd: dir });
  t.is(refused.code, 1);
  t.regex(refused.stderr, new RegExp(`ferry: REDIS_EVICTION_POLICY: Redis at ${redis.url} has maxmemory-policy allkeys-lru: .* Set maxmemory-policy noeviction`));

  await admin.config('SET', 'maxmemory-policy', 'noeviction');
  const engine = await startEngineProcess(t, configFile, dir);
  t.is(await engine.stop(), 0);
});

test.serial('a 2,000-message backlog costs Redis a bounded number of bytes per message, whatever the message size', async (t) => {
  const project = await blockedProject(t);
  const engine = await startEngineProcess(t, project.configFile, project.dir);
  const redis = new Redis({ path: join(project.dir, 'data', 'redis', 'redis.sock') });
  t.teardown(() => redis.disconnect());
  const usedMemory = async (): Promise<number> => Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
  const dbBytes = async (): Promise<number> => {
    const file = join(project.dir, 'data', 'messages.db');
    return (await stat(file)).size + (await stat(`${file}-wal`).catch(() => ({ size: 0 }))).size;
  };

  // 10 KB messages: if content went to Redis, it would show at once.
  const note = 'NTE|1||' + 'X'.repeat(10_000);
  const big = (controlId: string): string => `${loadMessage(controlId)}${note}\r`;
  const [memoryBefore, dbBefore] = [await usedMemory(), await dbBytes()];
  const load = startLoad({ port: project.port, connections: 4, message: big });
  t.teardown(() => load.stop());
  await eventually(() => (load.acked().length >= 2_000 ? true : undefined), 90_000, '2,000 ACKs');
  await load.stop();
  const queued = load.acked().length;
  await eventually(
    async () => {
      const { body } = await engine.api<Array<{ name: string; queues: Record<string, number>; counts: Record<string, number> }>>('/api/channels');
      const adt = body.find((c) => c.name === 'adt')!;
      return adt.queues['inbound'] === 0 && adt.counts['queued'] === queued ? true : undefined;
    },
    30_000,
    'the whole backlog queued for the blocked destination',
  );
  const perMessage = ((await usedMemory()) - memoryBefore) / queued;
  const dbPerMessage = ((await dbBytes()) - dbBefore) / queued;
  t.log(`${queued} queued messages of ${big('C1-000001').length} bytes: Redis ${perMessage.toFixed(0)} bytes per message, message log ${dbPerMessage.toFixed(0)} bytes per message`);
  t.true(perMessage < 1_000, `Redis bytes per queued message: ${perMessage.toFixed(0)}`);
  t.true(dbPerMessage > 10_000, 'the content is in the message log');
  t.is(await engine.stop(), 0);
});
