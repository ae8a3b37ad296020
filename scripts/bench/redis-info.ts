// The embedded Redis of a bench project, read from outside the engine: memory (T7) and how many
// commands each message costs (T1's detail line). The embedded server listens on
// <data>/redis/redis.sock when the path is short, as it is under /tmp.

import path from 'node:path';
import { Redis } from 'ioredis';

export const connectRedis = async (projectDir: string): Promise<Redis> => {
  const redis = new Redis({ path: path.join(projectDir, 'data', 'redis', 'redis.sock'), lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  return redis;
};

export const usedMemory = async (redis: Redis): Promise<number> => Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);

export interface CommandCounts {
  /** All commands, those run inside Lua scripts included. */
  total: number;
  evalsha: number;
}

export const commandCounts = async (redis: Redis): Promise<CommandCounts> => {
  const info = (await redis.info('stats')) + (await redis.info('commandstats'));
  return {
    total: Number(/^total_commands_processed:(\d+)/m.exec(info)?.[1] ?? Number.NaN),
    evalsha: Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(info)?.[1] ?? 0),
  };
};
