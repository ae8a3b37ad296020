import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { createBatcher } from '../engine/batcher.ts';

/** A flush that records every batch it gets and answers each item with `item * 10`. */
const recording = (answer: (item: number) => number | Error = (item) => item * 10) => {
  const batches: number[][] = [];
  const flush = (items: number[]): Array<number | Error> => {
    batches.push([...items]);
    return items.map(answer);
  };
  return { batches, flush };
};

test('calls made in one event-loop turn are flushed once, together, in arrival order', async (t) => {
  const { batches, flush } = recording();
  const batcher = createBatcher<number, number>(flush);
  const results = [1, 2, 3, 4, 5].map((n) => batcher.add(n));
  t.deepEqual(batches, [], 'nothing is flushed before the turn ends');
  t.deepEqual(await Promise.all(results), [10, 20, 30, 40, 50]);
  t.deepEqual(batches, [[1, 2, 3, 4, 5]]);
});

test('calls made in later turns form their own batches', async (t) => {
  const { batches, flush } = recording();
  const batcher = createBatcher<number, number>(flush);
  t.is(await batcher.add(1), 10);
  const second = [batcher.add(2), batcher.add(3)];
  t.deepEqual(await Promise.all(second), [20, 30]);
  t.deepEqual(batches, [[1], [2, 3]]);
});

const splits: Array<[number, number, number[][]]> = [
  [3, 7, [[0, 1, 2], [3, 4, 5], [6]]],
  [3, 6, [[0, 1, 2], [3, 4, 5]]],
  [1, 3, [[0], [1], [2]]],
  [500, 4, [[0, 1, 2, 3]]],
];

for (const [maxBatch, count, expected] of splits) {
  test(`maxBatch ${maxBatch} splits ${count} calls into ${expected.length} batch(es)`, async (t) => {
    const { batches, flush } = recording();
    const batcher = createBatcher<number, number>(flush, maxBatch);
    const items = Array.from({ length: count }, (_, i) => i);
    t.deepEqual(await Promise.all(items.map((i) => batcher.add(i))), items.map((i) => i * 10));
    t.deepEqual(batches, expected);
  });
}

test('batches flush one after another, never overlapping, even when flush is slow', async (t) => {
  const events: string[] = [];
  const batcher = createBatcher<number, number>(async (items) => {
    events.push(`start ${items.join(',')}`);
    await sleep(items[0] === 0 ? 30 : 1);
    events.push(`end ${items.join(',')}`);
    return items;
  }, 2);
  await Promise.all([0, 1, 2, 3, 4].map((n) => batcher.add(n)));
  t.deepEqual(events, ['start 0,1', 'end 0,1', 'start 2,3', 'end 2,3', 'start 4', 'end 4']);
});

test('a per-item Error rejects only that caller', async (t) => {
  const { batches, flush } = recording((item) => (item === 2 ? new Error(`item ${item} is bad`) : item * 10));
  const batcher = createBatcher<number, number>(flush);
  const settled = await Promise.allSettled([1, 2, 3].map((n) => batcher.add(n)));
  t.deepEqual(settled, [
    { status: 'fulfilled', value: 10 },
    { status: 'rejected', reason: new Error('item 2 is bad') },
    { status: 'fulfilled', value: 30 },
  ]);
  t.is((settled[1] as PromiseRejectedResult).reason.message, 'item 2 is bad');
  t.deepEqual(batches, [[1, 2, 3]]);
});

const throwingFlushes: Array<[string, (items: number[]) => Promise<number[]> | number[]]> = [
  [
    'throws synchronously',
    () => {
      throw new Error('disk full');
    },
  ],
  ['rejects', async () => Promise.reject(new Error('disk full'))],
];

for (const [how, flush] of throwingFlushes) {
  test(`a flush that ${how} rejects every caller of the batch, and the next batch still runs`, async (t) => {
    let failing = true;
    const batcher = createBatcher<number, number>((items) => (failing ? flush(items) : items.map((n) => n + 1)), 2);
    const settled = await Promise.allSettled([1, 2, 3].map((n) => batcher.add(n)));
    t.deepEqual(
      settled.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : s.value)),
      ['disk full', 'disk full', 'disk full'],
    );
    failing = false;
    t.is(await batcher.add(7), 8);
  });
}

test('drain() flushes what was added in this turn and waits for batches in flight', async (t) => {
  const flushed: number[] = [];
  const batcher = createBatcher<number, void>(async (items) => {
    await sleep(20);
    flushed.push(...items);
    return items.map(() => undefined);
  }, 2);
  for (const n of [1, 2, 3]) void batcher.add(n);
  await batcher.drain();
  t.deepEqual(flushed, [1, 2, 3]);
});

test('drain() on an idle batcher resolves at once; later adds still flush', async (t) => {
  const { batches, flush } = recording();
  const batcher = createBatcher<number, number>(flush);
  await batcher.drain();
  t.deepEqual(batches, []);
  t.is(await batcher.add(4), 40);
  // The turn's setImmediate still fires after drain() already flushed: it must not flush twice.
  const pending = batcher.add(5);
  await batcher.drain();
  t.is(await pending, 50);
  await sleep(5);
  t.deepEqual(batches, [[4], [5]]);
});

test('drain() resolves even when the batch it waits for failed', async (t) => {
  const batcher = createBatcher<number, number>(() => {
    throw new Error('nope');
  });
  const pending = batcher.add(1);
  await batcher.drain();
  await t.throwsAsync(pending, { message: 'nope' });
});
