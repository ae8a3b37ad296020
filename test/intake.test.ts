import type { ExecutionContext } from 'ava';
import test from 'ava';
import type { Queue } from 'bullmq';
import { join } from 'node:path';
import { pino } from 'pino';
import type { ErrorCode } from '../engine/errors.ts';
import { createIntake, type Intake, type IntakeDeps, type IntakeResult } from '../engine/intake.ts';
import { createQueue, inboundQueueName, inboundWork, type InboundJob } from '../engine/pipeline/queues.ts';
import { redisConnectionOptions } from '../engine/redis/connection.ts';
import type { MessageStore } from '../engine/store/contract.ts';
import { openMessageStore } from '../engine/store/message-store.ts';
import { startTestRedis } from './helpers/redis.ts';
import { eventually, tempDir } from './helpers/temp.ts';

interface Rig {
  intake: Intake;
  store: MessageStore;
  queue: Queue<InboundJob>;
}

/** A real message log in a temp folder, a private Redis, the channel's inbound queue and its intake. */
const rig = async (t: ExecutionContext, options: Pick<IntakeDeps, 'maxQueued' | 'dedupe'> = {}): Promise<Rig> => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const store = openMessageStore(join(await tempDir(t), 'messages.db'));
  t.teardown(() => store.close());
  const queue = createQueue<InboundJob>(inboundQueueName('adt'), redisConnectionOptions({ path: redis.path }));
  t.teardown(() => queue.close());
  const intake = createIntake({ channel: 'adt', store, queue, logger: pino({ level: 'silent' }), ...options });
  t.teardown(() => intake.drain());
  return { intake, store, queue };
};

const hl7 = (controlId: string, type = 'ADT^A01^ADT_A01', charset = '', facility = 'HOSP'): string =>
  [
    `MSH|^~\\&|REGSYS|${facility}|FERRY|LAB|20260101120000||${type}|${controlId}|P|2.5||||||${charset}`,
    'PID|1||MRN12345^^^HOSP^MR||DOE^JOHN^A',
  ].join('\r') + '\r';

const mllp = { source: 'mllp 127.0.0.1:40000', requireHl7: true } as const;

/** The queue's jobs, once intake has handed it everything accepted so far (it queues after the ACK). */
const jobsIn = async ({ queue, intake }: Pick<Rig, 'queue' | 'intake'>): Promise<Array<{ id: string | undefined; data: InboundJob }>> => {
  await intake.drain();
  return (await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized'])).map((job) => ({ id: job.id, data: job.data }));
};

/** The message ids the queue's jobs hold. */
const queuedIds = async (rig: Pick<Rig, 'queue' | 'intake'>): Promise<string[]> => (await jobsIn(rig)).flatMap((job) => inboundWork(job.data));

const accepted = (t: ExecutionContext, result: IntakeResult) => {
  if (result.kind !== 'accepted') return t.fail(`expected accepted, got ${result.kind}`);
  return result;
};

test('an accepted message is in the message log and queued, under the job the log records', async (t) => {
  const { intake, store, queue } = await rig(t);
  const raw = Buffer.from(hl7('MSG00001'));
  const result = accepted(t, await intake.accept(raw, mllp))!;
  t.like(result, { duplicate: false, charset: 'UNICODE UTF-8', header: { controlId: 'MSG00001', messageType: 'ADT^A01^ADT_A01' } });
  t.regex(result.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);

  t.like(store.get(result.id), {
    channel: 'adt',
    status: 'received',
    source: 'mllp 127.0.0.1:40000',
    messageType: 'ADT^A01^ADT_A01',
    controlId: 'MSG00001',
    sender: 'REGSYS@HOSP',
    parentId: null,
    charset: 'UNICODE UTF-8',
    text: raw.toString('utf8'),
  });
  t.deepEqual(store.load(result.id)?.raw, raw);
  const [job] = await jobsIn({ queue, intake });
  t.deepEqual(job?.data, { ids: [result.id] });
  t.deepEqual(store.receivedSince('adt', 0, 10), [{ seq: 1, id: result.id, job: job!.id! }]);
});

test('messages accepted in one turn are all stored and queued, in order', async (t) => {
  const { intake, store, queue } = await rig(t);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => intake.accept(Buffer.from(hl7(`C${i}`)), mllp)));
  const ids = results.map((r) => accepted(t, r)!.id);
  t.deepEqual(store.list({}).items.map((m) => m.controlId), Array.from({ length: 20 }, (_, i) => `C${19 - i}`));
  // One transaction, one job: the messages in the order they were accepted.
  t.deepEqual(await jobsIn({ queue, intake }), [{ id: store.receivedSince('adt', 0, 1)[0]!.job!, data: { ids } }]);
});

