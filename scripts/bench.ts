// npm run bench [-- --runs 3 --seconds 60 --quick --rows T1,T4 --profile --json file --backlog 100000]
//
// Issue 11's throughput rows (docs/performance.md), each beside its reference from the same run.
// Ferry runs as users run it (`ferry start`, its own process with its embedded Redis and sandbox
// hosts, a fresh temp project for each measurement); the load comes from processes of its own
// (scripts/bench/load-mllp.ts, wrk), never from the engine's event loop. References: a bare MLLP echo
// listener driven by the same load process (echo-server.ts), Node-RED installed into a temp folder
// for the HTTPS row, a bare Redis list for the memory row. Each row is measured --runs times; the
// table shows medians. The machine is shared: compare ratios, measured side by side, across runs.

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { atCleanup, cleanUpOnExit, cleanupAll } from './bench/children.ts';
import { runFerryCommand } from './bench/ferry.ts';
import { wrkMissing } from './bench/http-load.ts';
import { describeMeasure, measureMllp, type MllpMeasure } from './bench/measure-mllp.ts';
import { measureFerryHttps, measureNodeRed } from './bench/measure-https.ts';
import { measureBacklog, measureIdle } from './bench/measure-memory.ts';
import { runLoad, startEcho } from './bench/mllp.ts';
import { installNodeRed, NODE_RED_VERSION, startNodeRed, type NodeRed } from './bench/node-red.ts';
import { formatProfile, summarizeProfile } from './bench/profile-summary.ts';
import type { ProcSample } from './bench/proc-stats.ts';
import { mllpProject } from './bench/projects.ts';
import { median, printRows, rowsJson, type Row } from './bench/report.ts';

const ROWS = ['T1', 'T2', 'T3', 'T4', 'T5', 'T6', 'T7', 'T8'] as const;
const USAGE = 'usage: npm run bench -- [--runs N] [--seconds S] [--quick] [--rows T1,T2,…] [--backlog N] [--profile] [--json file]';

const options = (() => {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string' },
        seconds: { type: 'string' },
        quick: { type: 'boolean', default: false },
        rows: { type: 'string', default: ROWS.join(',') },
        backlog: { type: 'string' },
        profile: { type: 'boolean', default: false },
        json: { type: 'string' },
      },
    }).values;
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
})();
const quick = options.quick!;
const runs = Number(options.runs ?? (quick ? 1 : 3));
/** T1, T2, T8: the sustained window. */
const seconds = Number(options.seconds ?? (quick ? 10 : 60));
/** T3 and T4, and the echo references: rates settle within seconds. */
const shortSeconds = quick ? 5 : 30;
const echoSeconds = quick ? 3 : 10;
/** How long T1/T2 wait after the window for the backlog, for CPU per delivered message. */
const drainSeconds = quick ? 30 : 120;
const backlogMessages = Number(options.backlog ?? (quick ? 10_000 : 100_000));
const selected = new Set(options.rows!.split(',').map((r) => r.trim().toUpperCase()));
const unknown = [...selected].filter((r) => !(ROWS as readonly string[]).includes(r));
if (!(runs >= 1) || !(seconds > 0) || !(backlogMessages >= 1) || unknown.length > 0) {
  console.error(`bench: ${unknown.length > 0 ? `unknown rows ${unknown.join(', ')}` : 'bad --runs, --seconds or --backlog'}\n${USAGE}`);
  process.exit(2);
}
const wants = (row: (typeof ROWS)[number]): boolean => selected.has(row);

