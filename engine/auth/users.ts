import { createHash, randomBytes } from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { parse, stringify } from 'yaml';
import { FerryError } from '../errors.ts';
import { createSerial } from '../serial.ts';
import { isPasswordHash } from './passwords.ts';

// The admin users file (config `engine.users`, default ./users.yaml): names, roles, scrypt
// password hashes and the sha256 of each user's API token. `ferry user` writes it (mode 0600);
// the engine reads it and re-reads it when it changes, so adding or removing a user needs no
// restart. Secrets never appear in it: a leaked file gives slow hashes, not passwords or tokens.

/** Ordered: each role may do everything the roles before it may. */
export const roles = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof roles)[number];

export const isRole = (value: unknown): value is Role => (roles as readonly unknown[]).includes(value);

export const roleAllows = (role: Role, needed: Role): boolean => roles.indexOf(role) >= roles.indexOf(needed);

export interface User {
  name: string;
  role: Role;
  /** An scrypt hash string (passwords.ts). */
  password: string;
  /** The user's API token, as its sha256 (hex): the token itself is shown once and never stored. */
  token?: { sha256: string; createdAt: string };
}

/** Lower case so that a login as "Bob" finds "bob"; no spaces or quotes to trip up logs and shells. */
export const userNamePattern = /^[a-z0-9][a-z0-9._@-]{0,63}$/;
export const userNameRule = '1 to 64 characters of a-z, 0-9, ".", "_", "@", "-", starting with a letter or digit';

const TOKEN_PREFIX = 'ferry_';
const SHA256_HEX = /^[0-9a-f]{64}$/;

export const tokenSha256 = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A new API token (256 random bits) and the hash to store for it. */
export const newApiToken = (): { token: string; sha256: string } => {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, sha256: tokenSha256(token) };
};

const invalid = (file: string, message: string, cause?: unknown): FerryError =>
  new FerryError('USERS_INVALID', `${file}: ${message}`, { cause, details: { file } });

/** Checks the parsed file entry by entry; every problem names its place in the file. */
const validate = (file: string, data: unknown): User[] => {
  if (data === null || data === undefined) return [];
  if (typeof data !== 'object' || Array.isArray(data)) throw invalid(file, 'must be a mapping with a "users" list');
  const list = (data as Record<string, unknown>)['users'] ?? [];
  if (!Array.isArray(list)) throw invalid(file, 'users: must be a list');
  const seen = new Set<string>();
  return list.map((entry: unknown, i): User => {
    const at = `users[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw invalid(file, `${at}: must be a mapping`);
    const { name, role, password, token } = entry as Record<string, unknown>;
    if (typeof name !== 'string' || !userNamePattern.test(name)) throw invalid(file, `${at}.name: must be ${userNameRule}`);
    if (seen.has(name)) throw invalid(file, `${at}.name: duplicate user "${name}"`);
    seen.add(name);
    if (!isRole(role)) throw invalid(file, `${at}.role: must be one of ${roles.join(', ')}`);
    if (typeof password !== 'string' || !isPasswordHash(password)) {
      throw invalid(file, `${at}.password: must be a hash written by \`ferry user add\``);
    }
    const user: User = { name, role, password };
    if (token !== undefined) {
      const { sha256, createdAt } = (token ?? {}) as Record<string, unknown>;
      if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256) || typeof createdAt !== 'string') {
        throw invalid(file, `${at}.token: must be { sha256, createdAt } as written by \`ferry user token\``);
      }
      user.token = { sha256, createdAt };
    }
    return user;
  });
};

/** The users in `file`; none when it does not exist. Throws USERS_INVALID. */
export const readUsersFile = async (file: string): Promise<User[]> => {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw invalid(file, `cannot read it (${(cause as NodeJS.ErrnoException).code})`, cause);
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (cause) {
    throw invalid(file, `not valid YAML: ${(cause as Error).message}`, cause);
  }
  return validate(file, data);
};

const HEADER = `# Ferry admin users: written by \`ferry user\`. Passwords are scrypt hashes and tokens sha256
# hashes, but keep this file private (mode 0600) and out of git all the same.
`;

/** Replaces the file atomically (temp file, fsync, rename), readable by its owner only. */
export const writeUsersFile = async (file: string, users: readonly User[]): Promise<void> => {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(HEADER + stringify({ users: users.map((u) => ({ ...u })) }, { lineWidth: 0 }));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
};

export interface UserDirectory {
  list(): readonly User[];
  find(name: string): User | undefined;
  findByToken(token: string): User | undefined;
  close(): void;
}

const POLL_MS = 1000;
/** How long after a change is seen the file is read, so that a writer has finished. */
const SETTLE_MS = 100;

/**
 * The users in `file`, kept current: the file is polled (stat once a second), which also sees it
 * replaced by rename or created later. A change that does not parse is logged and the previous
 * users stay in force. Throws USERS_INVALID if the file is invalid at the start.
 */
export const watchUsers = async (file: string, logger: Logger, pollMs = POLL_MS): Promise<UserDirectory> => {
  let users: readonly User[] = [];
  let byName = new Map<string, User>();
  let byToken = new Map<string, User>();
  const use = (list: User[]): void => {
    users = list;
    byName = new Map(list.map((u) => [u.name, u]));
    byToken = new Map(list.filter((u) => u.token).map((u) => [u.token!.sha256, u]));
  };
  use(await readUsersFile(file));

  const reads = createSerial();
  const onChange = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return;
    void reads.run(async () => {
      // An editor saving in place truncates first: an empty file is a write in progress, not "no
      // users" (that would open a loopback admin); removing the file is how to remove everyone.
      await sleep(SETTLE_MS);
      if ((await stat(file).catch(() => undefined))?.size === 0) {
        logger.warn({ file }, 'users file is empty; keeping the previous users (delete it to remove every user)');
        return;
      }
      try {
        use(await readUsersFile(file));
        logger.info({ file, users: users.length }, 'users file reloaded');
      } catch (error) {
        logger.error({ err: error, file }, 'users file changed but is invalid; keeping the previous users');
      }
    });
  };
  watchFile(file, { interval: pollMs, persistent: false }, onChange);

  return {
    list: () => users,
    find: (name) => byName.get(name),
    findByToken: (token) => byToken.get(tokenSha256(token)),
    close: () => unwatchFile(file, onChange),
  };
};
