import type { ExecutionContext } from 'ava';
import test from 'ava';
import { Database, type SqliteDatabase } from '../../engine/store/sqlite.ts';
import { join } from 'node:path';
import { FerryError } from '../../engine/errors.ts';
import { newMessageId } from '../../engine/wire/ids.ts';
import type { Status } from '../../engine/message.ts';
import { toFtsQuery } from '../../engine/store/message-list.ts';
import type { MessageStore, ReceivedMessage } from '../../engine/store/contract.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { SCHEMA_VERSION } from '../../engine/store/schema.ts';
import { tempDir } from '../helpers/temp.ts';

const open = async (t: ExecutionContext): Promise<{ store: MessageStore; file: string }> => {
  const file = join(await tempDir(t), 'data', 'messages.db');
  const store = openMessageStore(file);
  t.teardown(() => store.close());
  return { store, file };
};

/** A second, read-only connection to look at rows the store's API does not show (search, stages). */
const peek = (t: ExecutionContext, file: string): SqliteDatabase => {
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  return db;
};

const hl7 = (controlId: string, pid = 'PID|1||MRN12345^^^HOSP^MR||DOE^JOHN^A||19800101|M'): string =>
  [`MSH|^~\\&|REGSYS|HOSP|FERRY|LAB|20260101120000||ADT^A01^ADT_A01|${controlId}|P|2.5`, pid].join('\r') + '\r';

const message = (overrides: Partial<ReceivedMessage> = {}): ReceivedMessage => {
  const text = overrides.text ?? hl7(overrides.controlId ?? 'C1');
  return {
    id: newMessageId(),
    channel: 'adt',
    source: 'mllp 127.0.0.1:5000',
    raw: Buffer.from(text, 'latin1'),
    text,
    charset: '8859/1',
    messageType: 'ADT^A01^ADT_A01',
    controlId: 'C1',
    sender: 'REGSYS@HOSP',
    ...overrides,
  };
};

const transformed = (destinations: string[], outputs = ['out']) =>
  ({ status: 'transformed', outputs: outputs.map((o) => Buffer.from(o, 'latin1')), destinations, logs: '' }) as const;

test('receive records a message once; a second receive of the same id is not fresh', async (t) => {
  const { store } = await open(t);
  const m = message({ receivedAt: Date.UTC(2026, 0, 1, 12) });
  t.deepEqual(await store.receive(m), { fresh: true });
  t.deepEqual(await store.receive({ ...m, channel: 'other', text: 'changed' }), { fresh: false });
  const detail = store.get(m.id)!;
  t.like(detail, {
    id: m.id,
    channel: 'adt',
    status: 'received',
    receivedAt: '2026-01-01T12:00:00.000Z',
    source: 'mllp 127.0.0.1:5000',
    parentId: null,
    messageType: 'ADT^A01^ADT_A01',
    controlId: 'C1',
    sender: 'REGSYS@HOSP',
    error: null,
    charset: '8859/1',
    text: m.text,
    raw: m.raw.toString('base64'),
    outputs: [],
    stages: [],
  });
  t.is(store.list({}).items.length, 1);
  t.deepEqual(store.load(m.id), {
    id: m.id,
    channel: 'adt',
    raw: m.raw,
    charset: '8859/1',
    status: 'received',
    controlId: 'C1',
    receivedAt: Date.UTC(2026, 0, 1, 12),
    job: null,
  });
});

test('reject records the message as error with its reason, never as received', async (t) => {
  const { store } = await open(t);
  const m = message({ raw: Buffer.from('hello, not hl7'), text: 'hello, not hl7', messageType: null, controlId: null });
  await store.reject(m, 'HL7_NOT_HL7: the message does not start with an MSH segment');
  t.like(store.get(m.id), {
    status: 'error',
    error: 'HL7_NOT_HL7: the message does not start with an MSH segment',
    text: 'hello, not hl7',
    stages: [],
  });
  t.is(store.counts().get('adt')?.error, 1);
});

test('recordTransform: transformed keeps outputs and queues one stage per destination and output', async (t) => {
  const { store } = await open(t);
  const m = message();
  await store.receive(m);
  await store.recordTransform(m.id, {
    status: 'transformed',
    outputs: [Buffer.from('first'), Buffer.from('second')],
    destinations: ['archive', 'lab'],
    logs: 'info mrn MRN12345',
  });
  const detail = store.get(m.id)!;
  t.is(detail.status, 'queued');
  t.deepEqual(detail.outputs, ['first', 'second']);
  t.deepEqual(
    detail.stages.map((s) => [s.stage, s.status, s.content, s.error, s.attempts]),
    [
      ['archive#0', 'queued', null, null, 0],
      ['archive#1', 'queued', null, null, 0],
      ['lab#0', 'queued', null, null, 0],
      ['lab#1', 'queued', null, null, 0],
      ['transform', 'transformed', 'info mrn MRN12345', null, 1],
    ],
  );
  t.deepEqual(store.output(m.id, 1), Buffer.from('second'));
  t.is(store.output(m.id, 2), undefined);
  t.is(store.stageStatus(m.id, 'lab#1'), 'queued');
  t.is(store.stageStatus(m.id, 'lab#2'), undefined);
});

