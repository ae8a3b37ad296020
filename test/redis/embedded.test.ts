import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { FerryError } from '../../engine/errors.ts';
import { createRedis } from '../../engine/redis/connection.ts';
import { embeddedRedis, type EmbeddedRedisOptions } from '../../engine/redis/embedded.ts';
import { captureLogger } from '../helpers/logger.ts';
import { tempDir } from '../helpers/temp.ts';

const silent = pino({ level: 'silent' });

/** An embedded redis in `<tmp>/redis`, stopped at teardown. */
const setup = async (t: ExecutionContext, options: Partial<EmbeddedRedisOptions> = {}) => {
  const dir = path.join(await tempDir(t), 'redis');
  const redis = embeddedRedis({ dir, logger: silent, ...options });
  t.teardown(() => redis.stop());
  return { dir, redis };
};

/** A plain client on the socket, closed at teardown. */
const client = (t: ExecutionContext, socket: string): Redis => {
  const redis = createRedis({ path: socket }, silent);
  t.teardown(() => redis.disconnect());
  return redis;
};

const cmdlineOf = (pid: number): Promise<string> => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');

const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
};

/** Live processes whose command line mentions this path (a redis-server on that socket). */
const processesOn = async (socket: string): Promise<number[]> => {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const lines = await Promise.all(pids.map(async (pid) => [pid, await cmdlineOf(pid)] as const));
  return lines.filter(([, line]) => line.includes(socket)).map(([pid]) => pid);
};

/** Everything in the server's AOF files (Redis 7 keeps them in appendonlydir/). */
const aofText = async (dir: string): Promise<string> => {
  const aofDir = path.join(dir, 'appendonlydir');
  const files = await readdir(aofDir).catch(() => []);
  return (await Promise.all(files.map((f) => readFile(path.join(aofDir, f), 'latin1').catch(() => '')))).join('');
};

const readPid = async (dir: string): Promise<number> => Number.parseInt(await readFile(path.join(dir, 'redis.pid'), 'utf8'), 10);

