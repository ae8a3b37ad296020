import { Type } from '@sinclair/typebox';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { DestinationConfig } from '../config/contract.ts';
import { Path, StringEnum, Tag } from '../config/units.ts';
import type { DestinationConnector } from '../connector.ts';
import { FerryError, isFerryError } from '../errors.ts';
import { inProgressName, withSuffix } from '../file-names.ts';
import type { Delivery, Destination, SendOutcome } from './destination.ts';
import { fileCallsFor, type FileCalls } from './file-calls.ts';

// One file per output, written atomically: a temp file in the same folder is written and fsync'ed,
// then put in place under its final name, then the folder is fsync'ed — a reader never sees half a
// file, and a file that exists survives power loss.
//
// No file is replaced unless `onExists: overwrite` asks for it. rename(2) would replace silently, so
// the temp file is hard-linked under the name instead: link(2) fails with EEXIST, even against a
// writer in another process. A taken name that holds the very same bytes is this output's own file:
// a replay after a crash between the write and the message log's "sent" finds it and writes nothing
// again. (A sender's byte-for-byte retransmission of one HL7 message is therefore also written once
// when the name has no {id}.) A name taken by another file makes the output go under the name plus
// its message id instead (onExists: suffix), a name no other message's file can have.

export interface FileDestinationConfig extends DestinationConfig {
  type: 'file';
  /** Absolute. */
  dir: string;
  /** Tokens: {id} {channel} {destination} {index} {controlId} {date} {time}; default "{id}". */
  filename: string;
  /** A name taken by a file with other content: write name-<message id> (default), fail, or replace it. */
  onExists: 'suffix' | 'error' | 'overwrite';
}

const defaults = { filename: '{id}', onExists: 'suffix' } as const;

/** Tokens `filename` may use; each is replaced per message (fileNameFor). */
const filenameTokens = ['id', 'channel', 'destination', 'index', 'controlId', 'date', 'time'] as const;

const schema = Type.Object(
  {
    type: Tag('file', 'Write each message to its own file.'),
    dir: Path({ title: 'Folder', description: 'Folder the files are written to; relative to this file.' }),
    filename: Type.Optional(
      Type.String({
        // Tokens only, no path separators and no "..": the name must stay inside `dir`.
        pattern: `^(?!\\.{1,2}$)(?!.*\\.\\.)(?:[^{}/\\\\]|\\{(?:${filenameTokens.join('|')})\\})+$`,
        patternErrorMessage: `may use only the tokens ${filenameTokens.map((t) => `{${t}}`).join(' ')}, and no "/", "\\" or ".."`,
        title: 'File name',
        description: `File name per message. Tokens: ${filenameTokens.map((t) => `{${t}}`).join(' ')}. The message id keeps names unique and lets receivers drop duplicates.`,
        default: defaults.filename,
        examples: ['{id}.hl7', '{channel}-{date}-{time}-{controlId}.hl7'],
      }),
    ),
    onExists: Type.Optional(
      StringEnum(['suffix', 'error', 'overwrite'], {
        title: 'If the name exists',
        description:
          'When the name is taken by a file with other content (two messages with the same MSH-10, say): suffix writes the new file as name-<message id> before the extension (nothing lost, the queue never stops); error puts the message in error with FILE_EXISTS; overwrite replaces the file. A file with the very same content counts as already written (a replay after a crash).',
        default: defaults.onExists,
      }),
    ),
  },
  { additionalProperties: false, title: 'File destination', description: 'Writes each message to a file.' },
);

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The longest file name (one path component) that ext4, XFS, NTFS and SMB shares all take, in UTF-8 bytes. */
const MAX_NAME_BYTES = 255;

/** errno codes of link(2) on file systems without hard links (FAT, some SMB and FUSE mounts). */
const noHardLinks = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Leading dots become "_", and a final .tmp / .part becomes _tmp / _part, so that MSH-10 never makes
 * a name that Ferry's own file source skips as unfinished (".x.hl7", "x.part"). A pattern that asks
 * for such names itself (".{id}") keeps them.
 */
const readable = (name: string): string => name.replace(/^\.+/, (dots) => '_'.repeat(dots.length)).replace(/\.(tmp|part)$/i, '_$1');

/** The file name for a delivery; outputs after the first get "-<n>" unless the pattern has {index}. */
export const fileNameFor = (pattern: string, delivery: Delivery): string => {
  const at = new Date(delivery.receivedAt);
  // MSH-10 comes from the sender: "." or ".." would name the folder itself or its parent.
  const controlId = (delivery.controlId ?? '').replace(/[^A-Za-z0-9._-]/g, '_');
  const values: Record<string, string> = {
    id: delivery.id,
    channel: delivery.channel,
    destination: delivery.destination,
    index: String(delivery.output),
    controlId: /^\.*$/.test(controlId) ? delivery.id : controlId,
    date: `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`,
    time: `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}${pad(at.getUTCMilliseconds(), 3)}`,
  };
  const tokens = /\{(\w+)\}/g;
  const filled = pattern.replace(tokens, (_, token: string) => values[token] ?? '');
  const name = delivery.output === 0 || pattern.includes('{index}') ? filled : withSuffix(filled, delivery.output);
  return inProgressName(pattern.replace(tokens, 'x')) ? name : readable(name);
};

