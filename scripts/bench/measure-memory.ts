// The memory rows. T6 idle: RSS of all the engine's processes on the bundled example config once it
// has started. T7: Redis memory per queued message — the engine takes `messages` while its only
// destination is blocked (its folder is a file), so every one waits in Redis; jobs carry only ids,
// so this does not depend on the message size. Its reference: the same number of ids pushed onto a
// bare Redis list in the same server, the least a queue of ids can take.

import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../../test/helpers/temp.ts';
import { startFerry, writeProject } from './ferry.ts';
import { runLoad } from './mllp.ts';
import { backlogProject, exampleProject } from './projects.ts';
import { totalRss, type ProcSample } from './proc-stats.ts';
import { connectRedis, usedMemory } from './redis-info.ts';

/** After the start, give the engine this long to finish what it does once (scripts loaded, first sweeps). */
const SETTLE_MS = 5_000;

export interface IdleMeasure {
  rssBytes: number;
  processes: ProcSample[];
}

export const measureIdle = async (dir: string): Promise<IdleMeasure> => {
  await writeProject(dir, await exampleProject());
  const ferry = await startFerry(dir);
  try {
    await sleep(SETTLE_MS);
    const processes = await ferry.sample();
    return { rssBytes: totalRss(processes), processes };
  } finally {
    await ferry.stop();
    await rm(dir, { recursive: true, force: true });
  }
};

export interface BacklogMeasure {
  messages: number;
  acceptRate: number;
  redisBytesPerMessage: number;
  /** The bare-list reference, bytes per id. */
  listBytesPerId: number;
  logBytesPerMessage: number;
}

const fileSize = async (file: string): Promise<number> => (await stat(file).catch(() => ({ size: 0 }))).size;
const logSize = async (dir: string): Promise<number> => (await fileSize(path.join(dir, 'data', 'messages.db'))) + (await fileSize(path.join(dir, 'data', 'messages.db-wal')));

interface ChannelObject {
  queues: Record<string, number>;
  counts: Record<string, number>;
}

export const measureBacklog = async (dir: string, messages: number): Promise<BacklogMeasure> => {
  await writeProject(dir, backlogProject(messages));
  const ferry = await startFerry(dir);
  const redis = await connectRedis(dir);
  try {
    const before = await usedMemory(redis);
    const logBefore = await logSize(dir);
    const load = await runLoad({ ports: [...ferry.mllpPorts.values()], connections: 8, count: messages, prefix: 'B' });
    const taken = load.acked + load.warmUps;
    // Every message past the translator and waiting for the blocked destination: none left inbound.
    await eventually(
      async () => {
        const channel = await ferry.api<ChannelObject>('/api/channels/backlog');
        return channel.counts['queued']! >= taken && channel.queues['inbound'] === 0 ? true : undefined;
      },
      600_000,
      'every message to be queued for the blocked destination',
    );
    const after = await usedMemory(redis);
    const logAfter = await logSize(dir);

    const key = 'bench:reference-list';
    const listBefore = await usedMemory(redis);
    for (let i = 0; i < taken; i += 1000) {
      // 26 characters, as a message id (a ULID).
      await redis.rpush(key, ...Array.from({ length: Math.min(1000, taken - i) }, (_, j) => `01J${String(i + j).padStart(23, '0')}`));
    }
    const listAfter = await usedMemory(redis);
    await redis.del(key);
    return {
      messages: taken,
      acceptRate: load.ackRate,
      redisBytesPerMessage: (after - before) / taken,
      listBytesPerId: (listAfter - listBefore) / taken,
      logBytesPerMessage: (logAfter - logBefore) / taken,
    };
  } finally {
    redis.disconnect();
    await ferry.stop();
    await rm(dir, { recursive: true, force: true });
  }
};