// Decodable text keeps its charset; undecodable bytes are shown (and answered) as latin1.
const refused: Array<[string, Buffer, ErrorCode, string]> = [
  ['not HL7 at all', Buffer.from('hello, not hl7'), 'HL7_NOT_HL7', 'UNICODE UTF-8'],
  ['an unknown MSH-18', Buffer.from(hl7('C1', 'ADT^A01', 'KLINGON')), 'HL7_UNKNOWN_CHARSET', '8859/1'],
  ['UTF-16 without a byte order mark', Buffer.from(hl7('C1'), 'utf16le'), 'HL7_ENCODING', '8859/1'],
];

for (const [title, raw, code, charset] of refused) {
  test(`requireHl7: ${title} → rejected ${code}, logged as error, not queued`, async (t) => {
    const { intake, store, queue } = await rig(t);
    const result = await intake.accept(raw, mllp);
    if (result.kind !== 'rejected') return t.fail(`expected rejected, got ${result.kind}`);
    t.is(result.error.code, code);
    t.true(result.error.permanent);
    t.is(result.charset, charset);
    const stored = store.get(result.id)!;
    t.like(stored, { status: 'error', charset, source: 'mllp 127.0.0.1:40000' });
    t.true(stored.error!.startsWith(`${code}: `), stored.error!);
    t.deepEqual(Buffer.from(stored.raw, 'base64'), raw);
    t.deepEqual(await jobsIn({ queue, intake }), []);
  });
}

test('an inbound ACK is ignored: nothing stored, nothing queued', async (t) => {
  const { intake, store, queue } = await rig(t);
  const ack = 'MSH|^~\\&|LAB|HOSP|FERRY|HOSP|20260101120000||ACK^A01^ACK|ACK1|P|2.5\rMSA|AA|MSG00001\r';
  const result = await intake.accept(Buffer.from(ack), mllp);
  t.like(result, { kind: 'ignored', header: { messageCode: 'ACK', controlId: 'ACK1' } });
  t.deepEqual(store.list({}).items, []);
  t.deepEqual(await jobsIn({ queue, intake }), []);
});

const handoff = (id: string) => ({ source: 'channel upstream', requireHl7: false, id, parentId: '01HZX5J3Q8M4T2V7N6B9C0D1EF' });

test('a hand-off with a fixed id, replayed while still waiting, is a duplicate with one job', async (t) => {
  const { intake, store, queue } = await rig(t);
  const id = '01HZX5J3Q8M4T2V7N6B9C0D1EF-to-lab-0';
  const first = accepted(t, await intake.accept(Buffer.from(hl7('C1')), handoff(id)))!;
  const second = accepted(t, await intake.accept(Buffer.from(hl7('C1')), handoff(id)))!;
  t.like(first, { id, duplicate: false });
  t.like(second, { id, duplicate: true });
  t.like(store.get(id), { parentId: '01HZX5J3Q8M4T2V7N6B9C0D1EF', source: 'channel upstream', status: 'received' });
  t.is(store.list({}).items.length, 1);
  t.deepEqual(await queuedIds({ queue, intake }), [id]);
});

