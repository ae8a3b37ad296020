import type Router from '@koa/router';
import { timingSafeEqual } from 'node:crypto';
import type Koa from 'koa';
import type { LoginAdmission, LoginLimiter } from '../auth/login-limiter.ts';
import type { FerryConfig } from '../config/contract.ts';
import { verifyNobody, verifyPassword } from '../auth/passwords.ts';
import type { Sessions } from '../auth/sessions.ts';
import { roleAllows, tokenSha256, type Role, type UserDirectory } from '../auth/users.ts';
import { FerryError } from '../errors.ts';
import type { AdminStore } from '../store/admin-store.ts';
import { badRequest, readJsonObject } from './read-json.ts';

// Who is calling the admin API, and may they: a login session (cookie + CSRF token), an API token
// (Authorization: Bearer), or — only while no user is configured and the listener is loopback-only —
// nobody at all, acting as admin ("open mode"). Login, logout and the session probe live here too.

export interface Principal {
  /** null in open mode. */
  username: string | null;
  role: Role;
  via: 'session' | 'token' | 'open';
  /** For a session: its CSRF token; '' otherwise (no CSRF header needed). */
  csrfToken: string;
  sessionId?: string;
  tokenSha256?: string;
}

/** Who did it, for the audit log and a resend's source, when no user is configured. */
const OPEN_MODE_ACTOR = '(open mode)';
export const actorOf = (principal: Principal): string => principal.username ?? OPEN_MODE_ACTOR;

const SESSION_COOKIE = 'ferry_session';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const MAX_LOGIN_BODY = 16 * 1024;

/** Whether a listener on `host` is reachable from this machine only. */
export const isLoopbackHost = (host: string): boolean =>
  host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/**
 * Without users the admin API has no login, so it must not be reachable from the network: throws
 * ADMIN_NOT_LOOPBACK when engine.admin.host is not a loopback address and the users file (read by
 * the caller) has no users. `ferry start` refuses such a config with it, and `ferry check` reports it.
 */
export const checkAdminExposure = (config: FerryConfig, userCount: number): void => {
  if (userCount > 0 || isLoopbackHost(config.engine.admin.host)) return;
  throw new FerryError(
    'ADMIN_NOT_LOOPBACK',
    `engine.admin.host is ${config.engine.admin.host} but ${config.engine.users} has no users, and without users the admin API has no login: add one (ferry user add <name> --role admin) or listen on 127.0.0.1`,
  );
};

/** 429 for a login refused before its password was checked; `retryAfter` (seconds) becomes Retry-After. */
const refusal = ({ reason, retryAfter }: Extract<LoginAdmission, { ok: false }>): FerryError =>
  reason === 'limited'
    ? new FerryError('AUTH_RATE_LIMITED', `too many failed logins; try again in ${retryAfter} s`, { details: { retryAfter } })
    : new FerryError('AUTH_LOGIN_BUSY', `another login from this address or for this user is being checked; try again in ${retryAfter} s`, {
        details: { retryAfter },
      });

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * A browser sends Origin with every POST; one naming another site is a cross-site request, refused
 * whoever it claims to be (curl and other clients send no Origin).
 */
const checkOrigin = (ctx: Koa.Context): void => {
  const origin = ctx.get('origin');
  if (!origin) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    host = '';
  }
  if (host !== ctx.host) throw new FerryError('AUTH_CSRF', `cross-site request from ${origin} refused`);
};

export interface AuthDeps {
  users: UserDirectory;
  sessions: Sessions;
  limiter: LoginLimiter;
  adminStore: AdminStore;
  /** The admin listener binds loopback only: then, with no users, calls need no login. */
  loopbackOnly: boolean;
}

export interface Auth {
  /** Authenticates the call (CSRF-checked when state-changing) and requires at least `role`; sets ctx.state.principal. */
  allow(role: Role): Koa.Middleware;
  /** Whether the caller is still allowed in (for streams outliving their request: user removed, session ended). */
  stillValid(principal: Principal): boolean;
  /** POST /api/login, POST /api/logout, GET /api/session. */
  routes(router: Router): void;
}

export const principalOf = (ctx: Koa.Context): Principal => ctx.state['principal'] as Principal;

