// A token bucket per client key (a token's name, or the client address): `requests` may come at
// once, then they refill evenly, one every `perMs / requests` ms. Memory is bounded: a bucket that
// has refilled completely is the same as no bucket, so full ones are forgotten first when the table
// grows past `maxKeys`, then the oldest.

export interface RateLimitOptions {
  requests: number;
  perMs: number;
  maxKeys?: number;
}

export type RateVerdict = { ok: true } | { ok: false; retryAfterMs: number };

export interface RateLimiter {
  take(key: string, now?: number): RateVerdict;
}

interface Bucket {
  tokens: number;
  at: number;
}

const MAX_KEYS = 10_000;

export const rateLimiter = ({ requests, perMs, maxKeys = MAX_KEYS }: RateLimitOptions): RateLimiter => {
  const buckets = new Map<string, Bucket>();
  const perToken = perMs / requests;

  const level = (bucket: Bucket, now: number): number => Math.min(requests, bucket.tokens + (now - bucket.at) / perToken);

  const evict = (now: number): void => {
    for (const [key, bucket] of buckets) if (level(bucket, now) >= requests) buckets.delete(key);
    // Still full of active clients: the oldest entries go (they may then get a fresh bucket).
    for (const key of buckets.keys()) {
      if (buckets.size < maxKeys) break;
      buckets.delete(key);
    }
  };

  return {
    take(key, now = Date.now()) {
      const bucket = buckets.get(key);
      const tokens = bucket ? level(bucket, now) : requests;
      if (tokens < 1) return { ok: false, retryAfterMs: Math.ceil((1 - tokens) * perToken) };
      if (!bucket && buckets.size >= maxKeys) evict(now);
      // Re-inserted so that Map order is least recently used first.
      buckets.delete(key);
      buckets.set(key, { tokens: tokens - 1, at: now });
      return { ok: true };
    },
  };
};
