import test from 'ava';
import { createDeliveryTracker } from '../../engine/pipeline/delivery-tracker.ts';

// The deliveries in progress as operators see them: listed once they failed, skipped at once
// whether they are pausing before the next try or in the middle of one.

const HOUR = 3_600_000;
const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

test('a delivery is listed as blocked once a try failed, with its tries, last error and next try; not after it ends', (t) => {
  const tracker = createDeliveryTracker();
  const tracked = tracker.begin('central', 'M1', 0);
  t.deepEqual(tracker.blocked(), [], 'not blocked before a failure');
  const next = Date.now() + 5_000;
  tracked.failed(3, 'HTTP_RETRYABLE_STATUS: 503', next);
  const [blocked] = tracker.blocked();
  t.like(blocked, { destination: 'central', id: 'M1', output: 0, attempts: 3, error: 'HTTP_RETRYABLE_STATUS: 503', nextAttemptAt: new Date(next).toISOString() });
  t.true(Date.parse(blocked!.since) <= Date.now());
  void tracked.attempt(never());
  t.is(tracker.blocked()[0]!.nextAttemptAt, null, 'a try is under way');
  tracked.end('sent');
  t.deepEqual(tracker.blocked(), []);
});

test('a skip during the pause before the next try ends the pause at once and learns the outcome', async (t) => {
  const tracker = createDeliveryTracker();
  const tracked = tracker.begin('central', 'M1', 0);
  tracked.failed(1, 'HTTP_RETRYABLE_STATUS: 503', Date.now() + HOUR);
  const pausing = tracked.pause(HOUR, new AbortController().signal);
  const skipping = tracker.skip('central', 'M1', 0, 'ada');
  await t.throwsAsync(pausing);
  t.is(tracked.skippedBy, 'ada');
  t.true(tracked.signal.aborted);
  tracked.end('skipped');
  t.is(await skipping, 'skipped');
  t.deepEqual(tracker.blocked(), []);
});

test('a skip during a try stops waiting for it at once', async (t) => {
  const tracker = createDeliveryTracker();
  const tracked = tracker.begin('central', 'M1', 2);
  const trying = tracked.attempt(never<string>());
  const skipping = tracker.skip('central', 'M1', 2, 'otto');
  const error = await t.throwsAsync(trying);
  t.is(error!.message, 'skipped by otto');
  tracked.end('skipped');
  t.is(await skipping, 'skipped');
  // A try started after the skip fails at once too.
  await t.throwsAsync(tracked.attempt(Promise.resolve('late')));
});

test('a try that finished first wins: the skip learns it was sent', async (t) => {
  const tracker = createDeliveryTracker();
  const tracked = tracker.begin('central', 'M1', 0);
  t.is(await tracked.attempt(Promise.resolve('HTTP 200')), 'HTTP 200');
  const skipping = tracker.skip('central', 'M1', 0, 'ada');
  tracked.end('sent');
  t.is(await skipping, 'sent');
});

test('only the delivery named is skipped; an unknown one is not in progress', async (t) => {
  const tracker = createDeliveryTracker();
  const first = tracker.begin('central', 'M1', 0);
  const other = tracker.begin('central', 'M1', 1);
  const elsewhere = tracker.begin('archive', 'M1', 0);
  t.is(await tracker.skip('central', 'M2', 0, 'ada'), 'not-in-progress');
  const skipping = tracker.skip('central', 'M1', 0, 'ada');
  t.true(first.signal.aborted);
  t.false(other.signal.aborted);
  t.false(elsewhere.signal.aborted);
  first.end('skipped');
  t.is(await skipping, 'skipped');
  t.is(await tracker.skip('central', 'M1', 0, 'ada'), 'not-in-progress', 'gone once ended');
});

test('stopping the channel ends a pause too, without a skip', async (t) => {
  const tracker = createDeliveryTracker();
  const tracked = tracker.begin('central', 'M1', 0);
  const stopping = new AbortController();
  const pausing = tracked.pause(HOUR, stopping.signal);
  stopping.abort();
  await t.throwsAsync(pausing);
  t.is(tracked.skippedBy, undefined);
  tracked.end('released');
});