const transformOutcomes: Array<[string, Parameters<MessageStore['recordTransform']>[1], Status, string | null]> = [
  ['filtered', { status: 'filtered', logs: '' }, 'filtered', null],
  ['error', { status: 'error', error: 'SCRIPT_THREW: boom', logs: 'info before the throw' }, 'error', 'SCRIPT_THREW: boom'],
  ['transformed without destinations', transformed([]), 'transformed', null],
];

for (const [title, record, status, error] of transformOutcomes) {
  test(`recordTransform: ${title} → message ${status}`, async (t) => {
    const { store } = await open(t);
    const m = message();
    await store.receive(m);
    await store.recordTransform(m.id, record);
    const detail = store.get(m.id)!;
    t.is(detail.status, status);
    t.is(detail.error, error);
    t.deepEqual(
      detail.stages.map((s) => [s.stage, s.status, s.error]),
      [['transform', record.status, error]],
    );
    t.is(store.stageStatus(m.id, 'transform'), record.status);
  });
}

// Deliveries to 2 destinations × 1 output, applied in order; the message status after each step.
const deliveries: Array<[string, Array<[string, 'queued' | 'sent' | 'error', string | null]>, Array<[Status, string | null]>]> = [
  [
    'sent only once every destination stage is sent',
    [
      ['archive#0', 'sent', null],
      ['lab#0', 'sent', null],
    ],
    [
      ['queued', null],
      ['sent', null],
    ],
  ],
  [
    'a retrying stage (queued with an error) keeps the message queued',
    [
      ['lab#0', 'queued', 'ECONNREFUSED'],
      ['archive#0', 'sent', null],
      ['lab#0', 'sent', null],
    ],
    [
      ['queued', null],
      ['queued', null],
      ['sent', null],
    ],
  ],
  [
    'any error stage makes the message error, whatever the others do',
    [
      ['archive#0', 'error', 'FILE_WRITE_FAILED: disk full'],
      ['lab#0', 'sent', null],
    ],
    [
      ['error', 'FILE_WRITE_FAILED: disk full'],
      ['error', 'FILE_WRITE_FAILED: disk full'],
    ],
  ],
  [
    'an error later resent successfully clears the message error',
    [
      ['archive#0', 'error', 'DESTINATION_GAVE_UP: after 3 attempts'],
      ['archive#0', 'sent', null],
      ['lab#0', 'sent', null],
    ],
    [
      ['error', 'DESTINATION_GAVE_UP: after 3 attempts'],
      ['queued', null],
      ['sent', null],
    ],
  ],
];

for (const [title, steps, expected] of deliveries) {
  test(`recordDelivery: ${title}`, async (t) => {
    const { store } = await open(t);
    const m = message();
    await store.receive(m);
    await store.recordTransform(m.id, transformed(['archive', 'lab']));
    const seen: Array<[Status, string | null]> = [];
    for (const [i, [stage, status, error]] of steps.entries()) {
      await store.recordDelivery(m.id, stage, { status, attempts: i + 1, error, response: status === 'sent' ? `wrote ${stage}` : null });
      const detail = store.get(m.id)!;
      seen.push([detail.status, detail.error]);
    }
    t.deepEqual(seen, expected);
    const [lastStage, lastStatus, lastError] = steps[steps.length - 1];
    t.like(
      store.get(m.id)!.stages.find((s) => s.stage === lastStage),
      { status: lastStatus, error: lastError, attempts: steps.length, content: lastStatus === 'sent' ? `wrote ${lastStage}` : null },
    );
  });
}

test('a replayed transform does not reset a stage that was already sent', async (t) => {
  const { store } = await open(t);
  const m = message();
  await store.receive(m);
  await store.recordTransform(m.id, transformed(['archive', 'lab']));
  await store.recordDelivery(m.id, 'archive#0', { status: 'sent', attempts: 1, response: 'wrote a' });
  await store.recordTransform(m.id, transformed(['archive', 'lab']));
  t.is(store.stageStatus(m.id, 'archive#0'), 'sent');
  t.is(store.stageStatus(m.id, 'lab#0'), 'queued');
  t.like(store.get(m.id)!.stages.find((s) => s.stage === 'archive#0'), { content: 'wrote a', attempts: 1 });
  t.is(store.get(m.id)!.status, 'queued');
  await store.recordDelivery(m.id, 'lab#0', { status: 'sent', attempts: 1 });
  t.is(store.get(m.id)!.status, 'sent');
});

