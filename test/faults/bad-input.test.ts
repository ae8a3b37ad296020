import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { readFile, readdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MllpClient } from '../../engine/clients/mllp.ts';
import { readAck } from '../../engine/hl7/ack.ts';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { fileTeardown } from '../helpers/file-teardown.ts';
import { DELIVERY_FILENAME, loadMessage } from '../helpers/load.ts';
import { openMllpClient, sendForAck, sendOnce } from '../helpers/mllp.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// Bad input over MLLP, end to end through a running engine (issue 5, point 5 of the issue). Each case:
// a clear refusal (the connection closed, or AR), a log line saying why, nothing half-stored — a
// framing error stores nothing, a refused payload is logged whole as an error and never processed —
// and the listener serves another client meanwhile. Config: maxFrameSize 1MB, idleTimeout 1s,
// maxConnections 5. A second channel, `hogged`, keeps idle connections (idleTimeout 5m) for the
// client that holds its per-address maximum (issue 9, finding 5).

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;
const MAX_CONNECTIONS = 5;
const HOG_MAX_PER_ADDRESS = 2;

const frame = (payload: Buffer | string): Buffer =>
  Buffer.concat([Buffer.from([VT]), typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload, Buffer.from([FS, CR])]);

interface Rig {
  dir: string;
  port: number;
  /** The `hogged` channel's listener. */
  hogPort: number;
  engine: EngineProcess;
}

const collector = fileTeardown();

