import test from 'ava';
import { circuitBreaker } from '../../engine/destinations/circuit-breaker.ts';
import { parseRetryAfter, urlAllowed } from '../../engine/destinations/https.ts';

test('closed → open after N consecutive failures → half-open probe → closed', (t) => {
  let now = 0;
  const changes: string[] = [];
  const breaker = circuitBreaker({ failures: 3, cooldownMs: 1000, now: () => now, onChange: (state, n) => changes.push(`${state}:${n}`) });
  breaker.failure();
  breaker.failure();
  breaker.success(); // a success in between resets the count
  breaker.failure();
  breaker.failure();
  t.is(breaker.state(), 'closed');
  breaker.failure();
  t.is(breaker.state(), 'open');
  t.deepEqual(breaker.check(), { ok: false, retryAfterMs: 1000 });
  now = 600;
  t.deepEqual(breaker.check(), { ok: false, retryAfterMs: 400 });
  now = 1000;
  t.deepEqual(breaker.check(), { ok: true }, 'the probe');
  t.is(breaker.state(), 'half-open');
  t.deepEqual(breaker.check(), { ok: false, retryAfterMs: 1000 }, 'others wait behind the probe');
  breaker.success();
  t.is(breaker.state(), 'closed');
  t.deepEqual(breaker.check(), { ok: true });
  t.deepEqual(changes, ['open:3', 'closed:0']);
});

test('a failed probe opens the breaker for another cool-down', (t) => {
  let now = 0;
  const breaker = circuitBreaker({ failures: 1, cooldownMs: 500, now: () => now });
  breaker.failure();
  now = 500;
  t.true(breaker.check().ok);
  breaker.failure();
  t.is(breaker.state(), 'open');
  t.deepEqual(breaker.check(), { ok: false, retryAfterMs: 500 });
});

const retryAfter: Array<[string | undefined, number | undefined]> = [
  [undefined, undefined],
  ['0', 0],
  ['120', 120_000],
  [' 5 ', 5000],
  ['Wed, 21 Oct 2015 07:28:10 GMT', 10_000],
  ['Wed, 21 Oct 2015 07:27:00 GMT', 0],
  ['soon', undefined],
  ['-3', undefined],
];
for (const [value, expected] of retryAfter) {
  test(`Retry-After ${JSON.stringify(value)} → ${expected} ms`, (t) => {
    t.is(parseRetryAfter(value, Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), expected);
  });
}

const prefixes = ['https://api.example.org/v1/', 'https://hooks.example.org'];
const urls: Array<[string, boolean]> = [
  ['https://api.example.org/v1/orders', true],
  ['https://api.example.org/v1/', true],
  ['https://api.example.org/v2/orders', false],
  ['https://api.example.org/v1/../admin', false], // normalized by URL to /admin
  ['https://hooks.example.org', true],
  ['https://hooks.example.org/x?y=1', true],
  ['https://hooks.example.org.evil.com/', false],
  ['https://hooks.example.org@evil.com/', false],
  ['https://hooks.example.org:8443/', false],
  ['http://hooks.example.org/', false],
  ['https://HOOKS.example.org/a', true], // host names are case-insensitive
];
for (const [url, expected] of urls) {
  test(`allowDynamicUrl ${expected ? 'admits' : 'refuses'} ${url}`, (t) => {
    t.is(urlAllowed(new URL(url), prefixes), expected);
  });
}
