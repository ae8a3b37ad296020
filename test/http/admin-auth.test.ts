import type { ExecutionContext } from 'ava';
import test from 'ava';
import { request } from 'node:http';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createSessions } from '../../engine/auth/sessions.ts';
import type { ChannelInfo } from '../../engine/channel.ts';
import type { DestinationConfig } from '../../engine/config/contract.ts';
import { newMessageId } from '../../engine/wire/ids.ts';
import { createIntake } from '../../engine/intake.ts';
import { createQueue, inboundQueueName, type InboundJob } from '../../engine/pipeline/queues.ts';
import type { MllpSourceConfig } from '../../engine/sources/mllp.ts';
import { fakeChannel, startAdmin, writeTestUsers, type AdminHarness, type Client, type TestUser } from '../helpers/admin.ts';
import { eventually } from '../helpers/temp.ts';

// Who may call what: sessions with CSRF tokens, API tokens, roles, the failed-login throttle, the
// audit log, and the open mode used while no user is configured.

const adtInfo: ChannelInfo = { name: 'adt', state: 'running', source: 'mllp 127.0.0.1:2575', script: null, lastError: null, queues: { inbound: 0 }, blocked: [] };

const USERS: TestUser[] = [
  { name: 'vera', role: 'viewer', password: 'vera-pass', token: 'ferry_viewer-token' },
  { name: 'otto', role: 'operator', password: 'otto-pass', token: 'ferry_operator-token' },
  { name: 'ada', role: 'admin', password: 'ada-pass', token: 'ferry_admin-token' },
];

const HL7 = 'MSH|^~\\&|REG|HOSP|FERRY|LAB|20260101120000||ADT^A01^ADT_A01|C1|P|2.5\rPID|1||MRN1^^^HOSP^MR||DOE^JOHN\r';

/** The admin app with the three users, one channel with a real intake, and one logged message. */
const withUsers = async (t: ExecutionContext, extra: Parameters<typeof startAdmin>[1] = {}): Promise<AdminHarness & { messageId: string }> => {
  const source: MllpSourceConfig = { type: 'mllp', host: '127.0.0.1', port: 2575, maxFrameBytes: 1 << 20, idleTimeoutMs: 60_000, maxConnections: 10, maxConnectionsPerAddress: 10 };
  const channel = fakeChannel(adtInfo, {
    source,
    destinations: [{ name: 'archive' } as DestinationConfig],
  });
  const admin = await startAdmin(t, { users: USERS, channels: [channel], ...extra });
  const queue = createQueue<InboundJob>(inboundQueueName('adt'), { path: admin.redis.path });
  t.teardown(() => queue.close());
  // Resend goes through the channel's intake: a real one, on the test Redis.
  Object.assign(channel, { intake: createIntake({ channel: 'adt', store: admin.store, queue, logger: pino({ level: 'silent' }) }) });
  const messageId = newMessageId();
  await admin.store.receive({ id: messageId, channel: 'adt', source: 'test', raw: Buffer.from(HL7), text: HL7, charset: 'UNICODE UTF-8' });
  return { ...admin, messageId };
};

const loggedIn = async (t: ExecutionContext, admin: AdminHarness, name: string): Promise<Client> => {
  const client = admin.client();
  const user = USERS.find((u) => u.name === name)!;
  const result = await client.login(user.name, user.password);
  t.is(result.status, 200, `login ${name}`);
  return client;
};

/** Opens the event stream and reports its status, then hangs up. */
const openStream = async (base: string, headers: Record<string, string>): Promise<{ status: number; type: string | null; body: any }> => {
  const abort = new AbortController();
  const response = await fetch(`${base}/api/events`, { headers, signal: abort.signal });
  const body = response.headers.get('content-type')?.startsWith('application/json') ? await response.json() : null;
  abort.abort();
  return { status: response.status, type: response.headers.get('content-type'), body };
};

