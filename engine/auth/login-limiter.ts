// Login throttle. At most `max` attempts may count within `windowMs` from one address, and for one
// user name; past that, attempts are refused without checking the password until the oldest
// counted one leaves the window. Per user as well as per address, because password guessing from
// many addresses is cheap; the price is that someone can lock a user out for one window (the user's
// API token still works).
//
// An attempt is counted when it is admitted, before its password is hashed (~80 ms of scrypt), and
// stays counted unless the password turns out right. Counting only after the hash let parallel
// guesses all pass the check while none had been counted yet: 141 of a burst of 200 were checked
// against a limit of 5. Now a burst gets at most `max` checks, whatever its timing. On top of that,
// only a few checks may be in flight at once per address and per user name (each one holds 32 MiB
// and a thread of libuv's pool); more are refused at once, not queued.

export interface LoginAttempt {
  /**
   * The check is over. `ok` (the password was right) takes back this attempt's own count and no
   * other: the failures counted before it, from its address or for its user name, may be someone
   * else's guesses (another client behind the same address, an attacker elsewhere trying this
   * user), and knowing one password says nothing about them; wiping them would give those guessers
   * a fresh allowance each time anyone logs in. A wrong password, or a check that threw, stays
   * counted. Frees the attempt's place in flight either way; calls after the first do nothing.
   */
  finish(ok: boolean): void;
}

export type LoginAdmission =
  | { ok: true; attempt: LoginAttempt }
  /** `limited`: `max` attempts counted in the window; `busy`: too many checks in flight right now. Seconds to wait in `retryAfter`. */
  | { ok: false; reason: 'limited' | 'busy'; retryAfter: number };

export interface LoginLimiter {
  /** Admits (and counts) a login attempt from `ip` for `user`, or says why not and for how long. */
  begin(ip: string, user: string): LoginAdmission;
}

const LOGIN_MAX_FAILURES = 5;
const LOGIN_WINDOW_MS = 15 * 60 * 1000;
/**
 * Password checks in flight at once. One per user name: a person logs in once at a time (the web
 * form disables its button meanwhile). Two per address: people behind one NAT may log in together.
 */
const LOGIN_IN_FLIGHT_PER_USER = 1;
const LOGIN_IN_FLIGHT_PER_ADDRESS = 2;
/** What a refused extra is told to wait: a check takes ~80 ms. */
const BUSY_RETRY_AFTER_S = 1;
/** Keys kept at most (addresses and names an attacker can invent); the oldest go first. */
const MAX_KEYS = 50_000;

export interface LoginLimiterOptions {
  max?: number;
  windowMs?: number;
  inFlightPerUser?: number;
  inFlightPerAddress?: number;
  now?: () => number;
}

export const createLoginLimiter = (options: LoginLimiterOptions = {}): LoginLimiter => {
  const {
    max = LOGIN_MAX_FAILURES,
    windowMs = LOGIN_WINDOW_MS,
    inFlightPerUser = LOGIN_IN_FLIGHT_PER_USER,
    inFlightPerAddress = LOGIN_IN_FLIGHT_PER_ADDRESS,
    now = Date.now,
  } = options;
  /** When each counted attempt began, per key, oldest first; never more than `max` per key. */
  const counted = new Map<string, number[]>();
  /** Checks under way per key (bounded by the in-flight limits, so never many keys). */
  const inFlight = new Map<string, number>();

  const recent = (key: string): number[] => {
    const times = (counted.get(key) ?? []).filter((at) => now() - at < windowMs);
    if (times.length === 0) counted.delete(key);
    else counted.set(key, times);
    return times;
  };

  const wait = (key: string): number => {
    const times = recent(key);
    if (times.length < max) return 0;
    return Math.max(1, Math.ceil((times[times.length - max]! + windowMs - now()) / 1000));
  };

  const add = (map: Map<string, number>, key: string, by: number): void => {
    const value = (map.get(key) ?? 0) + by;
    if (value > 0) map.set(key, value);
    else map.delete(key);
  };

  return {
    begin(ip, user) {
      const keys = [`ip ${ip}`, `user ${user}`] as const;
      const limitedFor = Math.max(...keys.map(wait));
      if (limitedFor > 0) return { ok: false, reason: 'limited', retryAfter: limitedFor };
      if ((inFlight.get(keys[0]) ?? 0) >= inFlightPerAddress || (inFlight.get(keys[1]) ?? 0) >= inFlightPerUser) {
        return { ok: false, reason: 'busy', retryAfter: BUSY_RETRY_AFTER_S };
      }

      const at = now();
      for (const key of keys) {
        const times = recent(key);
        // Re-inserted so that Map order is least recently used first, for the eviction below.
        counted.delete(key);
        counted.set(key, [...times, at]);
        add(inFlight, key, 1);
      }
      for (const key of counted.keys()) {
        if (counted.size <= MAX_KEYS) break;
        counted.delete(key);
      }

      let finished = false;
      return {
        ok: true,
        attempt: {
          finish(ok) {
            if (finished) return;
            finished = true;
            for (const key of keys) {
              add(inFlight, key, -1);
              if (!ok) continue;
              const times = counted.get(key);
              // Another attempt begun in the same millisecond has the same time: either is the same count.
              const mine = times?.lastIndexOf(at) ?? -1;
              if (mine >= 0) times!.splice(mine, 1);
              if (times?.length === 0) counted.delete(key);
            }
          },
        },
      };
    },
  };
};
