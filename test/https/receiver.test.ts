import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createHmacVerifier, memoryNonceStore, signRequest } from '../../engine/auth/hmac.ts';
import { addHmacKey, addToken, openTokenTable, revokeToken, type TokenTable } from '../../engine/auth/tokens.ts';
import type { HttpsListenerConfig } from '../../engine/config/contract.ts';
import type { HttpsSourceConfig } from '../../engine/sources/https.ts';
import { FerryError } from '../../engine/errors.ts';
import { httpsListener, type HttpsListener } from '../../engine/http/https-listener.ts';
import type { Intake, IntakeOptions, IntakeResult } from '../../engine/intake.ts';
import { httpsReceiver, receiverSource } from '../../engine/sources/https-receiver.ts';
import { eventually } from '../helpers/temp.ts';
import { captureLogger } from '../helpers/logger.ts';
import { makeCerts, send, type TestCerts } from './helpers.ts';

// The receiver against a real TLS listener on port 0, with a real token table and HMAC verifier and
// a recording intake: what it answers, what reaches intake (bytes and id), and what it logs.

interface Recorded {
  raw: Buffer;
  options: IntakeOptions;
}

const recordingIntake = (answer?: (raw: Buffer, options: IntakeOptions) => IntakeResult | undefined) => {
  const calls: Recorded[] = [];
  let n = 0;
  const intake: Intake = {
    async accept(raw, options) {
      calls.push({ raw, options });
      return answer?.(raw, options) ?? { kind: 'accepted', id: options.id ?? `ID${++n}`, header: undefined, charset: 'UTF-8', duplicate: false };
    },
    async drain() {},
  };
  return { intake, calls };
};

const source = (path: string, overrides: Partial<HttpsSourceConfig> = {}): HttpsSourceConfig => ({
  type: 'https',
  path,
  maxBodyBytes: 1024 * 1024,
  allowIps: [],
  requireTls: true,
  auth: 'none',
  rateLimit: undefined,
  ...overrides,
});

interface Fixture {
  certs: TestCerts;
  dir: string;
  tokensFile: string;
  tokens: TokenTable;
  /** Token for channel adt, and one for channel lab. */
  adtToken: string;
  labToken: string;
  hmacSecret: string;
}

let fixture: Fixture;
let fixtureDir: string;

test.before(async () => {
  fixtureDir = await mkdtemp(join(tmpdir(), 'ferry-receiver-'));
  const certs = await makeCerts(join(fixtureDir, 'certs'), ['site-a']);
  const tokensFile = join(fixtureDir, 'tokens.yaml');
  const adtToken = await addToken(tokensFile, 'site-a', ['adt']);
  const labToken = await addToken(tokensFile, 'lab-app', ['lab']);
  const hmacSecret = await addHmacKey(tokensFile, 'signer', ['adt']);
  const tokens = openTokenTable(tokensFile, captureLogger().logger, { debounceMs: 10, pollMs: 200 });
  fixture = { certs, dir: fixtureDir, tokensFile, tokens, adtToken, labToken, hmacSecret };
});

test.after.always(async () => {
  await fixture?.tokens.close();
  await rm(fixtureDir, { recursive: true, force: true });
});

const listenerConfig = (overrides: Partial<HttpsListenerConfig> = {}): HttpsListenerConfig => ({
  host: '127.0.0.1',
  port: 0,
  plain: false,
  cert: fixture.certs.serverCert,
  key: fixture.certs.serverKey,
  ca: fixture.certs.ca,
  clientCert: 'request',
  ...overrides,
});

/** A listener with one receiver per given path (channel "adt" unless named), started; stopped after the test. */
const serve = async (
  t: import('ava').ExecutionContext,
  routes: Array<{ config: HttpsSourceConfig; channel?: string; answer?: Parameters<typeof recordingIntake>[0]; channelOf?: (id: string) => string | undefined }>,
  listener: Partial<HttpsListenerConfig> = {},
  extraPaths: string[] = [],
) => {
  const { logger, lines } = captureLogger();
  const server: HttpsListener = httpsListener({ config: listenerConfig(listener), paths: [...routes.map((r) => r.config.path), ...extraPaths], logger });
  const hmac = createHmacVerifier({ keys: (keyId) => fixture.tokens.hmacSecret(keyId), nonces: memoryNonceStore() });
  const intakes = routes.map((route) => {
    const recorder = recordingIntake(route.answer);
    const receiver = httpsReceiver(route.config, {
      channel: route.channel ?? 'adt',
      intake: recorder.intake,
      logger,
      tokens: fixture.tokens,
      hmac,
      channelOf: route.channelOf ?? (() => undefined),
    });
    server.mount(route.config.path, receiver);
    return recorder;
  });
  const { url } = await server.start();
  t.teardown(() => server.stop());
  return { url, intakes, lines, server };
};

