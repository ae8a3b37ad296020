import { Type } from '@sinclair/typebox';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { DestinationConfig } from '../config/contract.ts';
import { Path, StringEnum, Tag } from '../config/units.ts';
import type { DestinationConnector } from '../connector.ts';
import { FerryError } from '../errors.ts';
import { inProgressName, withSuffix } from '../file-names.ts';
import { nodeBundle } from '../node-bundle.ts';
import type { Delivery, Destination, SendOutcome } from './destination.ts';
import { checkName, type RunItem, type RunOutcome } from './file-writer.ts';

// One file per output, written atomically and never over another message's file, by a thread of the
// destination's own (file-writer.ts: how, and why in a thread). This side names the files and hands
// the writer runs of outputs.

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

/** Answers of the writer thread, by the run they answer. */
type Pending = Map<number, (outcomes: RunOutcome[] | Error) => void>;

export const fileDestination = (config: FileDestinationConfig): Destination => {
  let writer: Worker | undefined;
  let seq = 0;
  const pending: Pending = new Map();

  /** The writer thread, started on the first run and again after one that stopped. */
  const start = async (): Promise<Worker> => {
    if (writer) return writer;
    const code = await nodeBundle(new URL('./file-writer-thread.ts', import.meta.url));
    if (writer) return writer;
    const thread = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
      workerData: { dir: config.dir, onExists: config.onExists },
    });
    thread.on('message', ({ seq: answered, outcomes }: { seq: number; outcomes: RunOutcome[] }) => {
      pending.get(answered)?.(outcomes);
      pending.delete(answered);
      if (pending.size === 0) thread.unref();
    });
    const stopped = (why: string): void => {
      if (writer === thread) writer = undefined;
      for (const settle of pending.values()) settle(new FerryError('FILE_WRITE_FAILED', `cannot write to ${config.dir}: the file writer thread ${why}`));
      pending.clear();
    };
    thread.on('error', (error) => stopped(`failed: ${error.message}`));
    thread.on('exit', (code) => stopped(`stopped (exit code ${code})`));
    // A writer with nothing to do does not keep the engine from exiting (one with runs in hand does).
    thread.unref();
    writer = thread;
    return thread;
  };

  /** Writes a run of outputs; one outcome per output tried, in order, up to the first failure. */
  const write = async (items: RunItem[]): Promise<RunOutcome[] | Error> => {
    const thread = await start();
    return new Promise((settle) => {
      const id = ++seq;
      pending.set(id, settle);
      thread.ref();
      thread.postMessage({ seq: id, items });
    });
  };

  /**
   * The outputs of a run, named here (a bad name ends the run at its output: the same every time, so
   * permanent), written by the thread.
   */
  const sendMany = async (deliveries: Delivery[]): Promise<SendOutcome[]> => {
    const items: RunItem[] = [];
    let badName: SendOutcome | undefined;
    for (const delivery of deliveries) {
      try {
        const name = fileNameFor(config.filename, delivery);
        checkName(config.dir, name);
        items.push({ id: delivery.id, name, content: delivery.content });
      } catch (error) {
        badName = { ok: false, error };
        break;
      }
    }
    if (items.length === 0) return badName ? [badName] : [];
    const written = await write(items);
    if (written instanceof Error) return [{ ok: false, error: written }];
    const outcomes = written.map((outcome): SendOutcome => (outcome.ok ? outcome : { ok: false, error: new FerryError(outcome.error.code, outcome.error.message) }));
    if (badName && outcomes.length === items.length && !outcomes.some((outcome) => !outcome.ok)) outcomes.push(badName);
    return outcomes;
  };

  return {
    async send(delivery) {
      const [outcome] = await sendMany([delivery]);
      if (!outcome!.ok) throw outcome!.error;
      return outcome!.response;
    },
    sendMany,
    async close() {
      const thread = writer;
      writer = undefined;
      await thread?.terminate();
    },
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
