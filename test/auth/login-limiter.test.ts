import test from 'ava';
import { createLoginLimiter } from '../../engine/auth/login-limiter.ts';

// Failed logins: five per 15 minutes per address and per user name, then a wait.

const minute = 60_000;

test('five failures from one address block it for any user until the oldest leaves the window', (t) => {
  let now = 0;
  const limiter = createLoginLimiter({ now: () => now });
  for (let i = 0; i < 5; i++) {
    t.is(limiter.retryAfter('10.0.0.1', `user${i}`), 0);
    limiter.failed('10.0.0.1', `user${i}`);
    now += minute;
  }
  // Failures at 0, 1, 2, 3, 4 min; now = 5 min: the first expires at 15 min.
  t.is(limiter.retryAfter('10.0.0.1', 'someone'), 600);
  t.is(limiter.retryAfter('10.0.0.2', 'someone'), 0, 'another address is not blocked');
  now = 15 * minute;
  t.is(limiter.retryAfter('10.0.0.1', 'someone'), 0);
  limiter.failed('10.0.0.1', 'someone');
  t.is(limiter.retryAfter('10.0.0.1', 'x'), 60, 'blocked again until the one at 1 min expires');
});

test('five failures for one user from many addresses block that user only; a success clears the user', (t) => {
  let now = 0;
  const limiter = createLoginLimiter({ now: () => now });
  for (let i = 0; i < 5; i++) limiter.failed(`10.0.0.${i}`, 'bob');
  t.is(limiter.retryAfter('10.9.9.9', 'bob'), 900);
  t.is(limiter.retryAfter('10.9.9.9', 'ann'), 0);
  now += 14 * minute + 59_001;
  t.is(limiter.retryAfter('10.9.9.9', 'bob'), 1, 'rounded up to whole seconds');

  const other = createLoginLimiter({ now: () => now });
  for (let i = 0; i < 4; i++) other.failed(`10.1.0.${i}`, 'ann');
  other.succeeded('ann');
  other.failed('10.1.1.1', 'ann');
  t.is(other.retryAfter('10.1.2.2', 'ann'), 0, 'the count started again after the success');
});

test('limits are configurable', (t) => {
  const limiter = createLoginLimiter({ max: 2, windowMs: 10_000, now: () => 0 });
  limiter.failed('a', 'u');
  t.is(limiter.retryAfter('a', 'u'), 0);
  limiter.failed('a', 'u');
  t.is(limiter.retryAfter('a', 'u'), 10);
});
