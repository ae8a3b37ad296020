import test from 'ava';
import { Worker } from 'bullmq';
import {
  QUEUE_PREFIX,
  createQueue,
  createWorker,
  deliveryJobId,
  destinationQueueName,
  deliveryJob,
  deliveryWork,
  inboundJob,
  inboundQueueName,
  inboundWork,
  legacyDeliveryJobId,
  missingJobs,
  requeueAbandoned,
} from '../../engine/pipeline/queues.ts';
import { redisConnectionOptions } from '../../engine/redis/connection.ts';
import { startTestRedis } from '../helpers/redis.ts';

test('queue names and delivery job ids', (t) => {
  t.is(inboundQueueName('adt'), 'adt.in');
  t.is(destinationQueueName('adt', 'archive'), 'adt.to.archive');
  const id = deliveryJobId('01J0000000AAAAAAAAAAAAAAAA', 'archive', 2);
  t.is(id, '01J0000000AAAAAAAAAAAAAAAA.archive.2');
  t.false(id.includes(':'), 'BullMQ forbids ":" in custom job ids');
  t.is(legacyDeliveryJobId('01J0000000AAAAAAAAAAAAAAAA', 'archive', 0), '01J0000000AAAAAAAAAAAAAAAA.archive.0');
});

test('jobs carry batches of work, and an older Ferry\'s one-message jobs still read', (t) => {
  t.deepEqual(inboundWork(inboundJob(['a', 'b'])), ['a', 'b']);
  t.deepEqual(inboundWork({ id: 'a' }), ['a']);
  const work = [
    { id: 'a', output: 0 },
    { id: 'a', output: 1 },
    { id: 'b', output: 0 },
  ];
  t.deepEqual(deliveryJob(work), { items: [['a', 0], ['a', 1], ['b', 0]] });
  t.deepEqual(deliveryWork(deliveryJob(work)), work);
  t.deepEqual(deliveryWork({ id: 'a', output: 3 }), [{ id: 'a', output: 3 }]);
});

// Paged (2 at a time) as well as whole: the order must come out the same.
for (const { taken, page } of [
  { taken: 2, page: undefined },
  { taken: 5, page: 2 },
]) {
  test(`requeueAbandoned: jobs a dead worker left active go back to the head of the queue, in order (${taken} jobs, ${page ? `pages of ${page}` : 'one page'})`, async (t) => {
    const redis = await startTestRedis();
    t.teardown(() => redis.stop());
    const connection = redisConnectionOptions({ path: redis.path });
    const queue = createQueue<{ n: number }>('abandoned', connection);
    t.teardown(() => queue.close());
    const all = [1, 2, 3, 4, 5, 6, 7];
    await queue.addBulk(all.map((n) => ({ name: 'job', data: { n }, opts: { jobId: `job${n}` } })));

    // A worker takes some jobs and dies holding them (their locks are still valid for lockDuration).
    const dead = new Worker('abandoned', null, { connection, prefix: QUEUE_PREFIX, concurrency: taken, lockDuration: 60_000 });
    t.teardown(() => dead.close(true));
    for (let n = 1; n <= taken; n++) t.is((await dead.getNextJob('dead-token'))?.id, `job${n}`);
    t.is(await queue.getActiveCount(), taken);

    t.is(await requeueAbandoned(queue, page), taken);
    t.is(await queue.getActiveCount(), 0);

    // A new worker gets them first, in their original order, before the jobs behind them.
    const order: number[] = [];
    const worker = createWorker<{ n: number }>(
      'abandoned',
      async (job) => {
        order.push(job.data.n);
      },
      { concurrency: 1, connection },
    );
    t.teardown(() => worker.close());
    void worker.run();
    const deadline = Date.now() + 10_000;
    while (order.length < all.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    t.deepEqual(order, all);
    t.is(await requeueAbandoned(queue, page), 0);
  });
}

test('missingJobs: the ids the queue does not hold (never added, or removed as a completed job is)', async (t) => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const queue = createQueue<{ n: number }>('present', redisConnectionOptions({ path: redis.path }));
  t.teardown(() => queue.close());
  await queue.addBulk([1, 2, 3].map((n) => ({ name: 'job', data: { n }, opts: { jobId: `job${n}` } })));
  await queue.remove('job2');
  t.deepEqual(await missingJobs(queue, ['job1', 'job2', 'job3', 'job4']), ['job2', 'job4']);
  t.deepEqual(await missingJobs(queue, []), []);
});
