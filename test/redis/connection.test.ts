import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { pino } from 'pino';
import { FerryError } from '../../engine/errors.ts';
import {
  createRedis,
  describeRedisAddress,
  pingRedis,
  redisConnectionOptions,
  type RedisAddress,
} from '../../engine/redis/connection.ts';
import { embeddedRedis } from '../../engine/redis/embedded.ts';
import { captureLogger } from '../helpers/logger.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { tempDir } from '../helpers/temp.ts';

const silent = pino({ level: 'silent' });

const until = async (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

const options: Array<[string, RedisAddress, Record<string, unknown>]> = [
  ['a unix socket', { path: '/data/redis/redis.sock' }, { path: '/data/redis/redis.sock' }],
  ['a bare redis URL', { url: 'redis://queue.internal' }, { host: 'queue.internal', port: 6379, db: 0 }],
  [
    'a rediss URL with credentials and a database',
    { url: 'rediss://ferry:p%40ss%3Aword@redis.example.org:6380/2' },
    { host: 'redis.example.org', port: 6380, db: 2, username: 'ferry', password: 'p@ss:word', tls: {} },
  ],
  ['a password without user', { url: 'redis://:secret@127.0.0.1:7000' }, { host: '127.0.0.1', port: 7000, db: 0, password: 'secret' }],
  ['an IPv6 address', { url: 'redis://[::1]:6390/' }, { host: '::1', port: 6390, db: 0 }],
];

for (const [title, address, expected] of options) {
  test(`redisConnectionOptions: ${title}`, (t) => {
    const { retryStrategy, ...rest } = redisConnectionOptions(address);
    t.deepEqual(rest, { ...expected, maxRetriesPerRequest: null, enableReadyCheck: true });
    // Bounded exponential, never giving up.
    t.deepEqual([1, 2, 3, 5, 6, 50, 1000].map((n) => retryStrategy!(n)), [50, 100, 200, 800, 1600, 2000, 2000]);
  });
}

for (const [url, pattern] of [
  ['http://redis:6379', /redis:\/\/ or rediss:\/\//],
  ['redis://user:hunter2@host/queues', /database number/],
  ['not a url at all', /not a valid URL/],
] as const) {
  test(`redisConnectionOptions rejects ${url.replace('hunter2', '***')} without echoing secrets`, (t) => {
    const error = t.throws(() => redisConnectionOptions({ url }), { instanceOf: FerryError });
    t.is(error.code, 'CONFIG_INVALID');
    t.regex(error.message, pattern);
    t.false(error.message.includes('hunter2'));
  });
}

test('describeRedisAddress keeps credentials out of logs', (t) => {
  t.is(describeRedisAddress({ url: 'rediss://ferry:hunter2@redis.example.org:6380/2' }), 'rediss://redis.example.org:6380/2');
  t.is(describeRedisAddress({ url: 'redis://localhost' }), 'redis://localhost');
  t.is(describeRedisAddress({ path: '/d/redis.sock' }), 'unix:/d/redis.sock');
});

test('createRedis logs one line per transition, not one per reconnect attempt', async (t) => {
  const dir = await tempDir(t);
  const redis = embeddedRedis({ dir, logger: silent, appendonly: false });
  t.teardown(() => redis.stop());
  const { path: socket } = await redis.start();
  const { logger, lines } = captureLogger();
  const client = createRedis({ path: socket }, logger);
  t.teardown(() => client.disconnect());
  const messages = () => lines.map((line) => line.msg);

  await until('connected', () => messages().includes('redis connected'));
  await redis.stop();
  // Several reconnect attempts (50, 100, 200, 400 ms…) fail while Redis is away.
  await sleep(800);
  await redis.start();
  await until('reconnected', () => messages().includes('redis reconnected'));
  t.is(await client.ping(), 'PONG');

  const count = (msg: string) => messages().filter((m) => m === msg).length;
  t.is(count('redis connected'), 1);
  t.is(count('redis connection lost; reconnecting'), 1);
  t.is(count('redis reconnected'), 1);
  const errors = lines.filter((line) => line.level >= 50);
  t.true(errors.length <= 1, `at most one error line per outage, got ${errors.length}`);
});

test('pingRedis measures a round trip, and fails with REDIS_UNAVAILABLE within its timeout', async (t) => {
  const server = await startTestRedis();
  t.teardown(() => server.stop());
  const live = createRedis({ path: server.path }, silent);
  t.teardown(() => live.disconnect());
  const ms = await pingRedis(live, 1000);
  t.true(ms >= 0 && ms < 1000);

  const dead = createRedis({ path: `${server.dir}/nobody-here.sock` }, silent);
  t.teardown(() => dead.disconnect());
  const started = Date.now();
  const error = await t.throwsAsync(pingRedis(dead, 200), { instanceOf: FerryError });
  t.is(error.code, 'REDIS_UNAVAILABLE');
  t.false(error.permanent);
  t.true(Date.now() - started < 1000);
});

test('startTestRedis: a private server on a socket and, on request, a URL; stop removes it', async (t) => {
  const server = await startTestRedis({ tcp: true, aof: true });
  t.teardown(() => server.stop());
  t.regex(server.url ?? '', /^redis:\/\/127\.0\.0\.1:\d+$/);
  t.not(server.url, 'redis://127.0.0.1:6379');

  const overUrl = createRedis({ url: server.url! }, silent);
  const overSocket = createRedis({ path: server.path }, silent);
  t.teardown(() => {
    overUrl.disconnect();
    overSocket.disconnect();
  });
  await overUrl.set('ferry:shared', 'one server');
  t.is(await overSocket.get('ferry:shared'), 'one server');
  t.deepEqual(await overSocket.config('GET', 'appendonly'), ['appendonly', 'yes']);

  await server.stop();
  await server.stop();
  await t.throwsAsync(stat(server.dir), { code: 'ENOENT' });
});
