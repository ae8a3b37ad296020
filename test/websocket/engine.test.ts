import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { signRequest } from '../../engine/auth/hmac.ts';
import { addHmacKey, addToken } from '../../engine/auth/tokens.ts';
import { loadConfig } from '../../engine/config/load.ts';
import { startEngine, type Engine } from '../../engine/engine.ts';
import { makeCerts, send, type TestCerts } from '../https/helpers.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, writeProject } from '../helpers/project.ts';
import { eventually } from '../helpers/temp.ts';
import { connectAuthed, type Frame } from './helpers.ts';

// WebSocket push through a real engine (embedded Redis, message log, queues, scripts): HL7 over MLLP
// → script → websocket destination → subscribers; HTTP pusher posts → subscribers; events for one
// connection id from a pusher body and from a script's ctx.deliver; replay and gap after a
// reconnect; bad pusher bodies refused with 400 and nothing stored.

const hl7 = (controlId: string, mrn: string, name: string): string => adtMessage({ controlId, mrn, name, facility: 'BOARD', visit: true });

const ADT_SCRIPT = `
export default function (msg: Message) {
  return { mrn: msg.get('PID-3.1'), name: msg.get('PID-5.1') + ', ' + msg.get('PID-5.2'), event: msg.get('MSH-9.2') };
}
`;

// A reply to one browser: the push names the connection in kwargs.to; the script addresses it.
const REPLY_SCRIPT = `
export default function (msg: Message, ctx: Context) {
  const push = JSON.parse(msg.text);
  ctx.deliver({ args: [push.kwargs.text.toUpperCase()] }, { connectionId: push.kwargs.to });
  return null;
}
`;

interface Running {
  engine: Engine;
  certs: TestCerts;
  wsUrl: string;
  httpsUrl: string;
  mllpPort: number;
  token: { board: string; pusher: string; ops: string };
  hmacSecret: string;
}

const startProject = async (dir: string): Promise<Running> => {
  const certs = await makeCerts(join(dir, 'certs'));
  const configFile = await writeProject(
    dir,
    channelsYaml({
      engine: `https: { host: 127.0.0.1, port: 0, cert: certs/server.crt, key: certs/server.key }
websocket: { path: /ws, replay: { size: 3, ttl: 1m } }`,
      channels: `  - name: adt-live
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations:
      - { name: board, type: websocket, topic: adt }
  - name: push
    source: { type: pusher, path: /push, auth: token }
    destinations:
      - { name: browsers, type: websocket, retry: { attempts: 1 } }
  - name: signed-push
    source: { type: pusher, path: /signed-push, auth: hmac }
    destinations:
      - { name: browsers, type: websocket }
  - name: reply
    source: { type: pusher, path: /reply, auth: token }
    destinations:
      - { name: one, type: websocket, topic: replies }
`,
    }),
    { 'channels/adt-live.ts': ADT_SCRIPT, 'channels/reply.ts': REPLY_SCRIPT },
  );
  const tokensFile = join(dir, 'tokens.yaml');
  const token = {
    board: await addToken(tokensFile, 'ward-board', ['adt']),
    pusher: await addToken(tokensFile, 'web-app', ['push', 'reply']),
    ops: await addToken(tokensFile, 'ops', ['*']),
  };
  const hmacSecret = await addHmacKey(tokensFile, 'signer', ['signed-push']);
  const config = await loadConfig(configFile);
  const engine = await startEngine(config, pino({ level: 'silent' }));
  const httpsUrl = engine.https!.url;
  return {
    engine,
    certs,
    httpsUrl,
    wsUrl: `${httpsUrl.replace(/^https/, 'wss')}/ws`,
    mllpPort: engine.channels.get('adt-live')!.sourcePort()!,
    token,
    hmacSecret,
  };
};

// One engine for the file: the tests run in order against it.
let running: Running;
let projectDir: string;
test.before(async () => {
  projectDir = await mkdtemp(join(tmpdir(), 'ferry-ws-engine-'));
  running = await startProject(projectDir);
});
test.after.always(async () => {
  await running?.engine.stop();
  await rm(projectDir, { recursive: true, force: true });
});

const push = (path: string, body: unknown, token = running.token.pusher) =>
  send(`${running.httpsUrl}${path}`, {
    ca: running.certs.pem.ca,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
  });

