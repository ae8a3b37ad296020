// File reader: picks up HL7 files dropped in a folder, splits each into messages (several messages
// one after another, or an HL7 batch FHS/BHS … BTS/FTS) and commits them one by one, in file order,
// through the channel's intake. A file leaves the folder (to processedDir, or deleted) only after
// every message in it is committed; one that cannot be read or holds no HL7 message goes to errorDir
// with a <name>.error.txt saying why.
//
// Only complete files are read: names starting with "." or ending .tmp / .part never are (write
// under such a name, then rename), and any other file only once its size, times and inode are the
// same in two listings in a row.
//
// Exactly once across crashes, without a progress file: each message's id is derived from the
// file's identity (folder, name, size, mtime, ctime, inode) and its index in the file. A restart
// reads a file the killed engine had not finished again; the messages already committed come back
// with the ids they had and the intake recognises them (accepted, duplicate), the rest are committed
// for the first time. (A progress record would need these ids anyway, for a crash between a commit
// and the record's write.) ctime is part of the identity because a rename changes it: a processed
// file moved back into the folder is read as a new file, not dropped as a duplicate.
import { Type } from '@sinclair/typebox';
import type { BigIntStats } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { SourceConfig } from '../config/contract.ts';
import { Duration, Path, Size, StringEnum, Tag, describeValue, durationMs, isDuration, sizeBytes } from '../config/units.ts';
import type { Claim, SourceConnector } from '../connector.ts';
import { FerryError, describeError } from '../errors.ts';
import { inProgressName, withSuffix } from '../file-names.ts';
import { splitMessages } from '../hl7/batch.ts';
import { decodeAs, encodeHl7 } from '../hl7/charset.ts';
import type { Intake, IntakeOptions } from '../intake.ts';
import { fileMessageId } from '../wire/ids.ts';
import { fileNamePattern } from './file-pattern.ts';

export interface FileSourceConfig extends SourceConfig {
  type: 'file';
  /** Absolute: the folder watched (not its subfolders). */
  dir: string;
  /** Glob on the file name: * ? [abc] {hl7,txt}. */
  pattern: string;
  pollIntervalMs: number;
  after: 'move' | 'delete';
  /** Absolute; used with after: move. */
  processedDir: string;
  /** Absolute; where unreadable files go, each with a <name>.error.txt. */
  errorDir: string;
  /** 'auto' (each message's MSH-18, as over MLLP) or a character set name that overrides it. */
  encoding: string;
  /** Larger files are not read but moved to errorDir (FILE_TOO_LARGE). */
  maxFileBytes: number;
}

const defaults = { pattern: '*.hl7', pollInterval: '1s', after: 'move', encoding: 'auto', maxFileSize: '64MB' } as const;

/** A poll faster than this lists the folder in a busy loop. */
const minPollIntervalMs = 10;

