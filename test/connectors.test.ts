import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { destinationConnectors, sourceConnector, sourceConnectors } from '../engine/connectors.ts';
import { parseConfigIn } from './helpers/config.ts';
import { tempDir } from './helpers/temp.ts';

// The registry (engine/connectors.ts) and what each source type says of itself: the lines
// `ferry start` prints, the admin API's `source`, how intake takes its messages (and their resend).
// Each is checked on a config as the loader makes it, from real channels.yaml text.

// Not the list itself: a new type is its module, its test, a line in the registry and its docs.
test('the registry names each type once, as its schema declares it', (t) => {
  for (const list of [sourceConnectors, destinationConnectors]) {
    const types = list.map((c) => c.type);
    t.deepEqual([...new Set(types)], types);
    for (const connector of list) t.is((connector.schema.properties['type'] as { const?: unknown }).const, connector.type, connector.type);
  }
  // The keys every destination has are the loader's; a destination type declares only its own.
  for (const connector of destinationConnectors) {
    t.deepEqual(Object.keys(connector.schema.properties).filter((key) => ['name', 'order', 'retry'].includes(key)), [], connector.type);
  }
});

const CHANNELS = `engine:
  https: { port: 0, plain: true }
channels:
  - name: adt
    source: { type: mllp, port: 6661 }
    destinations: [{ name: d, type: channel, channel: fed }]
  - name: secure
    source: { type: mllp, host: 0.0.0.0, port: 6662, tls: { cert: server.crt, key: server.key } }
    destinations: [{ name: d, type: file, dir: out }]
  - name: fed
    source: { type: channel }
    destinations: [{ name: d, type: file, dir: out2 }]
  - name: api
    source: { type: https, path: /in/adt, auth: token, requireTls: false }
    destinations: [{ name: d, type: file, dir: out3 }]
  - name: push
    source: { type: pusher, path: /push, auth: hmac, requireTls: false }
    destinations: [{ name: d, type: file, dir: out4 }]
  - name: drop
    source: { type: file, dir: in, pattern: '*.txt', encoding: 8859/1 }
    destinations: [{ name: d, type: file, dir: out5 }]
`;

test('each source describes itself, says what it is doing, and tells intake how to take its messages', async (t) => {
  const dir = await tempDir(t);
  for (const file of ['server.crt', 'server.key']) await writeFile(join(dir, file), 'pem');
  const config = parseConfigIn(dir, CHANNELS);
  const running = { port: 40001, httpsUrl: 'http://127.0.0.1:40002' };
  const said = config.channels.map(({ name, source }) => {
    const connector = sourceConnector(source);
    return [name, connector.describe(source), connector.activity(source, running), connector.intakeOptions(source), connector.auth?.(source)];
  });
  t.deepEqual(said, [
    ['adt', 'mllp 127.0.0.1:6661', 'listening on MLLP port 40001', { requireHl7: true }, undefined],
    ['secure', 'mllp+tls 0.0.0.0:6662', 'listening on MLLP over TLS port 40001', { requireHl7: true }, undefined],
    ['fed', 'channel', 'fed by other channels', { requireHl7: false }, undefined],
    ['api', 'https /in/adt', 'receiving on http://127.0.0.1:40002/in/adt', { requireHl7: false }, 'token'],
    ['push', 'pusher /push', 'receiving pushes on http://127.0.0.1:40002/push', { requireHl7: false }, 'hmac'],
    ['drop', `file ${join(dir, 'in')}/*.txt`, `reading files ${join(dir, 'in')}/*.txt`, { requireHl7: true, charset: '8859/1' }, undefined],
  ]);
  // Only the receivers mount a path on the engine HTTPS listener; only the channel source takes hand-offs.
  t.deepEqual(
    config.channels.map(({ source }) => sourceConnector(source).httpsPath?.(source)),
    [undefined, undefined, undefined, '/in/adt', '/push', undefined],
  );
  t.deepEqual(
    sourceConnectors.filter((c) => c.takesHandoffs).map((c) => c.type),
    ['channel'],
  );
});