const ca = () => fixture.certs.pem.ca;
const HL7 = 'MSH|^~\\&|REG|HOSP|FERRY|HOSP|20260101120000||ADT^A01|MSG1|P|2.5\rPID|1||123^^^HOSP^MR||DOE^JOHN\r';

test('a message with a good token is handed to intake and answered 200 {"Success": true, "id"}', async (t) => {
  const { url, intakes } = await serve(t, [{ config: source('/in/adt', { auth: 'token' }) }]);
  const reply = await send(`${url}/in/adt`, { ca: ca(), body: HL7, headers: { Authorization: `Bearer ${fixture.adtToken}`, 'Content-Type': 'text/plain' } });
  t.is(reply.status, 200);
  t.deepEqual(reply.json, { Success: true, id: 'ID1' });
  t.is(reply.headers['x-ferry-message-id'], 'ID1');
  t.is(intakes[0]!.calls.length, 1);
  t.is(intakes[0]!.calls[0]!.raw.toString('latin1'), HL7);
  t.is(intakes[0]!.calls[0]!.options.requireHl7, false);
  t.is(intakes[0]!.calls[0]!.options.source, 'https 127.0.0.1 token site-a');
});

test('refusals: status, JSON reason, nothing handed to intake, and a log line each', async (t) => {
  const { url, intakes, lines } = await serve(
    t,
    [
      { config: source('/in/adt', { auth: 'token' }) },
      { config: source('/in/fenced', { allowIps: ['10.0.0.0/8', 'fd00::/8'] }) },
      { config: source('/in/small', { maxBodyBytes: 100 }) },
    ],
    {},
    ['/in/stopped'],
  );
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const cases: Array<[string, string, Parameters<typeof send>[1], number, string, RegExp]> = [
    ['no token', '/in/adt', { body: HL7 }, 401, 'HTTP_UNAUTHORIZED', /missing token/],
    ['a wrong token', '/in/adt', { body: HL7, headers: bearer('fy_not-a-real-token') }, 401, 'HTTP_UNAUTHORIZED', /unknown or revoked/],
    ['a malformed Authorization', '/in/adt', { body: HL7, headers: { Authorization: 'Basic abc' } }, 401, 'HTTP_UNAUTHORIZED', /missing token/],
    ["another channel's token", '/in/adt', { body: HL7, headers: bearer(fixture.labToken) }, 403, 'HTTP_FORBIDDEN', /may not post to channel adt/],
    ['an address outside allowIps', '/in/fenced', { body: HL7 }, 403, 'HTTP_FORBIDDEN', /127\.0\.0\.1 is not allowed/],
    ['a declared length over maxBody', '/in/small', { body: 'x'.repeat(101) }, 413, 'HTTP_BODY_TOO_LARGE', /101 bytes.*100-byte limit/],
    ['a streamed body over maxBody', '/in/small', { chunks: [Buffer.alloc(60, 'a'), Buffer.alloc(60, 'b')] }, 413, 'HTTP_BODY_TOO_LARGE', /100-byte limit/],
    ['a stopped channel', '/in/stopped', { body: HL7 }, 503, 'HTTP_CHANNEL_STOPPED', /not running/],
    ['invalid JSON declared as JSON', '/in/small', { body: '{"a":', headers: { 'Content-Type': 'application/json' } }, 400, 'HTTP_BAD_REQUEST', /JSON but the body is not/],
  ];
  for (const [what, path, options, status, code, reason] of cases) {
    const before = lines.length;
    const reply = await send(`${url}${path}`, { ca: ca(), ...options });
    t.is(reply.status, status, what);
    t.is(reply.json?.['Success'], false, what);
    t.is(reply.json?.['code'], code, what);
    t.regex(String(reply.json?.['error']), reason, what);
    const logged = lines.slice(before).find((l) => l.code === code && l.status === status);
    t.truthy(logged, `${what}: logged`);
    t.regex(logged!.msg, /HTTPS request refused/);
  }
  t.is(intakes.reduce((n, i) => n + i.calls.length, 0), 0);
});