test('recordError marks a message error outside any stage', async (t) => {
  const { store } = await open(t);
  const m = message();
  await store.receive(m);
  await store.recordError(m.id, 'COMMIT_FAILED: not queued');
  t.like(store.get(m.id), { status: 'error', error: 'COMMIT_FAILED: not queued', stages: [] });
  t.deepEqual(
    { ...store.counts().get('adt') },
    { total: 1, received: 0, filtered: 0, transformed: 0, queued: 0, sent: 0, error: 1 },
  );
});

test('counts() follows messages across status moves and purge', async (t) => {
  const { store } = await open(t);
  const old = Date.now() - 10 * 86_400_000;
  const adt = [message({ receivedAt: old }), message({ receivedAt: old }), message({ receivedAt: old }), message()];
  const lab = [message({ channel: 'lab', receivedAt: old })];
  for (const m of [...adt, ...lab]) await store.receive(m);
  const zero = { total: 0, received: 0, filtered: 0, transformed: 0, queued: 0, sent: 0, error: 0 };
  const snapshot = () => Object.fromEntries([...store.counts()].map(([channel, c]) => [channel, { ...c }]));

  t.deepEqual(snapshot(), { adt: { ...zero, total: 4, received: 4 }, lab: { ...zero, total: 1, received: 1 } });

  await store.recordTransform(adt[0].id, { status: 'filtered', logs: '' });
  await store.recordTransform(adt[1].id, transformed(['archive']));
  await store.recordTransform(adt[2].id, transformed(['archive']));
  await store.recordDelivery(adt[2].id, 'archive#0', { status: 'sent', attempts: 1 });
  await store.recordTransform(lab[0].id, { status: 'error', error: 'SCRIPT_THREW: x', logs: '' });
  // Re-recording the same status is no move: counts stay put.
  await store.recordDelivery(adt[1].id, 'archive#0', { status: 'queued', attempts: 1, error: 'retrying' });
  t.deepEqual(snapshot(), {
    adt: { ...zero, total: 4, received: 1, filtered: 1, queued: 1, sent: 1 },
    lab: { ...zero, total: 1, error: 1 },
  });

  t.is(store.purge(Date.now() - 86_400_000), 3, 'the old filtered, sent and error messages');
  t.deepEqual(snapshot(), {
    adt: { ...zero, total: 2, received: 1, queued: 1 },
    lab: zero,
  });
});

test('list() filters by channel, status and time, newest first', async (t) => {
  const { store } = await open(t);
  const at = (day: number): number => Date.UTC(2026, 0, day);
  const rows: Array<[string, number, 'sent' | 'received']> = [
    ['adt', at(1), 'sent'],
    ['adt', at(2), 'received'],
    ['lab', at(3), 'sent'],
    ['adt', at(4), 'sent'],
    ['lab', at(5), 'received'],
  ];
  const ids: string[] = [];
  for (const [channel, receivedAt, status] of rows) {
    const m = message({ channel, receivedAt });
    ids.push(m.id);
    await store.receive(m);
    if (status === 'sent') {
      await store.recordTransform(m.id, transformed(['d']));
      await store.recordDelivery(m.id, 'd#0', { status: 'sent', attempts: 1 });
    }
  }
  const queries: Array<[string, Parameters<MessageStore['list']>[0], number[]]> = [
    ['everything', {}, [4, 3, 2, 1, 0]],
    ['one channel', { channel: 'adt' }, [3, 1, 0]],
    ['one status', { status: 'sent' }, [3, 2, 0]],
    ['channel and status', { channel: 'lab', status: 'received' }, [4]],
    ['from (inclusive)', { from: at(3) }, [4, 3, 2]],
    ['to (inclusive)', { to: at(2) }, [1, 0]],
    ['from and to', { from: at(2), to: at(4) }, [3, 2, 1]],
    ['nothing matches', { channel: 'nope' }, []],
  ];
  for (const [title, query, expected] of queries) {
    const { items, nextCursor } = store.list(query);
    t.deepEqual(items.map((m) => m.id), expected.map((i) => ids[i]), title);
    t.is(nextCursor, null, title);
  }
  t.like(store.list({ channel: 'lab', status: 'received' }).items[0], {
    channel: 'lab',
    status: 'received',
    receivedAt: '2026-01-05T00:00:00.000Z',
    controlId: 'C1',
  });
});

