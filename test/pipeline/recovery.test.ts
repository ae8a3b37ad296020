import type { ExecutionContext } from 'ava';
import test from 'ava';
import { join } from 'node:path';
import { pino } from 'pino';
import { recoverLostWork } from '../../engine/pipeline/recovery.ts';
import {
  createQueue,
  deliveryWork,
  destinationQueueName,
  inboundQueueName,
  inboundWork,
  legacyDeliveryJobId,
  type DeliveryJob,
  type InboundJob,
} from '../../engine/pipeline/queues.ts';
import { redisConnectionOptions } from '../../engine/redis/connection.ts';
import type { ReceivedMessage } from '../../engine/store/contract.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { tempDir } from '../helpers/temp.ts';

const message = (id: string, job: string | null): ReceivedMessage => ({
  id,
  channel: 'adt',
  source: 'test',
  raw: Buffer.from(`MSH|^~\\&|A|B|C|D|20260101||ADT^A01|${id}|P|2.5\r`),
  text: id,
  charset: 'UNICODE UTF-8',
  job,
});

const rig = async (t: ExecutionContext) => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const connection = redisConnectionOptions({ path: redis.path });
  const store = openMessageStore(join(await tempDir(t), 'messages.db'));
  t.teardown(() => store.close());
  const inbound = createQueue<InboundJob>(inboundQueueName('adt'), connection);
  const archive = createQueue<DeliveryJob>(destinationQueueName('adt', 'archive'), connection);
  t.teardown(() => Promise.all([inbound.close(), archive.close()]));
  const recover = () => recoverLostWork({ channel: 'adt', store, inbound, deliveryQueues: new Map([['archive', archive]]), logger: pino({ level: 'silent' }) });
  return { store, inbound, archive, recover };
};

test('messages still received whose job Redis lost are queued again, in arrival order, once; the others are left alone', async (t) => {
  const { store, inbound, recover } = await rig(t);
  // M1, M2 in job J1 (held by Redis); M3, M4 in J2 (lost); M5 from a log before jobs were recorded
  // (its job was its own id; lost); M6 done already.
  await Promise.all([['M1', 'J1'], ['M2', 'J1'], ['M3', 'J2'], ['M4', 'J2'], ['M5', null], ['M6', 'J3']].map(([id, job]) => store.receive(message(id!, job!))));
  await inbound.add('messages', { ids: ['M1', 'M2'] }, { jobId: 'J1' });
  await store.recordTransform('M6', { status: 'filtered', logs: '' });

  t.is(await recover(), 3);
  const jobs = await inbound.getJobs(['waiting'], 0, -1, true);
  t.deepEqual(jobs.map((job) => inboundWork(job.data)), [['M1', 'M2'], ['M3', 'M4', 'M5']]);
  // The log now names the new job, so a second recovery finds nothing lost.
  t.deepEqual(new Set(['M3', 'M4', 'M5'].map((id) => store.load(id)?.job)), new Set([jobs[1]!.id]));
  t.is(await recover(), 0);
});

test('deliveries still queued whose job Redis lost are queued again; sent ones and held jobs are not', async (t) => {
  const { store, archive, recover } = await rig(t);
  await Promise.all(['A', 'B', 'C', 'D'].map((id) => store.receive(message(id, 'J'))));
  const transformed = (outputs: number, job: string | undefined) => ({
    status: 'transformed' as const,
    outputs: Array.from({ length: outputs }, (_, i) => Buffer.from(`o${i}`)),
    destinations: ['archive'],
    ...(job ? { jobs: { archive: job } } : {}),
    logs: '',
  });
  await store.recordTransform('A', transformed(2, 'J.archive.0'));
  await store.recordTransform('B', transformed(2, 'J.archive.1'));
  // An older Ferry queued one job per delivery, under an id of its own: D's is still held, C's is lost.
  await store.recordTransform('C', transformed(1, undefined));
  await store.recordTransform('D', transformed(1, undefined));
  await store.recordDelivery('A', 'archive#0', { status: 'sent', attempts: 1 });
  await archive.add('deliveries', { items: [['B', 0], ['B', 1]] }, { jobId: 'J.archive.1' });
  await archive.add('deliver', { id: 'D', output: 0 }, { jobId: legacyDeliveryJobId('D', 'archive', 0) });

  t.is(await recover(), 2);
  const jobs = await archive.getJobs(['waiting'], 0, -1, true);
  t.deepEqual(
    jobs.map((job) => deliveryWork(job.data)),
    [
      [
        { id: 'B', output: 0 },
        { id: 'B', output: 1 },
      ],
      [{ id: 'D', output: 0 }],
      [
        { id: 'A', output: 1 },
        { id: 'C', output: 0 },
      ],
    ],
  );
  t.is(await recover(), 0);
});
