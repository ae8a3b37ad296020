// node --no-node-snapshot --import tsx scripts/fanout-recovery.ts [--deliveries 1000000]
//
// What a message log left by an older Ferry costs at start: one message whose script made a million
// outputs (before scriptLimits.maxOutputs existed), all still to deliver, and a Redis that holds none
// of their jobs. Builds that data folder through the message store, runs `ferry start` on it as a
// child process, and reports how long the channel took to queue the deliveries again, the engine's
// peak resident memory meanwhile (VmHWM), Redis's memory once they are queued, and how another
// channel's MLLP sender fared from the start.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { mllpClient } from '../engine/clients/mllp.ts';
import { readAck } from '../engine/hl7/ack.ts';
import { openMessageStore } from '../engine/store/message-store.ts';

const { values } = parseArgs({ options: { deliveries: { type: 'string', default: '1000000' } } });
const deliveries = Number(values.deliveries);
if (!Number.isInteger(deliveries) || deliveries < 1) {
  console.error('usage: scripts/fanout-recovery.ts [--deliveries N]');
  process.exit(1);
}

const BIN = path.join(import.meta.dirname, '..', 'engine', 'bin', 'ferry.js');
const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-fanout-'));
const port = 20_000 + Math.floor(Math.random() * 20_000);
// The big channel first: it must not hold the other's start.
await writeFile(
  path.join(dir, 'channels.yaml'),
  `engine:
  data: ./data
  admin: { host: 127.0.0.1, port: 0 }
channels:
  - name: fanout
    source: { type: channel }
    destinations:
      - { name: out, type: file, dir: ./out/fanout, filename: "{index}.out" }
  - name: other
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: out, type: file, dir: ./out/other }
`,
);

let built = performance.now();
const store = openMessageStore(path.join(dir, 'data', 'messages.db'));
const id = '01JFAN0UT000000000000000AA';
const text = 'MSH|^~\\&|OLD|HOSP|FERRY|LAB|20260101120000||ADT^A01|OLD1|P|2.5\r';
await store.receive({ id, channel: 'fanout', source: 'channel old', raw: Buffer.from(text), text, charset: 'UTF-8', controlId: 'OLD1' });
await store.recordTransform(id, {
  status: 'transformed',
  outputs: Array.from({ length: deliveries }, (_, i) => Buffer.from(`output ${i}\r`)),
  destinations: ['out'],
  logs: '',
});
await store.close();
built = performance.now() - built;

const child = spawn(process.execPath, ['--no-node-snapshot', BIN, 'start', '-c', 'channels.yaml'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
let output = '';
child.stdout.on('data', (chunk) => (output += chunk));
child.stderr.on('data', (chunk) => (output += chunk));
const startedAt = performance.now();
let peakKb = 0;
const sampler = setInterval(() => {
  void readFile(`/proc/${child.pid}/status`, 'utf8').then(
    (status) => (peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0))),
    () => undefined,
  );
}, 100);

// The other channel's sender: connects as soon as its listener is open, one message every 50 ms.
const waits: number[] = [];
let firstAckAt = 0;
let sending = true;
const sender = (async () => {
  const client = mllpClient({ host: '127.0.0.1', port, ackTimeoutMs: 300_000, connectTimeoutMs: 1_000 });
  for (let n = 0; sending; n++) {
    const sent = performance.now();
    try {
      const ack = readAck((await client.send(`MSH|^~\\&|REG|HOSP|FERRY|LAB|20260101120000||ADT^A01|K${n}|P|2.5\rPID|1\r`)).toString('latin1'));
      if (ack.code === 'AA') {
        waits.push(performance.now() - sent);
        firstAckAt ||= performance.now() - startedAt;
      }
    } catch {
      await sleep(200); // not listening yet
    }
    await sleep(50);
  }
  await client.close();
})();

const channelStarted = (name: string): boolean => new RegExp(`"channel":"${name}"[^\\n]*"msg":"channel started"`).test(output);
let fanoutStartedAt = 0;
let firstDeliveryAt = 0;
while (child.exitCode === null && !(fanoutStartedAt && firstDeliveryAt && performance.now() - startedAt > fanoutStartedAt + 10_000)) {
  await sleep(250);
  if (!fanoutStartedAt && channelStarted('fanout')) fanoutStartedAt = performance.now() - startedAt;
  if (!firstDeliveryAt && (await readdir(path.join(dir, 'out', 'fanout')).catch(() => [])).length > 0) firstDeliveryAt = performance.now() - startedAt;
}
sending = false;
await sender;
clearInterval(sampler);
const redis = new Redis({ path: path.join(dir, 'data', 'redis', 'redis.sock') });
const redisUsed = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
redis.disconnect();
const delivered = (await readdir(path.join(dir, 'out', 'fanout')).catch(() => [])).length;
child.kill('SIGTERM');
const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
waits.sort((a, b) => a - b);
console.log(`message log: one message with ${deliveries} outputs still to deliver, none of them in Redis (built in ${s(built)})`);
console.log(`channel fanout started (deliveries queued again) after ${s(fanoutStartedAt)}; first delivery after ${s(firstDeliveryAt)}; ${delivered} delivered when the run ended`);
console.log(`engine peak RSS (VmHWM) during the run: ${Math.round(peakKb / 1024)} MB; Redis used_memory ${Math.round(redisUsed / 1024 / 1024)} MB`);
console.log(
  `channel other: first AA ${s(firstAckAt)} after start; ${waits.length} AA, ACK wait median ${Math.round(waits[Math.floor(waits.length / 2)] ?? 0)} ms, max ${Math.round(waits.at(-1) ?? 0)} ms`,
);
console.log(`ferry exit code after SIGTERM: ${code}`);
if (code !== 0) console.log(output.split('\n').slice(-10).join('\n'));
await rm(dir, { recursive: true, force: true });
