import test from 'ava';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { addToken, openTokenTable } from '../../engine/auth/tokens.ts';
import { createChannel } from '../../engine/channel.ts';
import type { ChannelConfig } from '../../engine/config/contract.ts';
import type { HttpsDestinationConfig } from '../../engine/destinations/https.ts';
import { httpsListener } from '../../engine/http/https-listener.ts';
import { redisConnectionOptions } from '../../engine/redis/connection.ts';
import type { HttpsSourceConfig } from '../../engine/sources/https.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { eventually, tempDir } from '../helpers/temp.ts';
import { captureLogger } from '../helpers/logger.ts';
import { farEnd, makeCerts, reply, send } from './helpers.ts';

// The shipped store-and-forward relay (channels/relay.ts) as a real channel in this process: an
// HTTPS source with a token, the script choosing URL and method with ctx.deliver, the choice stored
// with the output, and the https destination following it, honouring Retry-After between tries.

const RELAY_SCRIPT = fileURLToPath(new URL('../../channels/relay.ts', import.meta.url));

test('POST {method, url, body} → stored, answered, then delivered to url with retries', async (t) => {
  const dir = await tempDir(t);
  const certs = await makeCerts(t);
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const store = openMessageStore(join(dir, 'messages.db'));
  t.teardown(() => store.close());
  const { logger } = captureLogger();

  const api = await farEnd(t, certs, [reply(503, 'busy', { 'Retry-After': '1' }), reply(204)]);
  const tokensFile = join(dir, 'tokens.yaml');
  const token = await addToken(tokensFile, 'my-app', ['relay']);
  const tokens = openTokenTable(tokensFile, logger);
  t.teardown(() => tokens.close());

  const listener = httpsListener({
    config: { host: '127.0.0.1', port: 0, plain: false, cert: certs.serverCert, key: certs.serverKey, ca: undefined, clientCert: 'none' },
    paths: ['/relay'],
    logger,
  });
  const source: HttpsSourceConfig = { type: 'https', path: '/relay', maxBodyBytes: 65_536, allowIps: [], requireTls: true, auth: 'token', rateLimit: undefined };
  const forward: HttpsDestinationConfig = {
    name: 'forward',
    type: 'https',
    order: 'parallel',
    // A 100 ms backoff: the second try must still wait for the far end's Retry-After: 1.
    retry: { attempts: 0, backoff: 'fixed', delayMs: 100, maxDelayMs: 60_000 },
    url: `${api.url}/default`,
    token: undefined,
    hmac: undefined,
    ca: certs.ca,
    cert: undefined,
    key: undefined,
    timeoutMs: 5000,
    headers: {},
    allowDynamicUrl: [`${api.url}/api/`],
    circuitBreaker: { failures: 5, cooldownMs: 30_000 },
  };
  const config: ChannelConfig = {
    name: 'relay',
    source,
    script: RELAY_SCRIPT,
    scriptLimits: { memoryBytes: 32 * 1024 * 1024, timeoutMs: 2000, maxOutputs: 1000 },
    concurrency: 1,
    maxQueued: 1000,
    dedupe: undefined,
    destinations: [forward],
  };
  const channel = createChannel(config, {
    store,
    connection: redisConnectionOptions({ path: redis.path }),
    logger,
    services: { intakeOf: () => undefined, https: { listener, tokens } },
  });
  t.teardown(() => channel.close());
  await channel.start();
  const { url } = await listener.start();
  t.teardown(() => listener.stop());

  const post = (request: unknown) =>
    send(`${url}/relay`, {
      ca: certs.pem.ca,
      body: JSON.stringify(request),
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    });

  const accepted = await post({ method: 'PUT', url: `${api.url}/api/orders/5`, body: { qty: 2 } });
  t.is(accepted.status, 200);
  const id = String(accepted.json?.['id']);

  const detail = await eventually(() => {
    const message = store.get(id);
    return message?.status === 'sent' ? message : undefined;
  }, 20_000, 'the relayed request to be delivered');
  t.is(api.received.length, 2, 'one 503, then the success');
  for (const request of api.received) {
    t.is(request.method, 'PUT');
    t.is(request.url, '/api/orders/5');
    t.is(request.body.toString(), '{"qty":2}');
    t.is(request.headers['content-type'], 'application/json');
    t.is(request.headers['x-ferry-message-id'], id);
  }
  const gap = api.received[1]!.at - api.received[0]!.at;
  t.true(gap >= 950, `Retry-After: 1 honoured over the 100 ms backoff (waited ${gap} ms)`);
  const stage = detail.stages.find((s) => s.stage === 'forward#0')!;
  t.like(stage, { status: 'sent', attempts: 2, content: 'HTTP 204' });
  t.deepEqual(store.outputMeta(id, 0), { url: `${api.url}/api/orders/5`, method: 'PUT', headers: { 'Content-Type': 'application/json' } });

  // A URL outside allowDynamicUrl: accepted (it is stored), then errored without a request.
  const outside = await post({ url: 'https://example.org/steal', body: 'x' });
  t.is(outside.status, 200);
  const errored = await eventually(() => {
    const message = store.get(String(outside.json?.['id']));
    return message?.status === 'error' ? message : undefined;
  });
  t.regex(errored.error ?? '', /HTTP_URL_NOT_ALLOWED/);
  t.is(api.received.length, 2);
});
