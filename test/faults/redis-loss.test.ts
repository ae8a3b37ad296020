import test from 'ava';
import { Queue } from 'bullmq';
import { join } from 'node:path';
import { deliveryWork, destinationQueueName, inboundQueueName, inboundWork, QUEUE_PREFIX, type DeliveryJob, type InboundJob } from '../../engine/pipeline/queues.ts';
import { blockedProject } from '../helpers/blocked-folder.ts';
import { startEngineProcess } from '../helpers/engine-process.ts';
import { loadMessage, redisPid, watchDeliveries } from '../helpers/load.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { eventually } from '../helpers/temp.ts';

// Redis acknowledges a write before it is in its AOF while a background fsync is still running
// (appendfsync everysec), so a kill -9 at that moment loses jobs it had acknowledged. The message log
// still says what is unfinished: when the engine sees Redis come back as a new server (its run_id
// changed), each running channel queues again what Redis no longer holds. The loss is simulated by
// removing jobs, then Redis is killed and restarted by the engine's supervisor.

// L1 and L2 slow enough that the messages after them wait in the inbound queue (as one job: the
// channel's queue gathers what arrives while its translator is busy) while the test removes it.
const SCRIPT = `export default (msg: Message) => {
  if (msg.get('MSH-10') === 'L1' || msg.get('MSH-10') === 'L2') {
    const end = Date.now() + 800;
    while (Date.now() < end) {}
  }
  return msg;
};`;

test('jobs Redis lost (inbound and delivery) are queued again after it restarts: every acknowledged message is delivered once', async (t) => {
  const project = await blockedProject(t, { files: { 'channels/adt.ts': SCRIPT } });
  const { port } = project;
  const watch = await watchDeliveries(join(project.dir, 'out', 'real'));
  t.teardown(() => watch.close());
  const engine = await startEngineProcess(t, project.configFile, project.dir);
  const dataDir = join(project.dir, 'data');
  const connection = { path: join(dataDir, 'redis', 'redis.sock') };
  const inbound = new Queue<InboundJob>(inboundQueueName('adt'), { connection, prefix: QUEUE_PREFIX });
  const deliveries = new Queue<DeliveryJob>(destinationQueueName('adt', 'archive'), { connection, prefix: QUEUE_PREFIX });
  /** The waiting jobs that hold any of messages `ids`. */
  const jobsHolding = async <T>(queue: Queue<T>, work: (data: T) => string[], ids: string[]) =>
    (await queue.getJobs(['waiting', 'prioritized', 'delayed'])).filter((job) => work(job.data).some((id) => ids.includes(id)));
  /** Removes them, as a Redis that lost them would; returns how much work they held. */
  const lose = async <T>(queue: Queue<T>, work: (data: T) => unknown[], jobs: Array<{ id?: string; data: T }>): Promise<number> => {
    for (const job of jobs) t.is(await queue.remove(job.id!), 1);
    return jobs.reduce((held, job) => held + work(job.data).length, 0);
  };
  const deliveryIds = (data: DeliveryJob) => deliveryWork(data).map((w) => w.id);
  t.teardown(() => Promise.all([inbound.close(), deliveries.close()]));

  const client = openMllpClient(t, port);
  const controlIds = ['L1', 'L2', 'L3', 'L4', 'L5', 'L6'];
  for (const controlId of controlIds) t.is((await sendForAck(client, loadMessage(controlId))).code, 'AA');
  const { body } = await engine.api<{ items: Array<{ id: string; controlId: string }> }>('/api/messages?channel=adt');
  const idOf = new Map(body.items.map((m) => [m.controlId, m.id]));

  // Lost from the inbound queue: the job holding the last two, waiting while the translator is on L2.
  const [l5, l6] = [idOf.get('L5')!, idOf.get('L6')!];
  const waitingInbound = await eventually(async () => {
    const jobs = await jobsHolding(inbound, inboundWork, [l5, l6]);
    return jobs.some((job) => inboundWork(job.data).includes(l5)) && jobs.some((job) => inboundWork(job.data).includes(l6)) ? jobs : undefined;
  }, 20_000, 'L5 and L6 waiting in the inbound queue');
  const lostMessages = await lose(inbound, inboundWork, waitingInbound);
  // Lost from the delivery queue: the job holding L2, which waits behind L1 (the blocked folder keeps retrying it).
  const waitingDelivery = await eventually(async () => {
    const jobs = await jobsHolding(deliveries, deliveryIds, [idOf.get('L2')!]);
    return jobs.length > 0 ? jobs : undefined;
  }, 20_000, 'L2 waiting in the delivery queue');
  const lostDeliveries = await lose(deliveries, deliveryWork, waitingDelivery);

  process.kill((await redisPid(dataDir))!, 'SIGKILL');
  await eventually(() => (/"msg":"Redis restarted: queueing again/.test(engine.output()) ? true : undefined), 20_000, 'the engine to see the new Redis');
  const resynced = (what: string, count: number): RegExp => new RegExp(`"recovered":${count},"msg":"queued ${what} the message log held`);
  await eventually(() => (resynced('messages', lostMessages).test(engine.output()) ? true : undefined), 20_000, 'the inbound resync');
  await eventually(() => (resynced('deliveries', lostDeliveries).test(engine.output()) ? true : undefined), 20_000, 'the delivery resync');

  await project.unblock();
  const delivered = await eventually(() => (watch.names().length >= controlIds.length ? watch.names() : undefined), 30_000, 'every message delivered');
  t.deepEqual(delivered.map((name) => name.split('@')[0]).sort(), controlIds);
  // A file exists a moment before the message log records it sent.
  const counts = await eventually(async () => {
    const { body: after } = await engine.api<Array<{ name: string; counts: Record<string, number> }>>('/api/channels');
    const adt = after.find((c) => c.name === 'adt')!.counts;
    return adt.sent === 6 ? adt : undefined;
  }, 20_000, 'all six recorded sent');
  t.like(counts, { received: 6, sent: 6, queued: 0, errored: 0 });
});
