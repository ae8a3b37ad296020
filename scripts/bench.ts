// npm run bench [-- --messages 5000 --connections 1,10]
//
// What a message costs in Ferry compared with the least any MLLP listener can do. Two targets run
// in this process, side by side, driven by the same client (engine/clients/mllp.ts):
//   echo  — a bare node:net listener that decodes MLLP frames (engine/hl7/mllp.ts) and answers each
//           with a fixed small ACK in one write, Nagle off: the floor for socket + framing + client.
//   ferry — the engine (startEngine) with embedded redis-server and one channel: MLLP source →
//           TypeScript ADT translator in the sandbox → file destination (fsync'ed files).
// Each connection sends sequentially, waiting for every ACK, as HL7 senders do. For Ferry the ACK
// means "committed to the message log and the queue"; "delivered" is the rate until all output
// files exist. The machine is shared and noisy, so absolute numbers drift from run to run; the
// Ferry/echo ratios, measured minutes apart on the same machine, are what to compare.

import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { mllpClient } from '../engine/clients/mllp.ts';
import { parseConfig } from '../engine/config/load.ts';
import { startEngine, type Engine } from '../engine/engine.ts';
import { describeError } from '../engine/errors.ts';
import { createMllpDecoder, encodeFrame } from '../engine/hl7/mllp.ts';
import { createLogger } from '../engine/log.ts';
import { BENCH_SCRIPT, benchAdt } from './workload.ts';

const WARMUP = 200;
/** Delivery counts as stuck when no output file appears for this long. */
const STALL_MS = 30_000;


const ECHO_ACK = encodeFrame('MSH|^~\\&|ECHO|ECHO|||20240115083000||ACK^A01^ACK|1|P|2.5\rMSA|AA|1\r');

interface Run {
  elapsedMs: number;
  latencies: number[];
}

/** Sends `payloads` over `connections` clients, each one message at a time; every reply must be an AA. */
const drive = async (port: number, payloads: Buffer[], connections: number): Promise<Run> => {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const client = mllpClient({ host: '127.0.0.1', port, ackTimeoutMs: 30_000 });
      try {
        for (let i = c; i < payloads.length; i += connections) {
          const sent = performance.now();
          const reply = await client.send(payloads[i]!);
          latencies.push(performance.now() - sent);
          if (!reply.includes('MSA|AA|')) throw new Error(`expected an AA, got ${JSON.stringify(reply.toString('latin1'))}`);
        }
      } finally {
        await client.close();
      }
    }),
  );
  return { elapsedMs: performance.now() - started, latencies };
};

const startEcho = async (): Promise<{ port: number; close(): Promise<void> }> => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    const decoder = createMllpDecoder({ maxFrameBytes: 1024 * 1024 });
    socket.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) {
        if (event.type === 'error') socket.destroy(event.error);
        else socket.write(ECHO_ACK);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }));
  return { port, close };
};

const startFerry = async (dir: string, logFile: string): Promise<{ engine: Engine; port: number; outDir: string }> => {
  await mkdir(path.join(dir, 'channels'));
  await writeFile(path.join(dir, 'channels', 'bench.ts'), BENCH_SCRIPT);
  const yaml = `
engine:
  redis: embedded
  data: ./data
  admin: { host: 127.0.0.1, port: 0 }
  logLevel: warn
channels:
  - name: bench
    source: { type: mllp, host: 127.0.0.1, port: 0, maxConnectionsPerAddress: 100 } # every sender is this process, on 127.0.0.1
    script: channels/bench.ts
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "{controlId}.hl7" }
`;
  const configFile = path.join(dir, 'channels.yaml');
  await writeFile(configFile, yaml);
  const config = parseConfig(yaml, configFile);
  const engine = await startEngine(config, createLogger(config.engine.logLevel, { destination: createWriteStream(logFile) }));
  const port = engine.channels.get('bench')!.sourcePort();
  if (!port) throw new Error('the bench channel has no MLLP port after start');
  return { engine, port, outDir: path.join(dir, 'out') };
};

/** Resolves when `count` files named `<prefix>…hl7` exist; throws when none appear for STALL_MS. */
const waitForFiles = async (outDir: string, prefix: string, count: number): Promise<void> => {
  let seen = -1;
  let lastProgress = Date.now();
  for (;;) {
    const names = await readdir(outDir).catch(() => [] as string[]);
    const found = names.filter((name) => name.startsWith(prefix) && name.endsWith('.hl7')).length;
    if (found >= count) return;
    if (found > seen) [seen, lastProgress] = [found, Date.now()];
    else if (Date.now() - lastProgress > STALL_MS) {
      throw new Error(`delivery stalled: ${found} of ${count} ${prefix}* files after ${STALL_MS / 1000} s without progress`);
    }
    await sleep(20);
  }
};