test('list() pages 120 messages by cursor: 50, 50, 20, no overlap, newest first', async (t) => {
  const { store } = await open(t);
  const ids = Array.from({ length: 120 }, () => newMessageId());
  await Promise.all(ids.map((id) => store.receive(message({ id }))));
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = store.list({ limit: 50, cursor });
    pages.push(page.items.map((m) => m.id));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  t.deepEqual(pages.map((p) => p.length), [50, 50, 20]);
  t.deepEqual(pages.flat(), [...ids].reverse());
  t.is(new Set(pages.flat()).size, 120);
});

test('list() keeps limit within 1..500', async (t) => {
  const { store } = await open(t);
  await Promise.all(Array.from({ length: 3 }, () => store.receive(message())));
  t.is(store.list({ limit: 0 }).items.length, 1);
  t.is(store.list({ limit: -5 }).items.length, 1);
  t.is(store.list({ limit: 100_000 }).items.length, 3);
  t.is(store.list({}).items.length, 3);
});

test('list() full-text search over received content', async (t) => {
  const { store } = await open(t);
  const texts = [
    hl7('CTRL0001', 'PID|1||MRN12345^^^HOSP^MR||DOE^JOHN^A||19800101|M'),
    hl7('CTRL0002', 'PID|1||MRN67890^^^HOSP^MR||DOEHRING^ANNA||19750202|F'),
    hl7('CTRL0003', 'PID|1||MRN55555^^^HOSP^MR||SMITH^JANE||19900303|F'),
  ];
  const ids: string[] = [];
  for (const [i, text] of texts.entries()) {
    const m = message({ text, raw: Buffer.from(text, 'latin1'), controlId: `CTRL000${i + 1}` });
    ids.push(m.id);
    await store.receive(m);
  }
  const searches: Array<[string, number[]]> = [
    ['MRN12345', [0]],
    ['mrn12345', [0]],
    ['JANE', [2]],
    ['DOE', [0]],
    ['DOE*', [1, 0]],
    ['doe* john', [0]],
    ['CTRL0002', [1]],
    ['HOSP', [2, 1, 0]],
    ['MRN12345 SMITH', []],
    ['MRN', []],
    ['NOBODY', []],
  ];
  for (const [q, expected] of searches) {
    t.deepEqual(store.list({ q }).items.map((m) => m.id), expected.map((i) => ids[i]), `q=${q}`);
  }
  t.deepEqual(store.list({ q: 'HOSP', channel: 'adt', limit: 2 }).items.map((m) => m.id), [ids[2], ids[1]]);
});

const hostileQueries = ['"', '"MRN12345', 'DOE" OR "x', 'NEAR(a b)', 'a AND', 'OR', 'NOT x', '(', '*', '**', '^^^', 'col:val', '-x', '+', "it's", 'a*b', '   '];

test('FTS syntax in q never throws and is taken literally', async (t) => {
  const { store } = await open(t);
  await store.receive(message());
  for (const q of hostileQueries) {
    t.notThrows(() => store.list({ q }), `q=${JSON.stringify(q)}`);
  }
  // Quoted, MRN12345 still matches: the quote is part of the term, not syntax.
  t.is(store.list({ q: '"MRN12345' }).items.length, 1);
  t.is(store.list({ q: 'NOT MRN12345' }).items.length, 0, 'NOT is a word to look for, not an operator');
});

const ftsQueries: Array<[string, string | undefined]> = [
  ['MRN12345', '"MRN12345"'],
  ['DOE*  john', '"DOE"* AND "john"'],
  ['say "hi"', '"say" AND """hi"""'],
  ['*', undefined],
  ['   ', undefined],
];

for (const [q, expected] of ftsQueries) {
  test(`toFtsQuery(${JSON.stringify(q)})`, (t) => {
    t.is(toFtsQuery(q), expected);
  });
}