test('start: answers PING on a mode-700 unix socket in its folder, configured for BullMQ and AOF', async (t) => {
  const { dir, redis } = await setup(t);
  t.is(redis.endpoint, undefined);
  const endpoint = await redis.start();
  t.deepEqual(endpoint, { path: path.join(dir, 'redis.sock') });
  t.deepEqual(redis.endpoint, endpoint);
  t.is((await stat(endpoint.path)).mode & 0o777, 0o700);

  const c = client(t, endpoint.path);
  t.is(await c.ping(), 'PONG');
  t.deepEqual(await c.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
  t.deepEqual(await c.config('GET', 'appendonly'), ['appendonly', 'yes']);
  t.deepEqual(await c.config('GET', 'appendfsync'), ['appendfsync', 'everysec']);
  t.deepEqual(await c.config('GET', 'port'), ['port', '0']);
  t.deepEqual(await c.config('GET', 'save'), ['save', '']);
  t.is(await readPid(dir) > 0, true);
});

test("redis-server's banner and shutdown lines are debug, under its own redisPid; the engine's pid is left alone", async (t) => {
  const { logger, lines } = captureLogger();
  const { dir, redis } = await setup(t, { logger });
  await redis.start();
  const pid = await readPid(dir);
  const said = (text: RegExp) => lines.find((l) => l.msg === 'redis-server' && text.test(String(l['redis'])));
  await until('the banner to be logged', () => said(/^Server initialized$/) !== undefined);
  await redis.stop();
  await until('the goodbye to be logged', () => said(/^Redis is now ready to exit/) !== undefined);

  for (const text of [/^oO0OoO0OoO0Oo Redis is starting/, /^Redis version=/, /^Configuration loaded$/, /^Server initialized$/, /^The server is now ready/, /^User requested shutdown/, /^Redis is now ready to exit/]) {
    t.like(said(text), { level: 20, redisPid: pid }, String(text));
  }
  const output = lines.filter((l) => l.msg === 'redis-server');
  // Anything redis says above debug is a real warning (none on a healthy start).
  for (const line of output.filter((l) => l.level > 20)) {
    t.is(line.level, 40);
    t.regex(String(line['redis']), /^WARNING /);
  }
  t.like(lines.find((l) => l.msg === 'embedded redis-server ready'), { level: 30, redisPid: pid });
  t.true(lines.every((l) => l['pid'] === process.pid), "pino's pid is this process's on every line");
});

test('a real warning from redis-server, or a line outside its format, is logged at warn', async (t) => {
  const fake = path.join(await tempDir(t), 'redis-server');
  await writeFile(
    fake,
    [
      '#!/bin/sh',
      'echo "$$:C 07 Dec 2026 22:01:21.759 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"',
      'echo "$$:M 07 Dec 2026 22:01:21.764 * Running mode=standalone, port=0."',
      'echo "$$:M 07 Dec 2026 22:01:21.764 # Failed opening the temp RDB file temp-42.rdb (in server root dir /x) for saving: No space left on device"',
      'echo "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***" >&2',
      'exit 1',
      '',
    ].join('\n'),
  );
  await chmod(fake, 0o755);
  const { logger, lines } = captureLogger();
  const { redis } = await setup(t, { binary: fake, logger });
  await t.throwsAsync(redis.start(), { instanceOf: FerryError });
  await until('its output to be logged', () => lines.filter((l) => l.msg === 'redis-server').length === 4);
  const output = lines.filter((l) => l.msg === 'redis-server');
  const fakePid = output[0]!['redisPid'];
  t.true(typeof fakePid === 'number' && fakePid > 0);
  t.deepEqual(
    output.map((l) => [l.level, l['redisPid'], l['redis']]).sort((a, b) => (String(a[2]) < String(b[2]) ? -1 : 1)),
    [
      [40, undefined, '*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***'],
      [40, fakePid, 'Failed opening the temp RDB file temp-42.rdb (in server root dir /x) for saving: No space left on device'],
      [20, fakePid, 'Running mode=standalone, port=0.'],
      [20, fakePid, 'oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo'],
    ],
  );
});

test('data written survives stop and start (AOF), and the same instance starts again', async (t) => {
  const { dir, redis } = await setup(t);
  const { path: socket } = await redis.start();
  const firstPid = await readPid(dir);
  const writer = new Redis({ path: socket });
  await writer.set('ferry:test', 'kept');
  await writer.rpush('ferry:list', 'a', 'b', 'c');
  await writer.quit();
  await redis.stop();

  await redis.start();
  t.not(await readPid(dir), firstPid);
  const reader = client(t, socket);
  t.is(await reader.get('ferry:test'), 'kept');
  t.deepEqual(await reader.lrange('ferry:list', 0, -1), ['a', 'b', 'c']);
});

test('kill -9 of redis-server: the supervisor restarts it, the client reconnects, acknowledged data is there', async (t) => {
  let restarted!: (event: { pid: number; restarts: number }) => void;
  const restart = new Promise<{ pid: number; restarts: number }>((resolve) => (restarted = resolve));
  const { dir, redis } = await setup(t, { onRestart: (event) => restarted(event) });
  const { path: socket } = await redis.start();
  const c = client(t, socket);
  await c.set('ferry:before-kill', 'acknowledged');
  await c.incrby('ferry:counter', 41);
  // Redis write(2)s the AOF before it replies, except while its background fsync is still running:
  // then it replies and postpones the write for up to 2 s (appendfsync everysec; seen here once, on a
  // loaded machine). Killed in that window it loses the write — the engine covers that case by
  // resyncing its channels from the message log (test/faults/redis-loss.test.ts). What this test
  // checks is that a write that reached the AOF file survives the kill.
  await until('the writes to reach the AOF', async () => /incrby/i.test(await aofText(dir)));
  const pid = await readPid(dir);

  process.kill(pid, 'SIGKILL');
  const event = await restart;
  t.not(event.pid, pid);
  t.is(event.restarts, 1);
  t.is(await readPid(dir), event.pid);
  t.deepEqual(redis.endpoint, { path: socket });

  // The same client object, reconnected by itself.
  t.is(await c.get('ferry:before-kill'), 'acknowledged');
  t.is(await c.incr('ferry:counter'), 42);
});

test('a redis-server left running by a killed engine is replaced at start, its data kept', async (t) => {
  const dir = path.join(await tempDir(t), 'redis');
  await mkdir(dir);
  const socket = path.join(dir, 'redis.sock');
  // What a previous engine run left behind: its redis-server, detached, still serving our files.
  const stale = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--pidfile', path.join(dir, 'redis.pid'),
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec'],
    { detached: true, stdio: 'ignore' },
  );
  stale.unref();
  t.teardown(() => void stale.kill('SIGKILL'));
  const stalePid = stale.pid!;
  const old = new Redis({ path: socket, retryStrategy: () => 20 });
  old.on('error', () => undefined); // refused until the stale server listens
  await until('the stale server', async () => (await old.ping().catch(() => '')) === 'PONG');
  await old.set('ferry:from-stale', 'still here');
  old.disconnect();
  t.is(await readPid(dir), stalePid);

  const redis = embeddedRedis({ dir, logger: silent });
  t.teardown(() => redis.stop());
  await redis.start();
  t.is(await cmdlineOf(stalePid), '', 'the stale server is gone');
  t.not(await readPid(dir), stalePid);
  t.is(await client(t, socket).get('ferry:from-stale'), 'still here');
});

