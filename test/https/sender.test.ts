import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmacVerifier, memoryNonceStore } from '../../engine/auth/hmac.ts';
import type { HttpsDestinationConfig } from '../../engine/destinations/https.ts';
import { httpsDestination } from '../../engine/destinations/https.ts';
import type { Delivery } from '../../engine/destinations/destination.ts';
import { FerryError, type ErrorCode } from '../../engine/errors.ts';
import { freePort } from '../helpers/temp.ts';
import { captureLogger } from '../helpers/logger.ts';
import { farEnd as startFarEnd, makeCerts, reply, type Answer, type TestCerts } from './helpers.ts';

// The sender against real TLS servers on port 0: what it sends (headers, body, id), and how each
// answer is classed (sent / transient / permanent), Retry-After, TLS checks, the circuit breaker
// and script-chosen URLs.

let certs: TestCerts;
let otherCerts: TestCerts;
let root: string;

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ferry-sender-'));
  certs = await makeCerts(join(root, 'a'), ['site-a']);
  otherCerts = await makeCerts(join(root, 'b'), []);
});

test.after.always(() => rm(root, { recursive: true, force: true }));

const farEnd = (t: ExecutionContext, answers: Answer[], options: { certs?: TestCerts; requireClientCert?: boolean } = {}) =>
  startFarEnd(t, options.certs ?? certs, answers, options);

const destination = (url: string, overrides: Partial<HttpsDestinationConfig> = {}): HttpsDestinationConfig => ({
  name: 'central',
  type: 'https',
  order: 'fifo',
  retry: { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 },
  url,
  token: undefined,
  hmac: undefined,
  ca: certs.ca,
  cert: undefined,
  key: undefined,
  timeoutMs: 5_000,
  headers: {},
  allowDynamicUrl: [],
  circuitBreaker: { failures: 100, cooldownMs: 30_000 },
  ...overrides,
});

const HL7 = 'MSH|^~\\&|REG|HOSP|FERRY|HOSP|20260101120000||ADT^A01|MSG1|P|2.5\rPID|1||123^^^HOSP^MR||DOE^JOHN\r';
const ID = '01J9ZQ4V3M8Y2K5T6N7P8R9S0T';

const delivery = (overrides: Partial<Delivery> = {}): Delivery => ({
  id: ID,
  channel: 'site',
  destination: 'central',
  output: 0,
  content: Buffer.from(HL7),
  controlId: 'MSG1',
  receivedAt: Date.now(),
  ...overrides,
});

const sender = (t: ExecutionContext, config: HttpsDestinationConfig) => {
  const { logger, lines } = captureLogger();
  const dest = httpsDestination(config, { logger });
  t.teardown(() => dest.close());
  return { dest, lines };
};

test('2xx: POSTs the bytes with the message id, token and content type; the reply is the stage content', async (t) => {
  const far = await farEnd(t, [reply(200, JSON.stringify({ Success: true, id: 'REMOTE1' }), { 'Content-Type': 'application/json' })]);
  const { dest } = sender(t, destination(`${far.url}/in/adt?x=1`, { token: 'fy_secret', headers: { 'X-Site': 'north' } }));
  const outcome = await dest.send(delivery());
  t.is(outcome, 'HTTP 200 {"Success":true,"id":"REMOTE1"}');
  const [request] = far.received;
  t.is(request!.method, 'POST');
  t.is(request!.url, '/in/adt?x=1');
  t.is(request!.body.toString('latin1'), HL7);
  t.is(request!.headers['x-ferry-message-id'], ID);
  t.is(request!.headers['authorization'], 'Bearer fy_secret');
  t.is(request!.headers['content-type'], 'x-application/hl7-v2+er7');
  t.is(request!.headers['x-site'], 'north');

  await dest.send(delivery({ output: 2, content: Buffer.from('{"a":1}') }));
  t.is(far.received[1]!.headers['x-ferry-message-id'], `${ID}-2`);
  t.is(far.received[1]!.headers['content-type'], 'application/octet-stream');
});

const outcomes: Array<[string, Answer, 'sent' | 'transient' | 'permanent', ErrorCode?]> = [
  ['201 with no body', reply(201), 'sent'],
  ['200 with a non-JSON body', reply(200, 'OK'), 'sent'],
  ['200 with {"Success": false}', reply(200, '{"Success": false, "error": "no"}'), 'transient', 'HTTP_NOT_SUCCESS'],
  ['400', reply(400, '{"Success": false, "error": "bad"}'), 'permanent', 'HTTP_REJECTED'],
  ['401', reply(401), 'permanent', 'HTTP_REJECTED'],
  ['403', reply(403), 'permanent', 'HTTP_REJECTED'],
  ['404', reply(404), 'permanent', 'HTTP_REJECTED'],
  ['413', reply(413), 'permanent', 'HTTP_REJECTED'],
  ['408', reply(408), 'transient', 'HTTP_RETRYABLE_STATUS'],
  ['425', reply(425), 'transient', 'HTTP_RETRYABLE_STATUS'],
  ['429', reply(429), 'transient', 'HTTP_RETRYABLE_STATUS'],
  ['500', reply(500), 'transient', 'HTTP_RETRYABLE_STATUS'],
  ['503', reply(503), 'transient', 'HTTP_RETRYABLE_STATUS'],
];

