import test from 'ava';
import { join } from 'node:path';
import { configProblems, configProject, parseConfigIn } from '../helpers/config.ts';

// The WebSocket push keys of channels.yaml: engine.websocket, pusher sources, websocket
// destinations — defaults, normalized values, and problems reported with line and key path.

/** Files the configs below may name. */
const CERTS = ['certs/server.crt', 'certs/server.key'];

const HTTPS = '  https: { port: 8443, cert: certs/server.crt, key: certs/server.key }\n';

const config = (engine: string, source: string, destination: string): string =>
  `engine:\n${engine}channels:\n  - name: live\n    source: ${source}\n    destinations:\n      - ${destination}\n`;

test('defaults: engine.websocket {}, a pusher source, a websocket destination with and without topic', async (t) => {
  const dir = await configProject(t, CERTS);
  const parsed = parseConfigIn(
    dir,
    config(`${HTTPS}  websocket: {}\n`, '{ type: pusher, path: /push, auth: token }', '{ name: browsers, type: websocket }') +
      '      - { name: board, type: websocket, topic: lab.results }\n',
  );
  t.deepEqual(parsed.engine.websocket, {
    path: '/ws',
    replay: { size: 1000, ttlMs: 5 * 60_000, maxBytes: 64 * 1024 ** 2 },
    sendBufferBytes: 1024 ** 2,
    maxConnections: 1000,
    allowIps: [],
  });
  t.deepEqual(parsed.channels[0]!.source, {
    type: 'pusher',
    path: '/push',
    maxBodyBytes: 1024 ** 2,
    allowIps: [],
    requireTls: true,
    auth: 'token',
    rateLimit: undefined,
  });
  t.like(parsed.channels[0]!.destinations[0], { type: 'websocket', name: 'browsers', topic: undefined, order: 'fifo' });
  t.like(parsed.channels[0]!.destinations[1], { type: 'websocket', topic: 'lab.results' });
});

test('every engine.websocket key, and the pusher keys it shares with https sources', async (t) => {
  const dir = await configProject(t, CERTS);
  const parsed = parseConfigIn(
    dir,
    config(
      `${HTTPS}  websocket: { path: /live/events, replay: { size: 0, ttl: 30s, maxBytes: 8MB }, sendBuffer: 256KB, maxConnections: 50, allowIps: [10.0.0.0/8, "::1"] }\n`,
      '{ type: pusher, path: /push, auth: hmac, maxBody: 64KB, allowIps: [127.0.0.1], rateLimit: { requests: 10, per: 1s } }',
      '{ name: b, type: websocket, topic: adt }',
    ),
  );
  t.deepEqual(parsed.engine.websocket, {
    path: '/live/events',
    replay: { size: 0, ttlMs: 30_000, maxBytes: 8 * 1024 ** 2 },
    sendBufferBytes: 256 * 1024,
    maxConnections: 50,
    allowIps: ['10.0.0.0/8', '::1'],
  });
  t.like(parsed.channels[0]!.source, { type: 'pusher', auth: 'hmac', maxBodyBytes: 64 * 1024, allowIps: ['127.0.0.1'], rateLimit: { requests: 10, perMs: 1000 } });
});

const refused: Array<[string, string, RegExp]> = [
  [
    'websocket without the HTTPS listener',
    config('  websocket: {}\n', '{ type: mllp, port: 6661 }', '{ name: b, type: websocket, topic: adt }'),
    /channels\.yaml:2:\d+ engine\.websocket: WebSocket push runs on the engine HTTPS listener/,
  ],
  [
    'a websocket destination without engine.websocket',
    config(HTTPS, '{ type: mllp, port: 6661 }', '{ name: b, type: websocket, topic: adt }'),
    /channels\[0\]\.destinations\[0\]: a websocket destination needs engine\.websocket/,
  ],
  [
    'a pusher source without the HTTPS listener',
    config('  data: ./data\n', '{ type: pusher, path: /push, auth: token }', '{ name: f, type: file, dir: out }'),
    /channels\[0\]\.source: a pusher source needs the engine HTTPS listener/,
  ],
  [
    'the websocket path taken by a pusher',
    config(`${HTTPS}  websocket: { path: /push }\n`, '{ type: pusher, path: /push, auth: token }', '{ name: b, type: websocket }'),
    /engine\.websocket\.path: path \/push is already used by channel "live"/,
  ],
  [
    'the default websocket path taken by an https source',
    config(`${HTTPS}  websocket: {}\n`, '{ type: https, path: /ws, auth: token }', '{ name: b, type: websocket, topic: adt }'),
    /engine\.websocket: path \/ws is already used by channel "live"/,
  ],
  [
    'pusher auth other than token or hmac',
    config(HTTPS, '{ type: pusher, path: /push, auth: none }', '{ name: f, type: file, dir: out }'),
    /channels\[0\]\.source\.auth: must be one of token, hmac/,
  ],
  [
    'a topic that is not dot-separated lower-case parts',
    config(`${HTTPS}  websocket: {}\n`, '{ type: mllp, port: 6661 }', '{ name: b, type: websocket, topic: Lab/Results }'),
    /destinations\[0\]\.topic: must be dot-separated parts of a-z, 0-9, "_" and "-"/,
  ],
  [
    'a bad allowIps rule',
    config(`${HTTPS}  websocket: { allowIps: [10.0.0.0/33] }\n`, '{ type: mllp, port: 6661 }', '{ name: b, type: websocket, topic: adt }'),
    /engine\.websocket\.allowIps\[0\]: "10\.0\.0\.0\/33": the prefix length must be 0 to 32/,
  ],
  [
    'an unknown websocket key',
    config(`${HTTPS}  websocket: { replay: { size: 10, keep: 5 } }\n`, '{ type: mllp, port: 6661 }', '{ name: b, type: websocket, topic: adt }'),
    /channels\.yaml:3:\d+ engine\.websocket\.replay\.keep: unknown key "keep"/,
  ],
];

for (const [what, text, expected] of refused) {
  test(`refused: ${what}`, async (t) => {
    const dir = await configProject(t, CERTS);
    const reported = configProblems(dir, text);
    t.regex(reported, /^CONFIG_INVALID\n/);
    t.regex(reported, expected);
  });
}