/** The first characters of a name too long to show whole in a log line. */
const preview = (name: string): string => (name.length > 64 ? `${name.slice(0, 64)}…` : name);

/** Refuses, before the disk is touched, a name no file system takes: the same every time, so permanent. */
const checkName = (dir: string, name: string): void => {
  // Only the pattern can hold one (YAML spells it "\0"); Node refuses such paths without asking the file system.
  if (name.includes('\0')) throw new FerryError('FILE_NAME_INVALID', `cannot write ${join(dir, name.replaceAll('\0', '\\0'))}: a file name cannot hold a NUL character`);
  const bytes = Buffer.byteLength(name);
  if (bytes <= MAX_NAME_BYTES) return;
  throw new FerryError(
    'FILE_NAME_TOO_LONG',
    `cannot write ${join(dir, preview(name))}: the file name is ${bytes} bytes, file systems take at most ${MAX_NAME_BYTES} (does filename use {controlId}? MSH-10 is as long as the sender makes it)`,
    { details: { name } },
  );
};

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/**
 * A failure to put the file under `target`, by what retrying can do about it. What the name alone
 * decides is permanent: too long, refused as invalid, a folder in its place. Everything else stays
 * FILE_WRITE_FAILED and is retried — a full disk, missing permissions, a folder that is gone or is a
 * file, a symlink loop in its path, a share that is offline: an operator fixes those, and meanwhile
 * a fifo destination holds its messages in order instead of putting each one in error.
 */
const placeError = (cause: unknown, target: string, onExists: FileDestinationConfig['onExists']): FerryError => {
  const code = errnoOf(cause);
  const why = `cannot write ${target}: ${(cause as Error).message}`;
  if (code === 'ENAMETOOLONG') return new FerryError('FILE_NAME_TOO_LONG', why, { cause });
  if (code === 'EINVAL' || code === 'EILSEQ') return new FerryError('FILE_NAME_INVALID', `${why} (the file system cannot store this name)`, { cause });
  if (code === 'EISDIR') return new FerryError('FILE_EXISTS', `${why} (a folder has this name)`, { cause });
  if (code !== undefined && onExists !== 'overwrite' && noHardLinks.has(code)) {
    return new FerryError('FILE_WRITE_FAILED', `${why} (the file system may not support hard links, which onExists: ${onExists} needs to never replace a file; onExists: overwrite does not)`, { cause });
  }
  return new FerryError('FILE_WRITE_FAILED', why, { cause });
};

/** Whether `file` is a regular file holding exactly `content`; undefined when it is gone. */
const holds = async (file: string, content: Buffer): Promise<boolean | undefined> => {
  const stats = await lstat(file).catch((error: unknown) => {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw error;
  });
  return stats && stats.isFile() && stats.size === content.length && (await readFile(file)).equals(content);
};

