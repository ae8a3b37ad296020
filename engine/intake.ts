import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { FerryError, describeError } from './errors.ts';
import { decodeAs, decodeHl7 } from './hl7/charset.ts';
import { isAck, readHeader, type Hl7Header } from './hl7/header.ts';
import { newMessageId } from './wire/ids.ts';
import { createDispatcher, type Dispatcher } from './pipeline/dispatcher.ts';
import type { InboundJob } from './pipeline/queues.ts';
import type { MessageStore, ReceivedMessage } from './store/contract.ts';

// Intake: the one place a message becomes Ferry's responsibility. It is committed to the message
// log — durable from then on, whatever happens to the engine or to Redis — and only then reported
// accepted: sources acknowledge (MLLP AA, HTTP 200) on that report alone. Messages accepted in one
// turn of the event loop are committed in one transaction. The channel's queue is fed from here
// (pipeline/dispatcher.ts), in batches sized by how busy the channel is; it only schedules the work.

export interface IntakeOptions {
  /** Where it came from, for the log: "mllp 10.1.2.3:5123", "channel adt-archive". */
  source: string;
  /** MLLP sources accept only HL7; a hand-off from another channel may carry anything. */
  requireHl7: boolean;
  /** A fixed id makes the intake idempotent (hand-offs replayed after a crash). */
  id?: string;
  parentId?: string;
  /** An operator's deliberate resend: never suppressed as a duplicate (dedupe). */
  resend?: boolean;
  /** The bytes' character set when the source knows it better than MSH-18 (a file source's `encoding`). */
  charset?: string;
}

export type IntakeResult =
  /**
   * Committed. `duplicate`: this id was already known (a replayed hand-off), or — with `duplicateOf` —
   * the channel's dedupe found the same sender and MSH-10 within its window: acknowledge it, but it
   * is logged as filtered and only the first message is processed.
   */
  | { kind: 'accepted'; id: string; header: Hl7Header | undefined; charset: string; duplicate: boolean; duplicateOf?: string }
  /** Refused for what it is (not HL7, undecodable): the sender must not retry it unchanged. */
  | { kind: 'rejected'; id: string; header: Hl7Header | undefined; charset: string; error: FerryError }
  /** An inbound ACK: never processed and never acknowledged (an engine must not ACK an ACK). */
  | { kind: 'ignored'; header: Hl7Header }
  /**
   * Not committed, the sender must keep it and retry: the message log is unavailable
   * (COMMIT_FAILED), or the channel holds maxQueued unfinished messages (QUEUE_FULL). MLLP answers
   * AE, HTTPS 503.
   */
  | { kind: 'failed'; header: Hl7Header | undefined; charset: string; error: FerryError };

/** What undecodable bytes are shown and answered in: latin1 maps every byte to a character. */
const FALLBACK_CHARSET = '8859/1';

export interface Intake {
  accept(raw: Buffer, options: IntakeOptions): Promise<IntakeResult>;
  /** Resolves once every message accepted so far is committed and handed to the queue. */
  drain(): Promise<void>;
}

/** What the channel owning an intake wires up: the feed of its inbound queue. */
export interface ChannelIntake extends Intake {
  readonly dispatcher: Dispatcher;
}

export interface IntakeDeps {
  channel: string;
  store: MessageStore;
  queue: Queue<InboundJob>;
  /** The channel's logger: its lines already name the channel. */
  logger: Logger;
  /** How long a commit may wait for the message log; default 5 s (engine.commitTimeout). */
  commitTimeoutMs?: number;
  /** Refuse new messages (QUEUE_FULL) while the channel holds this many unfinished ones. */
  maxQueued?: number;
  /** Duplicate suppression by sender (MSH-3, MSH-4) and MSH-10 within a window. */
  dedupe?: { windowMs: number };
}

const headerOf = (text: string): Hl7Header | undefined => {
  try {
    return readHeader(text);
  } catch {
    return undefined;
  }
};

/**
 * How long a commit may wait for the message log (a disk that stalls): past this the sender gets AE
 * and resends. (If the write lands later, the message is processed anyway: at least once.)
 */
const COMMIT_TIMEOUT_MS = 5_000;

/**
 * The backlog is read from the message log's per-status counters at most this often; in between it
 * is counted up per accepted message, so a burst cannot overshoot maxQueued by more than one read's
 * worth of messages that finished meanwhile.
 */
const DEPTH_REFRESH_MS = 100;

