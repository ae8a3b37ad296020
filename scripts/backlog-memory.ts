// node --no-node-snapshot --import tsx scripts/backlog-memory.ts [--messages 100000] [--connections 8]
//
// What a backlog costs: the engine (in this process, embedded Redis) takes N messages while its only
// destination is blocked (its folder is a file), so every message ends up queued for that
// destination. Prints Redis used_memory and the message log's growth per queued message. Jobs carry
// only ids, so Redis memory per message should not depend on the message size; the content is in
// the message log on disk.

import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { mllpClient } from '../engine/clients/mllp.ts';
import { parseConfig } from '../engine/config/load.ts';
import { startEngine, type Engine } from '../engine/engine.ts';
import { describeError } from '../engine/errors.ts';
import { readAck } from '../engine/hl7/ack.ts';
import { createLogger } from '../engine/log.ts';
import { benchAdt } from './workload.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '100000' }, connections: { type: 'string', default: '8' } } });
const total = Number(values.messages);
const connections = Number(values.connections);
if (!Number.isInteger(total) || total < 1 || !Number.isInteger(connections) || connections < 1) {
  console.error('usage: scripts/backlog-memory.ts [--messages N] [--connections C]');
  process.exit(1);
}

const MB = 1024 * 1024;
const fileSize = async (file: string): Promise<number> => (await stat(file).catch(() => ({ size: 0 }))).size;

const redisMemory = async (redis: Redis): Promise<{ used: number; keys: number }> => {
  const info = await redis.info('memory');
  return { used: Number(/^used_memory:(\d+)/m.exec(info)?.[1]), keys: await redis.dbsize() };
};

const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-backlog-'));
let engine: Engine | undefined;
let redis: Redis | undefined;
let exitCode = 0;
try {
  await mkdir(path.join(dir, 'out'));
  await writeFile(path.join(dir, 'out', 'blocked'), 'a file where the folder should be');
  const yaml = `
engine:
  data: ./data
  admin: { host: 127.0.0.1, port: 0 }
  logLevel: warn
channels:
  - name: backlog
    source: { type: mllp, host: 127.0.0.1, port: 0, maxConnectionsPerAddress: 100 } # every sender is this process, on 127.0.0.1
    maxQueued: ${total * 2}
    destinations:
      - name: blocked
        type: file
        dir: ./out/blocked
        retry: { attempts: 0, backoff: fixed, delay: 5s }
`;
  const configFile = path.join(dir, 'channels.yaml');
  await writeFile(configFile, yaml);
  const config = parseConfig(yaml, configFile);
  engine = await startEngine(config, createLogger(config.engine.logLevel, { destination: createWriteStream(path.join(dir, 'engine.log')) }));
  const port = engine.channels.get('backlog')!.sourcePort()!;
  redis = new Redis({ path: path.join(dir, 'data', 'redis', 'redis.sock') });
  const dbFile = path.join(dir, 'data', 'messages.db');

  const before = await redisMemory(redis);
  const dbBefore = (await fileSize(dbFile)) + (await fileSize(`${dbFile}-wal`));
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = mllpClient({ host: '127.0.0.1', port, ackTimeoutMs: 30_000 });
      try {
        for (let n = next++; n < total; n = next++) {
          const ack = readAck((await client.send(benchAdt(`B${String(n).padStart(7, '0')}`, n))).toString('latin1'));
          if (ack.code !== 'AA') throw new Error(`message ${n}: ${ack.code} ${ack.text}`);
        }
      } finally {
        await client.close();
      }
    }),
  );
  const sentMs = performance.now() - started;
  // Every message transformed and waiting for the blocked destination: the inbound queue is empty.
  for (;;) {
    const counts = engine.store.counts().get('backlog');
    const inbound = (await engine.channels.get('backlog')!.info()).queues['inbound'];
    if ((counts?.queued ?? 0) >= total && inbound === 0) break;
    await sleep(500);
  }
  const after = await redisMemory(redis);
  const dbAfter = (await fileSize(dbFile)) + (await fileSize(`${dbFile}-wal`));
  const queue = (await engine.channels.get('backlog')!.info()).queues['blocked'];
  const perJob = (after.used - before.used) / total;
  const perMessageDb = (dbAfter - dbBefore) / total;

  console.log(`backlog: ${total} ADT^A01 messages of ${benchAdt('B0000000', 0).length} bytes, accepted in ${(sentMs / 1000).toFixed(1)} s over ${connections} connections (${Math.round(total / (sentMs / 1000))} msg/s), all queued for one blocked destination (${queue} jobs waiting)`);
  console.log(`redis: used_memory ${(before.used / MB).toFixed(1)} MB → ${(after.used / MB).toFixed(1)} MB, keys ${before.keys} → ${after.keys}: ${perJob.toFixed(0)} bytes per queued message`);
  console.log(`message log: messages.db + WAL ${(dbBefore / MB).toFixed(1)} MB → ${(dbAfter / MB).toFixed(1)} MB: ${perMessageDb.toFixed(0)} bytes per message (content, search index, stages)`);
  console.log(`engine process RSS (this process, sender included): ${(rssBefore / MB).toFixed(0)} MB → ${(process.memoryUsage().rss / MB).toFixed(0)} MB`);
} catch (error) {
  console.error(`backlog-memory failed: ${describeError(error)}`);
  const log = await readFile(path.join(dir, 'engine.log'), 'utf8').catch(() => '');
  if (log) console.error(log.split('\n').slice(0, 5).join('\n'));
  exitCode = 1;
} finally {
  redis?.disconnect();
  await engine?.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
