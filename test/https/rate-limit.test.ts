import test from 'ava';
import { rateLimiter } from '../../engine/http/rate-limit.ts';

test('a burst of `requests`, then one per perMs/requests', (t) => {
  const limiter = rateLimiter({ requests: 3, perMs: 3000 });
  const at = 1_000_000;
  t.deepEqual([1, 2, 3].map(() => limiter.take('a', at)), [{ ok: true }, { ok: true }, { ok: true }]);
  t.deepEqual(limiter.take('a', at), { ok: false, retryAfterMs: 1000 });
  t.deepEqual(limiter.take('a', at + 400), { ok: false, retryAfterMs: 600 });
  t.deepEqual(limiter.take('a', at + 1000), { ok: true });
  t.false(limiter.take('a', at + 1000).ok);
  // Other keys have their own bucket.
  t.true(limiter.take('b', at).ok);
  // A long pause refills to the burst size, not beyond.
  const later = at + 60_000;
  t.deepEqual([1, 2, 3, 4].map(() => limiter.take('a', later).ok), [true, true, true, false]);
});

test('memory stays bounded: full buckets are forgotten first, then the least recently used', (t) => {
  const limiter = rateLimiter({ requests: 1, perMs: 1000, maxKeys: 3 });
  for (const key of ['a', 'b', 'c']) t.true(limiter.take(key, 0).ok);
  // At the cap with every bucket empty: the least recently used ("a") makes room for "d".
  t.true(limiter.take('d', 0).ok);
  t.true(limiter.take('a', 0).ok, '"a" was forgotten, so it starts with a full bucket');
  t.false(limiter.take('d', 0).ok, '"d" is remembered');
  // By t=1000 every bucket has refilled: all are dropped to make room, none is cut short.
  t.true(limiter.take('e', 1000).ok);
  t.false(limiter.take('e', 1000).ok);
});
