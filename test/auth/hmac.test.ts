import test from 'ava';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { initCertificates } from '../../engine/auth/certs.ts';
import {
  createHmacVerifier,
  memoryNonceStore,
  redisNonceStore,
  signRequest,
  type HmacVerifier,
  type VerifiableRequest,
} from '../../engine/auth/hmac.ts';
import { FerryError } from '../../engine/errors.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { tempDir } from '../helpers/temp.ts';

// Signed requests: sign and verify round trips, every way a request can be wrong, replays caught
// in memory and in a real Redis (also by a second verifier, as after an engine restart), and the
// bash + openssl + curl example from docs/https-auth.md run as written against verify.

const execFileAsync = promisify(execFile);

const SECRET = `fyk_${'k'.repeat(43)}`;
const keys = (keyId: string): string | undefined => (keyId === 'site-b' ? SECRET : undefined);
const body = Buffer.from('MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||123\r', 'latin1');

/** A request as the receiver sees it: Node lower-cases header names. */
const received = (headers: Record<string, string>, overrides: Partial<VerifiableRequest> = {}): VerifiableRequest => ({
  method: 'POST',
  path: '/in/adt',
  headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
  body,
  ...overrides,
});

const signed = (overrides: { now?: number; path?: string; secret?: string; keyId?: string } = {}): Record<string, string> =>
  signRequest({ keyId: overrides.keyId ?? 'site-b', secret: overrides.secret ?? SECRET, method: 'POST', path: overrides.path ?? '/in/adt', body, ...(overrides.now === undefined ? {} : { now: overrides.now }) });

const verifier = (): HmacVerifier => createHmacVerifier({ keys, nonces: memoryNonceStore() });

test('signRequest makes the four headers; verify accepts them once', async (t) => {
  const headers = signed();
  t.deepEqual(Object.keys(headers), ['X-Ferry-Key', 'X-Ferry-Timestamp', 'X-Ferry-Nonce', 'X-Ferry-Signature']);
  t.is(headers['X-Ferry-Key'], 'site-b');
  t.true(Math.abs(Number(headers['X-Ferry-Timestamp']) - Date.now() / 1000) < 5);
  t.regex(headers['X-Ferry-Nonce']!, /^[A-Za-z0-9_-]{16,64}$/);
  t.regex(headers['X-Ferry-Signature']!, /^[0-9a-f]{64}$/);
  t.not(signed()['X-Ferry-Nonce'], headers['X-Ferry-Nonce']);

  const v = verifier();
  t.deepEqual(await v.verify(received(headers)), { ok: true, keyId: 'site-b' });
  t.deepEqual(await v.verify(received(headers)), { ok: false, reason: 'nonce already used (replayed request)' });
});

test('the signature is HMAC-SHA256 over the documented canonical string', async (t) => {
  const { createHash, createHmac } = await import('node:crypto');
  const headers = signRequest({ keyId: 'site-b', secret: SECRET, method: 'post', path: '/in/adt?x=1', body, now: 1_795_409_523_999 });
  const canonical = ['POST', '/in/adt?x=1', 'site-b', '1795409523', headers['X-Ferry-Nonce'], createHash('sha256').update(body).digest('hex')].join('\n');
  t.is(headers['X-Ferry-Timestamp'], '1795409523');
  t.is(headers['X-Ferry-Signature'], createHmac('sha256', SECRET).update(canonical).digest('hex'));
});

const now = Date.now();
const rejections: Array<[string, () => VerifiableRequest, RegExp]> = [
  ['a bad signature', () => received({ ...signed(), 'X-Ferry-Signature': 'ab'.repeat(32) }), /^bad signature$/],
  ['a signature made with another secret', () => received(signed({ secret: `${SECRET}x` })), /^bad signature$/],
  ['a tampered body', () => received(signed(), { body: Buffer.concat([body, Buffer.from('X')]) }), /^bad signature$/],
  ['another path', () => received(signed(), { path: '/in/lab' }), /^bad signature$/],
  ['another method', () => received(signed(), { method: 'PUT' }), /^bad signature$/],
  ['a changed timestamp', () => received({ ...signed(), 'X-Ferry-Timestamp': String(Math.floor(now / 1000) - 1) }), /^bad signature$/],
  ['an unknown key', () => received(signed({ keyId: 'stranger' })), /^unknown key "stranger"$/],
  ['a timestamp 301 s old', () => received(signed({ now: now - 301_000 })), /^timestamp is 30[12] s in the past \(tolerance 300 s\)$/],
  ['a timestamp 301 s ahead', () => received(signed({ now: now + 302_000 })), /^timestamp is 30[012] s in the future \(tolerance 300 s\)$/],
  ['no signature header', () => received({ ...signed(), 'X-Ferry-Signature': '' }), /^missing X-Ferry-Signature header$/],
  ['no key header', () => { const { 'X-Ferry-Key': _, ...rest } = signed(); return received(rest); }, /^missing X-Ferry-Key header$/],
  ['a short nonce', () => received({ ...signed(), 'X-Ferry-Nonce': 'abc' }), /X-Ferry-Nonce must be 16 to 64 characters/],
  ['a nonce with a colon', () => received({ ...signed(), 'X-Ferry-Nonce': 'abcdefgh:ijklmnop' }), /X-Ferry-Nonce must be 16 to 64/],
  ['a timestamp in ISO form', () => received({ ...signed(), 'X-Ferry-Timestamp': new Date().toISOString() }), /must be unix seconds/],
  ['a non-hex signature', () => received({ ...signed(), 'X-Ferry-Signature': 'z'.repeat(64) }), /must be 64 hex digits/],
  ['a header given twice', () => ({ ...received(signed()), headers: { ...received(signed()).headers, 'x-ferry-nonce': ['a'.repeat(16), 'b'.repeat(16)] } }), /X-Ferry-Nonce header given more than once/],
];