export const createAuth = (deps: AuthDeps): Auth => {
  const { users, sessions, limiter, adminStore, loopbackOnly } = deps;

  const isOpen = (): boolean => loopbackOnly && users.list().length === 0;

  const identify = (ctx: Koa.Context): Principal => {
    const authorization = ctx.get('authorization');
    if (authorization) {
      const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
      const user = token ? users.findByToken(token) : undefined;
      if (!user) throw new FerryError('AUTH_FAILED', 'unknown API token');
      return { username: user.name, role: user.role, via: 'token', csrfToken: '', tokenSha256: tokenSha256(token!) };
    }
    const sessionId = ctx.cookies.get(SESSION_COOKIE);
    const session = sessionId ? sessions.touch(sessionId) : undefined;
    if (session) {
      const user = users.find(session.username);
      if (user) return { username: user.name, role: user.role, via: 'session', csrfToken: session.csrfToken, sessionId: session.id };
      sessions.end(session.id); // the user was removed from the users file
    }
    if (isOpen()) {
      // DNS rebinding: a page on evil.example resolving to 127.0.0.1 reaches this listener with its own Host.
      if (!isLoopbackHost(ctx.hostname)) throw new FerryError('AUTH_FORBIDDEN', 'without users, the admin API answers only to localhost addresses');
      return { username: null, role: 'admin', via: 'open', csrfToken: '' };
    }
    throw new FerryError('AUTH_REQUIRED', session || !sessionId ? 'log in or send an API token' : 'the session has expired; log in again');
  };

  const allow =
    (role: Role): Koa.Middleware =>
    async (ctx, next) => {
      const principal = identify(ctx);
      if (STATE_CHANGING.has(ctx.method)) {
        checkOrigin(ctx);
        if (principal.via === 'session' && !sameSecret(ctx.get('x-csrf-token'), principal.csrfToken)) {
          throw new FerryError('AUTH_CSRF', 'missing or wrong X-CSRF-Token header (it comes with the session from /api/login or /api/session)');
        }
      }
      if (!roleAllows(principal.role, role)) {
        throw new FerryError('AUTH_FORBIDDEN', `${principal.username} is ${principal.role}; this needs ${role}`);
      }
      ctx.state['principal'] = principal;
      await next();
    };

  const sessionBody = (principal: Principal) => ({
    username: principal.username,
    role: principal.role,
    csrfToken: principal.csrfToken,
    ...(principal.via === 'open' ? { open: true } : {}),
  });

  return {
    allow,

    stillValid(principal) {
      switch (principal.via) {
        case 'open':
          return isOpen();
        case 'token':
          return users.find(principal.username!)?.token?.sha256 === principal.tokenSha256;
        case 'session':
          return sessions.peek(principal.sessionId!) !== undefined && users.find(principal.username!) !== undefined;
      }
    },

    routes(router) {
      router.post('/api/login', async (ctx) => {
        checkOrigin(ctx);
        const body = await readJsonObject(ctx, MAX_LOGIN_BODY);
        const username = typeof body['username'] === 'string' ? body['username'].trim().toLowerCase().slice(0, 64) : '';
        const password = typeof body['password'] === 'string' ? body['password'] : '';
        if (!username || !password) throw badRequest('username and password are required');

        // Counted before the password is hashed, so parallel guesses cannot all pass the check
        // while none is counted yet (login-limiter.ts).
        const admission = limiter.begin(ctx.ip, username);
        if (!admission.ok) throw refusal(admission);
        const user = users.find(username);
        let ok = false;
        try {
          ok = user ? await verifyPassword(password, user.password) : await verifyNobody(password);
        } finally {
          admission.attempt.finish(ok);
        }
        if (!user || !ok) {
          adminStore.audit({ user: username, action: 'login-failed', target: null, detail: `from ${ctx.ip}` });
          throw new FerryError('AUTH_FAILED', 'wrong user name or password');
        }
        const session = sessions.create(user.name);
        ctx.cookies.set(SESSION_COOKIE, session.id, { httpOnly: true, sameSite: 'strict', path: '/', secure: ctx.secure, overwrite: true });
        adminStore.audit({ user: user.name, action: 'login', target: null, detail: `from ${ctx.ip}` });
        ctx.body = sessionBody({ username: user.name, role: user.role, via: 'session', csrfToken: session.csrfToken });
      });

      router.post('/api/logout', allow('viewer'), (ctx) => {
        const principal = principalOf(ctx);
        if (principal.sessionId) sessions.end(principal.sessionId);
        ctx.cookies.set(SESSION_COOKIE, '', { httpOnly: true, sameSite: 'strict', path: '/', secure: ctx.secure, expires: new Date(0) });
        ctx.status = 204;
      });

      router.get('/api/session', allow('viewer'), (ctx) => {
        ctx.body = sessionBody(principalOf(ctx));
      });
    },
  };
};