test('get() decodes text and outputs in the stored charset and lists stages', async (t) => {
  const { store } = await open(t);
  const text = hl7('C9', 'PID|1||MRN1^^^HOSP^MR||DUPRÉ^ÉLISE').replace('2.5', '2.5||||||8859/1');
  const raw = Buffer.from(text, 'latin1');
  t.is(raw.includes(Buffer.from('É', 'utf8')), false, 'the stored bytes are latin1, not UTF-8');
  const m = message({ text, raw, charset: '8859/1' });
  await store.receive(m);
  await store.recordTransform(m.id, {
    status: 'transformed',
    outputs: [Buffer.from('PID|1||MRN1||DUPRÉ^ÉLISE\r', 'latin1')],
    destinations: ['archive'],
    logs: '',
  });
  await store.recordDelivery(m.id, 'archive#0', { status: 'sent', attempts: 2, response: 'wrote /out/C9.hl7' });
  const detail = store.get(m.id)!;
  t.is(detail.text, text);
  t.true(detail.text.includes('DUPRÉ^ÉLISE'));
  t.deepEqual(Buffer.from(detail.raw, 'base64'), raw);
  t.deepEqual(detail.outputs, ['PID|1||MRN1||DUPRÉ^ÉLISE\r']);
  // Stages come in the order they last changed; both may share a millisecond, so compare by name.
  t.deepEqual(
    detail.stages.map((s) => [s.stage, s.status, s.content, s.attempts]).sort(),
    [
      ['archive#0', 'sent', 'wrote /out/C9.hl7', 2],
      ['transform', 'transformed', null, 1],
    ],
  );
  t.regex(detail.stages[0].updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.is(store.get('no-such-id'), undefined);
  t.is(store.load('no-such-id'), undefined);
});

test('purge() removes only finished old messages, with their stages, outputs and search rows', async (t) => {
  const { store, file } = await open(t);
  const old = Date.now() - 30 * 86_400_000;
  const make = async (word: string, receivedAt: number, end: 'sent' | 'filtered' | 'error' | 'queued' | 'received') => {
    const text = hl7(word, `PID|1||${word}^^^HOSP^MR`);
    const m = message({ text, raw: Buffer.from(text, 'latin1'), receivedAt });
    await store.receive(m);
    if (end === 'filtered') await store.recordTransform(m.id, { status: 'filtered', logs: '' });
    if (end === 'error') await store.recordTransform(m.id, { status: 'error', error: 'x', logs: '' });
    if (end === 'sent' || end === 'queued') await store.recordTransform(m.id, transformed(['d']));
    if (end === 'sent') await store.recordDelivery(m.id, 'd#0', { status: 'sent', attempts: 1 });
    return m.id;
  };
  const ids = {
    oldSent: await make('OLDSENT', old, 'sent'),
    oldFiltered: await make('OLDFILTERED', old, 'filtered'),
    oldError: await make('OLDERROR', old, 'error'),
    oldQueued: await make('OLDQUEUED', old, 'queued'),
    oldReceived: await make('OLDRECEIVED', old, 'received'),
    newSent: await make('NEWSENT', Date.now(), 'sent'),
  };
  t.is(store.purge(Date.now() - 86_400_000), 3);
  t.is(store.purge(Date.now() - 86_400_000), 0, 'a second sweep finds nothing');
  t.deepEqual(store.list({}).items.map((m) => m.id).sort(), [ids.oldQueued, ids.oldReceived, ids.newSent].sort());
  for (const id of [ids.oldSent, ids.oldFiltered, ids.oldError]) t.is(store.get(id), undefined);

  const db = peek(t, file);
  const count = (sql: string, ...params: string[]): number => (db.prepare(sql).get(...params) as { n: number }).n;
  for (const word of ['OLDSENT', 'OLDFILTERED', 'OLDERROR']) {
    t.is(count('SELECT count(*) AS n FROM message_search WHERE message_search MATCH ?', `"${word}"`), 0, word);
  }
  t.is(count('SELECT count(*) AS n FROM message_search WHERE message_search MATCH ?', '"OLDQUEUED"'), 1);
  t.is(count('SELECT count(*) AS n FROM message_search'), 3);
  t.is(count('SELECT count(*) AS n FROM stages WHERE message_id IN (?, ?, ?)', ids.oldSent, ids.oldFiltered, ids.oldError), 0);
  t.is(count('SELECT count(*) AS n FROM outputs WHERE message_id = ?', ids.oldSent), 0);
  t.is(count('SELECT count(*) AS n FROM outputs WHERE message_id = ?', ids.oldQueued), 1);
});

test('a purged message leaves no search row behind for a message that reuses its seq', async (t) => {
  const { store } = await open(t);
  const text = hl7('GONE', 'PID|1||GONEMRN^^^HOSP^MR');
  const gone = message({ text, raw: Buffer.from(text, 'latin1'), receivedAt: 1000 });
  await store.receive(gone);
  await store.recordTransform(gone.id, { status: 'filtered', logs: '' });
  t.is(store.purge(2000), 1);
  // The table is empty again, so SQLite hands the next message the same seq (rowid).
  const next = message();
  await store.receive(next);
  t.deepEqual(store.list({ q: 'GONEMRN' }).items, []);
  t.deepEqual(store.list({ q: 'MRN12345' }).items.map((m) => m.id), [next.id]);
});

test('purge() removes more than one batch of 1000', async (t) => {
  const { store } = await open(t);
  const ids = Array.from({ length: 2100 }, () => newMessageId());
  await Promise.all(ids.map((id) => store.receive(message({ id, receivedAt: 1000 }))));
  await Promise.all(ids.map((id) => store.recordTransform(id, { status: 'filtered', logs: '' })));
  t.is(store.purge(2000), 2100);
  t.deepEqual(store.list({}).items, []);
  t.is(store.counts().get('adt')?.total, 0);
});

test('data survives close and reopen', async (t) => {
  const file = join(await tempDir(t), 'messages.db');
  const first = openMessageStore(file);
  const m = message();
  await first.receive(m);
  await first.recordTransform(m.id, transformed(['archive'], ['hello']));
  await first.close();
  await first.close(); // safe twice
  await t.throwsAsync(first.receive(message()), { instanceOf: FerryError, message: /closed/ });

  const second = openMessageStore(file);
  t.teardown(() => second.close());
  t.like(second.get(m.id), { status: 'queued', text: m.text, outputs: ['hello'] });
  t.is(second.counts().get('adt')?.queued, 1);
  t.deepEqual(second.list({ q: 'MRN12345' }).items.map((x) => x.id), [m.id]);
  t.false((await second.receive(m)).fresh, 'the id is still known after reopening');
});

test('the log carries its schema version: stamped at open, and a log from a newer Ferry is refused untouched', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'messages.db');
  await openMessageStore(file).close();
  const version = (path: string): number => {
    const db = new Database(path, { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  };
  t.is(version(file), SCHEMA_VERSION);

  const newer = join(dir, 'newer.db');
  const db = new Database(newer);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  const error = t.throws(() => openMessageStore(newer), { instanceOf: FerryError });
  t.is(error!.code, 'STORE_FAILED');
  t.is(error!.message, `cannot open the message log ${newer}: it was written by a newer Ferry (schema version ${SCHEMA_VERSION + 1}; this one knows ${SCHEMA_VERSION})`);
  const untouched = new Database(newer, { readonly: true });
  t.teardown(() => untouched.close());
  t.deepEqual(untouched.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all(), [], 'no table was created in it');
});

test('writes made in one turn commit together, in call order, before any promise resolves', async (t) => {
  const { store } = await open(t);
  const ms = Array.from({ length: 200 }, () => message());
  const pending = ms.map((m) => store.receive(m));
  t.is(store.load(ms[0].id), undefined, 'nothing is written before the turn ends');
  await pending[0];
  // When the first caller hears "committed", its whole batch already is.
  t.true(ms.every((m) => store.load(m.id) !== undefined));
  t.deepEqual(await Promise.all(pending), ms.map(() => ({ fresh: true })));
  t.deepEqual(store.list({ limit: 500 }).items.map((m) => m.id), ms.map((m) => m.id).reverse());
});

test('one failing write in a batch fails only its caller', async (t) => {
  const { store } = await open(t);
  const good = [message(), message()];
  // NOT NULL raw: this write fails inside the batch's transaction.
  const bad = message({ raw: null as unknown as Buffer });
  const settled = await Promise.allSettled([store.receive(good[0]), store.receive(bad), store.receive(good[1])]);
  t.deepEqual(settled[0], { status: 'fulfilled', value: { fresh: true } });
  t.deepEqual(settled[2], { status: 'fulfilled', value: { fresh: true } });
  t.is(settled[1].status, 'rejected');
  t.like((settled[1] as PromiseRejectedResult).reason, { code: 'STORE_FAILED', permanent: false });
  t.deepEqual(store.list({}).items.map((m) => m.id), [good[1].id, good[0].id]);
  t.deepEqual(store.list({ q: 'MRN12345' }).items.length, 2);
});

test('flush() resolves once pending writes are committed', async (t) => {
  const { store } = await open(t);
  const m = message();
  void store.receive(m);
  await store.flush();
  t.is(store.load(m.id)?.status, 'received');
});

test('opening a store where the file cannot be created fails with STORE_FAILED', async (t) => {
  const dir = await tempDir(t);
  // The path is a directory: SQLite cannot open it as a database.
  const error = t.throws(() => openMessageStore(dir));
  t.like(error, { code: 'STORE_FAILED' });
});

test('queuedDeliveries: the queued deliveries to one destination of unfinished messages, in arrival then output order, paged by delivery', async (t) => {
  const { store } = await open(t);
  const [a, b, c, d, other] = [message(), message(), message(), message(), message({ channel: 'lab' })];
  for (const m of [a, b, c, d, other]) await store.receive(m);
  // Twelve outputs: output order is numeric (2 before 10), not the order of the stage names.
  const twelve = Array.from({ length: 12 }, (_, i) => `o${i}`);
  await store.recordTransform(a.id, transformed(['archive', 'lab'], twelve));
  await store.recordDelivery(a.id, 'archive#3', { status: 'sent', attempts: 1 });
  await store.recordTransform(b.id, transformed(['archive', 'lab']));
  await store.recordDelivery(b.id, 'archive#0', { status: 'sent', attempts: 1 }); // lab#0 still queued
  await store.recordTransform(c.id, { status: 'filtered', logs: '' }); // finished: nothing to deliver
  // d is only received: the inbound recovery's, not this one's.
  await store.recordTransform(other.id, transformed(['files']));

  const pairs = (page: Array<{ id: string; output: number }>) => page.map((r) => [r.id === a.id ? 'a' : r.id === b.id ? 'b' : r.id, r.output]);
  const archiveOutputs = [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11];
  t.deepEqual(pairs(store.queuedDeliveries('adt', 'archive', undefined, 100)), archiveOutputs.map((o) => ['a', o]));
  t.deepEqual(pairs(store.queuedDeliveries('adt', 'lab', undefined, 100)), [...twelve.map((_, o) => ['a', o]), ['b', 0]]);
  t.deepEqual(pairs(store.queuedDeliveries('lab', 'files', undefined, 100)), [[other.id, 0]]);

  // Pages of five end inside a message and go on from there, into the next message.
  const pages: Array<Array<[string | number, number]>> = [];
  for (let after: { seq: number; id: string; output: number } | undefined; ; ) {
    const page = store.queuedDeliveries('adt', 'lab', after, 5);
    if (page.length === 0) break;
    pages.push(pairs(page) as Array<[string, number]>);
    after = page.at(-1);
  }
  t.deepEqual(pages, [
    [0, 1, 2, 3, 4].map((o) => ['a', o]),
    [5, 6, 7, 8, 9].map((o) => ['a', o]),
    [['a', 10], ['a', 11], ['b', 0]],
  ]);

  const outputsOf = (rows: Array<{ output: number }>) => rows.map((r) => r.output);
  t.deepEqual(outputsOf(store.queuedOutputs(a.id, 'archive', -1, 5)), [0, 1, 2, 4, 5]);
  t.deepEqual(outputsOf(store.queuedOutputs(a.id, 'archive', 5, 100)), [6, 7, 8, 9, 10, 11]);
  t.deepEqual(store.queuedOutputs(a.id, 'nowhere', -1, 100), []);
});

test('a message with many outputs: its status follows its deliveries (derived from index seeks, stages_by_status)', async (t) => {
  const { store } = await open(t);
  const m = message();
  await store.receive(m);
  const outputs = Array.from({ length: 5000 }, (_, i) => `o${i}`);
  await store.recordTransform(m.id, transformed(['archive'], outputs));
  t.is(store.load(m.id)?.status, 'queued');
  for (let i = 0; i < outputs.length - 1; i++) void store.recordDelivery(m.id, `archive#${i}`, { status: 'sent', attempts: 1 });
  await store.flush();
  t.is(store.load(m.id)?.status, 'queued');
  await store.recordDelivery(m.id, `archive#${outputs.length - 1}`, { status: 'sent', attempts: 1 });
  t.is(store.load(m.id)?.status, 'sent');
  await store.recordDelivery(m.id, 'archive#7', { status: 'error', attempts: 1, error: 'DESTINATION_GAVE_UP: no' });
  t.like(store.summary(m.id), { status: 'error', error: 'DESTINATION_GAVE_UP: no' });
});

test('dedupe: a message whose key an earlier one holds within its window is logged as its duplicate', async (t) => {
  const { store } = await open(t);
  const dedupe = { key: 'REGSYS|HOSP|D1', windowMs: 60_000, note: '(same sender and MSH-10 within 1m)' };
  const first = message({ dedupe });
  const again = message({ dedupe });
  const other = message({ dedupe: { ...dedupe, key: 'REGSYS|HOSP|D2' } });
  // In one transaction too: the first to be written holds the key.
  t.deepEqual(await Promise.all([store.receive(first), store.receive(again), store.receive(other)]), [
    { fresh: true },
    { fresh: true, duplicateOf: first.id },
    { fresh: true },
  ]);
  t.like(store.get(again.id), { status: 'filtered', error: `MESSAGE_DUPLICATE: duplicate of ${first.id} (same sender and MSH-10 within 1m)` });
  t.is(store.get(first.id)?.status, 'received');
  // A message that errored before it was queued holds no key: its resend is not a duplicate.
  await store.recordError(first.id, 'COMMIT_FAILED: not queued');
  t.deepEqual(await store.receive(message({ dedupe })), { fresh: true });
});

test('dedupe: the key is taken again once its window has passed', async (t) => {
  const { store } = await open(t);
  const dedupe = { key: 'K', windowMs: 1, note: '' };
  await store.receive(message({ dedupe }));
  // Wait for the clock to pass the window (a condition, not a fixed sleep).
  const until = Date.now() + 2;
  while (Date.now() <= until) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(await store.receive(message({ dedupe })), { fresh: true });
});

test('jobs: what each message and delivery was queued under, and what recovery reassigns', async (t) => {
  const { store } = await open(t);
  const a = message({ job: 'J1' });
  const b = message({ job: 'J1' });
  await Promise.all([store.receive(a), store.receive(b)]);
  t.deepEqual(
    store.receivedSince('adt', 0, 10).map((w) => [w.id, w.job]),
    [
      [a.id, 'J1'],
      [b.id, 'J1'],
    ],
  );
  await store.assignJob('J2', [{ id: b.id }]);
  t.is(store.load(b.id)?.job, 'J2');

  await store.recordTransform(a.id, { ...transformed(['archive', 'lab'], ['x', 'y']), jobs: { archive: 'J1.archive.0', lab: 'J1.lab.0' } });
  t.deepEqual(store.queuedDeliveries('adt', 'lab', undefined, 10).map((d) => [d.output, d.job]), [
    [0, 'J1.lab.0'],
    [1, 'J1.lab.0'],
  ]);
  await store.assignJob('R.lab.0', [{ id: a.id, output: 1 }], 'lab');
  t.deepEqual(store.queuedOutputs(a.id, 'lab', -1, 10), [
    { output: 0, job: 'J1.lab.0' },
    { output: 1, job: 'R.lab.0' },
  ]);
});

test('transformInputs and deliveryInputs: a job\'s worth in one read, in the job\'s order, without what is gone', async (t) => {
  const { store } = await open(t);
  const a = message({ controlId: 'A' });
  const b = message({ controlId: 'B' });
  await Promise.all([store.receive(a), store.receive(b)]);
  await store.recordTransform(b.id, {
    ...transformed(['archive'], ['b0', 'b1']),
    meta: [null, { url: 'https://x.example/in' }],
  });
  t.deepEqual(
    store.transformInputs([b.id, 'gone', a.id]).map((m) => [m.id, m.transform, m.controlId, m.raw.equals(b.id === m.id ? b.raw : a.raw)]),
    [
      [b.id, 'transformed', 'B', true],
      [a.id, undefined, 'A', true],
    ],
  );
  await store.recordDelivery(b.id, 'archive#0', { status: 'sent', attempts: 1, response: 'ok' });
  const inputs = store.deliveryInputs('archive', [
    { id: b.id, output: 1 },
    { id: b.id, output: 0 },
    { id: b.id, output: 7 },
  ]);
  t.deepEqual(
    inputs.map((d) => [d.output, d.content.toString('latin1'), d.status, d.meta, d.controlId]),
    [
      [1, 'b1', 'queued', { url: 'https://x.example/in' }, 'B'],
      [0, 'b0', 'sent', undefined, 'B'],
    ],
  );
});

test('a message log written before jobs were recorded gets the job columns, empty', async (t) => {
  const { store, file } = await open(t);
  const m = message();
  await store.receive(m);
  await store.close();
  const db = new Database(file);
  db.exec('ALTER TABLE messages DROP COLUMN job');
  db.exec('ALTER TABLE stages DROP COLUMN job');
  db.pragma('user_version = 1');
  db.close();
  const reopened = openMessageStore(file);
  t.teardown(() => reopened.close());
  t.deepEqual(reopened.receivedSince('adt', 0, 10), [{ seq: 1, id: m.id, job: null }]);
});

test('queueDepths: messages still to translate and deliveries still queued per destination, kept by the log itself', async (t) => {
  const { store } = await open(t);
  const [a, b] = [message(), message()];
  await Promise.all([store.receive(a), store.receive(b)]);
  t.deepEqual(store.queueDepths('adt'), { inbound: 2, destinations: {} });
  await store.recordTransform(a.id, transformed(['archive', 'lab'], ['x', 'y']));
  t.deepEqual(store.queueDepths('adt'), { inbound: 1, destinations: { archive: 2, lab: 2 } });
  await store.recordDelivery(a.id, 'archive#0', { status: 'sent', attempts: 1 });
  await store.recordDelivery(a.id, 'lab#1', { status: 'queued', attempts: 1, error: 'HTTP_RETRYABLE_STATUS: 503' });
  await store.recordDelivery(a.id, 'lab#0', { status: 'error', attempts: 1, error: 'HTTP_REJECTED: 400' });
  t.deepEqual(store.queueDepths('adt'), { inbound: 1, destinations: { archive: 1, lab: 1 } });
  // Retention removes an errored message with what it still had queued.
  t.is(store.purge(Date.now() + 1), 1);
  t.deepEqual(store.queueDepths('adt'), { inbound: 1, destinations: { archive: 0, lab: 0 } });
  t.deepEqual(store.queueDepths('other'), { inbound: 0, destinations: {} });
});
