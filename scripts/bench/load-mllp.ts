// The MLLP load generator, a process of its own (never in the engine's event loop):
//   node --import tsx scripts/bench/load-mllp.ts --ports 6661[,6662…] --connections 10
//        [--seconds 60] [--count N] [--rate R] [--prefix F] [--host 127.0.0.1]
// Each connection is an HL7 sender with the project's client (engine/clients/mllp.ts: Nagle off, one
// write per frame): one message in flight, the next sent when its ACK arrives — or, with --rate,
// open loop: message k of the whole load is due at k/R s, connections take turns, and a message
// whose connection is still waiting for the previous ACK when it is due goes out late (counted).
// Connections go round-robin over --ports. Sending stops after --seconds or --count messages,
// whichever comes first. A message answered AE (e.g. a full channel) or not at all is sent again
// after 100 ms, as HL7 senders do; latencies are those of the AAs. Control ids are <prefix><8
// digits>: messages 1…N, and one warm-up message per connection numbered down from 99999999. Prints
// JSON lines: {"event":"sending"} once every connection is up (its warm-up message acknowledged),
// then the result (`sent` counts every try).

import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { mllpClient, type MllpClient } from '../../engine/clients/mllp.ts';
import { describeError } from '../../engine/errors.ts';
import { benchAdt } from '../workload.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    ports: { type: 'string' },
    connections: { type: 'string', default: '1' },
    seconds: { type: 'string' },
    count: { type: 'string' },
    rate: { type: 'string' },
    prefix: { type: 'string', default: 'L' },
  },
});
const ports = (values.ports ?? '').split(',').filter(Boolean).map(Number);
const connections = Number(values.connections);
const seconds = values.seconds === undefined ? Infinity : Number(values.seconds);
const count = values.count === undefined ? Infinity : Number(values.count);
const rate = values.rate === undefined ? undefined : Number(values.rate);
if (ports.length === 0 || !(connections >= 1) || (seconds === Infinity && count === Infinity) || (rate !== undefined && !(rate > 0))) {
  console.error('usage: load-mllp.ts --ports P[,P…] --connections C (--seconds S | --count N) [--rate R] [--prefix X]');
  process.exit(2);
}

const DIGITS = 8;
const latencies: number[] = [];
const lags: number[] = [];
let next = 0;
let acked = 0;
let notAa = 0;
let failures = 0;
let late = 0;
let firstProblem: string | undefined;
let deadline = Infinity;

/** One message per connection in a reused buffer: only the digits of its control id (MSH-10) change. */
const messageFor = (connection: number): { payload: Buffer; number(n: number): void } => {
  const zeros = '0'.repeat(DIGITS);
  const payload = benchAdt(`${values.prefix}${zeros}`, connection);
  const at = payload.indexOf(`|${values.prefix}${zeros}|`) + 1 + values.prefix!.length;
  return { payload, number: (n) => void payload.write(String(n).padStart(DIGITS, '0'), at, 'latin1') };
};

/** What a sender does after an AE or no answer: wait, then send the same message again. */
const RESEND_DELAY_MS = 100;
/** A message that fails this many times in a row means the far end is gone: the load gives up. */
const MAX_TRIES = 600;

/** Sends until AA (latency counted for the AA only); false when the window closed first. */
const deliverOne = async (client: MllpClient, payload: Buffer): Promise<boolean> => {
  for (let tries = 1; ; tries++) {
    const sent = performance.now();
    try {
      const reply = await client.send(payload);
      if (reply.includes('MSA|AA|')) {
        latencies.push(performance.now() - sent);
        acked++;
        return true;
      }
      notAa++;
      firstProblem ??= `reply ${JSON.stringify(reply.toString('latin1').slice(0, 200))}`;
    } catch (error) {
      failures++;
      firstProblem ??= describeError(error);
    }
    if (tries >= MAX_TRIES) throw new Error(`gave up after ${tries} tries of one message; first problem: ${firstProblem}`);
    await sleep(RESEND_DELAY_MS);
    if (performance.now() >= deadline) return false;
  }
};

const connection = async (c: number, client: MllpClient, started: number): Promise<void> => {
  const message = messageFor(c);
  for (let k = 0; ; k++) {
    const n = rate === undefined ? next++ : k * connections + c;
    if (n >= count) return;
    if (rate !== undefined) {
      const due = started + (n * 1000) / rate;
      const now = performance.now();
      if (now >= deadline || due >= deadline) return;
      // Still waiting for the previous ACK when this one was due: the sender is held up.
      if (now > due + 1) late++;
      else await sleep(due - now);
      lags.push(performance.now() - due);
    } else if (performance.now() >= deadline) return;
    message.number(n + 1);
    if (!(await deliverOne(client, message.payload))) return;
  }
};

const percentile = (values: number[], p: number): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

const clients = Array.from({ length: connections }, (_, c) => mllpClient({ host: values.host!, port: ports[c % ports.length]!, ackTimeoutMs: 30_000 }));
// Connected before the clock starts: a first send opens the connection, so one warm-up message each.
const warmUp = (client: MllpClient, c: number): Promise<Buffer> => {
  const message = messageFor(c);
  message.number(10 ** DIGITS - 1 - c);
  return client.send(message.payload);
};
await Promise.all(clients.map((client, c) => warmUp(client, c).catch((error) => Promise.reject(new Error(`connection ${c}: ${describeError(error)}`)))));
console.log(JSON.stringify({ event: 'sending' }));
const started = performance.now();
deadline = started + seconds * 1000;
await Promise.all(clients.map((client, c) => connection(c, client, started)));
const elapsedMs = performance.now() - started;
await Promise.all(clients.map((client) => client.close()));
const cpu = process.cpuUsage();
console.log(
  JSON.stringify({
    event: 'done',
    warmUps: connections,
    sent: latencies.length + notAa + failures,
    acked,
    notAa,
    failures,
    firstProblem,
    elapsedMs,
    ackRate: acked / (elapsedMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
    late,
    lagP99: percentile(lags, 99),
    cpuMs: (cpu.user + cpu.system) / 1000,
  }),
);
process.exit(0);
