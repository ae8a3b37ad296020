// The token table: who may post to which HTTPS channel. One YAML file (engine.tokens, default
// tokens.yaml next to channels.yaml) holds bearer tokens as SHA-256 hashes and HMAC keys with their
// secrets; `ferry token add|add-hmac|list|revoke` edit it and a running engine follows the edits
// without a restart.
//
//   tokens:   [{ name, hash, channels: [adt-in] | ['*'], createdAt, lastUsedAt? }]
//   hmacKeys: [{ id, secret, channels, createdAt, lastUsedAt? }]
//
// Tokens are 32 random bytes (256 bits), so a fast hash is the right one: nobody can brute-force
// 2^256 candidates however cheap each try is, while a password hash (bcrypt, scrypt) would only add
// ~100 ms of CPU to every request — a denial-of-service lever — and protect nothing more. HMAC
// secrets are stored as they are, because the verifying side needs the secret itself; hence the
// file is written mode 0600 and belongs in .gitignore.
//
// Token names and HMAC key ids share one namespace, so `ferry token revoke <name>` is never ambiguous.

import crypto from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv, type ErrorObject } from 'ajv';
import { Document, isMap, isSeq, parseDocument, type YAMLSeq } from 'yaml';
import { FerryError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { createSerial } from '../serial.ts';
import { writeFileAtomic } from './atomic-file.ts';

const namePattern = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
// Channel names as channels.yaml allows them (config/units.ts, Name), or '*' for every channel.
const channelPattern = '^(\\*|[a-z0-9][a-z0-9_-]{0,62})$';

const Channels = Type.Array(Type.String({ pattern: channelPattern }), { minItems: 1 });

const tokenEntrySchema = Type.Object(
  {
    name: Type.String({ pattern: namePattern }),
    hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    channels: Channels,
    createdAt: Type.String(),
    lastUsedAt: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const hmacKeyEntrySchema = Type.Object(
  {
    id: Type.String({ pattern: namePattern }),
    // A hand-written secret shorter than this is guessable; generated ones are 47 characters.
    secret: Type.String({ minLength: 32 }),
    channels: Channels,
    createdAt: Type.String(),
    lastUsedAt: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const tokenFileSchema = Type.Object(
  {
    tokens: Type.Optional(Type.Array(tokenEntrySchema)),
    hmacKeys: Type.Optional(Type.Array(hmacKeyEntrySchema)),
  },
  { additionalProperties: false },
);

type TokenFileData = Static<typeof tokenFileSchema>;

const validateTokenFile = new Ajv({ allErrors: false }).compile<TokenFileData>(tokenFileSchema);

const HEADER = ` Ferry token table: who may post to which HTTPS channel. Edit with
   ferry token add | add-hmac | list | revoke
 Tokens are kept only as SHA-256 hashes; HMAC secrets are kept as they are (the verifier needs
 them), so keep this file mode 0600 and out of git. Running engines reload it on every change.`;

export type TokenVerdict = { ok: true; name: string } | { ok: false; reason: 'unknown' | 'forbidden' };

export interface TokenInfo {
  name: string;
  kind: 'token' | 'hmac';
  channels: string[];
  createdAt: string;
  lastUsedAt?: string;
}

export interface TokenTable {
  /** A bearer token for `channel`: 'unknown' = no such token (401), 'forbidden' = valid, other channel (403). */
  verify(token: string, channel: string): TokenVerdict;
  /** The secret of an HMAC key id, for createHmacVerifier's `keys`. */
  hmacSecret(keyId: string): string | undefined;
  /** After a request's signature verified: whether that key may post to `channel` (records its last use). */
  authorizeHmacKey(keyId: string, channel: string): TokenVerdict;
  /** Stops watching and writes pending last-used times; safe to call twice. */
  close(): Promise<void>;
}

export interface TokenTableOptions {
  /** Quiet time after a change event before the file is read (editors write in several steps). */
  debounceMs?: number;
  /** Safety-net stat of the file, for file systems where fs.watch sees nothing (network mounts). */
  pollMs?: number;
  /** Last-used times are written at most this often. */
  flushIntervalMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Reading and writing the file

const keyPath = (pointer: string): string =>
  pointer
    .split('/')
    .slice(1)
    .reduce((s, seg) => (/^\d+$/.test(seg) ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');

const describeSchemaError = (error: ErrorObject): string => {
  const at = keyPath(error.instancePath);
  if (error.keyword === 'additionalProperties') {
    return `${at ? `${at}: ` : ''}unknown key "${String((error.params as { additionalProperty: string }).additionalProperty)}"`;
  }
  return `${at || 'the file'}: ${error.message ?? 'is not valid'}`;
};

const parseTokenFile = (text: string, file: string): { doc: Document; data: TokenFileData } => {
  const doc = parseDocument(text);
  const syntax = doc.errors[0];
  if (syntax) throw new FerryError('TOKEN_FILE_INVALID', `${file}: ${syntax.message.split('\n')[0]}`, { cause: syntax });
  const data: unknown = doc.toJS() ?? {};
  if (!validateTokenFile(data)) {
    throw new FerryError('TOKEN_FILE_INVALID', `${file}: ${describeSchemaError(validateTokenFile.errors![0]!)}`);
  }
  const seen = new Set<string>();
  for (const name of [...(data.tokens ?? []).map((t) => t.name), ...(data.hmacKeys ?? []).map((k) => k.id)]) {
    if (seen.has(name)) throw new FerryError('TOKEN_FILE_INVALID', `${file}: the name "${name}" is used twice`);
    seen.add(name);
  }
  return { doc, data };
};

const readTokenFile = async (file: string): Promise<{ doc: Document; data: TokenFileData }> => {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
    const doc = new Document({ tokens: [], hmacKeys: [] });
    doc.commentBefore = HEADER;
    return { doc, data: {} };
  }
  return parseTokenFile(text, file);
};

const LOCK_RETRY_MS = 25;
// No edit holds the lock for more than milliseconds; an older lock was left by a killed process.
const LOCK_STALE_MS = 10_000;

/**
 * Read-modify-write under `<file>.lock`: the CLI and a running engine's last-used flush both
 * rewrite the file, and a flush that read the file just before a `revoke` must not write the
 * revoked token back.
 */
const withLock = async <T>(file: string, work: () => Promise<T>): Promise<T> => {
  const lock = `${file}.lock`;
  for (;;) {
    try {
      await (await open(lock, 'wx', 0o600)).close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const since = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (since > LOCK_STALE_MS) await rm(lock, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { force: true });
  }
};

const render = (doc: Document): string => doc.toString({ flowCollectionPadding: false });

/** Adds an entry to the `tokens` or `hmacKeys` list, in block style with its channels in flow style. */
const append = (doc: Document, list: 'tokens' | 'hmacKeys', entry: Record<string, unknown>): void => {
  let seq = doc.get(list, true);
  if (!isSeq(seq)) {
    seq = doc.createNode([]);
    doc.set(list, seq);
  }
  (seq as YAMLSeq).flow = false;
  const node = doc.createNode(entry);
  const channels = node.get('channels', true);
  if (isSeq(channels)) channels.flow = true;
  (seq as YAMLSeq).add(node);
};

const checkName = (name: string, what: string): void => {
  if (!new RegExp(namePattern).test(name)) {
    throw new FerryError('CLI_USAGE', `${what} "${name}" must be 1 to 63 characters of A-Z, a-z, 0-9, ".", "-" and "_", starting with a letter or digit`);
  }
};

const checkChannels = (channels: string[]): void => {
  if (channels.length === 0) throw new FerryError('CLI_USAGE', 'at least one channel is needed (or "*" for every channel)');
  for (const channel of channels) {
    if (!new RegExp(channelPattern).test(channel)) throw new FerryError('CLI_USAGE', `"${channel}" is not a channel name`);
  }
  if (channels.includes('*') && channels.length > 1) throw new FerryError('CLI_USAGE', '"*" already means every channel; give it alone');
};

const addEntry = async (
  file: string,
  name: string,
  channels: string[],
  make: (secret: string) => { list: 'tokens' | 'hmacKeys'; entry: Record<string, unknown> },
  secret: string,
): Promise<string> => {
  checkName(name, 'name');
  checkChannels(channels);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  return withLock(file, async () => {
    const { doc, data } = await readTokenFile(file);
    if ([...(data.tokens ?? []).map((t) => t.name), ...(data.hmacKeys ?? []).map((k) => k.id)].includes(name)) {
      throw new FerryError('TOKEN_EXISTS', `"${name}" already exists in ${file}; revoke it first or pick another name`);
    }
    const { list, entry } = make(secret);
    append(doc, list, entry);
    await writeFileAtomic(file, render(doc), 0o600);
    return secret;
  });
};

const sha256hex = (text: string): string => crypto.createHash('sha256').update(text, 'utf8').digest('hex');

/** Creates a bearer token for `channels` ('*' = all) and stores its hash; returns the token, shown once. */
export const addToken = (file: string, name: string, channels: string[]): Promise<string> =>
  addEntry(
    file,
    name,
    channels,
    (token) => ({ list: 'tokens', entry: { name, hash: sha256hex(token), channels, createdAt: new Date().toISOString() } }),
    // The prefix makes leaked tokens greppable (secret scanners, logs); 32 bytes = 256 bits of entropy.
    `fy_${crypto.randomBytes(32).toString('base64url')}`,
  );

/** Creates an HMAC key for signed requests (auth: hmac) and stores it; returns the secret, shown once. */
export const addHmacKey = (file: string, keyId: string, channels: string[]): Promise<string> =>
  addEntry(
    file,
    keyId,
    channels,
    (secret) => ({ list: 'hmacKeys', entry: { id: keyId, secret, channels, createdAt: new Date().toISOString() } }),
    `fyk_${crypto.randomBytes(32).toString('base64url')}`,
  );

const infoOf = (kind: TokenInfo['kind'], name: string, entry: { channels: string[]; createdAt: string; lastUsedAt?: string | undefined }): TokenInfo => ({
  name,
  kind,
  channels: entry.channels,
  createdAt: entry.createdAt,
  ...(entry.lastUsedAt === undefined ? {} : { lastUsedAt: entry.lastUsedAt }),
});

/** Every token and HMAC key, in file order, without hashes or secrets. */
export const listTokens = async (file: string): Promise<TokenInfo[]> => {
  const { data } = await readTokenFile(file);
  return [...(data.tokens ?? []).map((t) => infoOf('token', t.name, t)), ...(data.hmacKeys ?? []).map((k) => infoOf('hmac', k.id, k))];
};

/** Removes a token or HMAC key by name; running engines stop accepting it once they see the file change. */
export const revokeToken = async (file: string, name: string): Promise<TokenInfo> => {
  const notFound = new FerryError('TOKEN_NOT_FOUND', `no token or HMAC key named "${name}" in ${file}`);
  // Checked before taking the lock too: a file (or folder) that does not exist has nothing to revoke.
  if (!(await listTokens(file)).some((t) => t.name === name)) throw notFound;
  return withLock(file, async () => {
    const { doc, data } = await readTokenFile(file);
    // `data` is `doc` as plain values, so an entry's index is its index in the YAML list too.
    const tokenIndex = (data.tokens ?? []).findIndex((t) => t.name === name);
    const keyIndex = (data.hmacKeys ?? []).findIndex((k) => k.id === name);
    let info: TokenInfo;
    if (tokenIndex >= 0) {
      info = infoOf('token', name, data.tokens![tokenIndex]!);
      doc.deleteIn(['tokens', tokenIndex]);
    } else if (keyIndex >= 0) {
      info = infoOf('hmac', name, data.hmacKeys![keyIndex]!);
      doc.deleteIn(['hmacKeys', keyIndex]);
    } else {
      throw notFound;
    }
    await writeFileAtomic(file, render(doc), 0o600);
    return info;
  });
};

// ---------------------------------------------------------------------------------------------
// The table a running engine checks requests against

interface Grant {
  name: string;
  channels: readonly string[];
}

interface Table {
  tokens: Array<Grant & { digest: Buffer; hash: string }>;
  hmacKeys: Map<string, Grant & { secret: string }>;
}

const buildTable = (data: TokenFileData): Table => ({
  tokens: (data.tokens ?? []).map((t) => ({ name: t.name, channels: t.channels, hash: t.hash, digest: Buffer.from(t.hash, 'hex') })),
  hmacKeys: new Map((data.hmacKeys ?? []).map((k) => [k.id, { name: k.id, channels: k.channels, secret: k.secret }])),
});

const allows = (grant: Grant, channel: string): boolean => grant.channels.includes('*') || grant.channels.includes(channel);

/** ino/size/mtime/ctime: a rename over the file changes the inode, an edit in place the times. */
const signatureOf = (stats: Stats | undefined): string =>
  stats ? `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}` : 'missing';

interface PendingUse {
  list: 'tokens' | 'hmacKeys';
  name: string;
  /** The stored hash or secret the use matched: a token revoked and re-added under the same name is not stamped. */
  proof: string;
  at: string;
}

/**
 * Opens the token table at `file` and follows changes to it. A missing file is an empty table (every
 * token unknown) until it appears; an invalid file throws TOKEN_FILE_INVALID here, while a later
 * edit that does not parse is logged and the previous table stays in force.
 */
export function openTokenTable(file: string, logger: Logger, options: TokenTableOptions = {}): TokenTable {
  const { debounceMs = 100, pollMs = 5_000, flushIntervalMs = 10_000 } = options;
  const log = logger.child({ tokens: file });

  const initialStats = statSync(file, { throwIfNoEntry: false });
  let signature = signatureOf(initialStats);
  let table = buildTable(initialStats ? parseTokenFile(readFileSync(file, 'utf8'), file).data : {});
  if (!initialStats) log.warn('tokens file does not exist yet: every token is unknown until it does');

  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  // Reloads and last-use writes take turns: a reload running between a write's rename and the
  // write adopting its own result would take the engine's write for someone else's edit.
  const tasks = createSerial();
  const enqueue = (task: () => Promise<void>): void => {
    tasks.run(task).catch((err: unknown) => log.error({ err }, 'cannot check the tokens file'));
  };

  const check = async (): Promise<void> => {
    // stat before read: if the file changes in between, the newer content is loaded under the
    // older signature, and the next check reads it again, harmlessly.
    const stats = await stat(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    const next = signatureOf(stats);
    if (next === signature || closed) return;
    signature = next;
    try {
      const text = stats ? await readFile(file, 'utf8') : '';
      table = buildTable(parseTokenFile(text, file).data);
      if (stats) log.info({ tokenCount: table.tokens.length, hmacKeyCount: table.hmacKeys.size }, 'token table reloaded');
      else log.warn('tokens file removed: every token is now unknown');
    } catch (err) {
      log.error({ err }, 'tokens file changed but cannot be used; keeping the previous table');
    }
  };

  const scheduleCheck = (): void => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => enqueue(check), debounceMs);
  };

  // The folder, not the file: `ferry token` replaces the file by rename, which ends a watch on the file itself.
  const base = path.basename(file);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(file), { persistent: false }, (_event, name) => {
      if (name === null || name === base) scheduleCheck();
    });
    watcher.on('error', (err) => log.warn({ err }, `cannot watch the tokens file; checking it every ${pollMs} ms`));
  } catch (err) {
    log.warn({ err }, `cannot watch the tokens file's folder; checking it every ${pollMs} ms`);
  }
  const poll = setInterval(scheduleCheck, pollMs).unref();

  // Last use is kept in memory and written in batches: a write per request would turn every
  // accepted message into a file rewrite.
  const pending = new Map<string, PendingUse>();
  let flushTimer: NodeJS.Timeout | undefined;

  const flush = async (): Promise<void> => {
    flushTimer = undefined;
    if (pending.size === 0) return;
    const uses = [...pending.values()];
    pending.clear();
    try {
      await withLock(file, async () => {
        const { doc } = await readTokenFile(file);
        let changed = false;
        for (const use of uses) {
          const seq = doc.get(use.list, true);
          if (!isSeq(seq)) continue;
          const [key, proofKey] = use.list === 'tokens' ? ['name', 'hash'] : ['id', 'secret'];
          const index = seq.items.findIndex((item) => isMap(item) && item.get(key) === use.name && item.get(proofKey) === use.proof);
          if (index < 0) continue; // revoked meanwhile
          doc.setIn([use.list, index, 'lastUsedAt'], use.at);
          changed = true;
        }
        if (!changed) return;
        await writeFileAtomic(file, render(doc), 0o600);
        // Adopt what was just written (under the lock, so it is the file's content): the watcher
        // then finds nothing new, instead of logging a reload every flush interval.
        const stats = await stat(file);
        table = buildTable(parseTokenFile(render(doc), file).data);
        signature = signatureOf(stats);
      });
    } catch (err) {
      log.warn({ err }, 'cannot record last-used times in the tokens file; will retry');
      for (const use of uses) if (!pending.has(`${use.list}:${use.name}`)) pending.set(`${use.list}:${use.name}`, use);
      scheduleFlush();
    }
  };

  const scheduleFlush = (): void => {
    if (closed || flushTimer) return;
    flushTimer = setTimeout(() => enqueue(flush), flushIntervalMs).unref();
  };

  const used = (use: Omit<PendingUse, 'at'>): void => {
    pending.set(`${use.list}:${use.name}`, { ...use, at: new Date().toISOString() });
    scheduleFlush();
  };

  let closing: Promise<void> | undefined;

  return {
    verify(token, channel) {
      const digest = crypto.createHash('sha256').update(token, 'utf8').digest();
      // Every entry is compared, in constant time, with no early exit: how long verify takes says
      // nothing about which (or whether a) stored hash came close. `crypto.timingSafeEqual` is
      // looked up on the module object at each call so tests can count the comparisons.
      let found: Table['tokens'][number] | undefined;
      for (const entry of table.tokens) if (crypto.timingSafeEqual(entry.digest, digest)) found = entry;
      if (!found) return { ok: false, reason: 'unknown' };
      if (!allows(found, channel)) return { ok: false, reason: 'forbidden' };
      used({ list: 'tokens', name: found.name, proof: found.hash });
      return { ok: true, name: found.name };
    },

    hmacSecret: (keyId) => table.hmacKeys.get(keyId)?.secret,

    authorizeHmacKey(keyId, channel) {
      const key = table.hmacKeys.get(keyId);
      if (!key) return { ok: false, reason: 'unknown' };
      if (!allows(key, channel)) return { ok: false, reason: 'forbidden' };
      used({ list: 'hmacKeys', name: key.name, proof: key.secret });
      return { ok: true, name: key.name };
    },

    close() {
      closing ??= (async () => {
        closed = true;
        watcher?.close();
        clearInterval(poll);
        clearTimeout(debounce);
        clearTimeout(flushTimer);
        enqueue(flush);
        await tasks.idle();
      })();
      return closing;
    },
  };
}