const MB = 2 ** 20;
const ECHO = 'bare MLLP echo';
const rows: Record<string, Row> = {
  T1: { id: 'T1', measure: `MLLP 10 conns → script → file, delivered in ${seconds} s`, unit: 'msg/s', ferry: [], reference: [], referenceLabel: `${ECHO}, 10 conns`, target: { of: 'ferry', atLeast: 3000 }, alsoRequired: { what: 'backlog < 5 s of input', runs: [] } },
  T2: { id: 'T2', measure: `the same, 1 conn, delivered in ${seconds} s`, unit: 'msg/s', ferry: [], reference: [], referenceLabel: `${ECHO}, 1 conn`, target: { of: 'ferry', atLeast: 1500 } },
  'T2 p50': { id: 'T2', measure: 'ACK latency p50, 1 conn', unit: 'ms', ferry: [], reference: [], referenceLabel: `${ECHO}, 1 conn`, target: { of: 'ferry', atMost: 0.5 } },
  T3: { id: 'T3', measure: 'ACK latency p99, offered 1,000 msg/s over 10 conns', unit: 'ms', ferry: [], reference: [], referenceLabel: `${ECHO}, same schedule`, target: { of: 'ferry', atMost: 5 } },
  T4: { id: 'T4', measure: 'HTTPS token, 50 conns, 1 KB JSON → script → file, delivered', unit: 'msg/s', ferry: [], reference: [], referenceLabel: `Node-RED ${NODE_RED_VERSION} http in → function → response`, target: { of: 'ratio', atLeast: 1 } },
  T5: { id: 'T5', measure: 'CPU per delivered message, all engine processes (T1)', unit: 'ms', ferry: [], reference: [], referenceLabel: `${ECHO} process, per message`, target: { of: 'ferry', atMost: 0.5 } },
  'T6 idle': { id: 'T6', measure: 'RSS of all engine processes, idle, example channels.yaml', unit: 'MB', ferry: [], reference: [], referenceLabel: `${ECHO} process, idle`, target: { of: 'ferry', atMost: 120 } },
  'T6 load': { id: 'T6', measure: 'RSS of all engine processes, peak under T1', unit: 'MB', ferry: [], reference: [], referenceLabel: `${ECHO} process after its T1 load`, target: { of: 'ferry', atMost: 250 } },
  T7: { id: 'T7', measure: `Redis memory per queued message, ${backlogMessages.toLocaleString('en')}-message backlog`, unit: 'B', ferry: [], reference: [], referenceLabel: 'bare Redis list of the ids', target: { of: 'ferry', atMost: 500 } },
  T8: { id: 'T8', measure: `20 channels, 1 conn each, delivered in ${seconds} s`, unit: 'msg/s', ferry: [], reference: [], referenceLabel: 'T1 of the same run', target: { of: 'ratio', atLeast: 0.8 } },
};
const shown = Object.values(rows).filter((row) => selected.has(row.id));
const details: Array<Record<string, unknown>> = [];
let failures = 0;

/** Runs one measurement; a failure is reported and leaves its figures out (NaN), the bench goes on. */
const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
  try {
    await fn();
  } catch (error) {
    failures++;
    console.log(`  ${what} FAILED: ${(error as Error).stack ?? String(error)}`);
  }
};
/** Puts one run's figures into a row; a run that failed leaves a hole there, NaN in the medians. */
const record = (key: string, run: number, ferry: number, reference: number): void => {
  rows[key]!.ferry[run] = ferry;
  rows[key]!.reference[run] = reference;
};

const cpus = os.cpus();
const machine = { cores: cpus.length, model: cpus[0]?.model.trim(), node: process.version, loadAverageAtStart: os.loadavg(), startedAt: new Date().toISOString() };
console.log(`machine: ${machine.cores} cores (${machine.model}), node ${machine.node}, load average ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')} at start`);
console.log(
  `bench: ${runs} run(s); rows ${[...selected].join(', ')}; windows: T1/T2/T8 ${seconds} s, T3/T4 ${shortSeconds} s, echo references ${echoSeconds} s; ` +
    `T1/T2 wait up to ${drainSeconds} s for their backlog; T7 ${backlogMessages} messages${options.profile ? '; CPU profile of the first T1 run' : ''}`,
);

