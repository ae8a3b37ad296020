import test, { type ExecutionContext } from 'ava';
import { startTestEngine, type TestEngine } from '../helpers/admin.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { hl7Receiver, type Hl7Receiver } from '../helpers/hl7-receiver.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// A poison message at the head of a fifo destination: a failure that never clears, retried in place
// forever (`retry.attempts: 0`, as real interfaces run), holds back every message behind it. The
// admin API shows what blocks the destination and an operator skips it: the message is `error` with
// DELIVERY_SKIPPED, the skip is audited, the queue goes on in order, and the skipped message can be
// resent once the far end is fixed.

interface Site extends TestEngine {
  far: Hl7Receiver;
  send(controlId: string): Promise<void>;
  /** The message log's id for the message with this MSH-10, once logged. */
  idOf(controlId: string): Promise<string>;
  message(id: string): Promise<any>;
  blocked(): Promise<any[]>;
  skip(id: string, body?: unknown): Promise<{ status: number; body: any }>;
}

/** An engine with one channel, MLLP in, to a fifo https destination with this `retry` policy. */
const site = async (t: ExecutionContext, retry: string): Promise<Site> => {
  const far = await hl7Receiver(t);
  const port = await freePort();
  const engine = await startTestEngine(
    t,
    channelsYaml({
      channels: `  - name: site
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - name: central
        type: https
        url: ${far.url}/in
        timeout: 1h
        retry: ${retry}
        circuitBreaker: { failures: 1000, cooldown: 1s }
`,
    }),
  );
  const client = openMllpClient(t, port);
  const api = engine.api;
  const self: Site = {
    ...engine,
    far,
    async send(controlId) {
      t.is((await sendForAck(client, adtMessage({ controlId, mrn: `MRN-${controlId}`, brief: true }))).code, 'AA', controlId);
    },
    idOf: (controlId) =>
      eventually(async () => (await api('GET', '/api/messages?channel=site&limit=500')).body.items.find((m: any) => m.controlId === controlId)?.id, 30_000, `message ${controlId} logged`),
    message: async (id) => (await api('GET', `/api/messages/${id}`)).body,
    blocked: async () => (await api('GET', '/api/channels/site')).body.blocked,
    async skip(id, body = { id }) {
      const response = await fetch(`${engine.base}/api/channels/site/destinations/central/skip`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    },
  };
  return self;
};

const statusOf = async (s: Site, id: string, wanted: string): Promise<any> =>
  eventually(async () => {
    const message = await s.message(id);
    return message.status === wanted ? message : undefined;
  }, 30_000, `message ${id} ${wanted}`);

test('a 503 that never clears blocks the fifo queue; the admin API shows it, skip errors it (audited), the queue goes on, and a resend works once the far end is fixed', async (t) => {
  const s = await site(t, '{ attempts: 0, backoff: fixed, delay: 200ms }');
  s.far.refuse.add('POISON');
  await s.send('POISON');
  await s.send('NEXT1');
  await s.send('NEXT2');
  const poison = await s.idOf('POISON');
  const next1 = await s.idOf('NEXT1');

  // Retried in place: the channel object says what holds the destination, and why.
  const [blocked] = await eventually(async () => {
    const list = await s.blocked();
    return list.length === 1 && list[0].attempts >= 3 ? list : undefined;
  }, 30_000, 'three failed tries of POISON');
  t.like(blocked, { destination: 'central', id: poison, output: 0 });
  t.regex(blocked.error, /^HTTP_RETRYABLE_STATUS: http:\/\/127\.0\.0\.1:\d+\/in answered 503: try later$/);
  t.true(Date.parse(blocked.since) <= Date.now());
  t.true(blocked.nextAttemptAt === null || Date.parse(blocked.nextAttemptAt) > Date.parse(blocked.since));
  // Nothing behind it went out.
  t.deepEqual([...new Set(s.far.requests)], ['POISON']);
  t.is((await s.message(next1)).status, 'queued');

  const skipped = await s.skip(poison);
  t.is(skipped.status, 200);
  t.like(skipped.body, { id: poison, stage: 'central#0', status: 'error' });
  t.true(skipped.body.attempts >= 3);
  t.regex(
    skipped.body.error,
    new RegExp(`^DELIVERY_SKIPPED: skipped by \\(open mode\\) after ${skipped.body.attempts} attempts; last error: HTTP_RETRYABLE_STATUS: .* answered 503: try later$`),
  );

  // The queue goes on, in order.
  await statusOf(s, await s.idOf('NEXT2'), 'sent');
  t.deepEqual(s.far.accepted, ['NEXT1', 'NEXT2']);
  const logged = await s.message(poison);
  t.like(logged, { status: 'error', error: skipped.body.error });
  t.deepEqual(await s.blocked(), []);

  // Audited, with who and what; a second skip finds nothing to skip (audited too).
  const again = await s.skip(poison);
  t.is(again.status, 409);
  t.deepEqual(again.body, { error: { code: 'DELIVERY_NOT_IN_PROGRESS', message: `the delivery of message ${poison} to site/central#0 is not being tried now` } });
  const audit = (await s.api('GET', '/api/audit')).body;
  t.deepEqual(
    audit.slice(0, 2).map((e: any) => [e.user, e.action, e.target, e.detail]),
    [
      ['(open mode)', 'skip', poison, `failed: DELIVERY_NOT_IN_PROGRESS: ${again.body.error.message}`],
      ['(open mode)', 'skip', poison, `site/central#0 after ${skipped.body.attempts} attempts`],
    ],
  );

  // The far end is fixed: the skipped message is resent, and delivered.
  s.far.refuse.delete('POISON');
  const resent = await s.api('POST', `/api/messages/${poison}/resend`);
  t.is(resent.status, 201);
  await statusOf(s, resent.body.id, 'sent');
  t.deepEqual(s.far.accepted, ['NEXT1', 'NEXT2', 'POISON']);
  t.is((await s.message(poison)).status, 'error', 'the original keeps its record');
});

test('a skip ends a long pause between tries, and a try that hangs, at once', async (t) => {
  // A pause of up to an hour, and a request timeout of an hour: without the skip reaching into
  // both, this test would wait that long.
  const s = await site(t, '{ attempts: 0, backoff: fixed, delay: 1h, maxDelay: 1h }');
  s.far.refuse.add('PAUSED');
  s.far.hang.add('HANGS');
  await s.send('PAUSED');
  await s.send('HANGS');
  await s.send('AFTER');
  const paused = await s.idOf('PAUSED');
  const hangs = await s.idOf('HANGS');

  const [blocked] = await eventually(async () => {
    const list = await s.blocked();
    return list.length === 1 ? list : undefined;
  }, 30_000, 'PAUSED blocked');
  t.like(blocked, { id: paused, attempts: 1 });
  t.true(Date.parse(blocked.nextAttemptAt) - Date.now() > 30 * 60_000, 'the next try is far away');
  const first = await s.skip(paused);
  t.like(first.body, { status: 'error', attempts: 1 });

  // HANGS is tried next and its request never gets an answer: it has not failed, so it is not
  // listed, but it can be skipped by id; the request is cut.
  await eventually(() => (s.far.requests.includes('HANGS') ? true : undefined), 30_000, 'HANGS requested');
  t.deepEqual(await s.blocked(), []);
  const second = await s.skip(hangs);
  t.is(second.status, 200);
  t.like(second.body, { status: 'error', attempts: 1, error: 'DELIVERY_SKIPPED: skipped by (open mode) after 1 attempt' });
  await eventually(() => (s.far.aborted.includes('HANGS') ? true : undefined), 30_000, 'the HANGS request cut');

  await statusOf(s, await s.idOf('AFTER'), 'sent');
  t.deepEqual(s.far.accepted, ['AFTER']);
});

test('skip: an unknown destination is 404, a body without a message id 400', async (t) => {
  const s = await site(t, '{ attempts: 0 }');
  const unknown = await fetch(`${s.base}/api/channels/site/destinations/nope/skip`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{"id": "x"}',
  });
  t.is(unknown.status, 404);
  t.deepEqual(await unknown.json(), { error: { code: 'DESTINATION_NOT_FOUND', message: 'channel site has no destination named nope' } });
  for (const body of [{}, { id: '' }, { id: 'x', output: -1 }, { id: 'x', output: '0' }]) {
    const bad = await s.skip('', body);
    t.is(bad.status, 400, JSON.stringify(body));
    t.is(bad.body.error.code, 'API_BAD_REQUEST');
  }
});