for (const [what, answer, expected, code] of outcomes) {
  test(`outcome of ${what}: ${expected}`, async (t) => {
    const far = await farEnd(t, [answer]);
    const { dest, lines } = sender(t, destination(`${far.url}/in`));
    if (expected === 'sent') {
      t.regex(await dest.send(delivery()), /^HTTP 20[01]/);
      return;
    }
    const error = await t.throwsAsync(dest.send(delivery()), { instanceOf: FerryError });
    t.is<string | undefined, string | undefined>(error!.code, code);
    t.is(error!.permanent, expected === 'permanent');
    t.is(error!.details?.['status'], Number(/\d{3}/.exec(what)?.[0] ?? 200));
    const alert = lines.find((l) => l['alert'] === true);
    if (expected === 'permanent') {
      t.truthy(alert, 'a permanent refusal raises an alert');
      t.is(alert!.level, 50);
      t.is(alert!['id'], ID);
    } else {
      t.falsy(alert);
    }
  });
}

test('a 400 keeps the response in the error', async (t) => {
  const far = await farEnd(t, [reply(400, '{"Success": false, "error": "PID-3 missing"}')]);
  const { dest } = sender(t, destination(`${far.url}/in`));
  const error = await t.throwsAsync<FerryError>(dest.send(delivery()));
  t.regex(error!.message, /answered 400: \{"Success": false, "error": "PID-3 missing"\}/);
  t.is(error!.details?.['response'], '{"Success": false, "error": "PID-3 missing"}');
});

test('Retry-After (seconds or a date) becomes the error\'s retryAfterMs', async (t) => {
  const far = await farEnd(t, [reply(503, '', { 'Retry-After': '7' }), reply(429, '', { 'Retry-After': new Date(Date.now() + 20_000).toUTCString() })]);
  const { dest } = sender(t, destination(`${far.url}/in`));
  const first = await t.throwsAsync<FerryError>(dest.send(delivery()));
  t.is(first!.retryAfterMs, 7000);
  const second = await t.throwsAsync<FerryError>(dest.send(delivery()));
  const ms = second!.retryAfterMs!;
  t.true(ms > 15_000 && ms <= 20_000, `got ${ms}`);
});

test('connection refused and a silent server are transient', async (t) => {
  const port = await freePort();
  const { dest } = sender(t, destination(`https://127.0.0.1:${port}/in`));
  const refused = await t.throwsAsync<FerryError>(dest.send(delivery()));
  t.is(refused!.code, 'HTTP_CONNECT_FAILED');
  t.false(refused!.permanent);
  t.regex(refused!.message, /ECONNREFUSED/);

  const far = await farEnd(t, [() => undefined]);
  const slow = sender(t, destination(`${far.url}/in`, { timeoutMs: 300 }));
  const started = Date.now();
  const timedOut = await t.throwsAsync<FerryError>(slow.dest.send(delivery()));
  t.is(timedOut!.code, 'HTTP_TIMEOUT');
  t.false(timedOut!.permanent);
  t.true(Date.now() - started < 3000);
});

test('TLS is verified: a server from another CA fails, with the configured CA and with the system CAs', async (t) => {
  const far = await farEnd(t, [reply(200)], { certs: otherCerts });
  for (const ca of [certs.ca, undefined]) {
    const { dest } = sender(t, destination(`${far.url}/in`, { ca }));
    const error = await t.throwsAsync<FerryError>(dest.send(delivery()));
    t.is(error!.code, 'HTTP_CONNECT_FAILED');
    t.regex(error!.message, /TLS failed/);
  }
  t.is(far.received.length, 0);
});

test('a client certificate is presented when configured', async (t) => {
  const far = await farEnd(t, [reply(200)], { requireClientCert: true });
  const { dest: without } = sender(t, destination(`${far.url}/in`));
  await t.throwsAsync(without.send(delivery()));
  const { dest } = sender(t, destination(`${far.url}/in`, { cert: certs.clients['site-a']!.cert, key: certs.clients['site-a']!.key }));
  t.regex(await dest.send(delivery()), /^HTTP 200/);
  t.is(far.received.length, 1);
});

test('hmac: the request carries a signature the receiver verifies', async (t) => {
  const secret = 'fyk_0123456789abcdefghijklmnopqrstuvwxyz';
  const verifier = createHmacVerifier({ keys: (id) => (id === 'site-a' ? secret : undefined), nonces: memoryNonceStore() });
  const verdicts: unknown[] = [];
  const far = await farEnd(t, [
    (req, res) => {
      void verifier.verify({ method: req.method, path: req.url, headers: req.headers, body: req.body }).then((verdict) => {
        verdicts.push(verdict);
        res.writeHead(verdict.ok ? 200 : 401);
        res.end();
      });
    },
  ]);
  const { dest } = sender(t, destination(`${far.url}/in/adt?v=2`, { hmac: { keyId: 'site-a', secret } }));
  t.regex(await dest.send(delivery()), /^HTTP 200/);
  t.deepEqual(verdicts, [{ ok: true, keyId: 'site-a' }]);
});

