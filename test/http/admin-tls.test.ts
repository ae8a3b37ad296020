import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../../engine/config/load.ts';
import { startEngine } from '../../engine/engine.ts';
import { makeCerts, send } from '../https/helpers.ts';
import { writeTestUsers } from '../helpers/admin.ts';
import { configProblems, configProject, parseConfigIn } from '../helpers/config.ts';
import { captureLogger } from '../helpers/logger.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';

// The admin API and web UI over HTTPS (engine.admin cert and key): logins and session cookies never
// cross the network in clear, and the cookie is marked Secure. Without TLS on a network address the
// engine says so at start.

const CHANNELS = `  - name: adt
    source: { type: channel }
    destinations:
      - { name: archive, type: file, dir: ./out }
`;

const startWith = async (t: ExecutionContext, admin: string) => {
  const { dir, configFile } = await tempProject(t, channelsYaml({ channels: CHANNELS, admin }));
  const certs = await makeCerts(join(dir, 'certs'), []);
  await writeTestUsers(join(dir, 'users.yaml'), [{ name: 'ada', role: 'admin', password: 'correct horse battery staple' }]);
  const { logger, lines } = captureLogger();
  const engine = await startEngine(await loadConfig(configFile), logger);
  t.teardown(() => engine.stop());
  return { engine, certs, lines };
};

test('engine.admin cert and key: HTTPS only, a Secure session cookie, the https URL reported', async (t) => {
  const { engine, certs } = await startWith(t, '{ host: 127.0.0.1, port: 0, cert: certs/server.crt, key: certs/server.key }');
  t.is(engine.admin.url, `https://127.0.0.1:${engine.admin.port}`);
  const health = await send(`${engine.admin.url}/healthz`, { method: 'GET', ca: certs.pem.ca });
  t.is(health.status, 200);

  const login = await send(`${engine.admin.url}/api/login`, {
    ca: certs.pem.ca,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'ada', password: 'correct horse battery staple' }),
  });
  t.is(login.status, 200);
  const cookie = String(login.headers['set-cookie']);
  t.regex(cookie, /^ferry_session=[^;]+;/);
  t.regex(cookie, /; secure/i);
  t.regex(cookie, /; httponly/i);

  // Plain HTTP to the same port gets no answer worth the name: the TLS layer refuses it.
  const socket = net.connect(engine.admin.port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  t.notRegex(Buffer.concat(chunks).toString('latin1'), /^HTTP\//, 'no HTTP answer over plain HTTP');
});

test('users and a network address without TLS: the engine warns at start that logins cross the network in clear', async (t) => {
  const { engine, lines } = await startWith(t, '{ host: 0.0.0.0, port: 0 }');
  t.is(engine.admin.url, `http://0.0.0.0:${engine.admin.port}`);
  const warning = lines.find((l) => l.level === 40 && /^the admin API is reachable from the network over plain HTTP: /.test(l.msg));
  t.truthy(warning);
  t.is(warning!['admin'], engine.admin.url);
});

test('config: cert and key resolve against the config folder; one without the other, or a missing file, is refused', async (t) => {
  const dir = await configProject(t, ['certs/admin.crt', 'certs/admin.key']);
  const config = (admin: string): string => `engine:\n  admin: ${admin}\nchannels:\n${CHANNELS}`;
  t.deepEqual(parseConfigIn(dir, config('{ port: 8443, cert: certs/admin.crt, key: certs/admin.key }')).engine.admin, {
    host: '127.0.0.1',
    port: 8443,
    tls: { cert: join(dir, 'certs/admin.crt'), key: join(dir, 'certs/admin.key') },
  });
  t.false('tls' in parseConfigIn(dir, config('{ port: 8443 }')).engine.admin);
  t.regex(configProblems(dir, config('{ cert: certs/admin.crt }')), /engine\.admin\.cert: HTTPS for the admin API needs both cert and key/);
  t.regex(configProblems(dir, config('{ cert: certs/nope.crt, key: certs/admin.key }')), /engine\.admin\.cert: file not found: .*certs\/nope\.crt/);
});
