import test from 'ava';
import type { RetryPolicy } from '../../engine/config/contract.ts';
import { INTERNAL_RETRY, mayRetry, nextTryIn, retryDelay } from '../../engine/pipeline/backoff.ts';

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

test('nextTryIn: a Retry-After longer than the backoff wins, but never past maxDelay', (t) => {
  const policy: RetryPolicy = { attempts: 0, backoff: 'fixed', delayMs: 1000, maxDelayMs: 10_000 };
  const within = (ms: number, low: number, high: number) => t.true(ms >= low && ms <= high, `${ms} in [${low}, ${high}]`);
  within(nextTryIn(policy, 1, undefined), 800, 1200);
  t.is(nextTryIn(policy, 1, 7000), 7000);
  t.is(nextTryIn(policy, 1, 60_000), 10_000);
  within(nextTryIn(policy, 1, 10), 800, 1200);
});

test('the engine\'s own job retries use the same formula: exponential from 1 s, capped at a minute', (t) => {
  t.deepEqual(
    [1, 2, 3, 6, 7, 50].map((attempt) => retryDelay(INTERNAL_RETRY, attempt, noJitter)),
    [1000, 2000, 4000, 32_000, 60_000, 60_000],
  );
});