type Role = 'viewer' | 'operator' | 'admin';
const endpoints: Array<{ method: string; path: (id: string) => string; body?: (id: string) => unknown; needs: Role; ok: number }> = [
  { method: 'GET', path: () => '/api/session', needs: 'viewer', ok: 200 },
  { method: 'GET', path: () => '/api/channels', needs: 'viewer', ok: 200 },
  { method: 'GET', path: () => '/api/channels/adt', needs: 'viewer', ok: 200 },
  { method: 'GET', path: () => '/api/messages?q=MRN1', needs: 'viewer', ok: 200 },
  { method: 'GET', path: (id) => `/api/messages/${id}`, needs: 'viewer', ok: 200 },
  { method: 'GET', path: () => '/api/events', needs: 'viewer', ok: 200 },
  { method: 'POST', path: () => '/api/channels/adt/stop', needs: 'operator', ok: 200 },
  { method: 'POST', path: () => '/api/channels/adt/start', needs: 'operator', ok: 200 },
  { method: 'POST', path: (id) => `/api/messages/${id}/resend`, needs: 'operator', ok: 201 },
  { method: 'POST', path: () => '/api/messages/resend', body: (id) => ({ ids: [id] }), needs: 'operator', ok: 200 },
  // Allowed, audited, and refused by the channel: nothing is being delivered to skip.
  { method: 'POST', path: () => '/api/channels/adt/destinations/archive/skip', body: (id) => ({ id }), needs: 'operator', ok: 409 },
  { method: 'GET', path: () => '/api/audit', needs: 'admin', ok: 200 },
];
const rank = { viewer: 0, operator: 1, admin: 2 };

for (const via of ['session', 'token'] as const) {
  test(`every endpoint for every role, by ${via}`, async (t) => {
    const admin = await withUsers(t);
    for (const user of USERS) {
      const client = via === 'session' ? await loggedIn(t, admin, user.name) : admin.client();
      const auth: Record<string, string> = via === 'token' ? { authorization: `Bearer ${user.token}` } : {};
      for (const endpoint of endpoints) {
        const path = endpoint.path(admin.messageId);
        const allowed = rank[user.role] >= rank[endpoint.needs];
        const label = `${user.role} ${endpoint.method} ${path}`;
        if (path === '/api/events') {
          const cookie: Record<string, string> = client.cookie ? { cookie: client.cookie } : {};
          const stream = await openStream(admin.base, { ...cookie, ...auth });
          t.is(stream.status, 200, label);
          t.is(stream.type, 'text/event-stream; charset=utf-8', label);
          continue;
        }
        const result = await client.call(endpoint.method, path, { headers: auth, ...(endpoint.body && { body: endpoint.body(admin.messageId) }) });
        t.is(result.status, allowed ? endpoint.ok : 403, label);
        if (!allowed) {
          t.deepEqual(result.body, { error: { code: 'AUTH_FORBIDDEN', message: `${user.name} is ${user.role}; this needs ${endpoint.needs}` } }, label);
        }
      }
    }
    // What went through is in the audit log, with who did it.
    const audit = await admin.client().call('GET', '/api/audit', { headers: { authorization: 'Bearer ferry_admin-token' } });
    const actions = audit.body.map((e: { user: string; action: string; target: string }) => `${e.user} ${e.action} ${e.target}`).reverse();
    const expected = [
      ...(via === 'session' ? ['vera login null'] : []),
      ...(via === 'session' ? ['otto login null'] : []),
      'otto stop adt',
      'otto start adt',
      `otto resend ${admin.messageId}`,
      `otto resend ${admin.messageId}`,
      `otto skip ${admin.messageId}`,
      ...(via === 'session' ? ['ada login null'] : []),
      'ada stop adt',
      'ada start adt',
      `ada resend ${admin.messageId}`,
      `ada resend ${admin.messageId}`,
      `ada skip ${admin.messageId}`,
    ];
    t.deepEqual(actions, expected);
  });
}

test('no session or token: 401 AUTH_REQUIRED everywhere; a wrong token: 401 AUTH_FAILED', async (t) => {
  const admin = await withUsers(t);
  const client = admin.client();
  for (const endpoint of endpoints) {
    const path = endpoint.path(admin.messageId);
    const result = path === '/api/events' ? await openStream(admin.base, {}) : await client.call(endpoint.method, path, endpoint.body && { body: endpoint.body(admin.messageId) });
    t.is(result.status, 401, path);
    t.deepEqual(result.body, { error: { code: 'AUTH_REQUIRED', message: 'log in or send an API token' } }, path);
  }
  const wrong = await client.call('GET', '/api/channels', { headers: { authorization: 'Bearer ferry_nope' } });
  t.deepEqual([wrong.status, wrong.body.error.code], [401, 'AUTH_FAILED']);
  // Health and metrics stay open (load balancers, Prometheus).
  t.is((await client.call('GET', '/healthz')).status, 200);
  t.is((await client.call('GET', '/metrics')).status, 200);
});

