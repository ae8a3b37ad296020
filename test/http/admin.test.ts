import type { ExecutionContext } from 'ava';
import test from 'ava';
import type { ChannelInfo } from '../../engine/channel.ts';
import { newMessageId } from '../../engine/wire/ids.ts';
import type { MessageStore, ReceivedMessage } from '../../engine/store/contract.ts';
import { fakeChannel, startAdmin } from '../helpers/admin.ts';
import { adtMessage } from '../helpers/hl7.ts';
import type { TestRedis } from '../helpers/redis.ts';

const adtInfo: ChannelInfo = {
  name: 'adt',
  state: 'running',
  source: 'mllp 127.0.0.1:2575',
  script: null,
  lastError: null,
  queues: { inbound: 2, archive: 1 },
  blocked: [],
};
const labInfo: ChannelInfo = { name: 'lab', state: 'stopped', source: 'channel', script: null, lastError: '2026-01-01T00:00:00.000Z boom', queues: { inbound: 0 }, blocked: [] };

interface Api {
  store: MessageStore;
  redis: TestRedis;
  get(path: string): Promise<{ status: number; body: any }>;
}

/** The admin app on a real listener (port 0) with a real store and a private Redis; no users, so no login. */
const api = async (t: ExecutionContext): Promise<Api> => {
  const { base, store, redis } = await startAdmin(t, { channels: [fakeChannel(adtInfo), fakeChannel(labInfo)] });
  return {
    store,
    redis,
    async get(path) {
      const response = await fetch(base + path);
      t.regex(response.headers.get('content-type') ?? '', /^application\/json/, path);
      return { status: response.status, body: await response.json() };
    },
  };
};

const hl7 = (controlId: string, mrn: string): string => adtMessage({ controlId, mrn, brief: true });

const message = (channel: string, controlId: string, receivedAt: number, mrn = 'MRN1'): ReceivedMessage => {
  const text = hl7(controlId, mrn);
  return { id: newMessageId(), channel, source: 'test', raw: Buffer.from(text), text, charset: 'UNICODE UTF-8', controlId, receivedAt };
};

test('/healthz: 200 ok with Redis up, 503 degraded once Redis is gone', async (t) => {
  const { get, redis } = await api(t);
  t.deepEqual(await get('/healthz'), {
    status: 200,
    body: { status: 'ok', redis: 'ok', channels: { adt: 'running', lab: 'stopped' } },
  });
  await redis.stop();
  t.deepEqual(await get('/healthz'), {
    status: 503,
    body: { status: 'degraded', redis: 'unreachable', channels: { adt: 'running', lab: 'stopped' } },
  });
});

test('/api/channels: channel info with the message log counts mapped', async (t) => {
  const { get, store } = await api(t);
  const m = Array.from({ length: 6 }, (_, i) => message('adt', `C${i}`, Date.now()));
  for (const x of m) await store.receive(x);
  await store.recordTransform(m[0].id, { status: 'filtered', logs: '' });
  await store.recordTransform(m[1].id, { status: 'error', error: 'SCRIPT_THREW: x', logs: '' });
  await store.recordTransform(m[2].id, { status: 'transformed', outputs: [Buffer.from('o')], destinations: ['archive'], logs: '' });
  await store.recordTransform(m[3].id, { status: 'transformed', outputs: [Buffer.from('o')], destinations: ['archive'], logs: '' });
  await store.recordDelivery(m[3].id, 'archive#0', { status: 'sent', attempts: 1 });
  // m[4], m[5] stay received: not yet through the translator, so counted as queued.

  t.deepEqual(await get('/api/channels'), {
    status: 200,
    body: [
      { ...adtInfo, counts: { received: 6, filtered: 1, transformed: 0, queued: 3, sent: 1, errored: 1 } },
      { ...labInfo, counts: { received: 0, filtered: 0, transformed: 0, queued: 0, sent: 0, errored: 0 } },
    ],
  });
});

