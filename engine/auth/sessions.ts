import { randomBytes } from 'node:crypto';

// Login sessions of the admin web UI, server-side and in memory: the cookie holds only a random id,
// so logging out or removing a user takes effect at once. Sessions end when the engine restarts
// (users log in again), and after `idleMs` without a request.

export interface Session {
  readonly id: string;
  readonly username: string;
  /** Sent back by the UI in X-CSRF-Token on every state-changing call. */
  readonly csrfToken: string;
  lastSeen: number;
}

export interface Sessions {
  create(username: string): Session;
  /** The live session with this id, its idle clock reset; undefined when unknown or expired. */
  touch(id: string): Session | undefined;
  /** Like touch, without resetting the idle clock (for long-lived streams re-checking their session). */
  peek(id: string): Session | undefined;
  end(id: string): void;
}

const SESSION_IDLE_MS = 30 * 60 * 1000;
/** Bounds memory against a flood of logins; the least recently used session goes first. */
const MAX_SESSIONS = 10_000;

const randomId = (): string => randomBytes(32).toString('base64url');

export const createSessions = (options: { idleMs?: number; max?: number; now?: () => number } = {}): Sessions => {
  const { idleMs = SESSION_IDLE_MS, max = MAX_SESSIONS, now = Date.now } = options;
  // Map order is least recently used first: touch re-inserts.
  const live = new Map<string, Session>();

  const expired = (session: Session): boolean => now() - session.lastSeen > idleMs;

  const peek = (id: string): Session | undefined => {
    const session = live.get(id);
    if (!session) return undefined;
    if (!expired(session)) return session;
    live.delete(id);
    return undefined;
  };

  return {
    create(username) {
      for (const [id, session] of live) {
        if (live.size < max && !expired(session)) break;
        live.delete(id);
      }
      const session: Session = { id: randomId(), username, csrfToken: randomId(), lastSeen: now() };
      live.set(session.id, session);
      return session;
    },
    touch(id) {
      const session = peek(id);
      if (!session) return undefined;
      session.lastSeen = now();
      live.delete(id);
      live.set(id, session);
      return session;
    },
    peek,
    end(id) {
      live.delete(id);
    },
  };
};