const schema = Type.Object(
  {
    type: Tag('file', 'Read HL7 files dropped in a folder; batch files and files of several messages are split into messages.'),
    dir: Path({ title: 'Folder', description: 'Folder watched for files (not its subfolders); relative to this file. Created if missing.' }),
    pattern: Type.Optional(
      Type.String({
        pattern: '^[^/\\\\]+$',
        patternErrorMessage: 'must be a file-name glob such as *.hl7 (no "/" or "\\")',
        title: 'Pattern',
        description:
          'Glob on the file name: * any characters, ? one, [abc] one of, {hl7,txt} alternatives. Names starting with "." or ending .tmp or .part never match: write under such a name, then rename.',
        default: defaults.pattern,
        examples: ['*.hl7', 'ADT_*.{hl7,txt}'],
      }),
    ),
    pollInterval: Type.Optional(
      Duration({
        title: 'Poll interval',
        description: 'How often the folder is listed. A file is read once its size and modification time are the same in two listings in a row.',
        default: defaults.pollInterval,
      }),
    ),
    after: Type.Optional(
      StringEnum(['move', 'delete'], {
        title: 'After reading',
        description: 'What happens to a file once every message in it is committed: moved to processedDir, or deleted.',
        default: defaults.after,
      }),
    ),
    processedDir: Type.Optional(
      Path({
        title: 'Processed folder',
        description: 'Where read files are moved (after: move); default <dir>/processed. A name already there gets -1, -2, … before its extension.',
      }),
    ),
    errorDir: Type.Optional(
      Path({
        title: 'Error folder',
        description: 'Where files that cannot be read or hold no HL7 message are moved, each with a <name>.error.txt saying why; default <dir>/error.',
      }),
    ),
    encoding: Type.Optional(
      Type.String({
        minLength: 1,
        title: 'Encoding',
        description:
          'auto: each message by its MSH-18, as over MLLP (UTF-8 or 8859/1 when empty). Or an MSH-18 character set name (UNICODE UTF-8, 8859/1, …) that the files are in, whatever MSH-18 says.',
        default: defaults.encoding,
        examples: ['auto', 'UNICODE UTF-8', '8859/1'],
      }),
    ),
    maxFileSize: Type.Optional(
      Size({
        title: 'Maximum file size',
        description: 'Largest file read (a file is read whole to split it); a larger one is moved to errorDir with FILE_TOO_LARGE as its reason.',
        default: defaults.maxFileSize,
      }),
    ),
  },
  { additionalProperties: false, title: 'File source', description: 'Messages read from files dropped in a folder.' },
);

/**
 * How intake takes this source's messages, first read and resent alike: HL7 only, decoded by MSH-18
 * unless `encoding` names the files' character set.
 */
const intakeOptions = (config: FileSourceConfig): Pick<IntakeOptions, 'requireHl7' | 'charset'> =>
  config.encoding === 'auto' ? { requireHl7: true } : { requireHl7: true, charset: config.encoding };

export interface FileSourceDeps {
  intake: Intake;
  logger: Logger;
}

export interface FileSource {
  /** Lists the folder now and then every pollInterval. */
  start(): Promise<void>;
  /** Stops polling; a file being read stops between two messages (the rest is read on the next start). Safe to call twice. */
  stop(): Promise<void>;
}

/** What must not change between two listings for a file to count as complete; also its identity. */
interface Facts {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  dev: bigint;
}

const factsOf = (stats: BigIntStats): Facts => ({
  size: stats.size,
  mtimeNs: stats.mtimeNs,
  ctimeNs: stats.ctimeNs,
  ino: stats.ino,
  dev: stats.dev,
});

const sameFacts = (a: Facts, b: Facts): boolean =>
  a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;

/** Read errors that may pass by themselves: the file stays and is tried on the next poll. */
const transientReadErrors = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'ENOMEM', 'ETIMEDOUT', 'ESTALE']);

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);

/** A name in `dir` not taken yet (nor its companion files, e.g. ".error.txt"): `name`, then name-1, name-2, … */
const freeTarget = async (dir: string, name: string, companions: string[] = []): Promise<string> => {
  for (let n = 0; ; n++) {
    const target = path.join(dir, n === 0 ? name : withSuffix(name, n));
    const taken = await Promise.all([target, ...companions.map((c) => `${target}${c}`)].map(exists));
    if (!taken.includes(true)) return target;
  }
};

/** rename, or copy and unlink when the target is on another file system. */
const move = async (from: string, to: string): Promise<void> => {
  try {
    await rename(from, to);
  } catch (error) {
    if (errnoOf(error) !== 'EXDEV') throw error;
    await copyFile(from, to, constants.COPYFILE_EXCL);
    await unlink(from);
  }
};

/** The character set a byte order mark announces, when it is UTF-16. */
const utf16Bom = (bytes: Buffer): string | undefined =>
  bytes[0] === 0xff && bytes[1] === 0xfe ? 'UTF-16LE' : bytes[0] === 0xfe && bytes[1] === 0xff ? 'UTF-16BE' : undefined;

