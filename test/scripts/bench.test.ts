import test, { type ExecutionContext } from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FerryConfig } from '../../engine/config/contract.ts';
import { loadConfig } from '../../engine/config/load.ts';
import type { MllpSourceConfig } from '../../engine/sources/mllp.ts';
import { cleanupAll } from '../../scripts/bench/children.ts';
import { writeProject } from '../../scripts/bench/ferry.ts';
import { runLoad, startEcho } from '../../scripts/bench/mllp.ts';
import { summarizeProfile } from '../../scripts/bench/profile-summary.ts';
import { backlogProject, exampleProject, httpsProject, mllpProject, type Project } from '../../scripts/bench/projects.ts';
import { median, metOf, type Row } from '../../scripts/bench/report.ts';
import { buildAck } from '../../engine/hl7/ack.ts';
import { readHeader } from '../../engine/hl7/header.ts';
import { encodeFrame } from '../../engine/hl7/mllp.ts';
import { acceptingMllpServer, mllpServer } from '../helpers/mllp-server.ts';
import { tempDir } from '../helpers/temp.ts';

// The bench's parts that can be checked without timing anything: the configs it runs Ferry on, the
// load process's messages and counts, the profile's attribution and the table's arithmetic. (Speed
// itself is only ever measured by `npm run bench`, never asserted in a test.)

const valid = async (t: ExecutionContext, project: Project): Promise<FerryConfig> => {
  const dir = await tempDir(t);
  await writeProject(dir, project);
  return loadConfig(path.join(dir, 'channels.yaml'));
};

test('the projects the bench starts Ferry on are valid configs with every port 0', async (t) => {
  const twenty = await valid(t, mllpProject(20));
  t.is(twenty.channels.length, 20);
  t.true(twenty.channels.every((c) => c.source.type === 'mllp' && (c.source as MllpSourceConfig).port === 0 && c.script !== undefined));
  t.is(twenty.engine.admin.port, 0);

  const example = await valid(t, await exampleProject());
  t.deepEqual(example.channels.map((c) => c.name), ['adt-archive', 'lab-feed']);
  t.true(example.channels.every((c) => c.source.type !== 'mllp' || (c.source as MllpSourceConfig).port === 0));
  t.is(example.engine.admin.port, 0);

  const backlog = await valid(t, backlogProject(1000));
  t.is(backlog.channels[0]!.maxQueued, 2000);

  const certs = await tempDir(t);
  await writeFile(path.join(certs, 'server.crt'), 'not read by the config');
  await writeFile(path.join(certs, 'server.key'), 'not read by the config');
  const https = await valid(t, httpsProject(certs));
  t.is(https.channels[0]!.source.type, 'https');
  t.is(https.engine.https?.port, 0);
});

// Serial: cleanupAll ends every process the bench's modules started in this worker.
test.serial('the load process sends numbered messages, one warm-up per connection, and counts the ACKs', async (t) => {
  t.teardown(cleanupAll);
  const server = await acceptingMllpServer(t);
  const result = await runLoad({ ports: [server.port], connections: 3, count: 30, prefix: 'T' });
  t.like(result, { sent: 30, acked: 30, notAa: 0, failures: 0, warmUps: 3 });
  t.true(result.p50 > 0 && result.p99 >= result.p50);
  // Control ids: the warm-ups count down from 99999999, the measured messages are 1…30.
  t.deepEqual([...server.received].sort(), [...Array.from({ length: 30 }, (_, i) => `T${String(i + 1).padStart(8, '0')}`), 'T99999997', 'T99999998', 'T99999999']);
});

test.serial('a message answered AE is sent again until AA, as HL7 senders do', async (t) => {
  t.teardown(cleanupAll);
  const tries = new Map<string, number>();
  // AE for each message's first try (a full channel), AA for the next.
  const server = await mllpServer(t, (socket, payload) => {
    const header = readHeader(payload.toString('latin1'));
    const n = (tries.get(header.controlId) ?? 0) + 1;
    tries.set(header.controlId, n);
    socket.write(encodeFrame(buildAck(header, n === 1 ? 'AE' : 'AA', { controlId: `A${header.controlId}` })));
  });
  const result = await runLoad({ ports: [server.port], connections: 1, count: 5, prefix: 'X' });
  t.like(result, { acked: 5, notAa: 5, sent: 10, failures: 0 });
  t.deepEqual(
    [...tries].filter(([id]) => id !== 'X99999999'),
    Array.from({ length: 5 }, (_, i) => [`X${String(i + 1).padStart(8, '0')}`, 2]),
  );
});

