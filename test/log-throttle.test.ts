import test from 'ava';
import { logThrottle, type Suppressed } from '../engine/log-throttle.ts';
import { eventually } from './helpers/temp.ts';

// Admitting is synchronous, so no interval can end between the admits of one test: only the summary
// waits, for its condition, with a generous deadline.

test('the first event of an interval is admitted, the rest counted; the summary names the distinct keys', async (t) => {
  const summaries: Suppressed[] = [];
  const throttle = logThrottle(50, (suppressed) => summaries.push(suppressed));
  t.true(throttle.admit('10.0.0.1'));
  t.deepEqual(['10.0.0.1', '10.0.0.2', '10.0.0.1', undefined].map((key) => throttle.admit(key)), [false, false, false, false]);
  t.deepEqual(summaries, []);
  await eventually(() => summaries[0], 30_000, 'the summary at the end of the interval');
  t.deepEqual(summaries, [{ count: 4, keys: ['10.0.0.1', '10.0.0.2'] }]);
  // The next event opens a new interval, and is logged in full again.
  t.true(throttle.admit('10.0.0.3'));
  throttle.flush();
  t.is(summaries.length, 1, 'nothing suppressed, no summary');
});

test('flush sums up at once, keeps at most 10 keys, and starts afresh', (t) => {
  const summaries: Suppressed[] = [];
  const throttle = logThrottle(60_000, (suppressed) => summaries.push(suppressed));
  t.true(throttle.admit('first'));
  for (let i = 0; i < 25; i++) throttle.admit(`10.0.0.${i}`);
  throttle.flush();
  t.is(summaries.length, 1);
  t.is(summaries[0]!.count, 25);
  t.deepEqual(summaries[0]!.keys, Array.from({ length: 10 }, (_, i) => `10.0.0.${i}`));
  t.true(throttle.admit('again'), 'a new interval');
  throttle.flush();
  t.is(summaries.length, 1);
});