test('circuit breaker: after N transient failures calls fail fast, then one probe closes it', async (t) => {
  const far = await farEnd(t, [reply(500), reply(500), reply(200)]);
  const { dest, lines } = sender(t, destination(`${far.url}/in`, { circuitBreaker: { failures: 2, cooldownMs: 400 } }));
  for (let i = 0; i < 2; i++) t.is((await t.throwsAsync<FerryError>(dest.send(delivery())))!.code, 'HTTP_RETRYABLE_STATUS');
  const fast = await t.throwsAsync<FerryError>(dest.send(delivery()));
  t.is(fast!.code, 'HTTP_CIRCUIT_OPEN');
  t.false(fast!.permanent);
  const wait = fast!.retryAfterMs!;
  t.true(wait > 0 && wait <= 400);
  t.is(far.received.length, 2, 'nothing reached the server while open');
  t.truthy(lines.find((l) => l['code'] === 'HTTP_CIRCUIT_OPEN'));
  await new Promise((resolve) => setTimeout(resolve, wait + 20));
  t.regex(await dest.send(delivery()), /^HTTP 200/);
  t.truthy(lines.find((l) => /circuit breaker closed/.test(l.msg)));
  t.regex(await dest.send(delivery()), /^HTTP 200/);
});

test('a 4xx does not count against the breaker', async (t) => {
  const far = await farEnd(t, [reply(500), reply(400), reply(500), reply(200)]);
  const { dest } = sender(t, destination(`${far.url}/in`, { circuitBreaker: { failures: 2, cooldownMs: 60_000 } }));
  for (let i = 0; i < 3; i++) await t.throwsAsync(dest.send(delivery()));
  t.regex(await dest.send(delivery()), /^HTTP 200/);
});

test('dynamic URL: meta.url, method and headers are used under allowDynamicUrl; anything else is a permanent error', async (t) => {
  const far = await farEnd(t, [reply(202, 'queued')]);
  const { dest } = sender(t, destination(`${far.url}/default`, { allowDynamicUrl: [`${far.url}/api/`] }));
  const outcome = await dest.send(delivery({ meta: { url: `${far.url}/api/orders?id=5`, method: 'PUT', headers: { 'Content-Type': 'application/json' } } }));
  t.is(outcome, 'HTTP 202 queued');
  t.is(far.received[0]!.method, 'PUT');
  t.is(far.received[0]!.url, '/api/orders?id=5');
  t.is(far.received[0]!.headers['content-type'], 'application/json');

  for (const url of [`${far.url}/default`, `${far.url}/apix`, 'https://example.org/api/', 'not a url']) {
    const error = await t.throwsAsync<FerryError>(dest.send(delivery({ meta: { url } })));
    t.is(error!.code, 'HTTP_URL_NOT_ALLOWED', url);
    t.true(error!.permanent);
  }
  const { dest: strict } = sender(t, destination(`${far.url}/default`));
  t.is((await t.throwsAsync<FerryError>(strict.send(delivery({ meta: { url: `${far.url}/api/x` } }))))!.code, 'HTTP_URL_NOT_ALLOWED');
  t.is(far.received.length, 1);
});

test('a stored meta with a header Ferry sets (a message log from before the check) is refused, and nothing is sent', async (t) => {
  const far = await farEnd(t, [reply(200)]);
  const { dest } = sender(t, destination(`${far.url}/in`));
  const forged: Array<[Record<string, string>, string]> = [
    [{ Host: 'evil.example' }, "the script's ctx.deliver header Host is set by Ferry"],
    [{ 'transfer-encoding': 'chunked', 'Content-Length': '5' }, "the script's ctx.deliver header transfer-encoding is set by Ferry"],
    [{ 'X-A': '1\r\nX-Injected: 1' }, "the script's ctx.deliver header X-A must be a string without line breaks or other control characters (tab, printable ASCII and Latin-1)"],
    // A character Node's http would refuse each time the request is made.
    [{ 'X-Ward': 'Süd €' }, "the script's ctx.deliver header X-Ward must be a string without line breaks or other control characters (tab, printable ASCII and Latin-1)"],
  ];
  for (const [headers, message] of forged) {
    const error = await t.throwsAsync<FerryError>(dest.send(delivery({ meta: { headers } })));
    t.is(error!.code, 'SCRIPT_BAD_RESULT');
    t.true(error!.permanent);
    t.is(error!.message, message);
  }
  t.is(far.received.length, 0);
});

test('a missing CA file is a config error at creation', (t) => {
  const error = t.throws<FerryError>(() => httpsDestination(destination('https://127.0.0.1:1/in', { ca: '/nonexistent/ca.crt' }), { logger: captureLogger().logger }));
  t.is(error!.code, 'CONFIG_INVALID');
  t.regex(error!.message, /cannot read ca \/nonexistent\/ca\.crt/);
});
