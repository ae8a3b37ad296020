import test from 'ava';

// The dashboard's per-minute throughput model (admin-ui/throughput.js): pure, so it runs here too.
interface Bucket {
  start: number;
  count: number | null;
}
interface Throughput {
  seed(name: string, times: number[], options: { since: number; complete: boolean }): void;
  observe(name: string, received: number | undefined, at: number): void;
  series(name: string, now: number): Bucket[];
  forget(name: string): void;
}
const moduleUrl = new URL('../../admin-ui/throughput.js', import.meta.url).href;
const { createThroughput } = (await import(moduleUrl)) as { createThroughput(options?: { minutes?: number }): Throughput };

const MIN = 60_000;
// A whole minute, so bucket boundaries are easy to read.
const T0 = 1_800_000_000_000 - (1_800_000_000_000 % MIN);
const counts = (series: Bucket[]) => series.map((b) => b.count);

test('counter increases land in the minute they were reported in', (t) => {
  const tp = createThroughput({ minutes: 5 });
  tp.observe('a', 10, T0 + 1_000); // baseline: the 10 received before are not traffic in this minute
  tp.observe('a', 13, T0 + 20_000);
  tp.observe('a', 14, T0 + MIN + 5_000);
  tp.observe('a', 20, T0 + 2 * MIN + 5_000);
  t.deepEqual(counts(tp.series('a', T0 + 2 * MIN + 10_000)), [null, null, 3, 1, 6]);
  t.is(tp.series('a', T0).at(-1)!.start, T0);
});

test('minutes before anything was known are null, quiet known minutes are 0', (t) => {
  const tp = createThroughput({ minutes: 4 });
  tp.observe('a', 0, T0);
  t.deepEqual(counts(tp.series('a', T0 + 2 * MIN)), [null, 0, 0, 0]);
  t.deepEqual(counts(tp.series('unknown-channel', T0)), [null, null, null, null]);
});

test('history from the message log fills the window; a cut page leaves the older part unknown', (t) => {
  const tp = createThroughput({ minutes: 5 });
  const since = T0 - 4 * MIN;
  tp.seed('full', [T0 - 4 * MIN + 1, T0 - 2 * MIN, T0 - 2 * MIN + 30_000, T0 + 1], { since, complete: true });
  t.deepEqual(counts(tp.series('full', T0 + 1_000)), [1, 0, 2, 0, 1]);

  tp.seed('cut', [T0 - 3 * MIN + 10, T0 - MIN, T0], { since, complete: false });
  // The oldest message's minute may have had more than the page held: unknown, like everything before.
  t.deepEqual(counts(tp.series('cut', T0 + 1_000)), [null, null, 0, 1, 1]);
});

test('a lower count (retention removed old messages) is a new baseline, not negative traffic', (t) => {
  const tp = createThroughput({ minutes: 2 });
  tp.observe('a', 100, T0);
  tp.observe('a', 40, T0 + 1_000);
  tp.observe('a', 42, T0 + 2_000);
  t.deepEqual(counts(tp.series('a', T0 + 3_000)), [null, 2]);
});

test('old minutes slide out of the window and forget() drops a channel', (t) => {
  const tp = createThroughput({ minutes: 3 });
  tp.observe('a', 0, T0);
  tp.observe('a', 5, T0 + 1);
  t.deepEqual(counts(tp.series('a', T0 + 2 * MIN)), [5, 0, 0]);
  t.deepEqual(counts(tp.series('a', T0 + 3 * MIN)), [0, 0, 0]);
  tp.forget('a');
  t.deepEqual(counts(tp.series('a', T0 + 3 * MIN)), [null, null, null]);
});

test('an event without counts changes nothing', (t) => {
  const tp = createThroughput({ minutes: 2 });
  tp.observe('a', 3, T0);
  tp.observe('a', undefined, T0 + 1);
  tp.observe('a', 4, T0 + 2);
  t.deepEqual(counts(tp.series('a', T0 + 3)), [null, 1]);
});