test('a process that exits without stop() (a timed-out shutdown) takes its redis-server down cleanly, data kept', async (t) => {
  const dir = path.join(await tempDir(t), 'redis');
  const engineFile = new URL('../../engine/redis/embedded.ts', import.meta.url).href;
  // A process that starts the embedded server, writes through it, and exits as a timed-out shutdown does.
  const script = `
    import { pino } from 'pino';
    import { Redis } from 'ioredis';
    import { embeddedRedis } from ${JSON.stringify(engineFile)};
    const { path: socket } = await embeddedRedis({ dir: ${JSON.stringify(dir)}, logger: pino({ level: 'silent' }) }).start();
    const client = new Redis({ path: socket });
    await client.set('ferry:before-exit', 'kept');
    console.log(await client.get('ferry:before-exit'));
    process.exit(1);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.is(code, 1);
  t.is(out.trim(), 'kept');
  const socket = path.join(dir, 'redis.sock');
  await until('the redis-server to exit', async () => (await processesOn(socket)).length === 0);
  // SIGTERM ran redis's SHUTDOWN: it removed its pidfile (a SIGKILL or a left-behind server would not).
  await until('the pidfile to go', async () => !(await stat(path.join(dir, 'redis.pid')).then(() => true, () => false)));
  const redis = embeddedRedis({ dir, logger: silent });
  t.teardown(() => redis.stop());
  await redis.start();
  t.is(await client(t, socket).get('ferry:before-exit'), 'kept');
});

const leftovers: Array<{ title: string; prepare: (dir: string) => Promise<number | undefined> }> = [
  {
    title: 'a pidfile naming a dead process',
    prepare: async (dir) => {
      const dead = spawn('true');
      await new Promise((resolve) => dead.once('exit', resolve));
      await writeFile(path.join(dir, 'redis.pid'), `${dead.pid}\n`);
      return undefined;
    },
  },
  {
    title: 'a pidfile naming an unrelated live process',
    prepare: async (dir) => {
      const unrelated = spawn('sleep', ['30'], { stdio: 'ignore' });
      unrelated.unref();
      await writeFile(path.join(dir, 'redis.pid'), `${unrelated.pid}\n`);
      return unrelated.pid;
    },
  },
  {
    title: 'a pidfile with garbage and a leftover socket file',
    prepare: async (dir) => {
      await writeFile(path.join(dir, 'redis.pid'), 'not a pid');
      await writeFile(path.join(dir, 'redis.sock'), 'stale');
      return undefined;
    },
  },
];

for (const { title, prepare } of leftovers) {
  test(`start ignores ${title}`, async (t) => {
    const dir = path.join(await tempDir(t), 'redis');
    await mkdir(dir);
    const unrelatedPid = await prepare(dir);
    t.teardown(() => {
      if (unrelatedPid) process.kill(unrelatedPid, 'SIGKILL');
    });
    const redis = embeddedRedis({ dir, logger: silent });
    t.teardown(() => redis.stop());
    const { path: socket } = await redis.start();
    t.is(await client(t, socket).ping(), 'PONG');
    if (unrelatedPid) t.regex(await cmdlineOf(unrelatedPid), /^sleep\0/, 'the unrelated process is untouched');
  });
}

for (const binary of ['/nonexistent/redis-server', 'ferry-no-such-redis-server']) {
  test(`missing binary ${binary}: REDIS_NOT_INSTALLED saying how to get Redis`, async (t) => {
    const { redis } = await setup(t, { binary });
    const error = await t.throwsAsync(redis.start(), { instanceOf: FerryError });
    t.is(error.code, 'REDIS_NOT_INSTALLED');
    t.true(error.permanent);
    t.true(error.message.includes(binary));
    t.true(error.message.includes('apt-get install redis-server'));
    t.true(error.message.includes('brew install redis'));
    t.true(error.message.includes('engine.redis: redis://host:6379'));
    t.is(redis.endpoint, undefined);
  });
}

test('a redis-server that exits at once: REDIS_START_FAILED with the tail of its output', async (t) => {
  const fake = path.join(await tempDir(t), 'redis-server');
  await writeFile(fake, '#!/bin/sh\necho "starting up"\necho "FATAL: cannot open appendonlydir" >&2\nexit 1\n');
  await chmod(fake, 0o755);
  const { redis } = await setup(t, { binary: fake });
  const error = await t.throwsAsync(redis.start(), { instanceOf: FerryError });
  t.is(error.code, 'REDIS_START_FAILED');
  t.regex(error.message, /exited with code 1/);
  t.regex(error.message, /starting up/);
  t.regex(error.message, /FATAL: cannot open appendonlydir/);
});

test('a redis-server that never answers: REDIS_START_FAILED after the start timeout, process killed', async (t) => {
  const fake = path.join(await tempDir(t), 'redis-server');
  await writeFile(fake, '#!/bin/sh\necho "hanging"\nexec sleep 30\n');
  await chmod(fake, 0o755);
  const { redis } = await setup(t, { binary: fake, startTimeoutMs: 300 });
  const error = await t.throwsAsync(redis.start(), { instanceOf: FerryError });
  t.is(error.code, 'REDIS_START_FAILED');
  t.regex(error.message, /did not answer PING .* within 300 ms/);
  t.regex(error.message, /hanging/);
});

test('stop is idempotent, leaves no process, no socket, no pidfile, and no restart follows', async (t) => {
  const { dir, redis } = await setup(t);
  const { path: socket } = await redis.start();
  const pid = await readPid(dir);
  t.not(await cmdlineOf(pid), '');

  await Promise.all([redis.stop(), redis.stop()]);
  await redis.stop();
  t.is(redis.endpoint, undefined);
  t.is(await cmdlineOf(pid), '', 'redis-server is gone');
  await t.throwsAsync(stat(socket), { code: 'ENOENT' });
  await t.throwsAsync(stat(path.join(dir, 'redis.pid')), { code: 'ENOENT' });
  // The supervisor would restart within 100 ms; nothing comes back.
  await sleep(400);
  await t.throwsAsync(stat(socket), { code: 'ENOENT' });
});

test('a data folder too deep for sun_path gets a short socket under the temp folder', async (t) => {
  const deep = path.join(await tempDir(t), 'a-rather-long-folder-name'.repeat(4), 'redis');
  t.true(Buffer.byteLength(path.join(deep, 'redis.sock')) > 103);
  const redis = embeddedRedis({ dir: deep, logger: silent });
  t.teardown(() => redis.stop());
  const { path: socket } = await redis.start();
  t.is(path.dirname(socket), os.tmpdir());
  t.regex(path.basename(socket), /^ferry-redis-[0-9a-f]{16}\.sock$/);
  t.is(await client(t, socket).ping(), 'PONG');
  // The AOF and pidfile stay in the data folder.
  t.true((await stat(path.join(deep, 'appendonlydir'))).isDirectory());
  t.true((await readPid(deep)) > 0);
});

for (const delayMs of [0, 30, 100, 400]) {
  test(`stop ${delayMs} ms into start: start settles, and no redis-server is left running`, async (t) => {
    const { dir, redis } = await setup(t);
    const starting = redis.start();
    await sleep(delayMs);
    await redis.stop();
    const outcome = await starting.then(
      () => 'started',
      (error: FerryError) => error.code,
    );
    t.true(['started', 'ENGINE_SHUTTING_DOWN'].includes(outcome), outcome);
    t.is(redis.endpoint, undefined);
    t.deepEqual(await processesOn(path.join(dir, 'redis.sock')), []);
  });
}
