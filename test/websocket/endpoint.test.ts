import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken, openTokenTable, revokeToken } from '../../engine/auth/tokens.ts';
import type { WebSocketConfig } from '../../engine/config/contract.ts';
import { httpsListener } from '../../engine/http/https-listener.ts';
import { createPushHub, type PushHub } from '../../engine/push/hub.ts';
import { closeCodes, websocketEndpoint, type WebSocketEndpoint } from '../../engine/push/websocket-endpoint.ts';
import { makeCerts, type TestCerts } from '../https/helpers.ts';
import { captureLogger, type CapturedLogger } from '../helpers/logger.ts';
import { eventually, tempDir } from '../helpers/temp.ts';
import { connect, connectAuthed } from './helpers.ts';

// The WebSocket endpoint on a real TLS listener (port 0) with a real token table: authentication
// both ways, topic grants, replay on reconnect, events for one connection, slow subscribers and
// revoked tokens. Events come straight from the hub here; test/websocket/engine.test.ts sends
// them through channels.

interface Setup {
  url: string;
  certs: TestCerts;
  hub: PushHub;
  endpoint: WebSocketEndpoint;
  log: CapturedLogger;
  tokensFile: string;
  /** Tokens by name: lab (grants lab), all (*), adt (grants adt). */
  token: Record<'lab' | 'all' | 'adt', string>;
}

// One CA and server certificate for the file: making RSA keys is the slow part of a setup.
let certs: TestCerts;
let certsDir: string;
test.before(async () => {
  certsDir = await mkdtemp(join(tmpdir(), 'ferry-ws-certs-'));
  certs = await makeCerts(certsDir);
});
test.after.always(() => rm(certsDir, { recursive: true, force: true }));

const setup = async (t: ExecutionContext, overrides: Partial<WebSocketConfig> = {}, timing: { authTimeoutMs?: number; heartbeatMs?: number } = {}): Promise<Setup> => {
  const dir = await tempDir(t);
  const tokensFile = join(dir, 'tokens.yaml');
  const token = {
    lab: await addToken(tokensFile, 'lab-screen', ['lab']),
    all: await addToken(tokensFile, 'ops', ['*']),
    adt: await addToken(tokensFile, 'ward-board', ['adt']),
  };
  const log = captureLogger();
  const tokens = openTokenTable(tokensFile, log.logger, { debounceMs: 10, pollMs: 100 });
  t.teardown(() => tokens.close());
  const config: WebSocketConfig = {
    path: '/ws',
    replay: { size: 100, ttlMs: 60_000, maxBytes: 1024 * 1024 },
    sendBufferBytes: 1024 * 1024,
    maxConnections: 10,
    allowIps: [],
    ...overrides,
  };
  const hub = createPushHub(config.replay);
  const endpoint = websocketEndpoint({ config, hub, tokens, logger: log.logger, ...timing });
  const listener = httpsListener({
    config: { host: '127.0.0.1', port: 0, plain: false, cert: certs.serverCert, key: certs.serverKey, ca: undefined, clientCert: 'none' },
    paths: [],
    logger: log.logger,
  });
  listener.mountUpgrade('/ws', endpoint.handleUpgrade);
  const { url } = await listener.start();
  t.teardown(() => listener.stop());
  t.teardown(() => endpoint.stop());
  return { url: `${url.replace(/^https/, 'wss')}/ws`, certs, hub, endpoint, log, tokensFile, token };
};

test('a first auth frame or a Bearer header gets a welcome with a connection id of its own', async (t) => {
  const s = await setup(t);
  const byFrame = await connectAuthed(t, s.url, s.token.lab, { ca: s.certs.pem.ca });
  const byHeader = await connect(t, s.url, { ca: s.certs.pem.ca, headers: { Authorization: `Bearer ${s.token.lab}` } });
  const welcome = await byHeader.next('welcome');
  t.regex(byFrame.connectionId, /^[A-Za-z0-9_-]{16}$/);
  t.regex(String(welcome['connectionId']), /^[A-Za-z0-9_-]{16}$/);
  t.not(byFrame.connectionId, welcome['connectionId']);
  t.is(s.endpoint.connections, 2);
});

