// npm run soak [-- --minutes 10 --connections 4 --rate 50]
//
// Load with faults: `ferry start` runs as a child process on a temp config (MLLP → TypeScript
// translator → fifo file destination, plus a hand-off to a second channel with its own file
// destination) while senders keep sending, each message resent until it gets AA, as HL7 interfaces
// do, together `--rate` messages a second (a busy hospital feed; the fifo file destinations fsync
// every file, so a rate above what the disk takes only grows the backlog). Every 15–45 s something breaks at random: the engine is killed with SIGKILL and restarted,
// its embedded Redis is killed with SIGKILL (the engine's supervisor restarts it), or Redis is
// frozen with SIGSTOP for a few seconds (intake goes on acknowledging: the message log is what makes
// a message durable; the queues catch up when Redis answers). At the end
// the load stops, everything acknowledged must arrive, and the totals are printed:
// sent / acknowledged / delivered / lost / duplicates, and whether each sender's order held.
// Exits 1 if anything acknowledged was lost or arrived out of order.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startEngineProcess, type EngineProcess } from '../test/helpers/engine-process.ts';
import { allDelivered, checkDeliveries, formatReport, loadProjectYaml, redisPid, startLoad, watchDeliveries } from '../test/helpers/load.ts';
import { freePort } from '../test/helpers/temp.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    connections: { type: 'string', default: '4' },
    rate: { type: 'string', default: '50' },
  },
});
const minutes = Number(values.minutes);
const connections = Number(values.connections);
const rate = Number(values.rate);
if (!(minutes > 0) || !Number.isInteger(connections) || connections < 1 || !(rate > 0)) {
  console.error('usage: npm run soak -- [--minutes 10] [--connections 4] [--rate 50]');
  process.exit(1);
}

const SCRIPT = `export default function (msg: Message, ctx: Context) {
  msg.set('PID-5.1', msg.get('PID-5.1').toUpperCase());
  ctx.log('MRN', msg.get('PID-3.1'));
  return msg;
}
`;