test('a stopped channel answers 503 with Retry-After; a 404 for paths nobody owns; 405 for GET', async (t) => {
  const { url } = await serve(t, [], {}, ['/in/stopped']);
  const stopped = await send(`${url}/in/stopped`, { ca: ca(), body: 'x' });
  t.is(stopped.status, 503);
  t.is(stopped.headers['retry-after'], '5');
  const nobody = await send(`${url}/in/nobody`, { ca: ca(), body: 'x' });
  t.is(nobody.status, 404);
  t.deepEqual(nobody.json, { Success: false, error: 'no channel receives on /in/nobody' });
  const get = await send(`${url}/in/stopped`, { ca: ca(), method: 'GET' });
  t.is(get.status, 405);
  t.is(get.headers['allow'], 'POST');
  t.deepEqual(get.json, { Success: false, error: 'GET is not accepted on /in/stopped: post the message (POST)' });
});

test('an oversized upload is refused while streaming: the server stops reading long before the end', async (t) => {
  const { url } = await serve(t, [{ config: source('/in/small', { maxBodyBytes: 1024 }) }]);
  const { port } = new URL(url);
  // 50 MB chunked, written as fast as the socket takes it: the 413 must come back, and the server
  // must close the connection instead of swallowing the rest.
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: ca() });
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  let response = '';
  socket.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write('POST /in/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
  const piece = Buffer.alloc(64 * 1024, 'z');
  let written = 0;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const pump = async (): Promise<void> => {
    while (written < 50 * 1024 * 1024 && !socket.destroyed) {
      const ok = socket.write(`${piece.length.toString(16)}\r\n${piece.toString('latin1')}\r\n`, 'latin1');
      written += piece.length;
      if (!ok) await Promise.race([new Promise((r) => socket.once('drain', r)), closed]);
    }
  };
  await Promise.race([pump(), closed]);
  await closed;
  t.regex(response, /^HTTP\/1\.1 413 /);
  t.regex(response, /Connection: close/i);
  t.true(written < 50 * 1024 * 1024, `the client wrote ${written} bytes before the server closed`);
});

test('Expect: 100-continue: a refused request gets its answer without sending the body', async (t) => {
  const { url, intakes } = await serve(t, [{ config: source('/in/adt', { auth: 'token' }) }]);
  const { port } = new URL(url);
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: ca() });
  t.teardown(() => socket.destroy());
  let response = '';
  socket.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')));
  socket.write('POST /in/adt HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\nAuthorization: Bearer nope\r\n\r\n');
  await eventually(() => (/\r\n\r\n\{.*\}/s.test(response) ? true : undefined), 5000, 'the reply');
  t.regex(response, /^HTTP\/1\.1 401 /);
  t.notRegex(response, /100 Continue/);
  t.is(intakes[0]!.calls.length, 0);
});