test('a hand-off replayed after its first copy was processed is a duplicate and not queued again', async (t) => {
  const { intake, store, queue } = await rig(t);
  const id = '01HZX5J3Q8M4T2V7N6B9C0D1EF-to-lab-1';
  accepted(t, await intake.accept(Buffer.from(hl7('C1')), handoff(id)));
  // The first copy was picked up and transformed (its job is gone: removeOnComplete).
  await queue.obliterate({ force: true });
  await store.recordTransform(id, { status: 'filtered', logs: '' });
  const replay = accepted(t, await intake.accept(Buffer.from(hl7('C1')), handoff(id)))!;
  t.like(replay, { id, duplicate: true });
  t.is(store.get(id)?.status, 'filtered');
  t.deepEqual(await jobsIn({ queue, intake }), []);
});

test('a hand-off whose first copy was stored but never queued is queued by the replay', async (t) => {
  const { intake, store, queue } = await rig(t);
  const id = '01HZX5J3Q8M4T2V7N6B9C0D1EF-to-lab-2';
  accepted(t, await intake.accept(Buffer.from(hl7('C1')), handoff(id)));
  await queue.obliterate({ force: true }); // as if Redis lost the job
  const replay = accepted(t, await intake.accept(Buffer.from(hl7('C1')), handoff(id)))!;
  t.like(replay, { id, duplicate: true });
  t.deepEqual(await queuedIds({ queue, intake }), [id]);
});

const notHl7Allowed: Array<[string, Buffer, string, string]> = [
  ['a UTF-8 JSON body', Buffer.from('{"patient":"Dupré","mrn":"MRN12345"}', 'utf8'), 'UNICODE UTF-8', '{"patient":"Dupré","mrn":"MRN12345"}'],
  ['a latin1 JSON body (not valid UTF-8)', Buffer.from('{"patient":"Dupré"}', 'latin1'), '8859/1', '{"patient":"Dupré"}'],
  [
    'HL7 with an unknown MSH-18: kept, shown as latin1',
    Buffer.from(hl7('C7', 'ADT^A01', 'KLINGON')),
    '8859/1',
    hl7('C7', 'ADT^A01', 'KLINGON'),
  ],
];

for (const [title, raw, charset, text] of notHl7Allowed) {
  test(`requireHl7 false: ${title} is accepted and queued`, async (t) => {
    const { intake, store, queue } = await rig(t);
    const result = accepted(t, await intake.accept(raw, { source: 'channel upstream', requireHl7: false }))!;
    t.is(result.charset, charset);
    t.like(store.get(result.id), { status: 'received', charset, text });
    t.deepEqual(store.load(result.id)?.raw, raw);
    t.deepEqual(await queuedIds({ queue, intake }), [result.id]);
  });
}

test('a JSON body has no HL7 header facts', async (t) => {
  const { intake, store } = await rig(t);
  const result = accepted(t, await intake.accept(Buffer.from('{"a":1}'), { source: 'channel upstream', requireHl7: false }))!;
  t.is(result.header, undefined);
  t.like(store.get(result.id), { messageType: null, controlId: null, sender: null });
});

test('a message log that cannot be written → failed (COMMIT_FAILED), nothing queued', async (t) => {
  const { intake, store, queue } = await rig(t);
  await store.close();
  const result = await intake.accept(Buffer.from(hl7('C1')), mllp);
  if (result.kind !== 'failed') return t.fail(`expected failed, got ${result.kind}`);
  t.is(result.error.code, 'COMMIT_FAILED');
  t.false(result.error.permanent);
  t.is(result.header?.controlId, 'C1');
  t.deepEqual(await jobsIn({ queue, intake }), []);
});

test('a queue that does not answer does not hold the ACK: accepted once in the message log, queued when the queue answers', async (t) => {
  const store = openMessageStore(join(await tempDir(t), 'messages.db'));
  t.teardown(() => store.close());
  // A Redis that refuses the first adds, then takes them.
  const added: Array<{ data: InboundJob; jobId: string }> = [];
  let refusals = 2;
  const flaky = {
    add: async (_name: string, data: InboundJob, opts: { jobId: string }) => {
      if (refusals-- > 0) throw new Error('connect ECONNREFUSED');
      added.push({ data, jobId: opts.jobId });
    },
  } as unknown as Queue<InboundJob>;
  const intake = createIntake({ channel: 'adt', store, queue: flaky, logger: pino({ level: 'silent' }) });
  const result = accepted(t, await intake.accept(Buffer.from(hl7('C9')), mllp))!;
  t.is(store.get(result.id)?.status, 'received');
  const [job] = await eventually(() => (added.length > 0 ? added : undefined), 30_000, 'the job added once the queue answers');
  t.deepEqual(job!.data, { ids: [result.id] });
  // The message log names the job, for recovery.
  t.is(store.load(result.id)?.job, job!.jobId);
});

