// Failed-login throttle: after `max` failures within `windowMs` from one address, or for one user
// name, further attempts are refused without checking the password until the oldest failure
// leaves the window. Per user as well as per address, because password guessing from many
// addresses is cheap; the price is that someone can lock a user out for one window (the user's
// API token still works).

export interface LoginLimiter {
  /** Seconds until an attempt from `ip` for `user` is allowed again; 0 when it is allowed now. */
  retryAfter(ip: string, user: string): number;
  failed(ip: string, user: string): void;
  /** A correct password clears the user's failures (not the address's). */
  succeeded(user: string): void;
}

export const LOGIN_MAX_FAILURES = 5;
export const LOGIN_WINDOW_MS = 15 * 60 * 1000;
/** Keys kept at most (addresses and names an attacker can invent); the oldest go first. */
const MAX_KEYS = 50_000;

export const createLoginLimiter = (
  options: { max?: number; windowMs?: number; now?: () => number } = {},
): LoginLimiter => {
  const { max = LOGIN_MAX_FAILURES, windowMs = LOGIN_WINDOW_MS, now = Date.now } = options;
  const failures = new Map<string, number[]>();

  const recent = (key: string): number[] => {
    const times = (failures.get(key) ?? []).filter((at) => now() - at < windowMs);
    if (times.length === 0) failures.delete(key);
    else failures.set(key, times);
    return times;
  };

  const wait = (key: string): number => {
    const times = recent(key);
    if (times.length < max) return 0;
    return Math.max(1, Math.ceil((times[times.length - max]! + windowMs - now()) / 1000));
  };

  const keys = (ip: string, user: string): string[] => [`ip ${ip}`, `user ${user}`];

  return {
    retryAfter: (ip, user) => Math.max(...keys(ip, user).map(wait)),
    failed(ip, user) {
      for (const key of keys(ip, user)) {
        const times = recent(key);
        failures.delete(key);
        failures.set(key, [...times.slice(-(max - 1)), now()]);
      }
      for (const key of failures.keys()) {
        if (failures.size <= MAX_KEYS) break;
        failures.delete(key);
      }
    },
    succeeded(user) {
      failures.delete(`user ${user}`);
    },
  };
};
