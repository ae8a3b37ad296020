import test from 'ava';
import { Worker } from 'bullmq';
import type { RetryPolicy } from '../engine/config/contract.ts';
import {
  QUEUE_PREFIX,
  createQueue,
  createWorker,
  deliveryJobId,
  destinationQueueName,
  inboundQueueName,
  mayRetry,
  missingJobs,
  requeueAbandoned,
  retryDelay,
} from '../engine/queues.ts';
import { redisConnectionOptions } from '../engine/redis/connection.ts';
import { startTestRedis } from './helpers/redis.ts';

const exponential: RetryPolicy = { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 10_000 };
const fixed: RetryPolicy = { attempts: 5, backoff: 'fixed', delayMs: 1500, maxDelayMs: 10_000 };
const capped: RetryPolicy = { attempts: 0, backoff: 'exponential', delayMs: 500, maxDelayMs: 3000 };
const noJitter = (): number => 0.5;

const delays: Array<[string, RetryPolicy, number[]]> = [
  ['exponential doubles from delayMs', exponential, [1000, 2000, 4000, 8000, 10_000, 10_000]],
  ['fixed stays at delayMs', fixed, [1500, 1500, 1500, 1500]],
  ['capped at maxDelayMs', capped, [500, 1000, 2000, 3000, 3000]],
  ['fixed is capped too', { ...fixed, delayMs: 20_000 }, [10_000, 10_000]],
];

for (const [title, policy, expected] of delays) {
  test(`retryDelay: ${title}`, (t) => {
    t.deepEqual(
      expected.map((_, i) => retryDelay(policy, i + 1, noJitter)),
      expected,
    );
  });
}

test('retryDelay: a very late attempt stays capped (no Infinity/NaN)', (t) => {
  t.is(retryDelay(capped, 5000, noJitter), 3000);
});

const jitter: Array<[string, number, number]> = [
  ['random 0 gives -20%', 0, 3200],
  ['random 0.25 gives -10%', 0.25, 3600],
  ['random 0.75 gives +10%', 0.75, 4400],
  ['random just below 1 stays under +20%', 0.999_999, 4800],
];

for (const [title, random, expected] of jitter) {
  test(`retryDelay jitter: ${title}`, (t) => {
    t.is(retryDelay(exponential, 3, () => random), expected);
  });
}

test('retryDelay jitter stays within ±20% for many draws', (t) => {
  for (let i = 0; i < 1000; i++) {
    const delay = retryDelay(exponential, 2, Math.random);
    t.true(delay >= 1600 && delay <= 2400, `delay ${delay}`);
  }
});

const retries: Array<[string, RetryPolicy, number, boolean]> = [
  ['attempts 3, after try 1', { ...exponential, attempts: 3 }, 1, true],
  ['attempts 3, after try 2', { ...exponential, attempts: 3 }, 2, true],
  ['attempts 3, after try 3', { ...exponential, attempts: 3 }, 3, false],
  ['attempts 1 never retries', { ...exponential, attempts: 1 }, 1, false],
  ['attempts 0 retries after try 1', { ...exponential, attempts: 0 }, 1, true],
  ['attempts 0 retries forever', { ...exponential, attempts: 0 }, 1_000_000, true],
];

for (const [title, policy, attempt, expected] of retries) {
  test(`mayRetry: ${title}`, (t) => {
    t.is(mayRetry(policy, attempt), expected);
  });
}

test('queue names and delivery job ids', (t) => {
  t.is(inboundQueueName('adt'), 'adt.in');
  t.is(destinationQueueName('adt', 'archive'), 'adt.to.archive');
  const id = deliveryJobId('01J0000000AAAAAAAAAAAAAAAA', 'archive', 2);
  t.is(id, '01J0000000AAAAAAAAAAAAAAAA.archive.2');
  t.false(id.includes(':'), 'BullMQ forbids ":" in custom job ids');
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