test('refused: unknown token (frame: 4401; header: HTTP 401), no auth in time, protocol before auth, other paths', async (t) => {
  const s = await setup(t, {}, { authTimeoutMs: 300 });
  const ca = s.certs.pem.ca;

  const wrong = await connect(t, s.url, { ca });
  wrong.send({ type: 'auth', token: 'fy_not-a-token' });
  t.like(await wrong.next('error'), { code: 'unauthorized', message: 'unknown or revoked token' });
  t.deepEqual(await wrong.closed, { code: closeCodes.unauthorized, reason: 'unknown or revoked token' });

  const header = await t.throwsAsync(connect(t, s.url, { ca, headers: { Authorization: 'Bearer fy_nope' } }));
  t.like(header as unknown as Record<string, unknown>, { status: 401 });
  t.regex(String((header as unknown as { body: string }).body), /"code":"HTTP_UNAUTHORIZED"/);

  const silent = await connect(t, s.url, { ca });
  t.deepEqual(await silent.closed, { code: closeCodes.unauthorized, reason: 'no auth frame within 300 ms' });

  const eager = await connect(t, s.url, { ca });
  eager.send({ type: 'subscribe', topic: 'lab' });
  t.is((await eager.closed).code, closeCodes.badRequest);

  const elsewhere = await t.throwsAsync(connect(t, s.url.replace(/\/ws$/, '/other'), { ca }));
  t.like(elsewhere as unknown as Record<string, unknown>, { status: 404 });
  t.true(s.log.lines.some((line) => line.msg === 'WebSocket authentication refused: unknown or revoked token'));
  await eventually(() => (s.endpoint.connections === 0 ? true : undefined), 3000, 'refused connections to be gone');
});

test('subscribe follows the token grants: "lab" grants lab and lab.*, "*" all; others get a forbidden error', async (t) => {
  const s = await setup(t);
  const ca = s.certs.pem.ca;
  const lab = await connectAuthed(t, s.url, s.token.lab, { ca });
  const rows: Array<[string, boolean]> = [
    ['lab', true],
    ['lab.results', true],
    ['lab.results.ward-5', true],
    ['laboratory', false],
    ['adt', false],
  ];
  for (const [topic, ok] of rows) {
    lab.send({ type: 'subscribe', topic });
    const frame = await lab.next();
    if (ok) t.like(frame, { type: 'subscribed', topic, lastEventId: null, replay: 0 }, topic);
    else t.like(frame, { type: 'error', code: 'forbidden', topic }, topic);
  }
  lab.send({ type: 'subscribe', topic: 'Bad Topic' });
  t.like(await lab.next(), { type: 'error', code: 'bad_request' });
  lab.send({ type: 'dance' });
  t.like(await lab.next(), { type: 'error', code: 'bad_request', message: 'unknown frame type "dance" (use subscribe, unsubscribe)' });

  const ops = await connectAuthed(t, s.url, s.token.all, { ca });
  ops.send({ type: 'subscribe', topic: 'adt.a01' });
  t.like(await ops.next(), { type: 'subscribed', topic: 'adt.a01' });

  s.hub.publish('lab.results', { args: ['K 4.1'], kwargs: { mrn: 'MRN1' } });
  s.hub.publish('adt.a01', { args: [], kwargs: { mrn: 'MRN2' } });
  t.like(await lab.next('event'), { topic: 'lab.results', args: ['K 4.1'], kwargs: { mrn: 'MRN1' } });
  t.like(await ops.next('event'), { topic: 'adt.a01', kwargs: { mrn: 'MRN2' } });

  lab.send({ type: 'unsubscribe', topic: 'lab.results' });
  t.like(await lab.next(), { type: 'unsubscribed', topic: 'lab.results' });
  s.hub.publish('lab.results', { args: ['after'], kwargs: {} });
  s.hub.publish('lab', { args: ['still subscribed'], kwargs: {} });
  t.like(await lab.next('event'), { topic: 'lab', args: ['still subscribed'] });
});

test('reconnecting with lastEventId replays what was missed; a dropped event brings a gap notice first', async (t) => {
  const s = await setup(t, { replay: { size: 3, ttlMs: 60_000, maxBytes: 1024 * 1024 } });
  const ca = s.certs.pem.ca;
  const first = await connectAuthed(t, s.url, s.token.lab, { ca });
  first.send({ type: 'subscribe', topic: 'lab' });
  await first.next('subscribed');
  s.hub.publish('lab', { args: [1], kwargs: {} });
  const seen = await first.next('event');
  first.close();
  await first.closed;

  for (const n of [2, 3]) s.hub.publish('lab', { args: [n], kwargs: {} });
  const again = await connectAuthed(t, s.url, s.token.lab, { ca });
  again.send({ type: 'subscribe', topic: 'lab', lastEventId: seen['id'] });
  t.like(await again.next(), { type: 'subscribed', replay: 2 });
  t.like(await again.next(), { type: 'event', args: [2] });
  const last = await again.next();
  t.like(last, { type: 'event', args: [3] });
  again.close();

  for (const n of [4, 5, 6, 7]) s.hub.publish('lab', { args: [n], kwargs: {} });
  const late = await connectAuthed(t, s.url, s.token.lab, { ca });
  late.send({ type: 'subscribe', topic: 'lab', lastEventId: last['id'] });
  t.like(await late.next(), { type: 'subscribed', replay: 3 });
  t.like(await late.next(), { type: 'gap', topic: 'lab', lastEventId: last['id'], missed: 1 });
  t.deepEqual([(await late.next())['args'], (await late.next())['args'], (await late.next())['args']], [[5], [6], [7]]);
  s.hub.publish('lab', { args: [8], kwargs: {} });
  t.like(await late.next(), { type: 'event', args: [8] }, 'then live');
});

