// node --no-node-snapshot --import tsx scripts/sandbox-cost.ts [--messages 5000]
//
// What running translators in a host process costs (engine/sandbox/process-sandbox.ts): time per
// message for the bench's ADT script, in this process (isolate.ts) and through the host (IPC
// round trip included), and the host's start time and memory (RSS).
import { readFile, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createSandbox, type Sandbox } from '../engine/sandbox/isolate.ts';
import { createProcessSandbox } from '../engine/sandbox/process-sandbox.ts';
import { compileScript, preludeCode } from '../engine/sandbox/transpile.ts';
import { BENCH_SCRIPT, benchAdt } from './workload.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '5000' } } });
const MESSAGES = Number(values.messages);
const LIMITS = { memoryBytes: 64 * 1024 * 1024, timeoutMs: 1000, outputBytes: 16 * 1024 * 1024, maxOutputs: 1000 };

// The bench's message and translator (scripts/workload.ts).
const ADT = benchAdt('MSG00001', 1).toString('latin1');

/** RSS, and the part of it no other process shares (the node binary's pages are shared). */
const memory = async (pid: number): Promise<string> => {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const mb = (field: string): number => Math.round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(rollup)![1]) / 1024);
  return `RSS ${mb('Rss')} MB (private ${mb('Private_Dirty') + mb('Private_Clean')} MB)`;
};

const perMessageUs = async (sandbox: Sandbox): Promise<number> => {
  for (let i = 0; i < 500; i++) await sandbox.run({ id: `w${i}`, text: ADT });
  const started = process.hrtime.bigint();
  for (let i = 0; i < MESSAGES; i++) await sandbox.run({ id: String(i), text: ADT });
  return Number(process.hrtime.bigint() - started) / 1000 / MESSAGES;
};

const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-sandbox-cost-'));
try {
  await mkdir(path.join(root, 'channels'));
  await writeFile(path.join(root, 'channels', 'adt.ts'), BENCH_SCRIPT);
  const script = await compileScript(path.join(root, 'channels', 'adt.ts'));

  const inProcess = createSandbox({ channel: 'cost', limits: LIMITS, prelude: await preludeCode() });
  await inProcess.load(script);
  const inProcessUs = await perMessageUs(inProcess);
  await inProcess.close();

  const starts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const sandbox = createProcessSandbox({ channel: 'cost', limits: LIMITS, logger: pino({ level: 'silent' }) });
    const started = Date.now();
    await sandbox.load(script);
    starts.push(Date.now() - started);
    await sandbox.close();
  }
  const sandbox = createProcessSandbox({ channel: 'cost', limits: LIMITS, logger: pino({ level: 'silent' }) });
  await sandbox.load(script);
  const idle = await memory(sandbox.pid()!);
  const hostUs = await perMessageUs(sandbox);
  const busy = await memory(sandbox.pid()!);
  await sandbox.close();

  console.log(`messages: ${MESSAGES} (ADT^A01, ${ADT.length} bytes, the bench script)`);
  console.log(`in this process (isolate.ts):      ${inProcessUs.toFixed(1)} µs/message`);
  console.log(`in a host process (IPC included):  ${hostUs.toFixed(1)} µs/message  (+${(hostUs - inProcessUs).toFixed(1)} µs)`);
  console.log(`host start, spawn to script loaded: ${starts.join(', ')} ms`);
  console.log(`host memory: ${idle} with the script loaded; ${busy} after ${MESSAGES + 500} messages`);
} finally {
  await rm(root, { recursive: true, force: true });
}