cleanUpOnExit();
const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
// Registered first, so it runs last: after every process that writes into it has stopped.
atCleanup(() => rm(root, { recursive: true, force: true }));
// Kept after the bench, unlike everything else it writes.
const profileDir = options.profile ? await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-profile-')) : '';
let exitCode = 0;
try {
  const echo = await startEcho();
  const echoIdleRss = await echo.rssBytes();

  // T4's setup, once: certificates, wrk, Node-RED in a temp folder.
  const certs = path.join(root, 'certs');
  let nodeRed: NodeRed | undefined;
  const nodeRedToken = randomBytes(24).toString('base64url');
  if (wants('T4')) {
    rows['T4']!.unavailable = wrkMissing();
    if (!rows['T4']!.unavailable) await runFerryCommand(root, ['certs', 'init', '--dir', certs]);
    if (!rows['T4']!.unavailable) {
      const folder = path.join(root, 'node-red');
      console.log(`T4: installing node-red@${NODE_RED_VERSION} into ${folder}`);
      const problem = (await installNodeRed(folder)) ?? (await startNodeRed(folder, certs, nodeRedToken).then((started) => void (nodeRed = started), (error: Error) => error.message));
      if (problem) {
        console.log(`T4: reference unavailable: ${problem}`);
        rows['T4']!.referenceLabel = 'Node-RED: reference unavailable';
      }
    }
  }

  for (let run = 0; run < runs; run++) {
    console.log(`\nrun ${run + 1} of ${runs} (load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
    const detail: Record<string, unknown> = { run: run + 1 };
    details.push(detail);
    const dir = (name: string): string => path.join(root, `${name}-${run + 1}`);

    if (wants('T6')) {
      await attempt('T6 idle', async () => {
        const idle = await measureIdle(dir('idle'));
        detail['T6 idle'] = idle;
        record('T6 idle', run, idle.rssBytes / MB, echoIdleRss / MB);
        console.log(`  T6 idle: ${idle.processes.map((p) => `${p.role} ${(p.rssBytes / MB).toFixed(0)} MB`).join(', ')}; echo process ${(echoIdleRss / MB).toFixed(0)} MB`);
      });
    }

    if (wants('T1') || wants('T5') || wants('T6') || wants('T8')) {
      await attempt('T1', async () => {
        const cpuBefore = await echo.cpuMs();
        const reference = await runLoad({ ports: [echo.port], connections: 10, seconds: echoSeconds, prefix: 'E' });
        const echoUs = ((await echo.cpuMs()) - cpuBefore) * 1000 / (reference.acked + reference.warmUps);
        const echoRss = await echo.rssBytes();
        const profiling = options.profile && run === 0;
        const ferry = await measureMllp({
          dir: dir('t1'),
          project: mllpProject(1),
          connections: 10,
          seconds,
          drainSeconds,
          ...(profiling && { engineArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`], afterStop: (samples, span) => printProfiles(profileDir, samples, span) }),
        });
        detail['T1'] = { reference, echoCpuUsPerMessage: echoUs, ferry };
        record('T1', run, ferry.deliveredRate, reference.ackRate);
        rows['T1']!.alsoRequired!.runs[run] = ferry.backlogSeconds < 5;
        record('T5', run, ferry.engineCpuUsPerMessage / 1000, echoUs / 1000);
        (rows['T5']!.upperBound ??= [])[run] = !ferry.drained;
        record('T6 load', run, ferry.peakRssBytes / MB, echoRss / MB);
        console.log(`  T1 echo: ${reference.ackRate.toFixed(0)} msg/s (p50 ${reference.p50.toFixed(3)} ms), ${echoUs.toFixed(1)} µs CPU per message; load process ${(reference.cpuMs * 1000 / reference.acked).toFixed(1)} µs`);
        console.log(`  T1 ferry: ${describeMeasure(ferry)}`);
      });
    }

    if (wants('T2')) {
      await attempt('T2', async () => {
        const reference = await runLoad({ ports: [echo.port], connections: 1, seconds: echoSeconds, prefix: 'E' });
        const ferry = await measureMllp({ dir: dir('t2'), project: mllpProject(1), connections: 1, seconds, drainSeconds });
        detail['T2'] = { reference, ferry };
        record('T2', run, ferry.deliveredRate, reference.ackRate);
        record('T2 p50', run, ferry.load.p50, reference.p50);
        console.log(`  T2 echo: ${reference.ackRate.toFixed(0)} msg/s (p50 ${reference.p50.toFixed(3)} ms)`);
        console.log(`  T2 ferry: ${describeMeasure(ferry)}`);
      });
    }

    if (wants('T3')) {
      await attempt('T3', async () => {
        const reference = await runLoad({ ports: [echo.port], connections: 10, seconds: shortSeconds, rate: 1000, prefix: 'E' });
        const ferry = await measureMllp({ dir: dir('t3'), project: mllpProject(1), connections: 10, seconds: shortSeconds, rate: 1000, drainSeconds: 0 });
        detail['T3'] = { reference, ferry };
        record('T3', run, ferry.load.p99, reference.p99);
        const line = (r: typeof reference): string =>
          `${r.ackRate.toFixed(0)} msg/s acknowledged, ACK p50 ${r.p50.toFixed(2)} / p99 ${r.p99.toFixed(2)} / max ${r.max.toFixed(1)} ms, ${r.late} of ${r.sent} sends late (previous ACK not back when due), sender lag p99 ${r.lagP99.toFixed(2)} ms`;
        console.log(`  T3 echo: ${line(reference)}`);
        console.log(`  T3 ferry: ${line(ferry.load)}; delivered ${ferry.deliveredRate.toFixed(0)} msg/s in the window`);
      });
    }

    if (wants('T4') && !rows['T4']!.unavailable) {
      await attempt('T4', async () => {
        const ferry = await measureFerryHttps(dir('t4'), certs, shortSeconds);
        const reference = nodeRed ? await measureNodeRed(nodeRed, nodeRedToken, shortSeconds, root) : undefined;
        detail['T4'] = { ferry, reference };
        record('T4', run, ferry.deliveredRate, reference?.deliveredRate ?? Number.NaN);
        const line = (m: typeof ferry): string =>
          `${m.load.okRate.toFixed(0)} answered 2xx/s (${m.load.bad} other statuses, ${m.load.socketErrors} socket errors), p50 ${m.load.p50.toFixed(1)} / p99 ${m.load.p99.toFixed(1)} ms, ${m.cpuUsPerAnswer.toFixed(0)} µs CPU per answer`;
        console.log(`  T4 ferry: delivered ${ferry.deliveredRate.toFixed(0)} msg/s; ${line(ferry)}`);
        console.log(`  T4 Node-RED: ${reference ? line(reference) : 'reference unavailable'}`);
      });
    }

    if (wants('T7')) {
      await attempt('T7', async () => {
        const backlog = await measureBacklog(dir('t7'), backlogMessages);
        detail['T7'] = backlog;
        record('T7', run, backlog.redisBytesPerMessage, backlog.listBytesPerId);
        console.log(
          `  T7: ${backlog.messages} messages taken at ${backlog.acceptRate.toFixed(0)} msg/s: Redis ${backlog.redisBytesPerMessage.toFixed(0)} B per queued message ` +
            `(bare list ${backlog.listBytesPerId.toFixed(0)} B per id); message log ${backlog.logBytesPerMessage.toFixed(0)} B per message`,
        );
      });
    }

    if (wants('T8')) {
      await attempt('T8', async () => {
        const ferry = await measureMllp({ dir: dir('t8'), project: mllpProject(20), connections: 20, seconds, drainSeconds: 0 });
        detail['T8'] = { ferry };
        record('T8', run, ferry.deliveredRate, rows['T1']!.ferry[run] ?? Number.NaN);
        console.log(`  T8 ferry: ${describeMeasure(ferry)}`);
      });
    }
  }

  await echo.stop();
  console.log(`\nmedians of ${runs} run(s); ratio = median of each run's ferry/reference; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
  // Rows not measured in a run hold NaN there, so the medians skip them.
  for (const row of shown) for (let run = 0; run < runs; run++) {
    row.ferry[run] ??= Number.NaN;
    row.reference[run] ??= Number.NaN;
  }
  printRows(shown);
  const t1Runs = details.flatMap((d) => (d['T1'] ? [d['T1'] as { ferry: MllpMeasure; echoCpuUsPerMessage: number }] : []));
  if (t1Runs.length > 0) {
    const roles = Object.keys(t1Runs[0]!.ferry.cpuUsPerMessage) as Array<keyof MllpMeasure['cpuUsPerMessage']>;
    const perRole = roles.flatMap((role) => {
      const us = median(t1Runs.map((r) => r.ferry.cpuUsPerMessage[role]));
      return us > 0 ? [`${role} ${us.toFixed(0)}`] : [];
    });
    console.log(`T1 CPU per delivered message by process, µs (medians): ${perRole.join(', ')}; echo process ${median(t1Runs.map((r) => r.echoCpuUsPerMessage)).toFixed(1)}`);
  }
  if (options.json) {
    const report = { machine: { ...machine, loadAverageAtEnd: os.loadavg() }, options: { runs, seconds, shortSeconds, echoSeconds, drainSeconds, backlogMessages, rows: [...selected], profile: options.profile }, rows: rowsJson(shown), runs: details };
    await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${options.json}`);
  }
  if (failures > 0) exitCode = 1;
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
  exitCode = 1;
} finally {
  await cleanupAll();
}
process.exit(exitCode);

/** --profile: the engine's .cpuprofile files (one per thread: main, tsx's loader), over the measured span. */
async function printProfiles(dir: string, samples: ProcSample[], span: [number, number]): Promise<void> {
  const files = (await readdir(dir).catch((): string[] => [])).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) console.log('  profile: no .cpuprofile written (did the engine exit normally?)');
  for (const file of files) {
    const [, pid, thread] = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\./.exec(file) ?? [];
    const role = samples.find((s) => s.pid === Number(pid))?.role ?? 'process';
    const what = `${role} (pid ${pid}) ${thread === '0' ? 'main thread' : `thread ${thread}`}, first send to the end of the drain wait`;
    console.log(formatProfile(`  profile of the ${what}`, await summarizeProfile(path.join(dir, file), span)).replaceAll('\n', '\n  '));
  }
  console.log(`  (the profiles stay in ${dir}: open them in Chrome DevTools' Performance panel)`);
}