test('Iguana-style form post: message and secret_token fields, bytes kept exactly', async (t) => {
  const { url, intakes } = await serve(t, [{ config: source('/in/adt', { auth: 'token' }) }]);
  // A latin1 byte (0xE9) percent-encoded must arrive as that byte, not as UTF-8.
  const latin1 = Buffer.concat([Buffer.from(HL7.slice(0, -1)), Buffer.from([0xe9]), Buffer.from('\r')]);
  const encoded = [...latin1].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  const form = `message=${encoded}&secret_token=${encodeURIComponent(fixture.adtToken)}`;
  const reply = await send(`${url}/in/adt`, { ca: ca(), body: form, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  t.is(reply.status, 200);
  t.deepEqual(intakes[0]!.calls[0]!.raw, latin1);

  const cases: Array<[string, string, number]> = [
    ['a wrong secret_token', `message=abc&secret_token=wrong`, 401],
    ['no secret_token', `message=abc`, 401],
    ["another channel's secret_token", `message=abc&secret_token=${encodeURIComponent(fixture.labToken)}`, 403],
    ['no message field', `secret_token=${encodeURIComponent(fixture.adtToken)}`, 400],
    ['a bad escape', `message=%zz&secret_token=${encodeURIComponent(fixture.adtToken)}`, 400],
  ];
  for (const [what, body, status] of cases) {
    const refused = await send(`${url}/in/adt`, { ca: ca(), body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    t.is(refused.status, status, what);
  }
  t.is(intakes[0]!.calls.length, 1);
});

test('a raw body sent with the form content type (curl -d) is the message itself', async (t) => {
  const { url, intakes } = await serve(t, [{ config: source('/in/adt', { auth: 'token' }) }]);
  const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
  const reply = await send(`${url}/in/adt`, { ca: ca(), body: HL7, headers: { ...form, Authorization: `Bearer ${fixture.adtToken}` } });
  t.is(reply.status, 200);
  t.is(intakes[0]!.calls[0]!.raw.toString('latin1'), HL7);
  const anonymous = await send(`${url}/in/adt`, { ca: ca(), body: HL7, headers: form });
  t.is(anonymous.status, 401);
  t.regex(String(anonymous.json?.['error']), /missing token/);
  t.is(intakes[0]!.calls.length, 1);
});

test('a revoked token is refused without a restart', async (t) => {
  const tokensFile = join(fixture.dir, 'revoke.yaml');
  const token = await addToken(tokensFile, 'short-lived', ['adt']);
  const table = openTokenTable(tokensFile, captureLogger().logger, { debounceMs: 10, pollMs: 100 });
  t.teardown(() => table.close());
  const { logger } = captureLogger();
  const server = httpsListener({ config: listenerConfig(), paths: ['/in/adt'], logger });
  const { intake, calls } = recordingIntake();
  server.mount('/in/adt', httpsReceiver(source('/in/adt', { auth: 'token' }), { channel: 'adt', intake, logger, tokens: table, channelOf: () => undefined }));
  const { url } = await server.start();
  t.teardown(() => server.stop());
  const post = () => send(`${url}/in/adt`, { ca: ca(), body: HL7, headers: { Authorization: `Bearer ${token}` } });
  t.is((await post()).status, 200);
  await revokeToken(tokensFile, 'short-lived');
  await eventually(async () => ((await post()).status === 401 ? true : undefined), 5000, 'the revocation to take effect');
  const accepted = calls.length;
  const after = await post();
  t.is(after.status, 401);
  t.is(after.json?.['error'], 'unknown or revoked token');
  t.is(calls.length, accepted);
});

test('X-Ferry-Message-Id: a well-formed id is the intake id; a malformed one is ignored; another channel keeps its own', async (t) => {
  const taken = '01J0000000000000000000000A';
  const { url, intakes, lines } = await serve(t, [
    { config: source('/in/adt'), channelOf: (id) => (id === taken ? 'lab' : undefined) },
  ]);
  const post = (id: string) => send(`${url}/in/adt`, { ca: ca(), body: HL7, headers: { 'X-Ferry-Message-Id': id } });
  const ulid = '01J9ZQ4V3M8Y2K5T6N7P8R9S0T';
  t.deepEqual((await post(ulid)).json, { Success: true, id: ulid });
  t.is((await post(`${ulid}-2`)).json?.['id'], `${ulid}-2`);
  t.is((await post('../../etc/passwd')).json?.['id'], 'ID1');
  t.truthy(lines.find((l) => /malformed X-Ferry-Message-Id/.test(l.msg)));
  t.is((await post(taken)).json?.['id'], `${taken}-adt`);
  t.deepEqual(
    intakes[0]!.calls.map((c) => c.options.id),
    [ulid, `${ulid}-2`, undefined, `${taken}-adt`],
  );
});

test('intake outcomes: duplicate → 200 again, rejected → 400 with the reason, failed → 503, ACK → 200 ignored', async (t) => {
  const answers: Record<string, IntakeResult> = {
    dup: { kind: 'accepted', id: 'FIRST', header: undefined, charset: 'UTF-8', duplicate: true },
    bad: { kind: 'rejected', id: 'R1', header: undefined, charset: 'UTF-8', error: new FerryError('HL7_ENCODING', 'bytes are not valid UTF-8') },
    down: { kind: 'failed', header: undefined, charset: 'UTF-8', error: new FerryError('COMMIT_FAILED', 'cannot queue the message') },
    ack: { kind: 'ignored', header: {} as never },
  };
  const { url } = await serve(t, [{ config: source('/in/adt'), answer: (raw) => answers[raw.toString()] }]);
  const post = (body: string) => send(`${url}/in/adt`, { ca: ca(), body });
  const dup = await post('dup');
  t.is(dup.status, 200);
  t.deepEqual(dup.json, { Success: true, id: 'FIRST', duplicate: true });
  const bad = await post('bad');
  t.is(bad.status, 400);
  t.regex(String(bad.json?.['error']), /HL7_ENCODING: bytes are not valid UTF-8/);
  const down = await post('down');
  t.is(down.status, 503);
  t.is(down.json?.['code'], 'COMMIT_FAILED');
  t.is(down.headers['retry-after'], '5');
  const ack = await post('ack');
  t.is(ack.status, 200);
  t.is(ack.json?.['Success'], true);
});

test('rate limit: a token bucket per token (or address), 429 with Retry-After', async (t) => {
  const { url, intakes } = await serve(t, [
    { config: source('/in/adt', { auth: 'token', rateLimit: { requests: 2, perMs: 60_000 } }) },
  ]);
  const post = (token: string) => send(`${url}/in/adt`, { ca: ca(), body: HL7, headers: { Authorization: `Bearer ${token}` } });
  t.is((await post(fixture.adtToken)).status, 200);
  t.is((await post(fixture.adtToken)).status, 200);
  const limited = await post(fixture.adtToken);
  t.is(limited.status, 429);
  t.is(limited.json?.['code'], 'HTTP_RATE_LIMITED');
  // The bucket refills one request per 30 s; it began refilling at the second request.
  const wait = Number(limited.headers['retry-after']);
  t.true(wait > 20 && wait <= 30, `Retry-After ${wait}`);
  t.is(intakes[0]!.calls.length, 2);
});

test('auth hmac: a signed request is accepted once; its replay, a bad signature and a stale one are refused', async (t) => {
  const { url, intakes } = await serve(t, [{ config: source('/in/adt', { auth: 'hmac' }) }]);
  const body = Buffer.from(HL7);
  const headers = signRequest({ keyId: 'signer', secret: fixture.hmacSecret, method: 'POST', path: '/in/adt', body });
  const first = await send(`${url}/in/adt`, { ca: ca(), body, headers });
  t.is(first.status, 200);
  t.is(intakes[0]!.calls[0]!.options.source, 'https 127.0.0.1 key signer');
  const replay = await send(`${url}/in/adt`, { ca: ca(), body, headers });
  t.is(replay.status, 401);
  t.regex(String(replay.json?.['error']), /replayed/);

  const tampered = await send(`${url}/in/adt`, {
    ca: ca(),
    body: Buffer.from(HL7.replace('DOE', 'ROE')),
    headers: signRequest({ keyId: 'signer', secret: fixture.hmacSecret, method: 'POST', path: '/in/adt', body }),
  });
  t.is(tampered.status, 401);
  t.regex(String(tampered.json?.['error']), /bad signature/);
  const stale = await send(`${url}/in/adt`, {
    ca: ca(),
    body,
    headers: signRequest({ keyId: 'signer', secret: fixture.hmacSecret, method: 'POST', path: '/in/adt', body, now: Date.now() - 3_600_000 }),
  });
  t.is(stale.status, 401);
  t.regex(String(stale.json?.['error']), /in the past/);
  t.is(intakes[0]!.calls.length, 1);
});

test('auth hmac: a key not granted this channel gets 403', async (t) => {
  const { url } = await serve(t, [{ config: source('/in/lab', { auth: 'hmac' }), channel: 'lab' }]);
  const body = Buffer.from(HL7);
  const reply = await send(`${url}/in/lab`, { ca: ca(), body, headers: signRequest({ keyId: 'signer', secret: fixture.hmacSecret, method: 'POST', path: '/in/lab', body }) });
  t.is(reply.status, 403);
});

test('auth mtls: the certificate CN names the sender; no certificate 401; one from another CA 403', async (t) => {
  const foreign = await makeCerts(t, ['intruder']);
  const { url, intakes } = await serve(t, [{ config: source('/in/adt', { auth: 'mtls' }) }]);
  const good = fixture.certs.pem.clients['site-a']!;
  const ok = await send(`${url}/in/adt`, { ca: ca(), body: HL7, cert: good.cert, key: good.key });
  t.is(ok.status, 200);
  t.is(intakes[0]!.calls[0]!.options.source, 'https 127.0.0.1 cert site-a');
  t.is((await send(`${url}/in/adt`, { ca: ca(), body: HL7 })).status, 401);
  const intruder = foreign.pem.clients['intruder']!;
  t.is((await send(`${url}/in/adt`, { ca: ca(), body: HL7, cert: intruder.cert, key: intruder.key })).status, 403);
  t.is(intakes[0]!.calls.length, 1);
});

test('clientCert: require refuses every client without a trusted certificate, on every path', async (t) => {
  const foreign = await makeCerts(t, ['intruder']);
  const { url, intakes, lines } = await serve(t, [{ config: source('/in/open') }], { clientCert: 'require' });
  const none = await send(`${url}/in/open`, { ca: ca(), body: HL7 });
  t.is(none.status, 401);
  t.regex(String(none.json?.['error']), /client certificate is required/);
  const intruder = foreign.pem.clients['intruder']!;
  const untrusted = await send(`${url}/in/open`, { ca: ca(), body: HL7, cert: intruder.cert, key: intruder.key });
  t.is(untrusted.status, 403);
  t.truthy(lines.find((l) => l.status === 403 && /not trusted/.test(l.msg)));
  const good = fixture.certs.pem.clients['site-a']!;
  t.is((await send(`${url}/in/open`, { ca: ca(), body: HL7, cert: good.cert, key: good.key })).status, 200);
  t.is(intakes[0]!.calls.length, 1);
});

test('requireTls: a plain listener refuses (403) unless the source allows plain HTTP', async (t) => {
  const { url, intakes } = await serve(
    t,
    [{ config: source('/in/strict') }, { config: source('/in/relaxed', { requireTls: false }) }],
    { plain: true, cert: undefined, key: undefined, clientCert: 'none' },
  );
  t.true(url.startsWith('http://'));
  const strict = await send(`${url}/in/strict`, { body: HL7 });
  t.is(strict.status, 403);
  t.regex(String(strict.json?.['error']), /HTTPS only/);
  t.is((await send(`${url}/in/relaxed`, { body: HL7 })).status, 200);
  t.is(intakes[0]!.calls.length + intakes[1]!.calls.length, 1);
});

test('httpsSource: mounted on start, 503 after stop, and stop waits for a request in flight', async (t) => {
  const { logger } = captureLogger();
  const server = httpsListener({ config: listenerConfig(), paths: ['/in/adt'], logger });
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const calls: Buffer[] = [];
  const intake: Intake = {
    async accept(raw) {
      calls.push(raw);
      await held;
      return { kind: 'accepted', id: 'SLOW', header: undefined, charset: 'UTF-8', duplicate: false };
    },
    async drain() {},
  };
  const src = receiverSource(source('/in/adt'), { channel: 'adt', intake, logger, mount: server, channelOf: () => undefined });
  const { url } = await server.start();
  t.teardown(() => server.stop());
  t.is((await send(`${url}/in/adt`, { ca: ca(), body: 'early' })).status, 503);
  await src.start();
  const inFlight = send(`${url}/in/adt`, { ca: ca(), body: 'slow' });
  await eventually(() => (calls.length === 1 ? true : undefined));
  let stopped = false;
  const stopping = src.stop().then(() => (stopped = true));
  t.is((await send(`${url}/in/adt`, { ca: ca(), body: 'late' })).status, 503);
  t.false(stopped, 'stop waits for the request in flight');
  release();
  t.is((await inFlight).status, 200);
  await stopping;
  await src.stop();
  t.deepEqual(calls.map(String), ['slow']);
});

test('a plain TCP client that never finishes its headers does not block stop', async (t) => {
  const { logger } = captureLogger();
  const server = httpsListener({ config: listenerConfig({ plain: true, cert: undefined, key: undefined, clientCert: 'none' }), paths: ['/in/x'], logger });
  const { port } = await server.start();
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write('POST /in/x HTTP/1.1\r\nHost: x\r\n');
  const started = Date.now();
  await server.stop();
  await server.stop();
  t.true(Date.now() - started < 7_000);
});