const started = Date.now();
const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s]`;
const say = (line: string): void => console.log(`${stamp()} ${line}`);

const cleanups: Array<() => Promise<void> | void> = [];
const owner = { teardown: (fn: () => Promise<void> | void) => void cleanups.push(fn) };
const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-soak-'));
const port = await freePort();
await mkdir(path.join(dir, 'channels'));
await writeFile(path.join(dir, 'channels', 'adt.ts'), SCRIPT);
// The crash tests' project.
await writeFile(path.join(dir, 'channels.yaml'), loadProjectYaml(port, { engine: 'commitTimeout: 2s' }));
const configFile = path.join(dir, 'channels.yaml');
const dataDir = path.join(dir, 'data');
const archive = await watchDeliveries(path.join(dir, 'out', 'archive'));
const mirror = await watchDeliveries(path.join(dir, 'out', 'mirror'));

let engine: EngineProcess = await startEngineProcess(owner, configFile, dir);
say(`engine up (admin ${engine.adminUrl}); ${connections} senders, ${rate} msg/s in all, on MLLP port ${port}; ${minutes} min with random faults; data in ${dir}`);
const load = startLoad({ port, connections, ackTimeoutMs: 10_000, retryDelayMs: 200, intervalMs: (1000 * connections) / rate });

const faults = { engineKills: 0, redisKills: 0, redisStops: 0 };
type Fault = 'engine' | 'redis' | 'stop';
// Drawn from shuffled rounds, so that even a short run sees every kind of fault.
let deck: Fault[] = [];
const nextFault = (): Fault => {
  if (deck.length === 0) deck = (['engine', 'engine', 'redis', 'redis', 'stop'] as const).map((f) => ({ f, r: Math.random() })).sort((a, b) => a.r - b.r).map(({ f }) => f);
  return deck.pop()!;
};
const recoveries: number[] = [];
/** Waits for the next archive delivery after `since` deliveries: how long the system took to resume. */
const recovered = async (since: number, from: number): Promise<void> => {
  const deadline = Date.now() + 120_000;
  while (archive.names().length <= since) {
    if (Date.now() > deadline) throw new Error('no delivery within 2 minutes of a fault');
    await sleep(20);
  }
  recoveries.push(Date.now() - from);
};

let exitCode = 0;
try {
  const end = started + minutes * 60_000;
  let lastProgress = Date.now();
  while (Date.now() < end) {
    const wait = Math.min(15_000 + Math.random() * 30_000, end - Date.now());
    for (const until = Date.now() + wait; Date.now() < until; ) {
      await sleep(Math.min(1_000, until - Date.now()));
      if (Date.now() - lastProgress >= 30_000) {
        lastProgress = Date.now();
        say(`acknowledged ${load.acked().length}, archived ${archive.names().length}, mirrored ${mirror.names().length}`);
      }
    }
    if (Date.now() >= end) break;
    const fault = nextFault();
    const deliveredBefore = archive.names().length;
    const at = Date.now();
    if (fault === 'engine') {
      faults.engineKills++;
      await engine.kill();
      engine = await startEngineProcess(owner, configFile, dir);
      await recovered(deliveredBefore, at);
      say(`kill -9 engine #${faults.engineKills}: restarted, delivering again after ${recoveries.at(-1)} ms`);
    } else if (fault === 'redis') {
      faults.redisKills++;
      const pid = await redisPid(dataDir);
      if (pid) process.kill(pid, 'SIGKILL');
      await recovered(deliveredBefore, at);
      say(`kill -9 redis #${faults.redisKills} (pid ${pid}): delivering again after ${recoveries.at(-1)} ms`);
    } else {
      faults.redisStops++;
      const pid = await redisPid(dataDir);
      const frozenMs = 3_000 + Math.round(Math.random() * 5_000);
      if (pid) process.kill(pid, 'SIGSTOP');
      await sleep(frozenMs);
      if (pid) process.kill(pid, 'SIGCONT');
      say(`SIGSTOP redis #${faults.redisStops} for ${frozenMs} ms`);
    }
  }

  say('load stopping; waiting for every acknowledged message to arrive');
  await load.stop();
  // Whatever backlog the faults left drains now; give up only when deliveries stop coming for a minute.
  let seen = -1;
  let lastChange = Date.now();
  while (!(allDelivered(load, archive.names()) && allDelivered(load, mirror.names())) && Date.now() - lastChange < 60_000) {
    const now = archive.names().length + mirror.names().length;
    if (now !== seen) [seen, lastChange] = [now, Date.now()];
    await sleep(200);
  }
  const reports = { archive: checkDeliveries(load, archive.names()), mirror: checkDeliveries(load, mirror.names()) };
  const outcomes = new Map<string, number>();
  for (const attempt of load.attempts) outcomes.set(attempt.outcome, (outcomes.get(attempt.outcome) ?? 0) + 1);
  const seconds = (Date.now() - started) / 1000;

  console.log('\nsoak result');
  console.log(`  duration ${(seconds / 60).toFixed(1)} min, ${connections} MLLP senders at ${rate} msg/s; faults: engine kill -9 ×${faults.engineKills}, redis kill -9 ×${faults.redisKills}, redis SIGSTOP ×${faults.redisStops}`);
  console.log(`  tries ${load.attempts.length}: ${[...outcomes].map(([outcome, n]) => `${outcome} ${n}`).join(', ')}`);
  for (const [name, report] of Object.entries(reports)) console.log(`  ${name.padEnd(7)} ${formatReport(report)}`);
  const sorted = [...recoveries].sort((a, b) => a - b);
  if (sorted.length > 0) {
    console.log(`  back to delivering after a kill: median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms (engine restarts include its start)`);
  }
  for (const [name, report] of Object.entries(reports)) {
    if (report.lost.length > 0) console.log(`  ${name}: LOST ${report.lost.slice(0, 20).join(' ')}`);
    if (report.outOfOrder.length > 0) console.log(`  ${name}: OUT OF ORDER ${report.outOfOrder.slice(0, 10).join('; ')}`);
    if (report.unexplained.length > 0) console.log(`  ${name}: two ids though sent once: ${report.unexplained.slice(0, 10).join(' ')}`);
    if (report.lost.length + report.outOfOrder.length + report.unexplained.length > 0) exitCode = 1;
  }
  console.log(exitCode === 0 ? '  OK: nothing acknowledged was lost, order held' : `  FAILED (data kept in ${dir})`);
  if ((await engine.stop()) !== 0) exitCode = 1;
} catch (error) {
  console.error(`soak failed: ${(error as Error).stack ?? String(error)}\n(data kept in ${dir})`);
  exitCode = 1;
} finally {
  await load.stop();
  archive.close();
  mirror.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
  if (exitCode === 0) await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