test('login: httpOnly SameSite=Strict cookie, the session, CSRF on state-changing calls, logout', async (t) => {
  const admin = await withUsers(t);
  const client = admin.client();
  const login = await client.login('otto', 'otto-pass');
  t.is(login.status, 200);
  t.deepEqual(Object.keys(login.body), ['username', 'role', 'csrfToken']);
  t.like(login.body, { username: 'otto', role: 'operator' });
  t.regex(login.body.csrfToken, /^[A-Za-z0-9_-]{43}$/);
  t.regex(login.headers.get('set-cookie')!, /^ferry_session=[A-Za-z0-9_-]{43}; path=\/; samesite=strict; httponly$/);

  t.deepEqual((await client.call('GET', '/api/session')).body, login.body);

  // State-changing calls need the token; reads do not.
  const missing = await client.call('POST', '/api/channels/adt/stop', { csrf: false });
  t.deepEqual([missing.status, missing.body.error.code], [403, 'AUTH_CSRF']);
  const wrong = await client.call('POST', '/api/channels/adt/stop', { csrf: false, headers: { 'x-csrf-token': 'x'.repeat(43) } });
  t.deepEqual([wrong.status, wrong.body.error.code], [403, 'AUTH_CSRF']);
  t.is(admin.channels.get('adt')!.state(), 'running', 'refused calls did nothing');
  const crossSite = await client.call('POST', '/api/channels/adt/stop', { headers: { origin: 'https://evil.example' } });
  t.deepEqual([crossSite.status, crossSite.body], [403, { error: { code: 'AUTH_CSRF', message: 'cross-site request from https://evil.example refused' } }]);
  const sameSite = await client.call('POST', '/api/channels/adt/stop', { headers: { origin: admin.base } });
  t.is(sameSite.status, 200);
  t.is(sameSite.body.state, 'stopped');

  t.is((await client.call('POST', '/api/logout')).status, 204);
  t.is(client.cookie, undefined, 'cookie cleared');
  const after = await admin.client().call('GET', '/api/session', { headers: { cookie: `ferry_session=${/ferry_session=([^;]+)/.exec(login.headers.get('set-cookie')!)![1]}` } });
  t.deepEqual([after.status, after.body.error.message], [401, 'the session has expired; log in again']);
});

test('an API token needs no CSRF token and acts with its user role', async (t) => {
  const admin = await withUsers(t);
  const client = admin.client();
  const stop = await client.call('POST', '/api/channels/adt/stop', { headers: { authorization: 'Bearer ferry_operator-token' } });
  t.deepEqual([stop.status, stop.body.state], [200, 'stopped']);
  const session = await client.call('GET', '/api/session', { headers: { authorization: 'bearer ferry_operator-token' } });
  t.deepEqual(session.body, { username: 'otto', role: 'operator', csrfToken: '' });
  t.like(admin.adminStore.auditLog(1)[0], { user: 'otto', action: 'stop', target: 'adt', detail: null });
});