const withDeadline = <T>(work: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FerryError('STORE_FAILED', `the message log did not commit within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
};

/** Who sent it and their control id; no identity (no dedupe) without an MSH-10. */
const dedupeKeyOf = (header: Hl7Header | undefined): string | undefined =>
  header?.controlId ? JSON.stringify([header.sendingApplication, header.sendingFacility, header.controlId]) : undefined;

const formatWindow = (ms: number): string =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;

/** How one message of a committed batch ended. */
type Committed =
  | { kind: 'queued' }
  /** Already recorded (a replayed hand-off): acknowledged, queued again only while still to transform. */
  | { kind: 'known' }
  | { kind: 'duplicate'; of: string }
  | { kind: 'failed'; message: string; cause: unknown };

export const createIntake = (deps: IntakeDeps): ChannelIntake => {
  const { channel, store, queue, logger, commitTimeoutMs = COMMIT_TIMEOUT_MS, maxQueued, dedupe } = deps;
  const dispatcher = createDispatcher({ queue, store, logger });
  const dedupeNote = dedupe && `(same sender and MSH-10 within ${formatWindow(dedupe.windowMs)})`;
  let depth = 0;
  let depthReadAt = Number.NEGATIVE_INFINITY;
  let full = false;

  /**
   * Records the message (the message log commits the writes of one turn of the event loop in one
   * transaction) and hands it to the queue's feed, which gathers a turn's messages into one job.
   */
  const commit = async (record: ReceivedMessage): Promise<Committed> => {
    const { id } = record;
    let received;
    try {
      received = await store.receive(record);
    } catch (cause) {
      return { kind: 'failed', message: `cannot record the message: ${describeError(cause)}`, cause };
    }
    if (received.duplicateOf !== undefined) return { kind: 'duplicate', of: received.duplicateOf };
    if (received.fresh) {
      depth += 1;
      dispatcher.dispatch([id]);
      return { kind: 'queued' };
    }
    const known = store.load(id);
    // A fixed id already taken by another channel is another message (one sender's message posted
    // to two channels), never a duplicate: refuse rather than acknowledge what will not be processed.
    if (known?.channel !== channel) return { kind: 'failed', message: `message id ${id} is already used by another channel`, cause: undefined };
    // A replayed hand-off whose first copy is still to transform goes to the queue again, in case
    // its job was lost (processing it twice is harmless: the translator step skips what is done).
    if (known.status === 'received') dispatcher.dispatch([id]);
    return { kind: 'known' };
  };

  /** Commits still under way, for drain. */
  const inFlight = new Set<Promise<Committed>>();

  /** Whether the channel is at maxQueued; logs once when it fills and once when it drains. */
  const isFull = (): boolean => {
    if (maxQueued === undefined) return false;
    const now = Date.now();
    if (now - depthReadAt >= DEPTH_REFRESH_MS) {
      try {
        depth = store.unfinished(channel);
      } catch {
        return false; // the log is unusable: the commit below fails and says why
      }
      depthReadAt = now;
    }
    if (full !== depth >= maxQueued) {
      full = !full;
      if (full) logger.warn({ code: 'QUEUE_FULL', depth, maxQueued }, 'channel is full: refusing new messages until its backlog drains');
      else logger.info({ depth, maxQueued }, 'channel below maxQueued again: accepting messages');
    }
    return full;
  };

  return {
    async accept(raw, options) {
      const id = options.id ?? newMessageId();
      let text: string;
      let charset: string;
      try {
        ({ text, charset } = options.charset === undefined ? decodeHl7(raw) : { text: decodeAs(raw, options.charset), charset: options.charset });
      } catch (error) {
        if (!options.requireHl7) ({ text, charset } = { text: raw.toString('latin1'), charset: FALLBACK_CHARSET });
        else return refuse(error, raw.toString('latin1'), FALLBACK_CHARSET);
      }
      const header = headerOf(text);
      if (header && isAck(header)) return { kind: 'ignored', header };
      if (!header && options.requireHl7) {
        return refuse(new FerryError('HL7_NOT_HL7', 'the message does not start with an MSH segment'), text, charset);
      }
      // Before anything is stored: a full channel must not grow, not even its message log.
      if (isFull()) {
        const error = new FerryError('QUEUE_FULL', `channel ${channel} holds ${depth} unfinished messages (maxQueued ${maxQueued}); resend later`);
        return { kind: 'failed', header, charset, error };
      }

      const dedupeKey = dedupe && !options.resend ? dedupeKeyOf(header) : undefined;
      const record: ReceivedMessage = {
        id,
        channel,
        source: options.source,
        raw,
        text,
        charset,
        parentId: options.parentId ?? null,
        messageType: header?.messageType || null,
        controlId: header?.controlId || null,
        sender: header ? [header.sendingApplication, header.sendingFacility].filter(Boolean).join('@') || null : null,
        ...(dedupeKey !== undefined && dedupe ? { dedupe: { key: dedupeKey, windowMs: dedupe.windowMs, note: dedupeNote! } } : {}),
      };
      // A stalled commit (a disk that hangs) holds the batches behind it too: each sender hears AE
      // within the timeout.
      let committed: Committed;
      try {
        const committing = commit(record);
        inFlight.add(committing);
        void committing.finally(() => inFlight.delete(committing));
        committed = await withDeadline(committing, commitTimeoutMs);
      } catch (cause) {
        return fail(header, `cannot record the message: ${describeError(cause)}`, cause);
      }
      switch (committed.kind) {
        case 'queued':
          return { kind: 'accepted', id, header, charset, duplicate: false };
        case 'known':
          return { kind: 'accepted', id, header, charset, duplicate: true };
        case 'duplicate':
          logger.info({ id, duplicateOf: committed.of, controlId: header?.controlId }, 'duplicate message: acknowledged, not processed again');
          return { kind: 'accepted', id, header, charset, duplicate: true, duplicateOf: committed.of };
        case 'failed':
          return fail(header, committed.message, committed.cause);
      }

      function fail(header: Hl7Header | undefined, message: string, cause: unknown): IntakeResult {
        const error = new FerryError('COMMIT_FAILED', message, { cause });
        logger.error({ source: options.source, err: cause }, error.message);
        return { kind: 'failed', header, charset, error };
      }

      async function refuse(error: unknown, shown: string, shownCharset: string): Promise<IntakeResult> {
        const reason = error instanceof FerryError ? error : new FerryError('HL7_ENCODING', describeError(error), { cause: error });
        logger.warn({ source: options.source, code: reason.code }, `refused: ${reason.message}`);
        await store
          .reject({ id, channel, source: options.source, raw, text: shown, charset: shownCharset, parentId: options.parentId ?? null }, describeError(reason))
          .catch((cause) => logger.error({ err: cause }, 'could not record a refused message'));
        return { kind: 'rejected', id, header: headerOf(shown), charset: shownCharset, error: reason };
      }
    },

    async drain() {
      await Promise.all(inFlight);
      await dispatcher.drain();
    },

    dispatcher,
  };
};