/**
 * The file's messages as bytes. splitMessages cuts at CR/LF bytes, right for every character set in
 * which CR is one byte; UTF-16 files are split as text instead and each message written back in
 * UTF-16 with its own byte order mark.
 */
export const splitFile = (bytes: Buffer, encoding: string): Buffer[] => {
  const charset = encoding === 'auto' ? utf16Bom(bytes) : encoding;
  if (charset === undefined || encodeHl7('\r', charset).length === 1) return splitMessages(bytes);
  const text = decodeAs(bytes, charset).replace(/(^|[\r\n])\uFEFF/g, '$1');
  return splitMessages(Buffer.from(text, 'utf8')).map((message) => Buffer.from(encodeHl7(message.toString('utf8'), charset)));
};

/** Whether a message starts with MSH, after a byte order mark (UTF-8, or UTF-16 with its NULs). */
const startsWithMsh = (message: Buffer): boolean =>
  message.subarray(0, 16).toString('latin1').replace(/^(?:\xEF\xBB\xBF|\xFF\xFE|\xFE\xFF)/, '').replaceAll('\0', '').startsWith('MSH');

export const fileSource = (config: FileSourceConfig, deps: FileSourceDeps): FileSource => {
  const { intake } = deps;
  const log = deps.logger.child({ source: 'file', dir: config.dir });
  const matches = fileNamePattern(config.pattern);
  let seen = new Map<string, Facts>();
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> = Promise.resolve();
  // Problems that repeat every poll (an unlistable folder, a file that cannot be moved) are logged
  // when they start and when they change, not every pollInterval.
  const reported = new Map<string, string>();
  const reportOnce = (key: string, problem: string, fields: Record<string, unknown>): void => {
    if (reported.get(key) === problem) return;
    reported.set(key, problem);
    log.warn(fields, problem);
  };

  /** Moves an unusable file to errorDir next to a <name>.error.txt with the reason. */
  const quarantine = async (name: string, error: FerryError): Promise<void> => {
    const file = path.join(config.dir, name);
    let reason: string | undefined;
    try {
      await mkdir(config.errorDir, { recursive: true });
      const target = await freeTarget(config.errorDir, name, ['.error.txt']);
      reason = `${target}.error.txt`;
      await writeFile(reason, `${new Date().toISOString()} ${file}\n${describeError(error)}\n`);
      await move(file, target);
      reported.delete(name);
      log.warn({ code: error.code, file, to: target }, `moved ${name} to ${config.errorDir}: ${error.message}`);
    } catch (cause) {
      // The file stays and is tried again next poll: a reason without its file would pile up.
      if (reason) await rm(reason, { force: true }).catch(() => undefined);
      if (errnoOf(cause) === 'ENOENT' && !(await exists(file))) return;
      reportOnce(name, `cannot move ${name} to ${config.errorDir}: ${describeError(cause)}`, { file, err: cause });
    }
  };

  /** Moves (or deletes) a file whose messages are all committed. */
  const finish = async (name: string, summary: Record<string, unknown>): Promise<void> => {
    const file = path.join(config.dir, name);
    try {
      let where = 'deleted';
      if (config.after === 'delete') await unlink(file);
      else {
        await mkdir(config.processedDir, { recursive: true });
        const target = await freeTarget(config.processedDir, name);
        await move(file, target);
        where = `moved to ${target}`;
      }
      reported.delete(name);
      log.info({ file, ...summary }, `read ${name}: ${String(summary['messages'])} message(s) committed; ${where}`);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' && !(await exists(file))) return;
      // Left in place: the next poll reads it again, finds every message already committed, and retries the move.
      reportOnce(name, `all messages of ${name} are committed, but the file cannot be ${config.after === 'delete' ? 'deleted' : 'moved'}: ${describeError(error)}`, {
        file,
        err: error,
      });
    }
  };

  /** Reads one complete file and commits its messages. */
  const take = async (name: string, observed: Facts): Promise<void> => {
    const file = path.join(config.dir, name);
    // Read whole (batches are split on their text): a huge file must not take the engine's memory.
    if (observed.size > BigInt(config.maxFileBytes)) {
      return quarantine(name, new FerryError('FILE_TOO_LARGE', `${file} holds ${observed.size} bytes, more than maxFileSize (${config.maxFileBytes} bytes); split it, or raise maxFileSize`));
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'ENOENT') return; // taken away meanwhile
      if (code !== undefined && transientReadErrors.has(code)) {
        reportOnce(name, `cannot read ${name} yet: ${describeError(error)}; trying again`, { file, err: error });
        return;
      }
      return quarantine(name, new FerryError('FILE_READ_FAILED', `cannot read ${file}: ${(error as Error).message}`, { cause: error }));
    }
    // Changed while being read: not complete after all; the next listings decide again.
    const now = await stat(file, { bigint: true }).catch(() => undefined);
    if (!now || !sameFacts(factsOf(now), observed)) return;

    let messages: Buffer[];
    try {
      messages = splitFile(bytes, config.encoding);
    } catch (error) {
      return quarantine(name, new FerryError('FILE_READ_FAILED', `${file} is not in ${config.encoding}: ${describeError(error)}`, { cause: error }));
    }
    if (!messages.some(startsWithMsh)) {
      const what = bytes.length === 0 ? 'the file is empty' : 'no HL7 message in it (no segment starts with MSH)';
      return quarantine(name, new FerryError('FILE_READ_FAILED', `${file}: ${what}`));
    }

    const identity = JSON.stringify([config.dir, name, ...Object.values(observed).map(String)]);
    const mtimeMs = Number(observed.mtimeNs / 1_000_000n);
    let committed = 0;
    let duplicates = 0;
    const refused: string[] = [];
    for (const [index, message] of messages.entries()) {
      if (!running) return; // the rest is read on the next start; what was committed is recognised by id
      const label = `${file}#${index + 1}`;
      const result = await intake.accept(message, { source: `file ${label}`, id: fileMessageId(mtimeMs, identity, index), ...intakeOptions(config) });
      switch (result.kind) {
        case 'accepted':
          committed++;
          if (result.duplicate) duplicates++;
          break;
        case 'ignored':
          refused.push(`#${index + 1} is an ACK (MSH-10 ${result.header.controlId}), not processed`);
          break;
        case 'rejected':
          refused.push(`#${index + 1} ${describeError(result.error)}`);
          break;
        case 'failed':
          // QUEUE_FULL or COMMIT_FAILED: the file stays; the next poll reads it again from the start.
          reportOnce(name, `message ${label} not committed (${describeError(result.error)}); the file stays and is read again`, { file, code: result.error.code });
          return;
      }
    }
    if (committed === 0) {
      return quarantine(name, new FerryError('FILE_READ_FAILED', `${file}: no valid HL7 message: ${refused.join('; ')}`));
    }
    if (refused.length > 0) log.warn({ file, refused }, `${refused.length} of ${messages.length} messages in ${name} refused; they are in the message log as errors`);
    await finish(name, { messages: committed, duplicates, refused: refused.length });
  };

  const poll = async (): Promise<void> => {
    let names: string[];
    try {
      const entries = await readdir(config.dir, { withFileTypes: true });
      names = entries.filter((e) => !e.isDirectory() && !inProgressName(e.name) && matches.test(e.name)).map((e) => e.name);
    } catch (error) {
      reportOnce('', `cannot list ${config.dir}: ${describeError(error)}`, { err: error });
      return;
    }
    if (reported.delete('')) log.info(`${config.dir} can be listed again`);
    const current = new Map<string, Facts>();
    for (const name of names) {
      const stats = await stat(path.join(config.dir, name), { bigint: true }).catch(() => undefined);
      if (stats?.isFile()) current.set(name, factsOf(stats));
    }
    const previous = seen;
    seen = current;
    // Oldest first, so files from one sender are read in the order they were written.
    const ready = [...current]
      .filter(([name, facts]) => previous.has(name) && sameFacts(previous.get(name)!, facts))
      .sort(([a, x], [b, y]) => (x.mtimeNs < y.mtimeNs ? -1 : x.mtimeNs > y.mtimeNs ? 1 : a < b ? -1 : a > b ? 1 : 0));
    for (const [name, facts] of ready) {
      if (!running) return;
      await take(name, facts);
    }
  };

  const loop = (): void => {
    polling = poll()
      .catch((error) => log.error({ err: error }, `file source poll failed: ${describeError(error)}`))
      .finally(() => {
        if (running) timer = setTimeout(loop, config.pollIntervalMs);
      });
  };

  return {
    async start() {
      if (running) return;
      try {
        await mkdir(config.dir, { recursive: true });
      } catch (error) {
        // Not fatal: a folder on a share that is not mounted yet is read once it appears.
        reportOnce('', `cannot create ${config.dir}: ${describeError(error)}`, { err: error });
      }
      running = true;
      seen = new Map();
      loop();
    },

    async stop() {
      running = false;
      clearTimeout(timer);
      await polling;
    },
  };
};

