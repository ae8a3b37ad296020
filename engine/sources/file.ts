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
import type { BigIntStats } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { FileSourceConfig } from '../config.ts';
import { FerryError, describeError } from '../errors.ts';
import { splitMessages } from '../hl7/batch.ts';
import { decodeAs, encodeHl7 } from '../hl7/charset.ts';
import { sourceIntakeOptions } from './intake-options.ts';
import { fileMessageId } from '../wire/ids.ts';
import type { Intake } from '../intake.ts';
import { inProgressName, withSuffix } from '../file-names.ts';
import { fileNamePattern } from './file-pattern.ts';

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
  const intakeOptions = sourceIntakeOptions(config);
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
      const result = await intake.accept(message, { source: `file ${label}`, id: fileMessageId(mtimeMs, identity, index), ...intakeOptions });
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