const payloadsFor = (prefix: string, count: number): Buffer[] =>
  Array.from({ length: count }, (_, i) => benchAdt(`${prefix}${String(i).padStart(6, '0')}`, i));

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

interface Stats {
  rate: number;
  p50: number;
  p99: number;
}

const stats = (run: Run, total: number): Stats => {
  const sorted = [...run.latencies].sort((a, b) => a - b);
  return { rate: total / (run.elapsedMs / 1000), p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
};

/** CPU ms a process has used (utime + stime from Linux /proc; NaN elsewhere). */
const processCpuMs = async (pid: string): Promise<number> => {
  // Fields 14 and 15 (utime, stime) in clock ticks, counted after the parenthesised process name.
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')).split(') ')[1]?.split(' ');
  return fields ? (Number(fields[11]) + Number(fields[12])) * 10 : Number.NaN; // USER_HZ is 100 on Linux
};

/** The pids of this process's children: the embedded redis-server and the channels' sandbox processes. */
const childPids = async (): Promise<string[]> => {
  const threads = await readdir('/proc/self/task').catch((): string[] => []);
  const lists = await Promise.all(threads.map((tid) => readFile(`/proc/self/task/${tid}/children`, 'utf8').catch(() => '')));
  return lists.join(' ').split(/\s+/).filter(Boolean);
};

/** CPU ms used so far by this process (all threads: fsyncs, the engine, client and echo), by redis-server, and by the sandbox processes. */
const cpuNow = async (redisPidFile: string): Promise<{ node: number; redis: number; sandbox: number }> => {
  const { user, system } = process.cpuUsage();
  const redisPid = (await readFile(redisPidFile, 'utf8').catch(() => '')).trim();
  const sandboxes = (await childPids()).filter((pid) => pid !== redisPid);
  const sandbox = (await Promise.all(sandboxes.map(processCpuMs))).reduce((sum, ms) => sum + ms, 0);
  return { node: (user + system) / 1000, redis: await processCpuMs(redisPid), sandbox };
};

/** INFO of the embedded server: memory after the run, and commands per message sent. */
const redisReport = async (dataDir: string, messages: number): Promise<string> => {
  // The embedded server listens on <data>/redis/redis.sock when the path is short, as it is under /tmp.
  const redis = new Redis({ path: path.join(dataDir, 'redis', 'redis.sock'), lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = (await redis.info()) + (await redis.info('commandstats'));
    const field = (name: string): string => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '?';
    const perMessage = (count: number): string => (count / messages).toFixed(1);
    const commands = perMessage(Number(field('total_commands_processed')));
    const evalsha = perMessage(Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(info)?.[1] ?? Number.NaN));
    return (
      `used_memory ${field('used_memory')} B (${field('used_memory_human')}), ${await redis.dbsize()} keys; per message ` +
      `${commands} commands (those run inside Lua scripts included), ${evalsha} EVALSHA`
    );
  } finally {
    redis.disconnect();
  }
};

const printTable = (header: string[], rows: string[][]): void => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padStart(widths[i]!)).join('  ');
  console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'));
};

const usage = (problem: string): never => {
  console.error(`bench: ${problem}\nusage: npm run bench -- [--messages N] [--connections 1,10]`);
  process.exit(1);
};
const options = (() => {
  try {
    return parseArgs({ options: { messages: { type: 'string', default: '5000' }, connections: { type: 'string', default: '1,10' } } }).values;
  } catch (error) {
    return usage((error as Error).message);
  }
})();
const total = Number(options.messages);
const connectionCounts = options.connections.split(',').map(Number);
if (!Number.isInteger(total) || total < 1) usage('--messages must be a positive integer');
if (connectionCounts.some((c) => !Number.isInteger(c) || c < 1 || c > total)) usage('--connections must be positive integers, none above --messages');