test('failed logins: 401, audited, then 429 with Retry-After per address and per user', async (t) => {
  const admin = await withUsers(t);
  const client = admin.client();
  const bad = await client.login('vera', 'wrong');
  t.deepEqual([bad.status, bad.body], [401, { error: { code: 'AUTH_FAILED', message: 'wrong user name or password' } }]);
  const unknown = await client.login('nobody', 'x');
  t.deepEqual([unknown.status, unknown.body.error.code], [401, 'AUTH_FAILED']);
  for (let i = 0; i < 3; i++) t.is((await client.login('vera', `wrong${i}`)).status, 401);

  // Five failures from this address: even the right password waits now, for any user.
  const limited = await client.login('vera', 'vera-pass');
  t.is(limited.status, 429);
  t.is(limited.body.error.code, 'AUTH_RATE_LIMITED');
  const retryAfter = Number(limited.headers.get('retry-after'));
  t.true(retryAfter > 890 && retryAfter <= 900, `Retry-After ${retryAfter}`);
  t.regex(limited.body.error.message, /^too many failed logins; try again in \d+ s$/);
  t.is((await client.login('ada', 'ada-pass')).status, 429);

  const failed = admin.adminStore.auditLog(10).filter((e) => e.action === 'login-failed');
  t.deepEqual(
    failed.map((e) => [e.user, e.detail]),
    [['vera', 'from 127.0.0.1'], ['vera', 'from 127.0.0.1'], ['vera', 'from 127.0.0.1'], ['nobody', 'from 127.0.0.1'], ['vera', 'from 127.0.0.1']],
  );
  t.regex(failed[0]!.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('login body: JSON object with username and password, else 400', async (t) => {
  const admin = await withUsers(t);
  const client = admin.client();
  const cases: Array<[unknown, string | undefined, RegExp]> = [
    ['username=vera&password=x', 'application/x-www-form-urlencoded', /^send the body as application\/json$/],
    ['{not json', undefined, /^the body is not valid JSON$/],
    [[1, 2], undefined, /^the body must be a JSON object$/],
    [{ username: 'vera' }, undefined, /^username and password are required$/],
    [{ username: 'x'.repeat(20_000), password: 'y' }, undefined, /^the body is too large$/],
  ];
  for (const [body, type, message] of cases) {
    const result = await client.call('POST', '/api/login', { body, headers: type ? { 'content-type': type } : {} });
    t.is(result.status, 400, String(message));
    t.regex(result.body.error.message, message);
  }
});

test('sessions expire after their idle time', async (t) => {
  let now = Date.now();
  const admin = await withUsers(t, { sessions: createSessions({ idleMs: 30 * 60_000, now: () => now }) });
  const client = await loggedIn(t, admin, 'vera');
  now += 20 * 60_000;
  t.is((await client.call('GET', '/api/channels')).status, 200, 'a request resets the idle clock');
  now += 20 * 60_000;
  t.is((await client.call('GET', '/api/channels')).status, 200);
  now += 30 * 60_000 + 1;
  const expired = await client.call('GET', '/api/channels');
  t.deepEqual([expired.status, expired.body.error.message], [401, 'the session has expired; log in again']);
});

test('users file changes apply without a restart: a removed user is logged out, a new one can log in', async (t) => {
  const admin = await withUsers(t);
  const vera = await loggedIn(t, admin, 'vera');
  await writeTestUsers(admin.usersFile, [...USERS.filter((u) => u.name !== 'vera'), { name: 'nina', role: 'operator', password: 'nina-pass' }]);
  await eventually(async () => ((await vera.call('GET', '/api/channels')).status === 401 ? true : undefined), 5000, 'vera logged out');
  t.is((await admin.client().login('nina', 'nina-pass')).status, 200);
  // An invalid file keeps the users in force.
  const { writeFile } = await import('node:fs/promises');
  await writeFile(admin.usersFile, 'users: [ {name: x} ]');
  await sleep(300);
  t.is((await admin.client().login('nina', 'nina-pass')).status, 200);
});

/** A request with a Host header fetch would not let us set. */
const rawRequest = (base: string, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: any }> =>
  new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });

test('open mode: no users on a loopback listener acts as admin without login, refuses other hosts and sites', async (t) => {
  const admin = await startAdmin(t, { channels: [fakeChannel(adtInfo)] });
  const client = admin.client();
  t.deepEqual((await client.call('GET', '/api/session')).body, { username: null, role: 'admin', csrfToken: '', open: true });
  const stop = await client.call('POST', '/api/channels/adt/stop');
  t.deepEqual([stop.status, stop.body.state], [200, 'stopped']);
  t.like(admin.adminStore.auditLog(1)[0], { user: '(open mode)', action: 'stop', target: 'adt' });
  t.is((await client.call('GET', '/api/audit')).status, 200);

  // DNS rebinding: another name pointing at 127.0.0.1.
  const rebound = await rawRequest(admin.base, 'GET', '/api/channels', { host: 'evil.example:80' });
  t.deepEqual(rebound, { status: 403, body: { error: { code: 'AUTH_FORBIDDEN', message: 'without users, the admin API answers only to localhost addresses' } } });
  t.is((await rawRequest(admin.base, 'GET', '/api/channels', { host: 'localhost:8470' })).status, 200);
  // A page on another site posting to the local admin.
  const crossSite = await client.call('POST', '/api/channels/adt/start', { headers: { origin: 'https://evil.example' } });
  t.deepEqual([crossSite.status, crossSite.body.error.code], [403, 'AUTH_CSRF']);
  t.is(admin.channels.get('adt')!.state(), 'stopped');
});

test('no users on a listener beyond loopback: nothing is open', async (t) => {
  const admin = await startAdmin(t, { channels: [fakeChannel(adtInfo)], loopbackOnly: false });
  const result = await admin.client().call('GET', '/api/channels');
  t.deepEqual([result.status, result.body.error.code], [401, 'AUTH_REQUIRED']);
});

test('adding the first user ends open mode without a restart', async (t) => {
  const admin = await startAdmin(t, { channels: [fakeChannel(adtInfo)] });
  t.is((await admin.client().call('GET', '/api/channels')).status, 200);
  await writeTestUsers(admin.usersFile, [USERS[0]!]);
  await eventually(async () => ((await admin.client().call('GET', '/api/channels')).status === 401 ? true : undefined), 5000, 'open mode to end');
  await rm(admin.usersFile);
  t.true(await eventually(async () => ((await admin.client().call('GET', '/api/channels')).status === 200 ? true : undefined), 5000, 'open mode again'));
});
