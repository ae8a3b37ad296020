import { createHash, randomBytes } from 'node:crypto';

// Message ids are ULIDs (Crockford base32: 10 chars of milliseconds + 16 of randomness): unique
// without coordination, safe in file names, and sortable by arrival so the message log can page
// by id. Within one millisecond the random part is incremented, keeping ids strictly increasing.
// Ids derived from another (a hand-off, an output after the first, a message of a file) add a
// suffix: the same input always gives the same id, which is what receivers deduplicate on.

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastTime = -1;
let lastRandom: number[] = [];

const encodeTime = (time: number): string => {
  let out = '';
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  return out;
};

const freshRandom = (): number[] => Array.from(randomBytes(16), (byte) => byte % 32);

const increment = (digits: number[]): number[] => {
  const next = [...digits];
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i] < 31) {
      next[i]++;
      return next;
    }
    next[i] = 0;
  }
  return freshRandom(); // 32^16 ids in one millisecond: unreachable in practice
};

export const newMessageId = (now: number = Date.now()): string => {
  // A clock that steps back (NTP) keeps the last time and increments too: ids never go backwards.
  lastRandom = now <= lastTime ? increment(lastRandom) : freshRandom();
  lastTime = Math.max(now, lastTime);
  return encodeTime(lastTime) + lastRandom.map((d) => ALPHABET[d]).join('');
};

/** The id a hand-off to another channel gets: derived, so a replayed hand-off is recognised. */
export const handoffMessageId = (parentId: string, destination: string, index: number): string =>
  `${parentId}-${destination}-${index}`;

/**
 * The id a receiver deduplicates on (an https destination's MESSAGE_ID_HEADER, a postgres
 * destination's :ferry_id): stable across retries, restarts and resends of the same output.
 */
export const deliveryMessageId = (delivery: { id: string; output: number }): string =>
  delivery.output > 0 ? `${delivery.id}-${delivery.output}` : delivery.id;

// A ULID, optionally with a derived suffix (hand-offs "-<destination>-<n>", outputs "-<n>").
const MESSAGE_ID = /^[0-9A-HJKMNP-TV-Z]{26}(?:-[A-Za-z0-9_-]{1,160})?$/;

/** Whether a sender's id (MESSAGE_ID_HEADER) is one Ferry could have made: a ULID, or one derived from it. */
export const isMessageId = (id: string): boolean => MESSAGE_ID.test(id);

/**
 * The id of message `index` (0-based) of a file read by a file source: derived from the file's
 * identity, so a file read again after a crash gives each message the id it had the first time.
 * ULID-shaped (the file's modification time, then 16 characters of a hash of `identity`) plus
 * "-<index>", like other derived ids.
 */
export const fileMessageId = (mtimeMs: number, identity: string, index: number): string => {
  const hash = createHash('sha256').update(identity).digest();
  return `${encodeTime(Math.floor(mtimeMs))}${Array.from(hash.subarray(0, 16), (byte) => ALPHABET[byte % 32]).join('')}-${index}`;
};

/** Milliseconds since the epoch encoded in a message id (also for derived hand-off ids). */
export const messageIdTime = (id: string): number => {
  let time = 0;
  for (const char of id.slice(0, 10)) time = time * 32 + ALPHABET.indexOf(char);
  return time;
};