export const fileDestination = (config: FileDestinationConfig): Destination => {
  /** Renames the temp file over `target`, replacing what is there. */
  const replace = (temp: string, target: string): Promise<void> =>
    rename(temp, target).catch((cause: unknown) => {
      throw placeError(cause, target, config.onExists);
    });

  /** Links the temp file as `target` unless that name exists: placed, or what the name holds. */
  const claim = async (temp: string, target: string, content: Buffer): Promise<'placed' | 'same' | 'other'> => {
    for (;;) {
      try {
        await (await calls()).link(temp, target);
        return 'placed';
      } catch (cause) {
        if (errnoOf(cause) !== 'EEXIST') throw placeError(cause, target, config.onExists);
      }
      const same = await holds(target, content);
      if (same !== undefined) return same ? 'same' : 'other';
      // Removed between the link and the look: try the name again.
    }
  };

  const already = (target: string): string => `${target} already holds this output (written before a restart or retry); not written again`;

  /** Puts the complete temp file in place; says which name it wrote, for the message log. */
  const place = async (temp: string, name: string, delivery: Delivery): Promise<string> => {
    const target = join(config.dir, name);
    if (config.onExists === 'overwrite') {
      await replace(temp, target);
      return `wrote ${target}`;
    }
    const first = await claim(temp, target, delivery.content);
    if (first === 'placed') return `wrote ${target}`;
    if (first === 'same') return already(target);
    if (config.onExists === 'error') throw new FerryError('FILE_EXISTS', `cannot write ${target}: another file or a folder has this name (onExists: error)`);
    // Taken by another file: this output goes under the name plus its message id, a name no other
    // message's file has — one more try, never a search through name-1, name-2, ….
    const own = withSuffix(name, delivery.id);
    checkName(config.dir, own);
    const ownTarget = join(config.dir, own);
    const second = await claim(temp, ownTarget, delivery.content);
    if (second === 'same') return already(ownTarget);
    // Other bytes under this message's own name: its earlier output, from before a replay that ran
    // a script whose output changed (a timestamp, say). The current output replaces it.
    if (second === 'other') await replace(temp, ownTarget);
    return `wrote ${ownTarget} (${name} holds another file)`;
  };

  // The folder is created once, not per file; a failed write forgets that, so a folder deleted
  // while the engine runs is made again on the retry.
  let dirReady = false;

  // How this folder's files are written (file-calls.ts); found once the folder exists.
  let chosen: FileCalls | undefined;
  const calls = async (): Promise<FileCalls> => (chosen ??= await fileCallsFor(config.dir));

  /** Removes a temp file; one that is already gone is fine. */
  const discard = (file: string): Promise<void> =>
    calls()
      .then((fs) => fs.unlink(file))
      .catch(() => undefined);

  /** Writes and fsyncs the output to a temp file in the folder; returns its path. */
  const writeTemp = async (delivery: Delivery): Promise<string> => {
    if (!dirReady) await mkdir(config.dir, { recursive: true });
    dirReady = true;
    const fs = await calls();
    const temp = join(config.dir, `.${delivery.id}.${randomBytes(4).toString('hex')}.tmp`);
    const fd = await fs.open(temp, 'wx');
    try {
      await fs.writeAll(fd, delivery.content);
      await fs.fsync(fd);
    } catch (error) {
      await fs.close(fd).catch(() => undefined);
      await discard(temp);
      throw error;
    }
    await fs.close(fd);
    return temp;
  };

  const syncDir = async (): Promise<void> => {
    const fs = await calls();
    const fd = await fs.open(config.dir, 'r');
    try {
      await fs.fsync(fd);
    } finally {
      await fs.close(fd);
    }
  };

  const failed = (cause: unknown, name: string): FerryError => {
    dirReady = false;
    return isFerryError(cause) ? cause : new FerryError('FILE_WRITE_FAILED', `cannot write ${join(config.dir, name)}: ${(cause as Error).message}`, { cause });
  };

  /**
   * The outputs of a run: every temp file written and fsync'ed at once (the thread pool overlaps the
   * fsyncs), then put in place in order, then one fsync of the folder for all of them. A failure
   * ends the run there: the outputs after it are not placed (their temp files go), so a fifo
   * destination's files appear in order.
   */
  const sendMany = async (deliveries: Delivery[]): Promise<SendOutcome[]> => {
    // Names first: a bad one ends the run at its output.
    const names: string[] = [];
    let badName: SendOutcome | undefined;
    for (const delivery of deliveries) {
      try {
        const name = fileNameFor(config.filename, delivery);
        checkName(config.dir, name);
        names.push(name);
      } catch (error) {
        badName = { ok: false, error };
        break;
      }
    }
    const temps = await Promise.allSettled(names.map((_, i) => writeTemp(deliveries[i]!)));
    const outcomes: SendOutcome[] = [];
    for (const [i, written] of temps.entries()) {
      if (outcomes.at(-1)?.ok === false) {
        if (written.status === 'fulfilled') await discard(written.value);
        continue;
      }
      if (written.status === 'rejected') {
        outcomes.push({ ok: false, error: failed(written.reason, names[i]!) });
        continue;
      }
      try {
        outcomes.push({ ok: true, response: await place(written.value, names[i]!, deliveries[i]!) });
      } catch (error) {
        outcomes.push({ ok: false, error: failed(error, names[i]!) });
      } finally {
        // After a link the temp name is a second name of the delivered file: drop it at once.
        await discard(written.value);
      }
    }
    if (badName && !outcomes.some((outcome) => !outcome.ok)) outcomes.push(badName);
    if (outcomes.some((outcome) => outcome.ok)) {
      try {
        await syncDir();
      } catch (error) {
        // Placed but not known to survive a power loss: the run is tried again (the names found
        // holding the same bytes are then not written again).
        return [{ ok: false, error: failed(error, names[0]!) }];
      }
    }
    return outcomes;
  };

  return {
    async send(delivery) {
      const [outcome] = await sendMany([delivery]);
      if (!outcome!.ok) throw outcome!.error;
      return outcome!.response;
    },
    sendMany,
    async close() {},
  };
};

export const fileDestinationConnector: DestinationConnector<typeof schema, FileDestinationConfig> = {
  type: 'file',
  schema,
  normalize: (raw, dir) => ({
    type: 'file',
    dir: resolve(dir, raw.dir),
    filename: raw.filename ?? defaults.filename,
    onExists: raw.onExists ?? defaults.onExists,
  }),
  create: fileDestination,
};