for (const [what, request, reason] of rejections) {
  test(`verify rejects ${what}`, async (t) => {
    const verdict = await verifier().verify(request());
    t.false(verdict.ok);
    t.regex((verdict as { reason: string }).reason, reason);
  });
}

test('timestamps inside the tolerance pass, either way; a custom tolerance applies', async (t) => {
  const v = verifier();
  t.true((await v.verify(received(signed({ now: Date.now() - 290_000 })))).ok);
  t.true((await v.verify(received(signed({ now: Date.now() + 290_000 })))).ok);
  const strict = createHmacVerifier({ keys, nonces: memoryNonceStore(), toleranceSec: 10 });
  t.deepEqual(await strict.verify(received(signed({ now: Date.now() - 20_000 }))), { ok: false, reason: 'timestamp is 20 s in the past (tolerance 10 s)' });
  t.true((await strict.verify(received(signed({ now: Date.now() - 5_000 })))).ok);
});

test('a failed signature does not use up the nonce', async (t) => {
  const v = verifier();
  const headers = signed();
  t.false((await v.verify(received({ ...headers, 'X-Ferry-Signature': 'ab'.repeat(32) }))).ok);
  t.true((await v.verify(received(headers))).ok);
});

test('redis nonce store: a replay is refused, also by a new verifier on a new connection; nonces expire after 2 × tolerance', async (t) => {
  const redisServer = await startTestRedis();
  t.teardown(() => redisServer.stop());
  const first = new Redis({ path: redisServer.path });
  const second = new Redis({ path: redisServer.path });
  t.teardown(() => {
    first.disconnect();
    second.disconnect();
  });
  const headers = signed();
  const before = createHmacVerifier({ keys, nonces: redisNonceStore(first, 'ferry:nonce:') });
  t.deepEqual(await before.verify(received(headers)), { ok: true, keyId: 'site-b' });
  t.deepEqual(await before.verify(received(headers)), { ok: false, reason: 'nonce already used (replayed request)' });

  // As after an engine restart: a fresh verifier and connection, the same Redis.
  const after = createHmacVerifier({ keys, nonces: redisNonceStore(second, 'ferry:nonce:') });
  t.deepEqual(await after.verify(received(headers)), { ok: false, reason: 'nonce already used (replayed request)' });
  t.true((await after.verify(received(signed()))).ok);

  const key = `ferry:nonce:site-b:${headers['X-Ferry-Nonce']}`;
  t.is(await second.get(key), '1');
  const ttl = await second.pttl(key);
  t.true(ttl > 590_000 && ttl <= 600_000, `ttl ${ttl}`);

  // Nonces are kept per key id: another key may use the same one.
  const store = redisNonceStore(second, 'ferry:nonce:');
  t.false(await store.claim('site-b', headers['X-Ferry-Nonce']!, 1000));
  t.true(await store.claim('site-c', headers['X-Ferry-Nonce']!, 1000));
});

test('redis nonce store: Redis down rejects with REDIS_UNAVAILABLE (the receiver answers 503), never accepts', async (t) => {
  const redisServer = await startTestRedis();
  const client = new Redis({ path: redisServer.path, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  t.teardown(() => client.disconnect());
  await once(client, 'ready');
  await redisServer.stop();
  const v = createHmacVerifier({ keys, nonces: redisNonceStore(client, 'ferry:nonce:') });
  const error = await t.throwsAsync(v.verify(received(signed())), { instanceOf: FerryError });
  t.is(error?.code, 'REDIS_UNAVAILABLE');
});

const DOC = fileURLToPath(new URL('../../docs/https-auth.md', import.meta.url));

test('the bash + openssl + curl example in docs/https-auth.md signs requests verify accepts', async (t) => {
  const doc = await readFile(DOC, 'utf8');
  const snippet = /<!-- test\/auth\/hmac\.test\.ts runs the next block[^\n]*-->\n```bash\n([\s\S]*?)\n```/.exec(doc)?.[1];
  if (!snippet) return t.fail('the tested bash block is missing from docs/https-auth.md');

  const dir = await tempDir(t, 'ferry-hmac-doc-');
  const certs = await initCertificates({ dir: join(dir, 'certs') });
  const file = join(dir, 'adt-a01.hl7');
  await writeFile(file, body);

  const nonces = memoryNonceStore();
  const v = createHmacVerifier({ keys, nonces });
  const seen: Array<{ path: string; body: string }> = [];
  const server = createServer({ key: await readFile(certs.server.key), cert: await readFile(certs.server.cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = { method: req.method!, path: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push({ path: request.path, body: request.body.toString('latin1') });
      void v.verify(request).then((verdict) => {
        res.writeHead(verdict.ok ? 200 : 401, { 'content-type': 'application/json' });
        res.end(JSON.stringify(verdict));
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;

  const run = (env: Record<string, string>) =>
    execFileAsync('bash', ['-euo', 'pipefail', '-c', snippet], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env } });
  const env = { URL: `https://127.0.0.1:${port}/in/adt?via=curl`, KEY_ID: 'site-b', SECRET, CA: certs.ca.cert, FILE: file };

  const { stdout } = await run(env);
  t.is(stdout, '{"ok":true,"keyId":"site-b"}\n');
  t.deepEqual(seen[0], { path: '/in/adt?via=curl', body: body.toString('latin1') });
  t.is((await run(env)).stdout, '{"ok":true,"keyId":"site-b"}\n', 'a second run signs with a fresh nonce');

  const wrong = await run({ ...env, SECRET: `${SECRET}x` });
  t.is(wrong.stdout, '{"ok":false,"reason":"bad signature"}\n');
});