export const fileSourceConnector: SourceConnector<typeof schema, FileSourceConfig> = {
  type: 'file',
  schema,
  // The schema reports a source without a folder; its other keys are checked once it has one.
  check(raw, { fail }) {
    if (typeof raw['dir'] !== 'string' || raw['dir'] === '') return;
    if (raw['after'] === 'delete' && raw['processedDir'] !== undefined) fail(['processedDir'], 'is only used with after: move');
    const pattern = raw['pattern'];
    if (typeof pattern === 'string' && pattern !== '') {
      try {
        fileNamePattern(pattern);
      } catch (error) {
        fail(['pattern'], (error as Error).message.replace(/^pattern "(?:[^"\\]|\\.)*" /, ''));
      }
    }
    const encoding = raw['encoding'];
    if (typeof encoding === 'string' && encoding !== 'auto') {
      try {
        decodeAs(new Uint8Array(0), encoding);
      } catch {
        fail(['encoding'], `unknown character set ${JSON.stringify(encoding)}: use auto or an MSH-18 name such as UNICODE UTF-8 or 8859/1`);
      }
    }
    const poll = raw['pollInterval'];
    if (isDuration(poll) && durationMs(poll) < minPollIntervalMs) {
      fail(['pollInterval'], `must be at least ${minPollIntervalMs}ms (got ${describeValue(poll)})`);
    }
  },
  // Its folder, read by this source alone, and the folders it moves files to, which no source may
  // watch (itself included): files moved there would be read again.
  claims(raw, dir) {
    if (typeof raw['dir'] !== 'string' || raw['dir'] === '') return [];
    const claims: Claim[] = [{ kind: 'watched-folder', dir: path.resolve(dir, raw['dir']), at: ['dir'] }];
    for (const key of ['processedDir', 'errorDir']) {
      const value = raw[key];
      if (typeof value === 'string' && value !== '') claims.push({ kind: 'moves-to', dir: path.resolve(dir, value), at: [key] });
    }
    return claims;
  },
  normalize(raw, dir) {
    const watched = path.resolve(dir, raw.dir);
    return {
      type: 'file',
      dir: watched,
      pattern: raw.pattern ?? defaults.pattern,
      pollIntervalMs: durationMs(raw.pollInterval ?? defaults.pollInterval),
      after: raw.after ?? defaults.after,
      processedDir: raw.processedDir === undefined ? path.join(watched, 'processed') : path.resolve(dir, raw.processedDir),
      errorDir: raw.errorDir === undefined ? path.join(watched, 'error') : path.resolve(dir, raw.errorDir),
      encoding: raw.encoding ?? defaults.encoding,
      maxFileBytes: sizeBytes(raw.maxFileSize ?? defaults.maxFileSize),
    };
  },
  describe: (config) => `file ${config.dir}/${config.pattern}`,
  activity: (config) => `reading files ${config.dir}/${config.pattern}`,
  intakeOptions,
  create: fileSource,
};