test('maxQueued: at the limit the next message is refused (QUEUE_FULL) and not stored; accepted again once it drains', async (t) => {
  const { intake, store, queue } = await rig(t, { maxQueued: 3 });
  const ids = [];
  for (const n of [1, 2, 3]) ids.push(accepted(t, await intake.accept(Buffer.from(hl7(`F${n}`)), mllp))!.id);
  const refused = await intake.accept(Buffer.from(hl7('F4')), mllp);
  if (refused.kind !== 'failed') return t.fail(`expected failed, got ${refused.kind}`);
  t.is(refused.error.code, 'QUEUE_FULL');
  t.false(refused.error.permanent);
  t.is(refused.header?.controlId, 'F4');
  t.is(store.list({}).items.length, 3);
  t.is((await queuedIds({ queue, intake })).length, 3);
  t.is(store.unfinished('adt'), 3);

  // One finishes: after the depth is read again (at most 100 ms later) there is room for one more.
  await store.recordTransform(ids[0]!, { status: 'filtered', logs: '' });
  t.is(store.unfinished('adt'), 2);
  await new Promise((resolve) => setTimeout(resolve, 120));
  accepted(t, await intake.accept(Buffer.from(hl7('F4')), mllp));
  const full = await intake.accept(Buffer.from(hl7('F5')), mllp);
  t.like(full, { kind: 'failed', error: { code: 'QUEUE_FULL' } });
});

test('dedupe: same sender and MSH-10 within the window → accepted as a duplicate of the first, logged filtered, one job', async (t) => {
  const { intake, store, queue } = await rig(t, { dedupe: { windowMs: 60_000 } });
  const first = accepted(t, await intake.accept(Buffer.from(hl7('D1')), mllp))!;
  const again = accepted(t, await intake.accept(Buffer.from(hl7('D1')), mllp))!;
  t.like(first, { duplicate: false, duplicateOf: undefined });
  t.like(again, { duplicate: true, duplicateOf: first.id, header: { controlId: 'D1' } });
  t.not(again.id, first.id);
  t.like(store.get(again.id), { status: 'filtered', error: `MESSAGE_DUPLICATE: duplicate of ${first.id} (same sender and MSH-10 within 1m)` });
  t.is(store.get(first.id)?.status, 'received');

  // Another facility (MSH-4), or another control id, is another message.
  const otherFacility = accepted(t, await intake.accept(Buffer.from(hl7('D1', 'ADT^A01^ADT_A01', '', 'CLINIC')), mllp))!;
  const otherId = accepted(t, await intake.accept(Buffer.from(hl7('D2')), mllp))!;
  t.like(otherFacility, { duplicate: false });
  t.like(otherId, { duplicate: false });
  t.deepEqual((await queuedIds({ queue, intake })).sort(), [first.id, otherFacility.id, otherId.id].sort());
});

test('dedupe: copies in one batch are caught too, and the window expires', async (t) => {
  const { intake, queue } = await rig(t, { dedupe: { windowMs: 300 } });
  const results = await Promise.all([1, 2, 3].map(() => intake.accept(Buffer.from(hl7('B1')), mllp)));
  const [first, ...copies] = results.map((r) => accepted(t, r)!);
  for (const copy of copies) t.is(copy.duplicateOf, first!.id);
  await new Promise((resolve) => setTimeout(resolve, 400));
  const later = accepted(t, await intake.accept(Buffer.from(hl7('B1')), mllp))!;
  t.like(later, { duplicate: false });
  t.deepEqual((await queuedIds({ queue, intake })).sort(), [first!.id, later.id].sort());
});
