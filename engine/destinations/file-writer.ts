// Writes a file destination's runs of outputs, in a thread of its own (file-writer-thread.ts): each
// run's files are written to temp files and fsync'ed (the fsyncs overlap in libuv's pool), then put
// in place under their names in order, then the folder is fsync'ed once — a reader never sees half a
// file, files appear in the order of the run, and a file that exists survives power loss.
//
// In its own thread because the calls block: creating and linking files wait on the file system's
// journal while other files are being fsync'ed (measured: ~0.6 ms a file on the main thread, where
// every channel waits behind them), and on a network share each call is a round trip — or never
// returns, when the share is gone. Here that holds this destination alone.
//
// No file is replaced unless `onExists: overwrite` asks for it. rename(2) would replace silently, so
// the temp file is hard-linked under the name instead: link(2) fails with EEXIST, even against a
// writer in another process. A taken name that holds the very same bytes is this output's own file:
// a replay after a crash between the write and the message log's "sent" finds it and writes nothing
// again. (A sender's byte-for-byte retransmission of one HL7 message is therefore also written once
// when the name has no {id}.) A name taken by another file makes the output go under the name plus
// its message id instead (onExists: suffix), a name no other message's file can have.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FerryError, isFerryError, type ErrorCode } from '../errors.ts';
import { withSuffix } from '../file-names.ts';

export type OnExists = 'suffix' | 'error' | 'overwrite';

/** One output of a run: whose it is (its message id), the name it goes under, and its bytes. */
export interface RunItem {
  id: string;
  name: string;
  content: Uint8Array;
}

/** A failure as data, to cross back from the thread. */
export interface WriteFailure {
  code: ErrorCode;
  message: string;
}

export type RunOutcome = { ok: true; response: string } | { ok: false; error: WriteFailure };

/** The longest file name (one path component) that ext4, XFS, NTFS and SMB shares all take, in UTF-8 bytes. */
const MAX_NAME_BYTES = 255;

/** errno codes of link(2) on file systems without hard links (FAT, some SMB and FUSE mounts). */
const noHardLinks = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

const fsync = promisify(fs.fsync);

/** The first characters of a name too long to show whole in a log line. */
const preview = (name: string): string => (name.length > 64 ? `${name.slice(0, 64)}…` : name);

/** A name the file system cannot take, refused before anything is written. */
export const checkName = (dir: string, name: string): void => {
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
const placeError = (cause: unknown, target: string, onExists: OnExists): FerryError => {
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
const holds = (file: string, content: Uint8Array): boolean | undefined => {
  const stats = fs.lstatSync(file, { throwIfNoEntry: false });
  return stats && stats.isFile() && stats.size === content.length && fs.readFileSync(file).equals(content);
};

const writeAll = (fd: number, content: Uint8Array): void => {
  for (let at = 0; at < content.length; ) at += fs.writeSync(fd, content, at);
};

/** Removes a temp file; one that is already gone is fine. */
const discard = (file: string): void => fs.rmSync(file, { force: true });

/** The writer of one destination's folder. */
export const fileWriter = (dir: string, onExists: OnExists) => {
  // The folder is created once, not per run; a failed run forgets that, so a folder deleted while
  // the engine runs is made again on the retry.
  let dirReady = false;

  /** Links the temp file as `target` unless that name exists: placed, or what the name holds. */
  const claim = (temp: string, target: string, content: Uint8Array): 'placed' | 'same' | 'other' => {
    for (;;) {
      try {
        fs.linkSync(temp, target);
        return 'placed';
      } catch (cause) {
        if (errnoOf(cause) !== 'EEXIST') throw placeError(cause, target, onExists);
      }
      const same = holds(target, content);
      if (same !== undefined) return same ? 'same' : 'other';
      // Removed between the link and the look: try the name again.
    }
  };

  /** Renames the temp file over `target`, replacing what is there. */
  const replace = (temp: string, target: string): void => {
    try {
      fs.renameSync(temp, target);
    } catch (cause) {
      throw placeError(cause, target, onExists);
    }
  };

  const already = (target: string): string => `${target} already holds this output (written before a restart or retry); not written again`;

  /** Puts the complete temp file in place; says which name it wrote, for the message log. */
  const place = (temp: string, item: RunItem): string => {
    const target = join(dir, item.name);
    if (onExists === 'overwrite') {
      replace(temp, target);
      return `wrote ${target}`;
    }
    const first = claim(temp, target, item.content);
    if (first === 'placed') return `wrote ${target}`;
    if (first === 'same') return already(target);
    if (onExists === 'error') throw new FerryError('FILE_EXISTS', `cannot write ${target}: another file or a folder has this name (onExists: error)`);
    // Taken by another file: this output goes under the name plus its message id, a name no other
    // message's file has — one more try, never a search through name-1, name-2, ….
    const own = withSuffix(item.name, item.id);
    checkName(dir, own);
    const ownTarget = join(dir, own);
    const second = claim(temp, ownTarget, item.content);
    if (second === 'same') return already(ownTarget);
    // Other bytes under this message's own name: its earlier output, from before a replay that ran
    // a script whose output changed (a timestamp, say). The current output replaces it.
    if (second === 'other') replace(temp, ownTarget);
    return `wrote ${ownTarget} (${item.name} holds another file)`;
  };

  const failure = (cause: unknown, name: string): RunOutcome => {
    dirReady = false;
    const error = isFerryError(cause) ? cause : new FerryError('FILE_WRITE_FAILED', `cannot write ${join(dir, name)}: ${(cause as Error).message}`, { cause });
    return { ok: false, error: { code: error.code, message: error.message } };
  };

  /** Writes and fsyncs an output to a temp file in the folder; returns its path. */
  const writeTemp = async (item: RunItem): Promise<string> => {
    const temp = join(dir, `.${item.id}.${randomBytes(4).toString('hex')}.tmp`);
    const fd = fs.openSync(temp, 'wx');
    try {
      writeAll(fd, item.content);
      await fsync(fd);
    } catch (error) {
      discard(temp);
      throw error;
    } finally {
      fs.closeSync(fd);
    }
    return temp;
  };

  const syncDir = async (): Promise<void> => {
    const fd = fs.openSync(dir, 'r');
    try {
      await fsync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };

  /** One outcome per output it tried, in order, up to the first failure (the rest are not written). */
  return async (items: RunItem[]): Promise<RunOutcome[]> => {
    try {
      if (!dirReady) fs.mkdirSync(dir, { recursive: true });
      dirReady = true;
    } catch (cause) {
      return [failure(cause, items[0]?.name ?? '')];
    }
    // Written one after another, fsync'ed together.
    const temps = await Promise.allSettled(items.map(writeTemp));
    const outcomes: RunOutcome[] = [];
    for (const [i, written] of temps.entries()) {
      if (outcomes.at(-1)?.ok === false) {
        if (written.status === 'fulfilled') discard(written.value);
        continue;
      }
      if (written.status === 'rejected') {
        outcomes.push(failure(written.reason, items[i]!.name));
        continue;
      }
      try {
        outcomes.push({ ok: true, response: place(written.value, items[i]!) });
      } catch (error) {
        outcomes.push(failure(error, items[i]!.name));
      } finally {
        // After a link the temp name is a second name of the delivered file: drop it at once.
        discard(written.value);
      }
    }
    if (outcomes.some((outcome) => outcome.ok)) {
      try {
        await syncDir();
      } catch (error) {
        // Placed but not known to survive a power loss: the run is tried again (the names found
        // holding the same bytes are then not written again).
        return [failure(error, items[0]!.name)];
      }
    }
    return outcomes;
  };
};
