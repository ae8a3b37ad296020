// Signed requests (`auth: hmac`): the sender proves it holds a shared secret without sending it,
// and a captured request cannot be replayed.
//
//   X-Ferry-Key        key id (an `hmacKeys` entry of the tokens file)
//   X-Ferry-Timestamp  unix time in seconds
//   X-Ferry-Nonce      16–64 characters of A-Z a-z 0-9 _ -, new for every request
//   X-Ferry-Signature  hex HMAC-SHA256(secret, canonical string)
//
// The canonical string is six lines joined by "\n" (no trailing newline):
//
//   METHOD            upper case, e.g. POST
//   path              the request target as sent on the request line: path and query, no host
//   key id
//   timestamp         exactly as in the header
//   nonce
//   sha256(body)      lower-case hex of the body bytes exactly as sent
//
// Method and path are signed so a signature for one channel's path cannot be replayed on another.
// The secret is used as the HMAC key as its UTF-8 bytes (what `openssl dgst -hmac <secret>` does).
// A request is accepted when its timestamp is within the tolerance of this engine's clock, either
// way, and its nonce has not been seen for this key; nonces are kept for twice the tolerance, long
// enough to outlive every timestamp the tolerance accepts.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FerryError } from '../errors.ts';

const hmacHeaderNames = {
  key: 'X-Ferry-Key',
  timestamp: 'X-Ferry-Timestamp',
  nonce: 'X-Ferry-Nonce',
  signature: 'X-Ferry-Signature',
} as const;

const keyIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const noncePattern = /^[A-Za-z0-9_-]{16,64}$/;
const timestampPattern = /^\d{1,12}$/;
const signaturePattern = /^[0-9a-fA-F]{64}$/;

export interface SignedRequest {
  keyId: string;
  secret: string;
  method: string;
  /** The request target: path and query string, exactly as the request line will carry it. */
  path: string;
  body: Buffer;
  /** Milliseconds since the epoch; default Date.now(). */
  now?: number;
}

const canonicalString = (method: string, path: string, keyId: string, timestamp: string, nonce: string, body: Buffer): string =>
  [method.toUpperCase(), path, keyId, timestamp, nonce, createHash('sha256').update(body).digest('hex')].join('\n');

const sign = (secret: string, canonical: string): Buffer => createHmac('sha256', secret).update(canonical, 'utf8').digest();

/** The four X-Ferry-* headers for one request. */
export const signRequest = ({ keyId, secret, method, path, body, now = Date.now() }: SignedRequest): Record<string, string> => {
  const timestamp = String(Math.floor(now / 1000));
  const nonce = randomBytes(18).toString('base64url');
  return {
    [hmacHeaderNames.key]: keyId,
    [hmacHeaderNames.timestamp]: timestamp,
    [hmacHeaderNames.nonce]: nonce,
    [hmacHeaderNames.signature]: sign(secret, canonicalString(method, path, keyId, timestamp, nonce, body)).toString('hex'),
  };
};

/** Remembers nonces; `claim` resolves true the first time a key's nonce is seen within `ttlMs`. */
export interface NonceStore {
  claim(keyId: string, nonce: string, ttlMs: number): Promise<boolean>;
}

/**
 * Nonces in Redis (SET NX PX), so a replay is caught across engine restarts and by every engine
 * sharing the Redis. Rejects with REDIS_UNAVAILABLE when Redis cannot answer: a request whose
 * nonce cannot be checked must not be accepted (answer 503, the sender retries).
 */
export const redisNonceStore = (redis: Redis, prefix: string): NonceStore => ({
  async claim(keyId, nonce, ttlMs) {
    try {
      return (await redis.set(`${prefix}${keyId}:${nonce}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
    } catch (cause) {
      throw new FerryError('REDIS_UNAVAILABLE', 'cannot check the request nonce in Redis', { cause });
    }
  },
});

/** Nonces in this process only (tests, tools): forgotten on restart. */
export const memoryNonceStore = (): NonceStore => {
  const seen = new Map<string, number>();
  return {
    async claim(keyId, nonce, ttlMs) {
      const now = Date.now();
      for (const [key, expires] of seen) if (expires <= now) seen.delete(key);
      const key = `${keyId}:${nonce}`;
      if (seen.has(key)) return false;
      seen.set(key, now + ttlMs);
      return true;
    },
  };
};

export interface HmacVerifierOptions {
  /** The secret of a key id, or undefined for an unknown key (e.g. TokenTable.hmacSecret). */
  keys: (keyId: string) => string | undefined;
  toleranceSec?: number;
  nonces: NonceStore;
}

export interface VerifiableRequest {
  method: string;
  /** The request target as received (Koa: ctx.originalUrl; node:http: req.url). */
  path: string;
  /** Node's lower-cased headers (IncomingHttpHeaders). */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type HmacVerdict = { ok: true; keyId: string } | { ok: false; reason: string };

export interface HmacVerifier {
  /** Rejects (REDIS_UNAVAILABLE) only when the nonce store cannot answer. */
  verify(request: VerifiableRequest): Promise<HmacVerdict>;
}

const header = (headers: VerifiableRequest['headers'], name: string): string | undefined | string[] => headers[name.toLowerCase()];

export const createHmacVerifier = ({ keys, toleranceSec = 300, nonces }: HmacVerifierOptions): HmacVerifier => ({
  async verify({ method, path, headers, body }) {
    const values: Record<keyof typeof hmacHeaderNames, string> = { key: '', timestamp: '', nonce: '', signature: '' };
    for (const [field, name] of Object.entries(hmacHeaderNames) as Array<[keyof typeof hmacHeaderNames, string]>) {
      const value = header(headers, name);
      if (value === undefined || value === '') return { ok: false, reason: `missing ${name} header` };
      if (Array.isArray(value)) return { ok: false, reason: `${name} header given more than once` };
      values[field] = value;
    }
    const { key: keyId, timestamp, nonce, signature } = values;
    if (!keyIdPattern.test(keyId)) return { ok: false, reason: `malformed ${hmacHeaderNames.key} header` };
    if (!timestampPattern.test(timestamp)) return { ok: false, reason: `${hmacHeaderNames.timestamp} must be unix seconds` };
    if (!noncePattern.test(nonce)) return { ok: false, reason: `${hmacHeaderNames.nonce} must be 16 to 64 characters of A-Z a-z 0-9 _ -` };
    if (!signaturePattern.test(signature)) return { ok: false, reason: `${hmacHeaderNames.signature} must be 64 hex digits` };

    const secret = keys(keyId);
    if (secret === undefined) return { ok: false, reason: `unknown key "${keyId}"` };
    const expected = sign(secret, canonicalString(method, path, keyId, timestamp, nonce, body));
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) return { ok: false, reason: 'bad signature' };

    // After the signature: only the key holder can make a request fail for time or replay, so
    // nobody else can fill the nonce store.
    const skew = Math.floor(Date.now() / 1000) - Number(timestamp);
    if (Math.abs(skew) > toleranceSec) {
      const when = skew > 0 ? `${skew} s in the past` : `${-skew} s in the future`;
      return { ok: false, reason: `timestamp is ${when} (tolerance ${toleranceSec} s)` };
    }
    if (!(await nonces.claim(keyId, nonce, 2 * toleranceSec * 1000))) return { ok: false, reason: 'nonce already used (replayed request)' };
    return { ok: true, keyId };
  },
});