let rigPromise: Promise<Rig> | undefined;
/** One engine for the whole file; the cases run one after another. */
const rig = (t: ExecutionContext): Promise<Rig> =>
  (rigPromise ??= (async () => {
    const port = await freePort();
    const hogPort = await freePort();
    const { dir, configFile } = await tempProject(
      collector,
      channelsYaml({
        channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port}, maxFrameSize: 1MB, idleTimeout: 1s, maxConnections: ${MAX_CONNECTIONS} }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "${DELIVERY_FILENAME}" }
  - name: hogged
    source: { type: mllp, host: 127.0.0.1, port: ${hogPort}, maxConnections: 4, maxConnectionsPerAddress: ${HOG_MAX_PER_ADDRESS} }
    destinations:
      - { name: archive, type: file, dir: ./out-hogged, filename: "${DELIVERY_FILENAME}" }
`,
      }),
    );
    const engine = await startEngineProcess(collector, configFile, dir);
    t.log(`engine pid ${engine.child.pid}`);
    return { dir, port, hogPort, engine };
  })());

interface Raw {
  socket: net.Socket;
  received(): Buffer;
  /** Resolves true when the connection closes. */
  closed: Promise<boolean>;
}

/** A raw connection to 127.0.0.1:`port`; another `localAddress` makes it another sender (Linux routes all of 127/8 to lo). */
const connectRaw = async (port: number, localAddress = '127.0.0.1'): Promise<Raw> => {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.setNoDelay(true);
  collector.teardown(() => void socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined); // resets are expected; `closed` reports them
  // Not events.once: it rejects on the 'error' (a reset) that often comes just before the close.
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
};

const closedWithin = (raw: Raw, ms: number): Promise<boolean> => Promise.race([raw.closed, sleep(ms).then(() => false)]);

let goodSeq = 0;
/** A well-behaved sender on its own connection: must get AA, and its message must be delivered. */
const goodSend = async (t: ExecutionContext, port: number, client?: MllpClient): Promise<string> => {
  const controlId = `GOOD-${String(++goodSeq).padStart(4, '0')}`;
  const ack = client ? await sendForAck(client, loadMessage(controlId)) : await sendOnce(port, loadMessage(controlId));
  t.is(`${ack.code} ${ack.controlId}`, `AA ${controlId}`, 'the listener serves another client meanwhile');
  return controlId;
};

interface Snapshot {
  received: number;
  errored: number;
  files: number;
  log: number;
}

const snapshot = async ({ engine, dir }: Rig): Promise<Snapshot> => {
  const { body } = await engine.api<Array<{ name: string; counts: Record<string, number> }>>('/api/channels');
  const counts = body.find((c) => c.name === 'adt')!.counts;
  const files = (await readdir(join(dir, 'out')).catch(() => [])).filter((f) => f.endsWith('.hl7')).length;
  return { received: counts['received']!, errored: counts['errored']!, files, log: engine.output().length };
};

/** After a case: exactly the good messages (and `refused` error records) were added; the good ones delivered. */
const assertStored = async (t: ExecutionContext, r: Rig, before: Snapshot, good: string[], refused = 0): Promise<void> => {
  const after = await eventually(async () => {
    const now = await snapshot(r);
    return now.files >= before.files + good.length ? now : undefined;
  });
  t.is(after.received - before.received, good.length + refused, 'message log rows added');
  t.is(after.errored - before.errored, refused, 'refused payloads logged as errors');
  t.is(after.files - before.files, good.length, 'only the good messages were delivered');
  const { body } = await r.engine.api<{ items: Array<{ status: string }> }>('/api/messages?channel=adt&status=received');
  t.deepEqual(body.items, [], 'nothing left half-processed');
};

const logSince = (r: Rig, before: Snapshot): string => r.engine.output().slice(before.log);

const framingCases: Array<[string, Buffer, RegExp]> = [
  [
    'no end block, then close',
    Buffer.concat([Buffer.from([VT]), Buffer.from(loadMessage('NOEND'))]),
    /"code":"MLLP_BAD_FRAME"[^\n]*"msg":"MLLP connection closed in the middle of a frame: \d+ bytes without an end block discarded, nothing stored"/,
  ],
  [
    '0x1C without 0x0D',
    Buffer.concat([Buffer.from([VT]), Buffer.from(loadMessage('NOCR')), Buffer.from([FS]), Buffer.from('MSH|')]),
    /"code":"MLLP_BAD_FRAME"[^\n]*"msg":"closing MLLP connection: MLLP end block 0x1c followed by 0x4d instead of 0x0d; frame dropped"/,
  ],
  [
    'bytes before the start block',
    Buffer.concat([Buffer.from('HELLO'), frame(loadMessage('JUNK'))]),
    /"code":"MLLP_BAD_FRAME"[^\n]*"msg":"closing MLLP connection: unexpected byte 0x48 outside an MLLP frame/,
  ],
];

for (const [title, bytes, logLine] of framingCases) {
  test.serial(`framing: ${title} → no reply, connection closed, logged, nothing stored`, async (t) => {
    const r = await rig(t);
    const before = await snapshot(r);
    const bad = await connectRaw(r.port);
    const good = [await goodSend(t, r.port)];
    bad.socket.write(bytes);
    if (title.startsWith('no end block')) bad.socket.end();
    t.true(await closedWithin(bad, 3_000), 'the connection is closed');
    t.is(bad.received().length, 0, 'no reply');
    good.push(await goodSend(t, r.port));
    await eventually(() => (logLine.test(logSince(r, before)) ? true : undefined), 5_000, 'the log line');
    await assertStored(t, r, before, good);
  });
}

test.serial('a 50 MB frame is refused at maxFrameSize while it streams in; memory stays bounded', async (t) => {
  const r = await rig(t);
  const pid = r.engine.child.pid!;
  const memory = async (): Promise<{ rss: number; peak: number }> => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  };
  const before = await snapshot(r);
  const memoryBefore = await memory();
  const bad = await connectRaw(r.port);
  const chunk = Buffer.alloc(64 * 1024, 'A'.charCodeAt(0));
  let written = 0;
  const streaming = (async () => {
    bad.socket.write(Buffer.from([VT]));
    while (written < 50 * 1024 * 1024 && !bad.socket.destroyed) {
      if (!bad.socket.write(chunk)) await Promise.race([new Promise((resolve) => bad.socket.once('drain', resolve)), bad.closed]);
      written += chunk.length;
    }
  })();
  const good = [await goodSend(t, r.port)];
  t.true(await closedWithin(bad, 10_000), 'closed before the frame ends');
  await streaming;
  good.push(await goodSend(t, r.port));
  const memoryAfter = await memory();
  const growth = Math.max(memoryAfter.rss - memoryBefore.rss, memoryAfter.peak - memoryBefore.peak);
  t.log(`sender wrote ${(written / 1024 / 1024).toFixed(1)} MB before the close; engine RSS ${(memoryBefore.rss / 1e6).toFixed(0)} → ${(memoryAfter.rss / 1e6).toFixed(0)} MB, peak ${(memoryBefore.peak / 1e6).toFixed(0)} → ${(memoryAfter.peak / 1e6).toFixed(0)} MB`);
  t.true(written < 50 * 1024 * 1024, 'the engine did not read the whole frame');
  t.true(growth < 24 * 1024 * 1024, `memory grew by ${(growth / 1e6).toFixed(1)} MB`);
  t.is(bad.received().length, 0);
  t.regex(logSince(r, before), /"code":"MLLP_FRAME_TOO_LARGE"[^\n]*"msg":"closing MLLP connection: MLLP frame exceeds 1048576 bytes"/);
  await assertStored(t, r, before, good);
});

test.serial('a slow sender (a byte every 300 ms) is closed after idleTimeout without a complete message', async (t) => {
  const r = await rig(t);
  const before = await snapshot(r);
  const bad = await connectRaw(r.port);
  const openedAt = Date.now();
  const bytes = frame(loadMessage('SLOW'));
  const trickle = (async () => {
    for (const byte of bytes) {
      if (bad.socket.destroyed) return;
      bad.socket.write(Buffer.from([byte]));
      await sleep(300);
    }
  })();
  const good = [await goodSend(t, r.port)];
  t.true(await closedWithin(bad, 5_000));
  const closedAfter = Date.now() - openedAt;
  await trickle;
  t.true(closedAfter >= 900 && closedAfter < 3_000, `closed after ${closedAfter} ms`);
  t.is(bad.received().length, 0);
  good.push(await goodSend(t, r.port));
  t.regex(
    logSince(r, before),
    /"code":"MLLP_IDLE_TIMEOUT"[^\n]*"msg":"closing MLLP connection: no complete message within 1000 ms \(\d+ bytes of an unfinished frame discarded\)"/,
  );
  await assertStored(t, r, before, good);
});

test.serial('a connection flood beyond maxConnections: the extra ones are closed at once, one log line, the connected sender goes on', async (t) => {
  const r = await rig(t);
  const before = await snapshot(r);
  const client = openMllpClient(t, r.port);
  const good = [await goodSend(t, r.port, client)];
  const flood = await Promise.all(Array.from({ length: 30 }, () => connectRaw(r.port)));
  // Sent before waiting on the flood: the connected sender must not sit idle past the 1 s idle timeout.
  good.push(await goodSend(t, r.port, client));
  const closedAtOnce = (await Promise.all(flood.map((raw) => closedWithin(raw, 500)))).filter(Boolean).length;
  t.is(closedAtOnce, 30 - (MAX_CONNECTIONS - 1), 'all but the free slots refused');
  const capLines = logSince(r, before).match(/"code":"MLLP_TOO_MANY_CONNECTIONS"[^\n]*"msg":"MLLP connection refused: listener at its connection cap"/g) ?? [];
  t.is(capLines.length, 1, 'one line for the flood, not one per connection');
  // The admitted flood connections send nothing and are closed by the idle timeout; slots free up.
  await Promise.all(flood.map((raw) => closedWithin(raw, 3_000)));
  await client.close();
  good.push(await goodSend(t, r.port));
  await assertStored(t, r, before, good);
  // ...and one more line sums up the rest of the flood at the end of its 10 s window.
  const more = 30 - (MAX_CONNECTIONS - 1) - 1;
  await eventually(
    () => (logSince(r, before).includes(`"msg":"MLLP listener at its connection cap: ${more} more connections refused in the last 10 s"`) ? true : undefined),
    15_000,
    'the flood summary line',
  );
});

const refusedPayloads: Array<[string, Buffer, RegExp, string]> = [
  ['plain text', Buffer.from('hello, this is not HL7'), /HL7_NOT_HL7/, 'HL7_NOT_HL7'],
  ['JSON', Buffer.from('{"resourceType":"Patient","id":"1"}'), /HL7_NOT_HL7/, 'HL7_NOT_HL7'],
  ['binary', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7919) % 256).filter((b) => b !== VT && b !== FS)), /HL7_/, 'HL7_'],
  ['an unknown MSH-18', Buffer.from(loadMessage('CS1').replace('|P|2.5\r', '|P|2.5||||||KLINGON\r')), /HL7_UNKNOWN_CHARSET/, 'HL7_UNKNOWN_CHARSET'],
  ['UTF-16 without a byte order mark', Buffer.from(loadMessage('U16'), 'utf16le'), /HL7_ENCODING/, 'HL7_ENCODING'],
];

for (const [title, payload, logCode, storedCode] of refusedPayloads) {
  test.serial(`payload: ${title} → AR with a reason, logged, kept as an error record, never processed`, async (t) => {
    const r = await rig(t);
    const before = await snapshot(r);
    const bad = openMllpClient(t, r.port);
    const good = [await goodSend(t, r.port)];
    const ack = await sendForAck(bad, payload);
    t.is(ack.code, 'AR');
    t.not(`${ack.text} ${ack.errorText}`.trim(), '', 'the AR says why');
    good.push(await goodSend(t, r.port));
    t.regex(logSince(r, before), new RegExp(`"code":"${logCode.source}[^\\n]*"msg":"refused: `));
    await assertStored(t, r, before, good, 1);
    const { body } = await r.engine.api<{ items: Array<{ id: string; error: string }> }>('/api/messages?channel=adt&status=error&limit=1');
    t.true(body.items[0]!.error.startsWith(storedCode), body.items[0]!.error);
    const { body: detail } = await r.engine.api<{ raw: string; stages: unknown[] }>(`/api/messages/${body.items[0]!.id}`);
    t.deepEqual(Buffer.from(detail.raw, 'base64'), payload, 'stored whole, as received');
    t.deepEqual(detail.stages, []);
  });
}

test.serial('payload: UTF-16 with a byte order mark is HL7 → AA, delivered byte for byte', async (t) => {
  const r = await rig(t);
  const before = await snapshot(r);
  const client = openMllpClient(t, r.port);
  const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(loadMessage('U16BOM'), 'utf16le')]);
  const reply = await client.send(bytes);
  t.is(reply.subarray(0, 2).toString('hex'), 'fffe', 'the ACK is in the sender’s character set');
  const ack = readAck(reply.subarray(2).toString('utf16le'));
  t.is(`${ack.code} ${ack.controlId}`, 'AA U16BOM');
  const file = await eventually(async () => (await readdir(join(r.dir, 'out'))).find((f) => f.startsWith('U16BOM@')));
  t.deepEqual(await readFile(join(r.dir, 'out', file)), bytes);
  await assertStored(t, r, before, ['U16BOM']);
});

test.serial('an inbound ACK is never acknowledged; the connection goes on', async (t) => {
  const r = await rig(t);
  const before = await snapshot(r);
  const raw = await connectRaw(r.port);
  raw.socket.write(frame('MSH|^~\\&|LAB|HOSP|FERRY|HOSP|20260101120000||ACK^A01^ACK|ACK0001|P|2.5\rMSA|AA|MSG00001\r'));
  await sleep(500);
  t.is(raw.received().length, 0, 'no reply to an ACK');
  const good = [await goodSend(t, r.port)];
  // The same connection then sends a real message and gets its own AA (not a late answer to the ACK).
  raw.socket.write(frame(loadMessage('AFTERACK')));
  await eventually(() => (raw.received().includes(FS) ? true : undefined), 5_000, 'the AA');
  const ack = readAck(raw.received().subarray(1, raw.received().indexOf(FS)).toString('latin1'));
  t.is(`${ack.code} ${ack.controlId}`, 'AA AFTERACK');
  good.push('AFTERACK');
  t.regex(logSince(r, before), /"controlId":"ACK0001"[^\n]*"msg":"received an ACK as a message; not acknowledged"/);
  await assertStored(t, r, before, good);
});

test.serial('a sender of nothing but ACKs is closed at idleTimeout: ACKs are not messages and cannot hold a connection open', async (t) => {
  const r = await rig(t);
  const before = await snapshot(r);
  const hog = await connectRaw(r.port);
  // The attack (issue 9, finding 5): an ACK well within every idle timeout, for ever. Each went
  // unanswered and unlogged, yet restarted the idle timer: a client could hold its connections for good.
  let sent = 0;
  const sending = (async () => {
    while (!hog.socket.destroyed) {
      hog.socket.write(frame(`MSH|^~\\&|LAB|HOSP|FERRY|HOSP|20260101120000||ACK^A01^ACK|HOG${++sent}|P|2.5\rMSA|AA|MSG00001\r`));
      await sleep(200);
    }
  })();
  const good = [await goodSend(t, r.port)];
  t.true(await closedWithin(hog, 30_000), 'closed at the idle timeout');
  await sending;
  t.is(hog.received().length, 0, 'no ACK was answered');
  const line = await eventually(
    () => /"code":"MLLP_IDLE_TIMEOUT"[^\n]*"ignored":(\d+)[^\n]*"msg":"closing MLLP connection: no complete message within 1000 ms \(\1 frames ignored since the last message: ACKs, which are not messages\)"/.exec(logSince(r, before)) ?? undefined,
    5_000,
    'the idle line',
  );
  t.log(`${sent} ACKs sent; closed after ${line[1]} of them`);
  good.push(await goodSend(t, r.port));
  await assertStored(t, r, before, good);
});

test.serial('one address holding its maxConnectionsPerAddress shuts out only itself: another address still gets AA; its further connections are refused and logged', async (t) => {
  const r = await rig(t);
  const logFrom = r.engine.output().length;
  // The hog: idle connections, as many as its address may hold (they outlast the test: idleTimeout 5m).
  const hog = await Promise.all(Array.from({ length: HOG_MAX_PER_ADDRESS }, () => connectRaw(r.hogPort)));
  // Accepted in order, after the hog's: every further connection from its address is refused at once.
  const refused = await Promise.all(Array.from({ length: 10 }, () => connectRaw(r.hogPort)));
  t.deepEqual(await Promise.all(refused.map((raw) => closedWithin(raw, 10_000))), Array(10).fill(true));
  t.true(hog.every((raw) => !raw.socket.destroyed), 'the hog keeps what it holds');

  // Another sender, from another address, is answered AA, and its message delivered.
  const other = await connectRaw(r.hogPort, '127.0.0.2');
  other.socket.write(frame(loadMessage('OTHERADDR')));
  await eventually(() => (other.received().includes(FS) ? true : undefined), 10_000, 'the AA');
  const ack = readAck(other.received().subarray(1, other.received().indexOf(FS)).toString('latin1'));
  t.is(`${ack.code} ${ack.controlId}`, 'AA OTHERADDR');
  await eventually(async () => (await readdir(join(r.dir, 'out-hogged')).catch(() => [])).find((f) => f.startsWith('OTHERADDR@')), 15_000, 'the delivery');
  const { body } = await r.engine.api<{ items: Array<{ source: string; controlId: string }> }>('/api/messages?channel=hogged');
  t.deepEqual(body.items.map((m) => m.controlId), ['OTHERADDR']);
  t.regex(body.items[0]!.source, /^mllp 127\.0\.0\.2:\d+$/);

  // Ten refusals: one line naming the address and the limit, then one summing up the other nine.
  const refusals = (): string[] => r.engine.output().slice(logFrom).match(/[^\n]*"code":"MLLP_TOO_MANY_CONNECTIONS"[^\n]*/g) ?? [];
  t.is(refusals().length, 1);
  t.regex(refusals()[0]!, /"channel":"hogged"[^\n]*"address":"127\.0\.0\.1","maxConnectionsPerAddress":2,"msg":"MLLP connection refused: 127\.0\.0\.1 already holds 2 connections, its maximum \(maxConnectionsPerAddress\)"/);
  await eventually(() => refusals()[1], 30_000, 'the summary line at the end of the 10 s interval');
  t.regex(refusals()[1]!, /"refused":9,"addresses":\["127\.0\.0\.1"\],"msg":"MLLP per-address connection limit: 9 more connections refused in the last 10 s \(from 127\.0\.0\.1\)"/);
  t.is(refusals().length, 2);
});