const sentStatus = (id: string) =>
  eventually(() => {
    const message = running.engine.store.get(id);
    return message && message.status !== 'received' && message.status !== 'transformed' && message.status !== 'queued' ? message : undefined;
  }, 15_000, `message ${id} to finish`);

test.serial('HL7 over MLLP reaches a subscriber as an event; offline, it gets the missed ones on reconnecting, with a gap past the buffer', async (t) => {
  const ca = running.certs.pem.ca;
  const mllp = openMllpClient(t, running.mllpPort);
  const board = await connectAuthed(t, running.wsUrl, running.token.board, { ca });
  board.send({ type: 'subscribe', topic: 'adt' });
  t.like(await board.next('subscribed'), { topic: 'adt', lastEventId: null });

  const ack = await sendForAck(mllp, hl7('MSG1', 'MRN100', 'DOE^JANE'));
  t.is(ack.code, 'AA');
  const event = await board.next('event', 15_000);
  t.like(event, { type: 'event', topic: 'adt', args: [], kwargs: { mrn: 'MRN100', name: 'DOE, JANE', event: 'A01' } });
  t.regex(String(event['id']), /^[0-9a-f]{8}-1$/);

  board.close();
  await board.closed;
  for (const [n, name] of [['2', 'ROE^RICHARD'], ['3', 'POE^EDGAR']] as const) {
    t.is((await sendForAck(mllp, hl7(`MSG${n}`, `MRN10${n}`, name))).code, 'AA');
  }
  await eventually(() => (running.engine.store.get(findId('MSG3'))?.status === 'sent' ? true : undefined), 15_000, 'MSG3 to be published');
  const back = await connectAuthed(t, running.wsUrl, running.token.board, { ca });
  back.send({ type: 'subscribe', topic: 'adt', lastEventId: event['id'] });
  t.like(await back.next(), { type: 'subscribed', replay: 2 });
  t.like(await back.next(), { type: 'event', kwargs: { mrn: 'MRN102', name: 'ROE, RICHARD' } });
  const last = await back.next();
  t.like(last, { type: 'event', kwargs: { mrn: 'MRN103' } });
  back.close();

  // Four more while away: the buffer holds three, so one is reported missed.
  for (const n of [4, 5, 6, 7]) t.is((await sendForAck(mllp, hl7(`MSG${n}`, `MRN10${n}`, 'X^Y'))).code, 'AA');
  await eventually(() => (running.engine.store.get(findId('MSG7'))?.status === 'sent' ? true : undefined), 15_000, 'MSG7 to be published');
  const later = await connectAuthed(t, running.wsUrl, running.token.board, { ca });
  later.send({ type: 'subscribe', topic: 'adt', lastEventId: last['id'] });
  t.like(await later.next(), { type: 'subscribed', replay: 3 });
  t.like(await later.next(), { type: 'gap', topic: 'adt', missed: 1 });
  const replayed: Frame[] = [await later.next(), await later.next(), await later.next()];
  t.deepEqual(replayed.map((f) => (f['kwargs'] as { mrn: string }).mrn), ['MRN105', 'MRN106', 'MRN107']);

  const stage = running.engine.store.get(findId('MSG7'))!.stages.find((s) => s.stage === 'board#0')!;
  t.like(stage, { status: 'sent', attempts: 1 });
  t.regex(stage.content ?? '', /^published to adt as [0-9a-f]{8}-7 \(0 subscribers connected\)$/);
});

const findId = (controlId: string): string => {
  const page = running.engine.store.list({ channel: 'adt-live', limit: 50 });
  const hit = page.items.find((m) => m.controlId === controlId);
  return hit?.id ?? 'none';
};

