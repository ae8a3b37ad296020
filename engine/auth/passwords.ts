import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

// Password hashes: scrypt (node:crypto) with a random salt, stored as one self-describing string
// `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64) so the cost can be raised later without
// invalidating existing hashes. scrypt runs on libuv's thread pool: a login never blocks the loop.

export interface ScryptCost {
  /** log2 of N, the CPU/memory cost. */
  ln: number;
  r: number;
  p: number;
}

/**
 * N = 2^15, r = 8: 32 MiB and about 80 ms per hash (measured on the 2-core dev box). OWASP
 * suggests 2^17 (128 MiB per concurrent login); 2^15 keeps a burst of logins from costing an
 * engine box gigabytes. Stored strings carry their own cost, so raising it later affects only
 * new hashes.
 */
export const defaultCost: ScryptCost = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

// Bounds a hand-edited file cannot exceed: a huge N would make every login allocate gigabytes.
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;

const derive = (password: string, salt: Buffer, cost: ScryptCost, length: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const N = 2 ** cost.ln;
    scrypt(password.normalize('NFC'), salt, length, { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });

interface Parsed {
  cost: ScryptCost;
  salt: Buffer;
  hash: Buffer;
}

const parse = (stored: string): Parsed | undefined => {
  const match = FORMAT.exec(stored);
  if (!match) return undefined;
  const cost = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (cost.ln < 1 || cost.ln > MAX_LN || cost.r < 1 || cost.r > MAX_R || cost.p < 1 || cost.p > MAX_P) return undefined;
  const salt = Buffer.from(match[4]!, 'base64');
  const hash = Buffer.from(match[5]!, 'base64');
  return salt.length >= 8 && hash.length >= 16 ? { cost, salt, hash } : undefined;
};

/** Whether a string is a password hash this file can verify (for checking a users file). */
export const isPasswordHash = (stored: string): boolean => parse(stored) !== undefined;

export const hashPassword = async (password: string, cost: ScryptCost = defaultCost): Promise<string> => {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, cost, KEY_BYTES);
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
};

/** Constant-time comparison; false for a malformed stored string. */
export const verifyPassword = async (password: string, stored: string): Promise<boolean> => {
  const parsed = parse(stored);
  if (!parsed) return false;
  const candidate = await derive(password, parsed.salt, parsed.cost, parsed.hash.length);
  return timingSafeEqual(candidate, parsed.hash);
};

let decoy: Promise<string> | undefined;

/**
 * Spends the time of one verification for a user that does not exist, so a login's answer time
 * does not tell which user names are real.
 */
export const verifyNobody = async (password: string): Promise<false> => {
  decoy ??= hashPassword('decoy password, never matches');
  await verifyPassword(password, await decoy);
  return false;
};
