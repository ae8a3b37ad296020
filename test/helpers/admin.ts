import type { ExecutionContext } from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import type { LoginLimiter } from '../../engine/auth/login-limiter.ts';
import { hashPassword, type ScryptCost } from '../../engine/auth/passwords.ts';
import type { Sessions } from '../../engine/auth/sessions.ts';
import { tokenSha256, watchUsers, writeUsersFile, type Role, type User, type UserDirectory } from '../../engine/auth/users.ts';
import { channelControl } from '../../engine/channel-control.ts';
import type { Channel, ChannelInfo } from '../../engine/channel.ts';
import type { ChannelConfig } from '../../engine/config/contract.ts';
import { loadConfig } from '../../engine/config/load.ts';
import { startEngine, type Engine } from '../../engine/engine.ts';
import { createEventBus, publishingStore, type EventBus } from '../../engine/events.ts';
import { adminApp } from '../../engine/http/admin.ts';
import type { EventStreamOptions } from '../../engine/http/event-stream.ts';
import { createRedis } from '../../engine/redis/connection.ts';
import { openAdminStore, type AdminStore } from '../../engine/store/admin-store.ts';
import type { MessageStore } from '../../engine/store/contract.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { tempProject } from './project.ts';
import { startTestRedis, type TestRedis } from './redis.ts';
import { tempDir } from './temp.ts';

// The admin app on a real listener (port 0) with a real message log, admin store, users file and a
// private Redis; channels are fakes whose start/stop only flip their state (tests of real channels
// run a whole engine instead). Plus an HTTP client that keeps the session cookie like a browser.

export interface TestUser {
  name: string;
  role: Role;
  password: string;
  /** An API token to accept for this user. */
  token?: string;
  /** The password hash's scrypt cost; default a low one, so that tests stay fast. */
  cost?: ScryptCost;
}

/** Writes a users file; hashes use a low scrypt cost unless a user names one (the format is the same). */
export const writeTestUsers = async (file: string, users: TestUser[]): Promise<void> => {
  const entries: User[] = [];
  for (const u of users) {
    const user: User = { name: u.name, role: u.role, password: await hashPassword(u.password, u.cost ?? { ln: 10, r: 8, p: 1 }) };
    if (u.token) user.token = { sha256: tokenSha256(u.token), createdAt: '2026-01-01T00:00:00.000Z' };
    entries.push(user);
  }
  await writeUsersFile(file, entries);
};

const unused = async (): Promise<never> => {
  throw new Error('not used by this test');
};

/** A channel whose start/stop flip its state; everything else answers from `info`. */
export const fakeChannel = (info: ChannelInfo, config: Partial<ChannelConfig> = {}): Channel => {
  let state = info.state;
  return {
    name: info.name,
    config: { name: info.name, source: { type: 'channel' }, destinations: [], ...config } as ChannelConfig,
    intake: { accept: unused, drain: unused } as unknown as Channel['intake'],
    state: () => state,
    async start() {
      state = 'running';
    },
    async stop() {
      state = 'stopped';
    },
    resync: unused,
    close: unused,
    // Nothing is ever delivered by a fake, so nothing is in progress to skip.
    skip: async () => 'not-in-progress',
    info: async () => ({ ...info, state }),
    sourcePort: () => undefined,
  };
};

export interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
}

export interface Client {
  /** JSON (or text) of one call; sends the session cookie and, once logged in, the CSRF token on POSTs. */
  call(method: string, path: string, options?: { body?: unknown; headers?: Record<string, string>; csrf?: boolean }): Promise<HttpResult>;
  login(username: string, password: string): Promise<HttpResult>;
  readonly cookie: string | undefined;
  readonly csrfToken: string | undefined;
}