test.serial('a pusher post (curl-like) becomes a logged message and an event for the topic it names', async (t) => {
  const ca = running.certs.pem.ca;
  const screen = await connectAuthed(t, running.wsUrl, running.token.ops, { ca });
  screen.send({ type: 'subscribe', topic: 'news.ward-5' });
  await screen.next('subscribed');

  const reply = await push('/push', { topic: 'news.ward-5', args: ['Hello, world'], kwargs: { from: 'web-app' } });
  t.is(reply.status, 200);
  t.like(reply.json, { Success: true });
  t.like(await screen.next('event', 15_000), { topic: 'news.ward-5', args: ['Hello, world'], kwargs: { from: 'web-app' } });

  const message = await sentStatus(String(reply.json!['id']));
  t.is(message.status, 'sent');
  t.regex(message.source ?? '', /^pusher 127\.0\.0\.1 token web-app$/);
  t.deepEqual(JSON.parse(message.text ?? ''), { topic: 'news.ward-5', args: ['Hello, world'], kwargs: { from: 'web-app' } });

  // Signed requests work the same way.
  const body = JSON.stringify({ topic: 'news.ward-5', args: ['signed'] });
  const signed = await send(`${running.httpsUrl}/signed-push`, {
    ca,
    body,
    headers: { 'Content-Type': 'application/json', ...signRequest({ keyId: 'signer', secret: running.hmacSecret, method: 'POST', path: '/signed-push', body: Buffer.from(body) }) },
  });
  t.is(signed.status, 200);
  t.like(await screen.next('event', 15_000), { args: ['signed'], kwargs: {} });
});

test.serial('bad pusher bodies get 400 with the reason, and nothing is stored', async (t) => {
  const before = running.engine.store.list({ channel: 'push', limit: 500 }).items.length;
  const rows: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{"topic": news}', /^Content-Type is JSON but the body is not: /],
    ['an array', '["news"]', /^the body must be a JSON object/],
    ['no topic', { args: [1] }, /^topic is missing$/],
    ['a bad topic', { topic: 'News Feed' }, /^topic "News Feed" must be dot-separated parts/],
    ['args not an array', { topic: 'news', args: 'hello' }, /^args must be an array$/],
    ['kwargs not an object', { topic: 'news', kwargs: [1] }, /^kwargs must be an object$/],
    ['an unknown key', { topic: 'news', options: {} }, /^unknown key "options" \(use topic, args, kwargs, connectionId\)$/],
  ];
  for (const [what, body, message] of rows) {
    const reply = await push('/push', body);
    t.is(reply.status, 400, what);
    t.like(reply.json, { Success: false, code: 'HTTP_BAD_REQUEST' }, what);
    t.regex(String(reply.json?.['error']), message, what);
  }
  const plain = await send(`${running.httpsUrl}/push`, {
    ca: running.certs.pem.ca,
    body: 'hello',
    headers: { Authorization: `Bearer ${running.token.pusher}`, 'Content-Type': 'text/plain' },
  });
  t.is(plain.status, 400);
  t.regex(String(plain.json?.['error']), /^the body is not JSON: /);
  t.is((await push('/push', { topic: 'news' }, 'fy_wrong')).status, 401);
  t.is((await push('/push', { topic: 'news' }, running.token.board)).status, 403, 'a token for another channel');
  t.is(running.engine.store.list({ channel: 'push', limit: 500 }).items.length, before);
});

test.serial('events for one connection id: from a pusher body, and from a script with ctx.deliver; a closed connection errors the message', async (t) => {
  const ca = running.certs.pem.ca;
  const mine = await connectAuthed(t, running.wsUrl, running.token.ops, { ca });
  const other = await connectAuthed(t, running.wsUrl, running.token.ops, { ca });
  other.send({ type: 'subscribe', topic: 'replies' });
  await other.next('subscribed');

  t.is((await push('/push', { topic: 'replies', args: ['only you'], connectionId: mine.connectionId })).status, 200);
  t.like(await mine.next('event', 15_000), { topic: 'replies', direct: true, args: ['only you'] });

  t.is((await push('/reply', { topic: 'replies', kwargs: { to: mine.connectionId, text: 'scripted' } })).status, 200);
  t.like(await mine.next('event', 15_000), { topic: 'replies', direct: true, args: ['SCRIPTED'] });
  t.deepEqual(other.pending(), [], 'the subscriber of the topic saw neither');

  mine.close();
  await mine.closed;
  const gone = await push('/push', { topic: 'replies', args: ['too late'], connectionId: mine.connectionId });
  const message = await sentStatus(String(gone.json!['id']));
  t.is(message.status, 'error');
  t.regex(message.error ?? '', /WS_CONNECTION_GONE/);
  t.deepEqual(other.pending(), []);
});