test.serial('open loop: the load process sends on its schedule and stops at --count', async (t) => {
  t.teardown(cleanupAll);
  const echo = await startEcho();
  const result = await runLoad({ ports: [echo.port], connections: 2, count: 20, seconds: 120, rate: 1000, prefix: 'R' });
  t.like(result, { sent: 20, acked: 20, failures: 0 });
  t.true(result.late >= 0 && result.late <= 20);
});

test('a profile is charged by module: native and Node frames to the module that called them', async (t) => {
  const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url }, children });
  const profile = {
    startTime: 1_000_000,
    endTime: 1_010_000,
    nodes: [
      frame(1, '(root)', '', [2, 3, 4, 5]),
      frame(2, '(idle)', ''),
      frame(3, '(garbage collector)', ''),
      frame(4, 'processTicksAndRejections', 'node:internal/process/task_queues', [6, 8]),
      frame(5, 'onStreamRead', 'node:internal/stream_base_commons', [9]),
      frame(6, 'commit', 'file:///srv/ferry/engine/store/message-store.ts', [7]),
      frame(7, 'run', ''),
      frame(8, 'queueMicrotask', ''),
      frame(9, 'write', 'file:///srv/ferry/node_modules/ioredis/built/Redis.js', [10]),
      frame(10, 'writev', 'node:internal/stream_base_commons'),
    ],
    //        idle idle gc  store native-in-store  ioredis  writev-in-ioredis  task_queues  its-native  stream read
    samples: [2, 2, 3, 6, 7, 9, 10, 4, 8, 5],
    timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  };
  const dir = await tempDir(t);
  const file = path.join(dir, 'CPU.1.1.1.0.001.cpuprofile');
  await writeFile(file, JSON.stringify(profile));

  const all = await summarizeProfile(file);
  t.is(all.totalMs, 10);
  t.is(all.idleMs, 2);
  t.is(all.gcMs, 1);
  t.deepEqual(Object.fromEntries(all.modules.map((m) => [m.name, m.ms])), {
    'engine/store/message-store.ts': 2,
    ioredis: 2,
    'node:process/task_queues': 2,
    '(garbage collector)': 1,
    'node:stream_base_commons': 1,
  });

  // Only the samples within the span (the 4th to the 7th, at 1,004,000…1,007,000 µs) count.
  const span = await summarizeProfile(file, [1_004_000, 1_007_000]);
  t.is(span.totalMs, 4);
  t.deepEqual(Object.fromEntries(span.modules.map((m) => [m.name, m.ms])), { 'engine/store/message-store.ts': 2, ioredis: 2 });
});

test('the table: medians skip runs that failed; a target is met on the median, an extra condition on most runs', (t) => {
  t.is(median([3, Number.NaN, 1, 2]), 2);
  t.is(median([4, 1]), 2.5);
  t.true(Number.isNaN(median([Number.NaN])));
  const row: Row = {
    id: 'T1',
    measure: 'm',
    unit: 'msg/s',
    ferry: [3100, 2900, 3200],
    reference: [1, 1, 1],
    referenceLabel: 'r',
    target: { of: 'ferry', atLeast: 3000 },
    alsoRequired: { what: 'backlog', runs: [true, false, true] },
  };
  t.true(metOf(row));
  t.false(metOf({ ...row, alsoRequired: { what: 'backlog', runs: [false, false, true] } }));
  t.false(metOf({ ...row, ferry: [2900, 2950, 3200] }));
  t.is(metOf({ ...row, ferry: [Number.NaN] }), undefined);
  t.true(metOf({ ...row, target: { of: 'ratio', atLeast: 0.8 }, reference: [4000, 3000, 4000], alsoRequired: undefined }));
});
