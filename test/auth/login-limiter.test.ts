import test from 'ava';
import { createLoginLimiter, type LoginLimiter } from '../../engine/auth/login-limiter.ts';

// Login attempts: five counted per 15 minutes per address and per user name, then a wait. An
// attempt counts from the moment it is admitted, before its password is checked; a right password
// takes back its own count only. A few checks in flight at once per address and per user.

const minute = 60_000;

/** One whole attempt: admitted, checked (right or wrong), finished. Throws if it was refused. */
const attempt = (limiter: LoginLimiter, ip: string, user: string, ok = false): void => {
  const admission = limiter.begin(ip, user);
  if (!admission.ok) throw new Error(`refused: ${admission.reason} ${admission.retryAfter}`);
  admission.attempt.finish(ok);
};

/** Seconds until an attempt is admitted (0: now); an admitted probe is finished as a success, so it leaves no count. */
const waitFor = (limiter: LoginLimiter, ip: string, user: string): number => {
  const admission = limiter.begin(ip, user);
  if (!admission.ok) return admission.retryAfter;
  admission.attempt.finish(true);
  return 0;
};

test('five failures from one address block it for any user until the oldest leaves the window', (t) => {
  let now = 0;
  const limiter = createLoginLimiter({ now: () => now });
  for (let i = 0; i < 5; i++) {
    t.is(waitFor(limiter, '10.0.0.1', `user${i}`), 0);
    attempt(limiter, '10.0.0.1', `user${i}`);
    now += minute;
  }
  // Failures at 0, 1, 2, 3, 4 min; now = 5 min: the first expires at 15 min.
  t.deepEqual(limiter.begin('10.0.0.1', 'someone'), { ok: false, reason: 'limited', retryAfter: 600 });
  t.is(waitFor(limiter, '10.0.0.2', 'someone'), 0, 'another address is not blocked');
  now = 15 * minute;
  t.is(waitFor(limiter, '10.0.0.1', 'someone'), 0);
  attempt(limiter, '10.0.0.1', 'someone');
  t.is(waitFor(limiter, '10.0.0.1', 'x'), 60, 'blocked again until the one at 1 min expires');
});

test('five failures for one user from many addresses block that user only', (t) => {
  let now = 0;
  const limiter = createLoginLimiter({ now: () => now });
  for (let i = 0; i < 5; i++) attempt(limiter, `10.0.0.${i}`, 'bob');
  t.is(waitFor(limiter, '10.9.9.9', 'bob'), 900);
  t.is(waitFor(limiter, '10.9.9.9', 'ann'), 0);
  now += 14 * minute + 59_001;
  t.is(waitFor(limiter, '10.9.9.9', 'bob'), 1, 'rounded up to whole seconds');
});

test('an attempt counts from its admission: while five are being checked, a sixth is refused', (t) => {
  const limiter = createLoginLimiter({ now: () => 0, inFlightPerAddress: 10, inFlightPerUser: 10 });
  const pending = Array.from({ length: 5 }, (_, i) => limiter.begin('10.0.0.1', `user${i}`));
  t.true(pending.every((a) => a.ok));
  t.deepEqual(limiter.begin('10.0.0.1', 'another'), { ok: false, reason: 'limited', retryAfter: 900 });
  // The five turn out wrong: still five counted.
  for (const a of pending) if (a.ok) a.attempt.finish(false);
  t.is(waitFor(limiter, '10.0.0.1', 'another'), 900);
});

test('a right password takes back its own count only: failures before it, from its address and for its user, stay', (t) => {
  const limiter = createLoginLimiter({ now: () => 0 });
  // Someone guesses at bob from 10.0.0.1 and elsewhere, then ann logs in from 10.0.0.1 and bob from his desk.
  attempt(limiter, '10.0.0.1', 'bob');
  attempt(limiter, '10.0.0.1', 'bob');
  attempt(limiter, '10.0.0.2', 'bob');
  attempt(limiter, '10.0.0.1', 'ann', true);
  attempt(limiter, '10.0.0.3', 'bob', true);
  for (let i = 0; i < 50; i++) attempt(limiter, '10.0.0.3', 'bob', true);
  // 10.0.0.1 has two failures: three more and it is blocked; bob has three: two more.
  attempt(limiter, '10.0.0.1', 'carl');
  attempt(limiter, '10.0.0.1', 'carl');
  t.is(waitFor(limiter, '10.0.0.1', 'dora'), 0);
  attempt(limiter, '10.0.0.1', 'carl');
  t.is(waitFor(limiter, '10.0.0.1', 'dora'), 900, 'the address is blocked after five failures in all');
  attempt(limiter, '10.0.0.4', 'bob');
  t.is(waitFor(limiter, '10.0.0.5', 'bob'), 0);
  attempt(limiter, '10.0.0.6', 'bob');
  t.is(waitFor(limiter, '10.0.0.5', 'bob'), 900, 'bob is blocked after five failures in all, his own logins in between');
  t.is(waitFor(limiter, '10.0.0.3', 'ann'), 0, 'successes counted nothing against their address');
});

test('checks in flight: one per user name, two per address; extras are refused at once as busy', (t) => {
  const limiter = createLoginLimiter({ now: () => 0 });
  const first = limiter.begin('10.0.0.1', 'bob');
  t.true(first.ok);
  t.deepEqual(limiter.begin('10.0.0.2', 'bob'), { ok: false, reason: 'busy', retryAfter: 1 }, 'bob from anywhere');
  const second = limiter.begin('10.0.0.1', 'ann');
  t.true(second.ok);
  t.deepEqual(limiter.begin('10.0.0.1', 'carl'), { ok: false, reason: 'busy', retryAfter: 1 }, 'a third from 10.0.0.1');
  t.is(waitFor(limiter, '10.0.0.2', 'carl'), 0, 'others are not held up');
  if (first.ok) {
    first.attempt.finish(false);
    first.attempt.finish(false);
  }
  // finish counts once: one place is free at 10.0.0.1, not two.
  const third = limiter.begin('10.0.0.1', 'carl');
  t.true(third.ok);
  t.like(limiter.begin('10.0.0.1', 'dora'), { ok: false, reason: 'busy' });
  // The busy refusals counted nothing: 10.0.0.1 has three failures (bob, ann, carl).
  if (second.ok) second.attempt.finish(false);
  if (third.ok) third.attempt.finish(false);
  t.is(waitFor(limiter, '10.0.0.1', 'erin'), 0);
  attempt(limiter, '10.0.0.1', 'erin');
  attempt(limiter, '10.0.0.1', 'erin');
  t.is(waitFor(limiter, '10.0.0.1', 'fred'), 900, 'five failures: bob, ann, carl, erin twice');
});

test('limits are configurable', (t) => {
  const limiter = createLoginLimiter({ max: 2, windowMs: 10_000, now: () => 0 });
  attempt(limiter, 'a', 'u');
  t.is(waitFor(limiter, 'a', 'u'), 0);
  attempt(limiter, 'a', 'u');
  t.is(waitFor(limiter, 'a', 'u'), 10);
});