export const httpClient = (base: string): Client => {
  let cookie: string | undefined;
  let csrfToken: string | undefined;
  const call: Client['call'] = async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (cookie) headers['cookie'] = cookie;
    if (csrfToken && method !== 'GET' && options.csrf !== false) headers['x-csrf-token'] = csrfToken;
    if (options.body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(base + path, {
      method,
      headers,
      body: options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
    });
    const setCookie = response.headers.get('set-cookie');
    const session = setCookie ? /ferry_session=([^;]*)/.exec(setCookie)?.[1] : undefined;
    if (session !== undefined) cookie = session ? `ferry_session=${session}` : undefined;
    const text = await response.text();
    let body: unknown = text;
    if ((response.headers.get('content-type') ?? '').startsWith('application/json') && text) body = JSON.parse(text);
    return { status: response.status, headers: response.headers, body };
  };
  return {
    call,
    async login(username, password) {
      const result = await call('POST', '/api/login', { body: { username, password } });
      if (result.status === 200) csrfToken = result.body.csrfToken;
      return result;
    },
    get cookie() {
      return cookie;
    },
    get csrfToken() {
      return csrfToken;
    },
  };
};

export interface AdminHarness {
  base: string;
  store: MessageStore;
  adminStore: AdminStore;
  users: UserDirectory;
  usersFile: string;
  bus: EventBus;
  redis: TestRedis;
  channels: Map<string, Channel>;
  client(): Client;
}

export interface AdminHarnessOptions {
  channels?: Channel[];
  users?: TestUser[];
  loopbackOnly?: boolean;
  sessions?: Sessions;
  limiter?: LoginLimiter;
  eventStream?: EventStreamOptions;
  uiDir?: string;
  /** How often the users file is polled (default 50 ms here). */
  usersPollMs?: number;
}

export const startAdmin = async (t: ExecutionContext, options: AdminHarnessOptions = {}): Promise<AdminHarness> => {
  const logger = pino({ level: 'silent' });
  const dir = await tempDir(t);
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const client = createRedis({ path: redis.path }, logger);
  t.teardown(() => client.disconnect());
  const bus = createEventBus();
  const store = publishingStore(openMessageStore(join(dir, 'messages.db')), bus);
  t.teardown(() => store.close());
  const adminStore = openAdminStore(join(dir, 'admin.db'));
  t.teardown(() => adminStore.close());
  const usersFile = join(dir, 'users.yaml');
  if (options.users) await writeTestUsers(usersFile, options.users);
  const users = await watchUsers(usersFile, logger, options.usersPollMs ?? 50);
  t.teardown(() => users.close());
  const channels = new Map((options.channels ?? []).map((c) => [c.name, c]));
  const control = channelControl({ channels, state: adminStore, bus, logger });
  const app = adminApp({
    channels,
    store,
    redis: client,
    control,
    adminStore,
    users,
    bus,
    logger,
    loopbackOnly: options.loopbackOnly ?? true,
    ...(options.uiDir ? { uiDir: options.uiDir } : {}),
    ...(options.sessions ? { sessions: options.sessions } : {}),
    ...(options.limiter ? { limiter: options.limiter } : {}),
    ...(options.eventStream ? { eventStream: options.eventStream } : {}),
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, store, adminStore, users, usersFile, bus, redis, channels, client: () => httpClient(base) };
};

export interface TestEngine {
  engine: Engine;
  dir: string;
  base: string;
  /** JSON of one admin call (open mode: no users). */
  api(method: string, path: string): Promise<{ status: number; body: any }>;
}

/** A whole engine in this process (embedded Redis in a temp folder) on the config text `yaml`, with `files` beside it (see tempProject). */
export const startTestEngine = async (t: ExecutionContext, yaml: string, files: Record<string, string> = {}): Promise<TestEngine> => {
  const { dir, configFile } = await tempProject(t, yaml, files);
  const engine = await startEngine(await loadConfig(configFile), pino({ level: 'silent' }));
  t.teardown(() => engine.stop());
  const base = `http://127.0.0.1:${engine.admin.port}`;
  return {
    engine,
    dir,
    base,
    async api(method, path) {
      const response = await fetch(base + path, { method });
      return { status: response.status, body: await response.json() };
    },
  };
};