const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
const logFile = path.join(dir, 'engine.log');
let echo: Awaited<ReturnType<typeof startEcho>> | undefined;
let ferry: Awaited<ReturnType<typeof startFerry>> | undefined;
let exitCode = 0;
try {
  const cpus = os.cpus();
  console.log(`machine: ${cpus.length} cores (${cpus[0]?.model.trim()}), node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`workload: ${total} ADT^A01 (${benchAdt('X000000', 0).length} B) per run, connections ${connectionCounts.join(', ')}, ${WARMUP} warm-up messages per target`);
  console.log('echo: node:net + engine/hl7/mllp.ts createMllpDecoder/encodeFrame, fixed ACK in one write, setNoDelay(true)');

  echo = await startEcho();
  const started = performance.now();
  ferry = await startFerry(dir, logFile);
  console.log(`ferry: started in ${Math.round(performance.now() - started)} ms (embedded redis, MLLP → TS translator → file, fsync per file)\n`);

  await drive(echo.port, payloadsFor('WE', WARMUP), 1);
  await drive(ferry.port, payloadsFor('WF', WARMUP), 1);
  await waitForFiles(ferry.outDir, 'WF', WARMUP);

  const redisPidFile = path.join(dir, 'data', 'redis', 'redis.pid');
  const rows: string[][] = [];
  const cpuRows: string[][] = [];
  for (const connections of connectionCounts) {
    const echoCpu = await cpuNow(redisPidFile);
    const echoStats = stats(await drive(echo.port, payloadsFor(`E${connections}-`, total), connections), total);
    const ferryCpu = await cpuNow(redisPidFile);
    const prefix = `F${connections}-`;
    const sendStart = performance.now();
    const ferryRun = await drive(ferry.port, payloadsFor(prefix, total), connections);
    await waitForFiles(ferry.outDir, prefix, total);
    const delivered = total / ((performance.now() - sendStart) / 1000);
    const ferryStats = stats(ferryRun, total);
    const after = await cpuNow(redisPidFile);
    const perMessage = (ms: number): number => (ms * 1000) / total;
    const echoUs = perMessage(ferryCpu.node - echoCpu.node);
    const [nodeUs, redisUs, sandboxUs] = [after.node - ferryCpu.node, after.redis - ferryCpu.redis, after.sandbox - ferryCpu.sandbox].map(perMessage) as [number, number, number];
    cpuRows.push([String(connections), echoUs.toFixed(0), nodeUs.toFixed(0), redisUs.toFixed(0), sandboxUs.toFixed(0), ((nodeUs + redisUs + sandboxUs) / echoUs).toFixed(1)]);
    rows.push([
      String(connections),
      echoStats.rate.toFixed(0),
      echoStats.p50.toFixed(3),
      echoStats.p99.toFixed(3),
      ferryStats.rate.toFixed(0),
      ferryStats.p50.toFixed(3),
      ferryStats.p99.toFixed(3),
      delivered.toFixed(0),
      (ferryStats.rate / echoStats.rate).toFixed(3),
      (delivered / echoStats.rate).toFixed(3),
      (ferryStats.p50 / echoStats.p50).toFixed(1),
      (ferryStats.p99 / echoStats.p99).toFixed(1),
    ]);
  }

  printTable(['conns', 'echo msg/s', 'echo p50 ms', 'echo p99 ms', 'ferry ack msg/s', 'ack p50 ms', 'ack p99 ms', 'delivered msg/s', 'ack/echo', 'delivered/echo', 'p50 ×echo', 'p99 ×echo'], rows);
  // CPU per message holds up better than rates on a busy machine: it does not count time spent waiting.
  console.log('\nCPU per message (ferry: from first send until all files exist; node = whole process, all threads; sandbox = the channel\'s translator process)');
  printTable(['conns', 'echo node µs', 'ferry node µs', 'ferry redis µs', 'ferry sandbox µs', 'ferry/echo'], cpuRows);

  const rss = process.memoryUsage().rss / 1024 ** 2;
  console.log(`\nafter the run: process RSS ${rss.toFixed(0)} MB (engine + bench client + echo, one process); redis ${await redisReport(path.join(dir, 'data'), WARMUP + total * connectionCounts.length)}`);
} catch (error) {
  console.error(`bench failed: ${describeError(error)}`);
  exitCode = 1;
} finally {
  await echo?.close();
  await ferry?.engine.stop();
  const problems = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  if (problems.length > 0) console.log(`engine logged ${problems.length} warnings/errors; first ones:\n${problems.slice(0, 5).join('\n')}`);
  await rm(dir, { recursive: true, force: true });
}
// BullMQ and ioredis may keep timers alive after stop; the numbers are out, so end here.
process.exit(exitCode);