test('/api/messages: filters, search, paging', async (t) => {
  const { get, store } = await api(t);
  const day = (d: number): number => Date.UTC(2026, 0, d);
  const m = [
    message('adt', 'A1', day(1), 'MRN11111'),
    message('adt', 'A2', day(2), 'MRN22222'),
    message('lab', 'L1', day(3), 'MRN11111'),
    message('adt', 'A3', day(4), 'MRN33333'),
  ];
  for (const x of m) await store.receive(x);
  await store.recordTransform(m[1].id, { status: 'filtered', logs: '' });

  const queries: Array<[string, string[]]> = [
    ['', ['A3', 'L1', 'A2', 'A1']],
    ['?channel=adt', ['A3', 'A2', 'A1']],
    ['?status=filtered', ['A2']],
    ['?channel=adt&status=received', ['A3', 'A1']],
    ['?q=MRN11111', ['L1', 'A1']],
    ['?q=MRN1*&channel=lab', ['L1']],
    [`?from=${day(2)}&to=${day(3)}`, ['L1', 'A2']],
    ['?from=2026-01-03T00:00:00Z', ['A3', 'L1']],
    ['?to=2026-01-01', ['A1']],
    ['?channel=', ['A3', 'L1', 'A2', 'A1']],
    ['?q=%22%20OR%20(', []],
  ];
  for (const [query, expected] of queries) {
    const { status, body } = await get(`/api/messages${query}`);
    t.is(status, 200, query);
    t.deepEqual(body.items.map((x: { controlId: string }) => x.controlId), expected, query);
    t.is(body.nextCursor, null, query);
  }

  const first = await get('/api/messages?limit=3');
  t.deepEqual(first.body.items.map((x: { controlId: string }) => x.controlId), ['A3', 'L1', 'A2']);
  t.regex(first.body.nextCursor, /^\d+$/);
  const second = await get(`/api/messages?limit=3&cursor=${first.body.nextCursor}`);
  t.deepEqual(second.body, {
    items: [
      {
        id: m[0].id,
        channel: 'adt',
        status: 'received',
        receivedAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
        source: 'test',
        parentId: null,
        messageType: null,
        controlId: 'A1',
        sender: null,
        error: null,
      },
    ],
    nextCursor: null,
  });
});

const badRequests: Array<[string, RegExp]> = [
  ['status=done', /^status must be one of/],
  ['status=sent&status=error', /^status must be one of/],
  ['limit=abc', /^limit must be a positive integer/],
  ['limit=-1', /^limit must be a positive integer/],
  ['limit=0', /^limit must be a positive integer/],
  ['limit=1.5', /^limit must be a positive integer/],
  ['limit=1&limit=2', /^limit must be a positive integer/],
  ['cursor=abc', /^cursor must come from a previous page/],
  ['cursor=', /^cursor must come from a previous page/],
  ['from=yesterday', /^from must be an ISO date/],
  ['to=2026-13-45', /^to must be an ISO date/],
];

for (const [query, message] of badRequests) {
  test(`/api/messages?${query} → 400 API_BAD_REQUEST`, async (t) => {
    const { get } = await api(t);
    const { status, body } = await get(`/api/messages?${query}`);
    t.is(status, 400);
    t.deepEqual(Object.keys(body), ['error']);
    t.deepEqual(Object.keys(body.error).sort(), ['code', 'message']);
    t.is(body.error.code, 'API_BAD_REQUEST');
    t.regex(body.error.message, message);
  });
}

test('/api/messages/:id: the detail, or 404 MESSAGE_NOT_FOUND', async (t) => {
  const { get, store } = await api(t);
  const m = message('adt', 'A1', Date.UTC(2026, 0, 1), 'MRN12345');
  await store.receive(m);
  await store.recordTransform(m.id, { status: 'transformed', outputs: [Buffer.from('out é')], destinations: ['archive'], logs: 'info hi' });

  const found = await get(`/api/messages/${m.id}`);
  t.is(found.status, 200);
  t.like(found.body, {
    id: m.id,
    channel: 'adt',
    status: 'queued',
    controlId: 'A1',
    charset: 'UNICODE UTF-8',
    text: m.text,
    raw: m.raw.toString('base64'),
    outputs: ['out é'],
  });
  t.deepEqual(
    found.body.stages.map((s: { stage: string; status: string; content: string | null }) => [s.stage, s.status, s.content]),
    [
      ['archive#0', 'queued', null],
      ['transform', 'transformed', 'info hi'],
    ],
  );

  t.deepEqual(await get('/api/messages/01HZX5J3Q8M4T2V7N6B9C0D1EF'), {
    status: 404,
    body: { error: { code: 'MESSAGE_NOT_FOUND', message: 'no message 01HZX5J3Q8M4T2V7N6B9C0D1EF' } },
  });
});

test('an unknown /api path is 404 API_NOT_FOUND, another method on an endpoint 405 API_METHOD_NOT_ALLOWED with Allow, both in JSON', async (t) => {
  const { base } = await startAdmin(t, { channels: [fakeChannel(adtInfo)] });
  const nope = await fetch(`${base}/api/nope`);
  t.is(nope.status, 404);
  t.deepEqual(await nope.json(), { error: { code: 'API_NOT_FOUND', message: 'no API endpoint GET /api/nope' } });
  const wrong = await fetch(`${base}/api/channels/adt/stop`);
  t.is(wrong.status, 405);
  t.is(wrong.headers.get('allow'), 'POST');
  t.deepEqual(await wrong.json(), { error: { code: 'API_METHOD_NOT_ALLOWED', message: 'GET is not allowed on /api/channels/adt/stop (allowed: POST)' } });
  const put = await fetch(`${base}/api/channels`, { method: 'PUT' });
  t.is(put.status, 405);
  t.is((await put.json()).error.code, 'API_METHOD_NOT_ALLOWED');
});
