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

// Slow enough that messages wait in the inbound queue while the test removes some of them.
const SCRIPT = `export default (msg: Message) => {
  const end = Date.now() + 400;
  while (Date.now() < end) {}
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
  /** The waiting job that holds message `id` (each message was sent alone, so its job holds only it). */
  const jobHolding = async <T>(queue: Queue<T>, work: (data: T) => string[], id: string): Promise<string | undefined> =>
    (await queue.getJobs(['waiting', 'prioritized', 'delayed'])).find((job) => work(job.data).includes(id))?.id;
  const deliveryIds = (data: DeliveryJob) => deliveryWork(data).map((w) => w.id);
  t.teardown(() => Promise.all([inbound.close(), deliveries.close()]));

  const client = openMllpClient(t, port);
  const controlIds = ['L1', 'L2', 'L3', 'L4', 'L5', 'L6'];
  for (const controlId of controlIds) t.is((await sendForAck(client, loadMessage(controlId))).code, 'AA');
  const { body } = await engine.api<{ items: Array<{ id: string; controlId: string }> }>('/api/messages?channel=adt');
  const idOf = new Map(body.items.map((m) => [m.controlId, m.id]));

  // Lost from the inbound queue: the last two, still waiting behind the slow script.
  for (const controlId of ['L5', 'L6']) t.is(await inbound.remove((await jobHolding(inbound, inboundWork, idOf.get(controlId)!))!), 1);
  // Lost from the delivery queue: two that wait behind L1, which the blocked folder keeps retrying.
  await eventually(() => jobHolding(deliveries, deliveryIds, idOf.get('L4')!), 20_000, 'L4 to be transformed');
  for (const controlId of ['L3', 'L4']) t.is(await deliveries.remove((await jobHolding(deliveries, deliveryIds, idOf.get(controlId)!))!), 1);

  process.kill((await redisPid(dataDir))!, 'SIGKILL');
  await eventually(() => (/"msg":"Redis restarted: queueing again/.test(engine.output()) ? true : undefined), 20_000, 'the engine to see the new Redis');
  await eventually(() => (/"recovered":2,"msg":"queued messages the message log held as received/.test(engine.output()) ? true : undefined), 20_000, 'the inbound resync');
  await eventually(() => (/"recovered":2,"msg":"queued deliveries the message log held as queued/.test(engine.output()) ? true : undefined), 20_000, 'the delivery resync');

  await project.unblock();
  const delivered = await eventually(() => (watch.names().length >= controlIds.length ? watch.names() : undefined), 30_000, 'every message delivered');
  t.deepEqual(delivered.map((name) => name.split('@')[0]).sort(), controlIds);
  const { body: after } = await engine.api<Array<{ name: string; counts: Record<string, number> }>>('/api/channels');
  t.like(after.find((c) => c.name === 'adt')!.counts, { received: 6, sent: 6, queued: 0, errored: 0 });
});
