// A private redis-server for one test: its own temp folder and unix socket (never the machine's
// shared Redis on 6379), supervised by the engine's own embedded-redis code. Stop it in t.teardown.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { embeddedRedis } from '../../engine/redis/embedded.ts';
import { freePort } from './temp.ts';

export interface TestRedis {
  /** The unix socket, for `{ path }` connection options. */
  path: string;
  /** `redis://127.0.0.1:<port>`, when started with `tcp: true`. */
  url?: string;
  /** The server's folder (AOF, pidfile), removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

export interface TestRedisOptions {
  /** Persist to an AOF in the temp folder (default false: tests that only queue need no durability). */
  aof?: boolean;
  /**
   * Also listen on a free 127.0.0.1 port, for tests that need a URL. The port was free a moment
   * before redis binds it; if another process takes it first, start fails with REDIS_START_FAILED.
   */
  tcp?: boolean;
}

export const startTestRedis = async (options: TestRedisOptions = {}): Promise<TestRedis> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-test-redis-'));
  const port = options.tcp ? await freePort() : 0;
  const redis = embeddedRedis({
    dir,
    logger: pino({ level: 'silent' }),
    appendonly: options.aof ?? false,
    tcpPort: port,
  });
  try {
    const endpoint = await redis.start();
    return {
      path: endpoint.path,
      ...(port === 0 ? {} : { url: `redis://127.0.0.1:${port}` }),
      dir,
      stop: async () => {
        await redis.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
};