test('an event for one connection id reaches that connection only', async (t) => {
  const s = await setup(t);
  const ca = s.certs.pem.ca;
  const mine = await connectAuthed(t, s.url, s.token.lab, { ca });
  const theirs = await connectAuthed(t, s.url, s.token.lab, { ca });
  theirs.send({ type: 'subscribe', topic: 'lab' });
  await theirs.next('subscribed');
  t.true(s.hub.sendTo(mine.connectionId, 'lab', { args: ['just you'], kwargs: {} }));
  t.like(await mine.next('event'), { topic: 'lab', direct: true, args: ['just you'] });
  s.hub.publish('lab', { args: ['everyone'], kwargs: {} });
  t.like(await theirs.next('event'), { args: ['everyone'] }, 'the other got only the topic event');
  t.deepEqual(theirs.pending(), []);
  mine.close();
  await eventually(() => (s.hub.sendTo(mine.connectionId, 'lab', { args: [], kwargs: {} }) ? undefined : true), 3000, 'the connection to be gone');
});

test('a subscriber that stops reading is disconnected at the send buffer limit; the others keep up', async (t) => {
  const sendBufferBytes = 256 * 1024;
  const s = await setup(t, { sendBufferBytes, replay: { size: 10, ttlMs: 60_000, maxBytes: 1024 * 1024 } });
  const ca = s.certs.pem.ca;
  const slow = await connectAuthed(t, s.url, s.token.lab, { ca });
  const fast = await connectAuthed(t, s.url, s.token.lab, { ca });
  for (const client of [slow, fast]) {
    client.send({ type: 'subscribe', topic: 'lab' });
    await client.next('subscribed');
  }
  let received = 0;
  fast.ws.on('message', () => received++);
  // The slow client stops reading: the kernel buffers fill, then the server's send buffer grows.
  slow.ws.pause();
  const text = 'x'.repeat(64 * 1024);
  let published = 0;
  await eventually(async () => {
    s.hub.publish('lab', { args: [text], kwargs: {} });
    published++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return s.hub.stats().connections === 1 ? true : undefined;
  }, 30_000, 'the slow subscriber to be dropped');
  const line = s.log.lines.find((l) => l.msg === 'WebSocket subscriber too slow; disconnected');
  const buffered = Number(line?.['buffered']);
  t.true(buffered > sendBufferBytes && buffered <= sendBufferBytes + 70 * 1024, `over the limit by at most one frame: ${buffered} bytes`);
  await eventually(() => (received >= published ? true : undefined), 10_000, 'the fast subscriber to get every event');
  t.is(received, published, `${published} events of 64 KB`);
  slow.ws.resume();
  t.is((await slow.closed).code, closeCodes.tooSlow);
  t.is(s.endpoint.connections, 1);
});

test('revoking a token closes its connections within a heartbeat', async (t) => {
  const s = await setup(t, {}, { heartbeatMs: 150 });
  const lab = await connectAuthed(t, s.url, s.token.lab, { ca: s.certs.pem.ca });
  const adt = await connectAuthed(t, s.url, s.token.adt, { ca: s.certs.pem.ca });
  await revokeToken(s.tokensFile, 'lab-screen');
  t.deepEqual(await lab.closed, { code: closeCodes.unauthorized, reason: 'token revoked' });
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.is(adt.ws.readyState, adt.ws.OPEN, 'other tokens stay connected (they answer pings)');
});

test('allowIps and maxConnections are checked before the upgrade; stop closes with 1001', async (t) => {
  const fenced = await setup(t, { allowIps: ['10.0.0.0/8'] });
  const refused = await t.throwsAsync(connect(t, fenced.url, { ca: fenced.certs.pem.ca }));
  t.like(refused as unknown as Record<string, unknown>, { status: 403 });

  const s = await setup(t, { maxConnections: 1 });
  const one = await connectAuthed(t, s.url, s.token.all, { ca: s.certs.pem.ca });
  const full = await t.throwsAsync(connect(t, s.url, { ca: s.certs.pem.ca }));
  t.like(full as unknown as Record<string, unknown>, { status: 503 });
  await s.endpoint.stop();
  t.deepEqual(await one.closed, { code: closeCodes.goingAway, reason: 'the engine is stopping' });
});
